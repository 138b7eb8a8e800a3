//! eventkit-bench: load generator, end-to-end checker and report writer for the eventkit
//! collector. `main.rs` only parses arguments; everything here is testable without a server.

pub mod ceiling;
pub mod client;
pub mod cpu;
pub mod error;
pub mod ids;
pub mod landing;
pub mod ledger;
pub mod load;
pub mod ops;
pub mod probe;
pub mod report;
pub mod result;
pub mod scenario;
pub mod schedule;
pub mod stats;
pub mod suite;
pub mod timeline;
pub mod workload;

//! eventkit: accepts Segment-spec events over HTTP, validates and enriches them, queues them, and
//! writes them as Parquet files to object storage.

pub mod batcher;
pub mod config;
pub mod dedup;
pub mod fd_limit;
pub mod health;
pub mod http;
pub mod loader;
pub mod queue;
pub mod routes;
pub mod server;
pub mod streams;
pub mod telemetry;

/// Validation and enrichment live in their own crate; the collector's modules reach them here.
pub use eventkit_ingest as ingest;

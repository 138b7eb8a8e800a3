//! Storage side of eventkit: the Parquet encoding of the model's tables and the object stores the
//! files land in. Nothing here knows which queue mode fed it.

pub mod layout;
pub mod parquet_sink;
pub mod postgres;
pub mod sink;
pub mod store;

pub use parquet_sink::ParquetSink;
pub use postgres::{PostgresSink, PostgresSinkConfig};
pub use sink::{Sink, SinkError, WrittenFile};
pub use store::{StoreError, open_store};

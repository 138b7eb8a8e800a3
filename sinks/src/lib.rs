//! Storage side of eventkit: the record model that leaves the queue, the Parquet encoding of it,
//! and the object stores the files land in. Nothing here knows which queue mode fed it.

pub mod layout;
pub mod parquet_sink;
pub mod record;
pub mod schema;
pub mod sink;
pub mod store;
pub mod table;
mod text_column;

pub use parquet_sink::ParquetSink;
pub use record::{
    Batch, Event, EventType, REJECTED_STREAM, Records, Rejected, Text, TextFields, Times,
};
pub use sink::{Sink, SinkError, WrittenFile};
pub use store::{StoreError, open_store};
pub use table::{Table, TableBuilder};

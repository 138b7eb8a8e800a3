//! The event model of eventkit: what an accepted or rejected event is, the columns it is stored
//! in, the streams it goes to, and the Arrow tables those columns make. The collector builds
//! these and the sinks store them; neither owns them.

pub mod columns;
pub mod record;
pub mod schema;
pub mod stream;
pub mod table;
mod text_column;

pub use columns::{Column, EVENT_COLUMNS, Text, Time};
pub use record::{Batch, Event, EventType, Records, Rejected, TextFields, Times};
pub use schema::{ColumnSizes, EVENT_SCHEMA, REJECTED_SCHEMA};
pub use stream::{InvalidStreamName, REJECTED_STREAM, StreamName};
pub use table::{Table, TableBuilder};

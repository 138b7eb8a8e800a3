//! What a sink writes: one stream's records as Arrow columns. The batcher builds a table as
//! records arrive, so a flush finishes columns instead of walking every buffered record.

use arrow_array::{Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::ArrowError;

use crate::columns::Time;
use crate::record::{Batch, Records, Rejected};
use crate::schema::{ColumnSizes, EventColumns, rejected_batch};

/// Records bound for one stream, ready to encode.
#[derive(Debug, Clone)]
pub struct Table {
    pub stream: String,
    pub rows: RecordBatch,
}

impl Table {
    /// A whole batch at once, for callers that hold one (tests, tools).
    pub fn from_batch(batch: Batch) -> Result<Self, ArrowError> {
        TableBuilder::from_records(batch.records).finish(batch.stream)
    }

    pub fn num_rows(&self) -> usize {
        self.rows.num_rows()
    }

    /// `received_at` of every row, in microseconds: what files are partitioned by.
    pub fn received_at_micros(&self) -> Option<&TimestampMicrosecondArray> {
        self.rows
            .column_by_name(Time::ReceivedAt.column())?
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
    }
}

/// A table being filled. A stream holds one kind of record: events, or (in the dead-letter
/// stream) rejected events, which are rare enough to keep as they are until the flush.
pub enum TableBuilder {
    Events(Box<EventColumns>),
    Rejected(Vec<Rejected>),
}

impl TableBuilder {
    pub fn for_records(records: &Records) -> Self {
        Self::sized_for(records, None)
    }

    /// A builder for this kind of record whose event columns start at `sizes`.
    pub fn sized_for(records: &Records, sizes: Option<&ColumnSizes>) -> Self {
        match records {
            Records::Events(_) => {
                let sizes = sizes.copied().unwrap_or_default();
                TableBuilder::Events(Box::new(EventColumns::with_capacity(&sizes)))
            }
            Records::Rejected(_) => TableBuilder::Rejected(Vec::new()),
        }
    }

    /// How large the event columns have grown; `None` for dead letters.
    pub fn column_sizes(&self) -> Option<ColumnSizes> {
        match self {
            TableBuilder::Events(columns) => Some(columns.sizes()),
            TableBuilder::Rejected(_) => None,
        }
    }

    /// A builder holding `records`.
    pub fn from_records(records: Records) -> Self {
        let mut builder = Self::for_records(&records);
        // The builder was made for this kind of record, so it cannot refuse them.
        let _ = builder.append(records);
        builder
    }

    pub fn len(&self) -> usize {
        match self {
            TableBuilder::Events(columns) => columns.len(),
            TableBuilder::Rejected(rejected) => rejected.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends records of this builder's kind; hands back records of the other kind.
    pub fn append(&mut self, records: Records) -> Result<(), Records> {
        match (self, records) {
            (TableBuilder::Events(columns), Records::Events(events)) => {
                events.iter().for_each(|event| columns.push(event));
            }
            (TableBuilder::Rejected(held), Records::Rejected(rejected)) => held.extend(rejected),
            (_, other) => return Err(other),
        }
        Ok(())
    }

    pub fn finish(self, stream: String) -> Result<Table, ArrowError> {
        let rows = match self {
            TableBuilder::Events(mut columns) => columns.finish(&stream)?,
            TableBuilder::Rejected(rejected) => rejected_batch(&rejected)?,
        };
        Ok(Table { stream, rows })
    }
}

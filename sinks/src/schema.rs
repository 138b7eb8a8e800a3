//! Arrow schemas of the two record kinds and the conversion of records into record batches.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::record::{Event, Rejected, Text};
use crate::text_column::TextColumn;

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Columns of an event file, in order. `stream` is repeated in every row (as well as in the
/// Hive path) so a file copied out of its directory still says where it came from.
pub static EVENT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("message_id", false),
        text("stream", false),
        text("type", false),
        text("event", true),
        text("name", true),
        text("user_id", true),
        text("anonymous_id", true),
        text("group_id", true),
        text("previous_id", true),
        Field::new("timestamp", utc_micros(), false),
        Field::new("original_timestamp", utc_micros(), true),
        Field::new("sent_at", utc_micros(), true),
        Field::new("received_at", utc_micros(), false),
        text("context_ip", true),
        text("context_user_agent", true),
        text("context_library_name", true),
        text("context_library_version", true),
        text("page_path", true),
        text("page_url", true),
        text("page_referrer", true),
        text("page_title", true),
        text("properties", true),
        text("traits", true),
        text("context", true),
        text("integrations", true),
    ]))
});

/// Columns of a dead-letter file in the `_rejected` stream.
pub static REJECTED_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("received_at", utc_micros(), false),
        text("stream", false),
        Field::new("index", DataType::UInt32, false),
        text("error", false),
        text("raw", false),
        text("context_ip", true),
    ]))
});

/// The per-row text columns are [`Text::ALL`], in schema order but without `stream` and `type`:
/// `message_id`, then this many identifiers (`event` … `previous_id`), then what follows the four
/// timestamp columns (`context_ip` … `integrations`).
const IDENTIFIER_FIELDS: usize = 6;

/// Event columns being filled, one event at a time. Appending an event copies its text into
/// the column buffers while it is still in cache; the event itself can then be freed, so a
/// buffered event costs its bytes rather than a struct and a handful of allocations.
pub struct EventColumns {
    text: Vec<TextColumn>,
    types: StringBuilder,
    /// `timestamp`, `original_timestamp`, `sent_at`, `received_at`.
    times: [TimestampMicrosecondBuilder; 4],
    rows: usize,
}

/// The size of a stream's last full batch. The next batch's columns start at that size instead
/// of doubling up to it, which would copy every buffer at each step and touch twice the memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSizes {
    rows: usize,
    text_bytes: [usize; Text::COUNT],
}

impl EventColumns {
    pub fn with_capacity(sizes: &ColumnSizes) -> Self {
        let rows = sizes.rows;
        Self {
            text: sizes
                .text_bytes
                .iter()
                .map(|&bytes| TextColumn::with_capacity(rows, bytes))
                .collect(),
            types: StringBuilder::with_capacity(rows, rows * "identify".len()),
            times: std::array::from_fn(|_| {
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC")
            }),
            rows: 0,
        }
    }

    pub fn sizes(&self) -> ColumnSizes {
        let mut text_bytes = [0; Text::COUNT];
        for (bytes, builder) in text_bytes.iter_mut().zip(&self.text) {
            *bytes = builder.text_bytes();
        }
        ColumnSizes {
            rows: self.rows,
            text_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, event: &Event) {
        for (builder, field) in self.text.iter_mut().zip(Text::ALL) {
            builder.append(event.text(field));
        }
        self.types.append_value(event.event_type.as_str());
        let times = [
            Some(event.times.timestamp),
            event.times.original_timestamp,
            event.times.sent_at,
            Some(event.times.received_at),
        ];
        for (builder, time) in self.times.iter_mut().zip(times) {
            builder.append_option(time.map(|t| t.timestamp_micros()));
        }
        self.rows += 1;
    }

    /// The rows pushed so far as a record batch of [`EVENT_SCHEMA`]; the builder is left empty.
    pub fn finish(&mut self, stream: &str) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        let mut finished = self.text.iter_mut().map(TextColumn::finish);
        let mut take = |count: usize| finished.by_ref().take(count).collect::<Vec<_>>();
        let message_id = take(1);
        let identifiers = take(IDENTIFIER_FIELDS);
        let after_times = take(Text::COUNT);

        let mut streams = StringBuilder::with_capacity(rows, rows * stream.len());
        (0..rows).for_each(|_| streams.append_value(stream));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(EVENT_SCHEMA.fields().len());
        columns.extend(message_id);
        columns.push(Arc::new(streams.finish()));
        columns.push(Arc::new(self.types.finish()));
        columns.extend(identifiers);
        columns.extend(
            self.times
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(after_times);
        RecordBatch::try_new(EVENT_SCHEMA.clone(), columns)
    }
}

fn strings<'a>(len: usize, values: impl Iterator<Item = Option<&'a str>> + Clone) -> ArrayRef {
    let bytes = values.clone().map(|v| v.map_or(0, str::len)).sum();
    let mut builder = StringBuilder::with_capacity(len, bytes);
    for value in values {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

/// Dead letters as a record batch of [`REJECTED_SCHEMA`].
pub fn rejected_batch(rejected: &[Rejected]) -> Result<RecordBatch, ArrowError> {
    let n = rejected.len();
    let mut index = UInt32Builder::with_capacity(n);
    rejected.iter().for_each(|r| index.append_value(r.index));
    let mut received_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    rejected
        .iter()
        .for_each(|r| received_at.append_value(r.received_at.timestamp_micros()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(received_at.finish()),
        strings(n, rejected.iter().map(|r| Some(r.stream.as_str()))),
        Arc::new(index.finish()),
        strings(n, rejected.iter().map(|r| Some(r.error.as_str()))),
        strings(n, rejected.iter().map(|r| Some(r.raw.as_str()))),
        strings(n, rejected.iter().map(|r| r.context_ip.as_deref())),
    ];
    RecordBatch::try_new(REJECTED_SCHEMA.clone(), columns)
}

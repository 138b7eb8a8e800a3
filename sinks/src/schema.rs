//! Arrow schemas of the two record kinds and the conversion of records into record batches.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};

use crate::record::{Event, Records, Rejected};

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

pub fn schema_of(records: &Records) -> SchemaRef {
    match records {
        Records::Events(_) => EVENT_SCHEMA.clone(),
        Records::Rejected(_) => REJECTED_SCHEMA.clone(),
    }
}

pub fn to_record_batch(stream: &str, records: &Records) -> Result<RecordBatch, ArrowError> {
    match records {
        Records::Events(events) => events_batch(stream, events),
        Records::Rejected(rejected) => rejected_batch(rejected),
    }
}

/// A string column. The values are walked twice, once to size the buffer exactly: JSON columns
/// hold hundreds of bytes a row, and growing a buffer by doubling copies it over and over.
fn strings<'a, I>(len: usize, values: impl Fn() -> I) -> ArrayRef
where
    I: Iterator<Item = Option<&'a str>>,
{
    let bytes = values().map(|v| v.map_or(0, str::len)).sum();
    let mut builder = StringBuilder::with_capacity(len, bytes);
    for value in values() {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

fn times(len: usize, values: impl Iterator<Item = Option<DateTime<Utc>>>) -> ArrayRef {
    let mut builder = TimestampMicrosecondBuilder::with_capacity(len).with_timezone("UTC");
    for value in values {
        builder.append_option(value.map(|t| t.timestamp_micros()));
    }
    Arc::new(builder.finish())
}

pub fn events_batch(stream: &str, events: &[Event]) -> Result<RecordBatch, ArrowError> {
    let n = events.len();
    let text_col = |get: fn(&Event) -> Option<&str>| strings(n, || events.iter().map(get));
    let time_col = |get: fn(&Event) -> Option<DateTime<Utc>>| times(n, events.iter().map(get));
    let columns: Vec<ArrayRef> = vec![
        text_col(|e| Some(&e.message_id)),
        strings(n, || events.iter().map(|_| Some(stream))),
        text_col(|e| Some(e.event_type.as_str())),
        text_col(|e| e.event.as_deref()),
        text_col(|e| e.name.as_deref()),
        text_col(|e| e.user_id.as_deref()),
        text_col(|e| e.anonymous_id.as_deref()),
        text_col(|e| e.group_id.as_deref()),
        text_col(|e| e.previous_id.as_deref()),
        time_col(|e| Some(e.timestamp)),
        time_col(|e| e.original_timestamp),
        time_col(|e| e.sent_at),
        time_col(|e| Some(e.received_at)),
        text_col(|e| e.context_ip.as_deref()),
        text_col(|e| e.context_user_agent.as_deref()),
        text_col(|e| e.context_library_name.as_deref()),
        text_col(|e| e.context_library_version.as_deref()),
        text_col(|e| e.page_path.as_deref()),
        text_col(|e| e.page_url.as_deref()),
        text_col(|e| e.page_referrer.as_deref()),
        text_col(|e| e.page_title.as_deref()),
        text_col(|e| e.properties.as_deref()),
        text_col(|e| e.traits.as_deref()),
        text_col(|e| e.context.as_deref()),
        text_col(|e| e.integrations.as_deref()),
    ];
    RecordBatch::try_new(EVENT_SCHEMA.clone(), columns)
}

pub fn rejected_batch(rejected: &[Rejected]) -> Result<RecordBatch, ArrowError> {
    let n = rejected.len();
    let mut index = UInt32Builder::with_capacity(n);
    rejected.iter().for_each(|r| index.append_value(r.index));
    let columns: Vec<ArrayRef> = vec![
        times(n, rejected.iter().map(|r| Some(r.received_at))),
        strings(n, || rejected.iter().map(|r| Some(r.stream.as_str()))),
        Arc::new(index.finish()),
        strings(n, || rejected.iter().map(|r| Some(r.error.as_str()))),
        strings(n, || rejected.iter().map(|r| Some(r.raw.as_str()))),
        strings(n, || rejected.iter().map(|r| r.context_ip.as_deref())),
    ];
    RecordBatch::try_new(REJECTED_SCHEMA.clone(), columns)
}

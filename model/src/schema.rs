//! Arrow schemas of the two record kinds and the conversion of records into record batches.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder, UInt32Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::columns::{Column, EVENT_COLUMNS, Text, Time, utc_micros};
use crate::record::{Event, Rejected};
use crate::text_column::TextColumn;

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Columns of an event file: [`EVENT_COLUMNS`], in order.
pub static EVENT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        EVENT_COLUMNS.iter().map(|c| c.field()).collect::<Vec<_>>(),
    ))
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

/// Event columns being filled, one event at a time. Appending an event copies its text into
/// the column buffers while it is still in cache; the event itself can then be freed, so a
/// buffered event costs its bytes rather than a struct and a handful of allocations.
pub struct EventColumns {
    /// By [`Text`].
    text: [TextColumn; Text::COUNT],
    types: StringBuilder,
    /// By [`Time`].
    times: [TimestampMicrosecondBuilder; Time::COUNT],
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
                .map(|bytes| TextColumn::with_capacity(rows, bytes)),
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
        for (builder, time) in self.times.iter_mut().zip(Time::ALL) {
            builder.append_option(event.times.get(time).map(|t| t.timestamp_micros()));
        }
        self.rows += 1;
    }

    /// The rows pushed so far as a record batch of [`EVENT_SCHEMA`]; the builder is left empty.
    pub fn finish(&mut self, stream: &str) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(EVENT_COLUMNS.len());
        for column in EVENT_COLUMNS {
            columns.push(match column {
                Column::Stream => {
                    let mut streams = StringBuilder::with_capacity(rows, rows * stream.len());
                    (0..rows).for_each(|_| streams.append_value(stream));
                    Arc::new(streams.finish())
                }
                Column::Type => Arc::new(self.types.finish()),
                Column::Text(text) => self.text[text as usize].finish(),
                Column::Time(time) => Arc::new(self.times[time as usize].finish()),
            });
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::record::{EventType, TextFields, Times};

    /// The file format as users read it (`specs/event-schema.md`): name and nullability.
    const DOCUMENTED: [(&str, bool); 26] = [
        ("message_id", false),
        ("stream", false),
        ("type", false),
        ("event", true),
        ("name", true),
        ("category", true),
        ("user_id", true),
        ("anonymous_id", true),
        ("group_id", true),
        ("previous_id", true),
        ("timestamp", false),
        ("original_timestamp", true),
        ("sent_at", true),
        ("received_at", false),
        ("context_ip", true),
        ("context_user_agent", true),
        ("context_library_name", true),
        ("context_library_version", true),
        ("page_path", true),
        ("page_url", true),
        ("page_referrer", true),
        ("page_title", true),
        ("properties", true),
        ("traits", true),
        ("context", true),
        ("integrations", true),
    ];

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap()
    }

    #[test]
    fn the_schema_is_the_documented_one() {
        let fields: Vec<(&str, bool)> = EVENT_SCHEMA
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.is_nullable()))
            .collect();
        assert_eq!(fields, DOCUMENTED);
    }

    #[test]
    fn every_column_holds_its_own_field() {
        // Each text field holds the name of the column it belongs in; each time is distinct.
        let mut text: TextFields = [None; Text::COUNT];
        for field in Text::ALL {
            text[field as usize] = Some(field.column());
        }
        let times = Times {
            timestamp: at(1),
            original_timestamp: Some(at(2)),
            sent_at: Some(at(3)),
            received_at: at(4),
        };
        let event = Event::new(EventType::Alias, times, &text);
        let mut columns = EventColumns::with_capacity(&ColumnSizes::default());
        columns.push(&event);
        let batch = columns.finish("web").unwrap();
        assert_eq!(batch.num_columns(), DOCUMENTED.len());

        let expected_times = [
            ("timestamp", at(1)),
            ("original_timestamp", at(2)),
            ("sent_at", at(3)),
            ("received_at", at(4)),
        ];
        for (i, field) in batch.schema().fields().iter().enumerate() {
            let name = field.name().as_str();
            let column = batch.column(i);
            assert_eq!(column.data_type(), field.data_type(), "{name}");
            if let Some((_, time)) = expected_times.iter().find(|(n, _)| *n == name) {
                let micros = column.as_primitive::<TimestampMicrosecondType>().value(0);
                assert_eq!(micros, time.timestamp_micros(), "{name}");
                continue;
            }
            let value = column.as_string::<i32>().value(0);
            match name {
                "stream" => assert_eq!(value, "web"),
                "type" => assert_eq!(value, "alias"),
                _ => assert_eq!(value, name),
            }
        }
    }

    #[test]
    fn absent_fields_are_nulls() {
        let mut text: TextFields = [None; Text::COUNT];
        text[Text::MessageId as usize] = Some("m");
        let times = Times {
            timestamp: at(1),
            original_timestamp: None,
            sent_at: None,
            received_at: at(1),
        };
        let mut columns = EventColumns::with_capacity(&ColumnSizes::default());
        columns.push(&Event::new(EventType::Track, times, &text));
        let batch = columns.finish("web").unwrap();
        for (name, nullable) in DOCUMENTED {
            let column = batch.column_by_name(name).unwrap();
            assert_eq!(column.null_count(), usize::from(nullable), "{name}");
        }
    }
}

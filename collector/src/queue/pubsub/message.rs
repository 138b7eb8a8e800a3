//! The Pub/Sub message format (`specs/pubsub.md`): one stream's records as an Arrow IPC stream
//! with zstd-compressed buffers, whose schema is the Parquet files' own, described by attributes
//! so a consumer can route and check a message before reading its body.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType, UInt32Type};
use arrow::error::ArrowError;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use chrono::{DateTime, Utc};
use eventkit_model::{
    Batch, Column, EVENT_COLUMNS, EVENT_SCHEMA, Event, EventType, REJECTED_SCHEMA, REJECTED_STREAM,
    Records, Rejected, TableBuilder, Text, TextFields, Time, Times,
};

/// Attribute names and values every message carries.
pub const STREAM: &str = "stream";
pub const EVENTS: &str = "events";
pub const ENCODING: &str = "encoding";
pub const FORMAT: &str = "format";
/// Arrow IPC stream format, buffers compressed with zstd.
pub const ENCODING_ARROW_ZSTD: &str = "arrow-ipc+zstd";
/// Bumped when the schema of a message changes in a way an old loader cannot read.
pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("attribute {0} is missing")]
    MissingAttribute(&'static str),
    #[error("attribute {name} is {value:?}; this loader reads {expected:?}")]
    Unsupported {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the body is not an Arrow IPC stream of the expected schema: {0}")]
    Arrow(#[from] ArrowError),
    #[error("the body's schema does not match the {0} schema")]
    Schema(&'static str),
    #[error("row {row}: {reason}")]
    Row { row: usize, reason: &'static str },
}

/// One stream's records, ready to publish.
pub struct Encoded {
    pub data: Vec<u8>,
    pub attributes: Vec<(&'static str, String)>,
}

pub fn encode(batch: Batch) -> Result<Encoded, MessageError> {
    let events = batch.records.len();
    let table = TableBuilder::from_records(batch.records).finish(batch.stream)?;
    let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?;
    let mut data = Vec::new();
    {
        let mut writer =
            StreamWriter::try_new_with_options(&mut data, &table.rows.schema(), options)?;
        writer.write(&table.rows)?;
        writer.finish()?;
    }
    Ok(Encoded {
        data,
        attributes: vec![
            (STREAM, table.stream),
            (EVENTS, events.to_string()),
            (ENCODING, ENCODING_ARROW_ZSTD.to_owned()),
            (FORMAT, FORMAT_VERSION.to_owned()),
        ],
    })
}

pub fn decode(data: &[u8], attributes: &HashMap<String, String>) -> Result<Batch, MessageError> {
    let attribute = |name: &'static str| {
        attributes
            .get(name)
            .ok_or(MessageError::MissingAttribute(name))
    };
    for (name, expected) in [(ENCODING, ENCODING_ARROW_ZSTD), (FORMAT, FORMAT_VERSION)] {
        let value = attribute(name)?;
        if value != expected {
            return Err(MessageError::Unsupported {
                name,
                value: value.clone(),
                expected,
            });
        }
    }
    let stream = attribute(STREAM)?.clone();
    let rejected = stream == REJECTED_STREAM;
    let (expected, kind): (&SchemaRef, _) = if rejected {
        (&REJECTED_SCHEMA, "dead-letter")
    } else {
        (&EVENT_SCHEMA, "event")
    };
    let reader = StreamReader::try_new(data, None)?;
    if reader.schema().fields() != expected.fields() {
        return Err(MessageError::Schema(kind));
    }
    let mut records = if rejected {
        Records::Rejected(Vec::new())
    } else {
        Records::Events(Vec::new())
    };
    for rows in reader {
        let rows = rows?;
        match &mut records {
            Records::Events(events) => events.extend(events_of(&rows)?),
            Records::Rejected(held) => held.extend(rejected_of(&rows)?),
        }
    }
    Ok(Batch { stream, records })
}

fn text_column<'a>(rows: &'a RecordBatch, name: &str) -> Result<&'a StringArray, MessageError> {
    rows.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(MessageError::Schema("event"))
}

fn time_column<'a>(
    rows: &'a RecordBatch,
    name: &str,
) -> Result<&'a TimestampMicrosecondArray, MessageError> {
    rows.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or(MessageError::Schema("event"))
}

fn text_at(column: &StringArray, row: usize) -> Option<&str> {
    column.is_valid(row).then(|| column.value(row))
}

fn time_at(column: &TimestampMicrosecondArray, row: usize) -> Option<DateTime<Utc>> {
    column
        .is_valid(row)
        .then(|| DateTime::from_timestamp_micros(column.value(row)))
        .flatten()
}

fn events_of(rows: &RecordBatch) -> Result<Vec<Event>, MessageError> {
    let mut texts: Vec<&StringArray> = Vec::with_capacity(Text::COUNT);
    for text in Text::ALL {
        texts.push(text_column(rows, text.column())?);
    }
    let mut times = Vec::with_capacity(Time::COUNT);
    for time in Time::ALL {
        times.push(time_column(rows, time.column())?);
    }
    let types = text_column(rows, Column::Type.name())?;
    debug_assert_eq!(EVENT_COLUMNS.len(), rows.num_columns());
    (0..rows.num_rows())
        .map(|row| {
            let event_type =
                text_at(types, row)
                    .and_then(EventType::parse)
                    .ok_or(MessageError::Row {
                        row,
                        reason: "unknown type",
                    })?;
            let time = |t: Time| time_at(times[t as usize], row);
            let required = |t: Time| {
                time(t).ok_or(MessageError::Row {
                    row,
                    reason: "a required time is null",
                })
            };
            let event_times = Times {
                timestamp: required(Time::Timestamp)?,
                original_timestamp: time(Time::OriginalTimestamp),
                sent_at: time(Time::SentAt),
                received_at: required(Time::ReceivedAt)?,
            };
            let fields: TextFields = std::array::from_fn(|i| text_at(texts[i], row));
            Ok(Event::new(event_type, event_times, &fields))
        })
        .collect()
}

fn rejected_of(rows: &RecordBatch) -> Result<Vec<Rejected>, MessageError> {
    let text = |name| {
        rows.column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or(MessageError::Schema("dead-letter"))
    };
    let (stream, error, raw, ip) = (
        text("stream")?,
        text("error")?,
        text("raw")?,
        text("context_ip")?,
    );
    let index: &UInt32Array = rows
        .column_by_name("index")
        .and_then(|c| c.as_primitive_opt::<UInt32Type>())
        .ok_or(MessageError::Schema("dead-letter"))?;
    let received = rows
        .column_by_name("received_at")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or(MessageError::Schema("dead-letter"))?;
    (0..rows.num_rows())
        .map(|row| {
            Ok(Rejected {
                received_at: time_at(received, row).ok_or(MessageError::Row {
                    row,
                    reason: "received_at is null",
                })?,
                stream: stream.value(row).to_owned(),
                index: index.value(row),
                error: error.value(row).to_owned(),
                raw: raw.value(row).to_owned(),
                context_ip: text_at(ip, row).map(str::to_owned),
            })
        })
        .collect()
}

/// The dead letter kept for a message no loader can read, so it is stored rather than lost or
/// redelivered forever: its body in base64, and why it could not be read.
pub fn undecodable(
    data: &[u8],
    attributes: &HashMap<String, String>,
    error: &MessageError,
) -> Batch {
    use base64::Engine as _;
    let mut described: Vec<_> = attributes.iter().collect();
    described.sort();
    Batch {
        stream: REJECTED_STREAM.to_owned(),
        records: Records::Rejected(vec![Rejected {
            received_at: Utc::now(),
            stream: attributes.get(STREAM).cloned().unwrap_or_default(),
            index: 0,
            error: format!("unreadable Pub/Sub message ({described:?}): {error}"),
            raw: base64::engine::general_purpose::STANDARD.encode(data),
            context_ip: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(encoded: &Encoded) -> HashMap<String, String> {
        encoded
            .attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn events_and_dead_letters_come_back_as_they_went() {
        let now = Utc::now();
        let times = Times {
            timestamp: now,
            original_timestamp: None,
            sent_at: Some(now),
            received_at: now,
        };
        let fields: TextFields =
            std::array::from_fn(|i| (i % 3 != 1).then(|| Text::ALL[i].column()));
        let mut only_an_id: TextFields = [None; Text::COUNT];
        only_an_id[Text::MessageId as usize] = Some("m-2");
        let events = vec![
            Event::new(EventType::Track, times, &fields),
            Event::new(EventType::Alias, times, &only_an_id),
        ];
        let batch = Batch {
            stream: "web".into(),
            records: Records::Events(events),
        };
        let encoded = encode(batch.clone()).unwrap();
        assert_eq!(attributes(&encoded)["events"], "2");
        let decoded = decode(&encoded.data, &attributes(&encoded)).unwrap();
        // Times are stored to the microsecond.
        let micros = |t: DateTime<Utc>| DateTime::from_timestamp_micros(t.timestamp_micros());
        let Records::Events(back) = &decoded.records else {
            panic!("events expected")
        };
        assert_eq!(back[0].times.timestamp, micros(now).unwrap());
        for text in Text::ALL {
            let Records::Events(sent) = &batch.records else {
                unreachable!()
            };
            assert_eq!(back[0].text(text), sent[0].text(text), "{text:?}");
            assert_eq!(back[1].text(text), only_an_id[text as usize], "{text:?}");
        }
        assert_eq!(back[1].event_type, EventType::Alias);

        let dead = crate::queue::test_batch(REJECTED_STREAM, 3);
        let encoded = encode(dead.clone()).unwrap();
        let decoded = decode(&encoded.data, &attributes(&encoded)).unwrap();
        let (Records::Rejected(sent), Records::Rejected(back)) = (&dead.records, &decoded.records)
        else {
            panic!("dead letters expected")
        };
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].index, sent[2].index);
        assert_eq!(back[2].raw, sent[2].raw);
    }

    #[test]
    fn a_foreign_format_is_refused_by_name() {
        let encoded = encode(crate::queue::test_batch("web", 1)).unwrap();
        let mut attrs = attributes(&encoded);
        attrs.insert(FORMAT.into(), "2".into());
        let error = decode(&encoded.data, &attrs).err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("attribute format is \"2\"; this loader reads \"1\"")
        );
        attrs.remove(FORMAT);
        assert!(matches!(
            decode(&encoded.data, &attrs),
            Err(MessageError::MissingAttribute("format"))
        ));
    }
}

//! One code path from a request body to validated, enriched records, shared by every endpoint.

mod gzip;
mod ip;
mod json;
mod time;
mod validate;
mod wire;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use eventkit_model::{Event, EventType, Rejected};
use serde::Serialize;
use serde_json::value::RawValue;

pub use gzip::{GzipError, gunzip};
pub use ip::{CaptureIp, IpPolicy};
pub use json::Unkeepable;
pub use validate::InvalidEvent;
use wire::Envelope;

/// Segment's documented per-event limit.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Segment's documented per-request limit; it also caps what one request can pin in memory.
pub const MAX_BODY_BYTES: usize = 500 * 1024;
/// The most one request's events can take once enriched: its body twice over (the events and
/// their free-form JSON) plus what enrichment adds per event (ids, times, the client address).
/// What a queue must have room for to accept any valid request.
pub const MAX_ENRICHED_REQUEST_BYTES: u64 =
    (2 * MAX_BODY_BYTES + 256 * MAX_EVENTS_PER_REQUEST) as u64;
/// Events per request. At 500 KB per request this allows 200-byte events, the smallest
/// realistic ones, while bounding per-request work.
pub const MAX_EVENTS_PER_REQUEST: usize = 2_500;

/// What the server knows about a request, independent of its body.
#[derive(Debug, Clone)]
pub struct RequestInfo<'a> {
    pub stream: String,
    pub received_at: DateTime<Utc>,
    /// Borrowed from the request's headers or from text formatted on the handler's stack.
    pub client_ip: Option<&'a str>,
    /// For single-event endpoints such as `/v1/track`, the type the path implies.
    pub implied_type: Option<EventType>,
    /// Whether `client_ip` is stamped on events that have no `context.ip`.
    pub ip_policy: IpPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub error: String,
}

/// The result of one request body: events to store, and the ones refused (with why).
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejected>,
    /// A write key carried in the body (Segment SDKs may send it there instead of in a header).
    pub write_key: Option<String>,
}

impl Outcome {
    pub fn rejections(&self) -> Vec<Rejection> {
        self.rejected
            .iter()
            .map(|r| Rejection {
                index: r.index as usize,
                error: r.error.clone(),
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    #[error("request body must be an event object, an array of events, or {{\"batch\": [...]}}")]
    NotEvents,
    #[error("request has no events")]
    Empty,
    #[error("a request may carry at most {MAX_EVENTS_PER_REQUEST} events; this one has {0}")]
    TooManyEvents(usize),
}

/// Batch-level fields every event of the request inherits.
#[derive(Default)]
struct BatchDefaults<'a> {
    /// Checked once per request; when they cannot be stored, every event is rejected.
    context: Option<Result<json::Defaults<'a>, json::Unkeepable>>,
    integrations: Option<Result<json::Defaults<'a>, json::Unkeepable>>,
    sent_at: Option<DateTime<Utc>>,
    /// The batch's `context` and `integrations` as sent, for the dead letters they cause.
    context_text: Option<&'a str>,
    integrations_text: Option<&'a str>,
}

impl BatchDefaults<'_> {
    fn text(&self, field: &str) -> Option<&str> {
        match field {
            "context" => self.context_text,
            "integrations" => self.integrations_text,
            _ => None,
        }
    }
}

pub fn ingest(body: &[u8], info: &RequestInfo) -> Result<Outcome, IngestError> {
    let text = std::str::from_utf8(body).map_err(|e| IngestError::Malformed(e.to_string()))?;
    let first = text.trim_start().as_bytes().first().copied();
    // Each event as its own JSON text. Arrays and batches are split by serde_json (which also
    // validates them); a single object was validated by the envelope parse, so its text is used
    // as it is rather than scanned a third time.
    let (raw_events, defaults, write_key): (Vec<&str>, BatchDefaults, Option<String>) = match first
    {
        Some(b'[') => {
            let events: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| IngestError::Malformed(e.to_string()))?;
            (
                events.into_iter().map(RawValue::get).collect(),
                BatchDefaults::default(),
                None,
            )
        }
        Some(b'{') => {
            let envelope: Envelope =
                serde_json::from_str(text).map_err(|e| IngestError::Malformed(e.to_string()))?;
            let write_key = envelope.write_key.map(|k| k.into_owned());
            match envelope.batch {
                Some(batch) => {
                    let defaults = BatchDefaults {
                        context: batch_object(envelope.context),
                        integrations: batch_object(envelope.integrations),
                        sent_at: envelope.sent_at.as_deref().and_then(time::parse),
                        context_text: envelope.context.map(RawValue::get),
                        integrations_text: envelope.integrations.map(RawValue::get),
                    };
                    (
                        batch.into_iter().map(RawValue::get).collect(),
                        defaults,
                        write_key,
                    )
                }
                None => (vec![text.trim()], BatchDefaults::default(), write_key),
            }
        }
        Some(_) => {
            // Valid JSON that is not an object or array is a shape error; anything else is malformed.
            return Err(match serde_json::from_str::<&RawValue>(text) {
                Ok(_) => IngestError::NotEvents,
                Err(e) => IngestError::Malformed(e.to_string()),
            });
        }
        None => return Err(IngestError::Empty),
    };
    if raw_events.is_empty() {
        return Err(IngestError::Empty);
    }
    if raw_events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(IngestError::TooManyEvents(raw_events.len()));
    }

    let mut outcome = Outcome {
        events: Vec::with_capacity(raw_events.len()),
        write_key,
        ..Outcome::default()
    };
    let mut copy_budget = MAX_BATCH_FIELD_COPIES_BYTES;
    for (index, raw) in raw_events.into_iter().enumerate() {
        match validate::event(raw, &defaults, info) {
            Ok(event) => outcome.events.push(event),
            Err(error) => {
                let raw = dead_letter_text(raw, &error, &defaults, &mut copy_budget);
                outcome.rejected.push(rejected(&raw, index, error, info));
            }
        }
    }
    Ok(outcome)
}

/// A batch-level object; anything but an object is ignored, as Segment does.
fn batch_object(value: Option<&RawValue>) -> Option<Result<json::Defaults<'_>, json::Unkeepable>> {
    value
        .filter(|v| json::is_object(v.get()))
        .map(json::Defaults::parse)
}

/// Bytes of batch-level text copied into one request's dead letters: a request's own size, so
/// a large unstorable `context` rejecting 2,500 events cannot multiply into gigabytes.
const MAX_BATCH_FIELD_COPIES_BYTES: usize = MAX_BODY_BYTES;

/// What a dead letter keeps of a refused event: its text as sent, or, when the batch's own
/// `context`/`integrations` was the reason, `{"event": …, "batch": {"<field>": …}}` (both as sent)
/// so the reason refers to something the dead letter holds, while `budget` lasts.
fn dead_letter_text<'a>(
    raw: &'a str,
    error: &InvalidEvent,
    defaults: &BatchDefaults,
    budget: &mut usize,
) -> Cow<'a, str> {
    let InvalidEvent::BatchUnkeepable { field, .. } = error else {
        return Cow::Borrowed(raw);
    };
    match defaults.text(field) {
        Some(batch) if batch.len() <= *budget => {
            *budget -= batch.len();
            Cow::Owned(format!(
                r#"{{"event":{raw},"batch":{{"{field}":{batch}}}}}"#
            ))
        }
        _ => Cow::Borrowed(raw),
    }
}

fn rejected(raw: &str, index: usize, error: InvalidEvent, info: &RequestInfo) -> Rejected {
    Rejected {
        received_at: info.received_at,
        stream: info.stream.clone(),
        index: u32::try_from(index).unwrap_or(u32::MAX),
        error: error.to_string(),
        raw: raw.to_owned(),
        context_ip: info.client_ip.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;

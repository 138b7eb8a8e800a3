//! Validated, enriched records: the unit that travels through the queue to a sink.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::columns::{Text, Time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// An event's text fields by [`Text`] index, as handed to [`Event::new`].
pub type TextFields<'a> = [Option<&'a str>; Text::COUNT];

/// The times of an event, one field per [`Time`]. Serialized (for the write-ahead log) as
/// microseconds since the epoch: the precision the columns keep, and formatting them as text was
/// the log's largest cost under batch load (benchmarks/results/wal.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Times {
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub timestamp: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    pub original_timestamp: Option<DateTime<Utc>>,
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub received_at: DateTime<Utc>,
}

impl Times {
    pub fn get(&self, time: Time) -> Option<DateTime<Utc>> {
        match time {
            Time::Timestamp => Some(self.timestamp),
            Time::OriginalTimestamp => self.original_timestamp,
            Time::SentAt => self.sent_at,
            Time::ReceivedAt => Some(self.received_at),
        }
    }
}

/// One accepted event, flattened into the columns people query. Its text fields share one
/// buffer, so an event is one allocation however many fields it carries: events are built on
/// the request threads and freed on the batcher's, tens of thousands a second, and every
/// allocation freed across threads costs both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_type: EventType,
    pub times: Times,
    text: String,
    /// Where each field ends in `text`; a field starts where the one before it ends.
    ends: [u32; Text::COUNT],
    /// Bit `i` set: field `i` is present (an absent field and an empty one are different).
    present: u32,
}

impl Event {
    pub fn new(event_type: EventType, times: Times, fields: &TextFields) -> Self {
        let len = fields.iter().flatten().map(|f| f.len()).sum();
        let mut text = String::with_capacity(len);
        let mut ends = [0; Text::COUNT];
        let mut present = 0;
        for (i, field) in fields.iter().enumerate() {
            if let Some(value) = field {
                text.push_str(value);
                present |= 1 << i;
            }
            // A request body is at most a few hundred KB, far inside u32.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Self {
            event_type,
            times,
            text,
            ends,
            present,
        }
    }

    pub fn text(&self, field: Text) -> Option<&str> {
        let i = field as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize)
    }

    pub fn message_id(&self) -> &str {
        self.text(Text::MessageId).unwrap_or_default()
    }

    /// Rough in-memory size, used by the batcher's byte limit.
    pub fn approx_bytes(&self) -> usize {
        self.text.len() + std::mem::size_of::<Event>()
    }
}

/// An event the collector refused, kept with the reason so it can be inspected and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub received_at: DateTime<Utc>,
    /// The stream the client sent it to.
    pub stream: String,
    /// Position in the client's request, as reported back in the response.
    pub index: u32,
    pub error: String,
    /// The event as the client sent it (truncated only if it was itself oversized).
    pub raw: String,
    pub context_ip: Option<String>,
}

impl Rejected {
    pub fn approx_bytes(&self) -> usize {
        self.raw.len() + self.error.len() + self.stream.len() + std::mem::size_of::<Rejected>()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "records", rename_all = "lowercase")]
pub enum Records {
    Events(Vec<Event>),
    Rejected(Vec<Rejected>),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Events(v) => v.len(),
            Records::Rejected(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn approx_bytes(&self) -> usize {
        match self {
            Records::Events(v) => v.iter().map(Event::approx_bytes).sum(),
            Records::Rejected(v) => v.iter().map(Rejected::approx_bytes).sum(),
        }
    }
}

/// Records bound for one stream: what a request enqueues and what a sink writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub stream: String,
    pub records: Records,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts by type are kept in arrays indexed by `event_type as usize`, in `ALL`'s order.
    #[test]
    fn each_type_indexes_its_own_slot() {
        for (index, event_type) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(event_type as usize, index, "{event_type:?}");
        }
    }
}

//! Validated, enriched records: the unit that travels through the queue to a sink.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Stream that receives events the collector rejected, with the raw event and the reason, so a
/// rejected event is never silently gone. Client stream names may not start with `_`.
pub const REJECTED_STREAM: &str = "_rejected";

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

/// One accepted event, flattened into the columns people query. The JSON-valued fields hold
/// JSON text exactly as it will be stored, so the writer never re-serializes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub message_id: String,
    pub event_type: EventType,
    pub event: Option<String>,
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub group_id: Option<String>,
    pub previous_id: Option<String>,
    /// Client time corrected for clock skew; `received_at` when the client sent no time.
    pub timestamp: DateTime<Utc>,
    pub original_timestamp: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub context_ip: Option<String>,
    pub context_user_agent: Option<String>,
    pub context_library_name: Option<String>,
    pub context_library_version: Option<String>,
    pub page_path: Option<String>,
    pub page_url: Option<String>,
    pub page_referrer: Option<String>,
    pub page_title: Option<String>,
    pub properties: Option<String>,
    pub traits: Option<String>,
    pub context: Option<String>,
    pub integrations: Option<String>,
}

impl Event {
    /// Rough in-memory size, used by the batcher's byte limit. Counting string bytes is enough:
    /// they dominate, and the limit is about memory and file size, not exact accounting.
    pub fn approx_bytes(&self) -> usize {
        let strings = [
            &self.event,
            &self.name,
            &self.user_id,
            &self.anonymous_id,
            &self.group_id,
            &self.previous_id,
            &self.context_ip,
            &self.context_user_agent,
            &self.context_library_name,
            &self.context_library_version,
            &self.page_path,
            &self.page_url,
            &self.page_referrer,
            &self.page_title,
            &self.properties,
            &self.traits,
            &self.context,
            &self.integrations,
        ];
        let text: usize = strings
            .iter()
            .map(|s| s.as_ref().map_or(0, String::len))
            .sum();
        text + self.message_id.len() + std::mem::size_of::<Event>()
    }
}

/// An event the collector refused, kept with the reason so it can be inspected and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
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

//! The Segment spec's rules for one event, and the enrichment of an event that passes them.
//! Error texts are shown to API clients, so each says what to change.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use eventkit_model::{Event, EventType, Text, TextFields, Times};

use super::ip::anonymized;
use super::json::{Defaults, Unkeepable, is_object, merge, with_ip};
use super::time;
use super::wire::{ContextView, FreeForm, PageView, ReadError, WireEvent};
use super::{BatchDefaults, MAX_EVENT_BYTES, RequestInfo};

const MAX_MESSAGE_ID_CHARS: usize = 100;

/// Why an event was refused. The texts are shown to API clients and kept in dead letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("event is {0} bytes; the limit is 32 KB ({MAX_EVENT_BYTES} bytes)")]
    TooLarge(usize),
    #[error("event must be a JSON object")]
    NotAnObject,
    #[error("event is not a valid JSON object")]
    NotValidJson,
    #[error("the key {0:?} appears twice in the event")]
    DuplicateKey(String),
    #[error("{0} must be a string")]
    NotAString(&'static str),
    #[error("type {0:?} is not one of track, identify, page, screen, group, alias")]
    UnknownType(String),
    #[error("type is required")]
    TypeRequired,
    #[error("userId or anonymousId is required")]
    IdRequired,
    #[error("{0} is required for {1}")]
    Required(&'static str, &'static str),
    #[error("messageId must be at most {MAX_MESSAGE_ID_CHARS} characters")]
    MessageIdTooLong,
    #[error("{0} must be an ISO-8601 date-time, got {1:?}")]
    BadTimestamp(&'static str, String),
    #[error("{0} must be an object")]
    FieldNotAnObject(&'static str),
    #[error("{field} cannot be stored as sent: {reason}")]
    Unkeepable {
        field: &'static str,
        reason: Unkeepable,
    },
    #[error("the batch's {field} cannot be stored as sent: {reason}")]
    BatchUnkeepable {
        field: &'static str,
        reason: Unkeepable,
    },
}

pub(super) fn event(
    text: &str,
    defaults: &BatchDefaults,
    info: &RequestInfo,
) -> Result<Event, InvalidEvent> {
    if text.len() > MAX_EVENT_BYTES {
        return Err(InvalidEvent::TooLarge(text.len()));
    }
    if !is_object(text) {
        return Err(InvalidEvent::NotAnObject);
    }
    let wire = WireEvent::read(text).map_err(|error| match error {
        ReadError::Duplicate(key) => InvalidEvent::DuplicateKey(key.to_owned()),
        ReadError::WrongType(key) => InvalidEvent::NotAString(key),
        ReadError::Undecodable => InvalidEvent::NotValidJson,
    })?;
    wire_event(wire, defaults, info)
}

/// The rules and enrichment for an event already read into its wire shape.
pub(super) fn wire_event(
    wire: WireEvent,
    defaults: &BatchDefaults,
    info: &RequestInfo,
) -> Result<Event, InvalidEvent> {
    let event_type = match (wire.event_type.as_deref(), info.implied_type) {
        (Some(name), _) => {
            EventType::parse(name).ok_or_else(|| InvalidEvent::UnknownType(name.to_owned()))?
        }
        (None, Some(implied)) => implied,
        (None, None) => return Err(InvalidEvent::TypeRequired),
    };
    let user_id = non_empty(wire.user_id);
    let anonymous_id = non_empty(wire.anonymous_id);
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(InvalidEvent::IdRequired);
    }
    let event_name = non_empty(wire.event);
    let group_id = non_empty(wire.group_id);
    let previous_id = non_empty(wire.previous_id);
    match event_type {
        EventType::Track if event_name.is_none() => {
            return Err(InvalidEvent::Required("event", "track"));
        }
        EventType::Group if group_id.is_none() => {
            return Err(InvalidEvent::Required("groupId", "group"));
        }
        EventType::Alias if previous_id.is_none() => {
            return Err(InvalidEvent::Required("previousId", "alias"));
        }
        EventType::Alias if user_id.is_none() => {
            return Err(InvalidEvent::Required("userId", "alias"));
        }
        _ => {}
    }
    if let Some(id) = &wire.message_id
        && id.chars().count() > MAX_MESSAGE_ID_CHARS
    {
        return Err(InvalidEvent::MessageIdTooLong);
    }
    let original = timestamp("originalTimestamp", wire.original_timestamp.as_deref())?
        .or(timestamp("timestamp", wire.timestamp.as_deref())?);
    let sent_at = timestamp("sentAt", wire.sent_at.as_deref())?.or(defaults.sent_at);
    let properties = kept("properties", &wire.properties)?;
    let traits = kept("traits", &wire.traits)?;
    let own_context = kept("context", &wire.context)?;
    let (context, context_has_ip) = with_defaults(
        "context",
        own_context,
        wire.keys.context(),
        &defaults.context,
    )?;
    let own_integrations = kept("integrations", &wire.integrations)?;
    let (integrations, _) = with_defaults(
        "integrations",
        own_integrations,
        wire.keys.integrations(),
        &defaults.integrations,
    )?;

    let view: ContextView = context
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let page = page_fields(event_type, properties, view.page);
    let library = view.library.unwrap_or_default();
    // A client-sent context.ip wins, as in Segment: server-side SDKs forward the end user's.
    // Any `ip` key counts, `null` too (a client saying "none"): the stored object never holds
    // the key twice.
    let peer = match info.client_ip {
        Some(ip) if !context_has_ip && info.ip_policy.captures(library.name.as_deref()) => {
            if info.ip_policy.anonymize {
                anonymized(ip).map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(ip))
            }
        }
        _ => None,
    };
    let context_with_peer;
    let (context_ip, context) = match (context_has_ip, peer.as_deref()) {
        (true, _) => (view.ip.as_deref(), context.as_deref()),
        (false, Some(ip)) => {
            context_with_peer = with_ip(context.as_deref(), ip);
            (Some(ip), Some(context_with_peer.as_str()))
        }
        (false, None) => (None, context.as_deref()),
    };
    let mut id_buffer = uuid::Uuid::encode_buffer();
    let message_id = match wire.message_id.as_deref() {
        Some(id) if !id.is_empty() => id,
        _ => generated_message_id(info.received_at, &mut id_buffer),
    };

    let mut text: TextFields = [None; Text::COUNT];
    text[Text::MessageId as usize] = Some(message_id);
    text[Text::Event as usize] = event_name.as_deref();
    text[Text::Name as usize] = wire.name.as_deref();
    text[Text::Category as usize] = wire.category.as_deref();
    text[Text::UserId as usize] = user_id.as_deref();
    text[Text::AnonymousId as usize] = anonymous_id.as_deref();
    text[Text::GroupId as usize] = group_id.as_deref();
    text[Text::PreviousId as usize] = previous_id.as_deref();
    text[Text::ContextIp as usize] = context_ip;
    text[Text::ContextUserAgent as usize] = view.user_agent.as_deref();
    text[Text::ContextLibraryName as usize] = library.name.as_deref();
    text[Text::ContextLibraryVersion as usize] = library.version.as_deref();
    text[Text::PagePath as usize] = page.path.as_deref();
    text[Text::PageUrl as usize] = page.url.as_deref();
    text[Text::PageReferrer as usize] = page.referrer.as_deref();
    text[Text::PageTitle as usize] = page.title.as_deref();
    text[Text::Properties as usize] = properties;
    text[Text::Traits as usize] = traits;
    text[Text::Context as usize] = context;
    text[Text::Integrations as usize] = integrations.as_deref();
    let times = Times {
        timestamp: time::corrected(info.received_at, original, sent_at),
        original_timestamp: original,
        sent_at,
        received_at: info.received_at,
    };
    Ok(Event::new(event_type, times, &text))
}

/// A UUIDv7 stamped with the time the request arrived. Its 74 other bits come from a per-thread
/// fast generator rather than uuid's own: ids only need to be unique and roughly time-ordered,
/// and uuid's cryptographic generator (with its counter's lock and second clock read before
/// that) was the larger part of enriching an event.
fn generated_message_id(received_at: DateTime<Utc>, buffer: &mut [u8]) -> &str {
    let millis = u64::try_from(received_at.timestamp_millis()).unwrap_or(0);
    let mut bits = [0u8; 10];
    fastrand::fill(&mut bits);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits)
        .into_uuid()
        .hyphenated()
        .encode_lower(buffer)
}

/// A free-form field's text, if it is an object that can be stored as sent (checked as the
/// event was read).
fn kept<'a>(field: &'static str, value: &FreeForm<'a>) -> Result<Option<&'a str>, InvalidEvent> {
    match value {
        FreeForm::Absent => Ok(None),
        FreeForm::Object(text) => Ok(Some(text)),
        FreeForm::NotAnObject => Err(InvalidEvent::FieldNotAnObject(field)),
        FreeForm::Unkeepable(reason) => Err(InvalidEvent::Unkeepable {
            field,
            reason: reason.clone(),
        }),
    }
}

/// The event's object with the batch's defaults merged in (or its own text as it came when the
/// batch has none), and whether it has an `ip` key.
fn with_defaults<'a>(
    field: &'static str,
    own: Option<&'a str>,
    own_keys: &[Cow<str>],
    defaults: &Option<Result<Defaults, Unkeepable>>,
) -> Result<(Option<Cow<'a, str>>, bool), InvalidEvent> {
    let has_ip = |keys: &[Cow<str>]| keys.iter().any(|k| k == "ip");
    match defaults {
        None => Ok((own.map(Cow::Borrowed), has_ip(own_keys))),
        Some(Err(reason)) => Err(InvalidEvent::BatchUnkeepable {
            field,
            reason: reason.clone(),
        }),
        Some(Ok(defaults)) => Ok((
            Some(Cow::Owned(merge(own, own_keys, defaults))),
            has_ip(own_keys) || defaults.has("ip"),
        )),
    }
}

fn non_empty(value: Option<Cow<str>>) -> Option<Cow<str>> {
    value.filter(|v| !v.trim().is_empty())
}

fn timestamp(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, InvalidEvent> {
    match value {
        None => Ok(None),
        Some(text) => time::parse(text)
            .map(Some)
            .ok_or_else(|| InvalidEvent::BadTimestamp(field, text.to_owned())),
    }
}

/// A page call carries its page in `properties`; other calls from a browser carry it in
/// `context.page`. Properties win field by field.
fn page_fields<'a>(
    event_type: EventType,
    properties: Option<&'a str>,
    context_page: Option<PageView<'a>>,
) -> PageView<'a> {
    let from_properties: PageView = match (event_type, properties) {
        (EventType::Page, Some(p)) => serde_json::from_str(p).unwrap_or_default(),
        _ => PageView::default(),
    };
    let context_page = context_page.unwrap_or_default();
    PageView {
        path: from_properties.path.or(context_page.path),
        url: from_properties.url.or(context_page.url),
        referrer: from_properties.referrer.or(context_page.referrer),
        title: from_properties.title.or(context_page.title),
    }
}

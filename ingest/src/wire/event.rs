//! An event's own object, read in one pass that also checks its free-form objects: serde's
//! derive would walk each of them once to capture it and the check a second time.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::{Unkeepable, object_end, skip_whitespace, string, value_end};

/// The fields of an event that the rules and the columns use; other keys are skipped.
#[derive(Default)]
pub struct WireEvent<'a> {
    pub event_type: Option<Cow<'a, str>>,
    pub message_id: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub anonymous_id: Option<Cow<'a, str>>,
    pub group_id: Option<Cow<'a, str>>,
    pub previous_id: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub category: Option<Cow<'a, str>>,
    pub timestamp: Option<Cow<'a, str>>,
    pub original_timestamp: Option<Cow<'a, str>>,
    pub sent_at: Option<Cow<'a, str>>,
    pub properties: FreeForm<'a>,
    pub traits: FreeForm<'a>,
    pub context: FreeForm<'a>,
    pub integrations: FreeForm<'a>,
    pub keys: TopKeys<'a>,
}

/// A free-form object as read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum FreeForm<'a> {
    /// Absent or `null`.
    #[default]
    Absent,
    /// The object's text as sent.
    Object(&'a str),
    NotAnObject,
    Unkeepable(Unkeepable),
}

/// The top-level keys of `context` and of `integrations`, decoded: where an event's own
/// object takes a batch default and whether it has an `ip`.
#[derive(Default)]
pub struct TopKeys<'a> {
    keys: Vec<Cow<'a, str>>,
    context: Range<usize>,
    integrations: Range<usize>,
}

impl<'a> TopKeys<'a> {
    pub fn context(&self) -> &[Cow<'a, str>] {
        self.keys.get(self.context.clone()).unwrap_or_default()
    }

    pub fn integrations(&self) -> &[Cow<'a, str>] {
        self.keys.get(self.integrations.clone()).unwrap_or_default()
    }
}

/// Why an event's object could not be read into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A field the event uses is given twice; its key.
    Duplicate(&'static str),
    /// A field holds the wrong type of value; its key.
    WrongType(&'static str),
    /// A string could not be decoded (a lone surrogate in a key or a text field).
    Undecodable,
}

impl<'a> WireEvent<'a> {
    /// Reads `text`, which must be a JSON object already validated by serde_json (the request
    /// body's parse did that): the scanner reads for structure, not validity.
    pub fn read(text: &'a str) -> Result<Self, ReadError> {
        let bytes = text.as_bytes();
        let mut event = WireEvent::default();
        let mut seen = 0u32;
        let mut at = skip_whitespace(bytes, 0) + 1;
        loop {
            at = skip_whitespace(bytes, at);
            if bytes.get(at) != Some(&b'"') {
                // `}`: the end of the object (valid text has nothing else here).
                return Ok(event);
            }
            let (key, after_key) = string(text, at).map_err(|_| ReadError::Undecodable)?;
            // Past the key's `:`.
            at = skip_whitespace(bytes, skip_whitespace(bytes, after_key) + 1);
            at = match Field::of(&key) {
                None => value_end(bytes, at).map_err(|_| ReadError::Undecodable)?,
                Some(field) => {
                    let bit = 1 << field as u32;
                    if seen & bit != 0 {
                        return Err(ReadError::Duplicate(field.key()));
                    }
                    seen |= bit;
                    event.read_field(field, text, at)?
                }
            };
            // Past the `,` or onto the `}`.
            at = skip_whitespace(bytes, at);
            if bytes.get(at) == Some(&b',') {
                at += 1;
            }
        }
    }

    fn read_field(&mut self, field: Field, text: &'a str, at: usize) -> Result<usize, ReadError> {
        use Field::*;
        let (slot, numbers) = match field {
            Properties | Traits | Context | Integrations => {
                return Ok(self.free_form(field, text, at));
            }
            Type => (&mut self.event_type, false),
            MessageId => (&mut self.message_id, false),
            Event => (&mut self.event, false),
            Name => (&mut self.name, false),
            Category => (&mut self.category, false),
            Timestamp => (&mut self.timestamp, false),
            OriginalTimestamp => (&mut self.original_timestamp, false),
            SentAt => (&mut self.sent_at, false),
            // Typed languages' SDKs send numbers for ids; Segment stores them as strings, and
            // so do we, with the digits as sent (read as a number, one past 2^64 would round).
            UserId => (&mut self.user_id, true),
            AnonymousId => (&mut self.anonymous_id, true),
            GroupId => (&mut self.group_id, true),
            PreviousId => (&mut self.previous_id, true),
        };
        let wrong = ReadError::WrongType(field.key());
        let (value, end) = match text.as_bytes().get(at) {
            Some(b'"') => {
                let (decoded, end) = string(text, at).map_err(|_| ReadError::Undecodable)?;
                (Some(decoded), end)
            }
            Some(b'n') => (None, at + 4),
            Some(b'-' | b'0'..=b'9') if numbers => {
                let end = value_end(text.as_bytes(), at).map_err(|_| wrong.clone())?;
                (Some(Cow::Borrowed(text.get(at..end).ok_or(wrong)?)), end)
            }
            _ => return Err(wrong),
        };
        *slot = value;
        Ok(end)
    }

    /// Reads and checks a free-form object; an unkeepable one is recorded, not an error, so
    /// that the rules before it decide first which reason an event is refused for.
    fn free_form(&mut self, field: Field, text: &'a str, at: usize) -> usize {
        let bytes = text.as_bytes();
        let keys = &mut self.keys.keys;
        let start = keys.len();
        let (value, end) = match bytes.get(at) {
            Some(b'n') => (FreeForm::Absent, at + 4),
            Some(b'{') => match object_end(text, at, keys) {
                Ok(end) => (FreeForm::Object(text.get(at..end).unwrap_or_default()), end),
                Err(reason) => (
                    FreeForm::Unkeepable(reason),
                    value_end(bytes, at).unwrap_or(bytes.len()),
                ),
            },
            _ => (
                FreeForm::NotAnObject,
                value_end(bytes, at).unwrap_or(bytes.len()),
            ),
        };
        let kept = start..keys.len();
        match field {
            Field::Context => {
                self.context = value;
                self.keys.context = kept;
            }
            Field::Integrations => {
                self.integrations = value;
                self.keys.integrations = kept;
            }
            // Only context's and integrations' keys are needed later.
            Field::Properties => {
                keys.truncate(start);
                self.properties = value;
            }
            Field::Traits => {
                keys.truncate(start);
                self.traits = value;
            }
            _ => {}
        }
        end
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    MessageId,
    UserId,
    AnonymousId,
    GroupId,
    PreviousId,
    Event,
    Name,
    Category,
    Timestamp,
    OriginalTimestamp,
    SentAt,
    Properties,
    Traits,
    Context,
    Integrations,
}

impl Field {
    fn of(key: &str) -> Option<Field> {
        Some(match key {
            "type" => Field::Type,
            "messageId" => Field::MessageId,
            "userId" => Field::UserId,
            "anonymousId" => Field::AnonymousId,
            "groupId" => Field::GroupId,
            "previousId" => Field::PreviousId,
            "event" => Field::Event,
            "name" => Field::Name,
            "category" => Field::Category,
            "timestamp" => Field::Timestamp,
            "originalTimestamp" => Field::OriginalTimestamp,
            "sentAt" => Field::SentAt,
            "properties" => Field::Properties,
            "traits" => Field::Traits,
            "context" => Field::Context,
            "integrations" => Field::Integrations,
            _ => return None,
        })
    }

    fn key(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::MessageId => "messageId",
            Field::UserId => "userId",
            Field::AnonymousId => "anonymousId",
            Field::GroupId => "groupId",
            Field::PreviousId => "previousId",
            Field::Event => "event",
            Field::Name => "name",
            Field::Category => "category",
            Field::Timestamp => "timestamp",
            Field::OriginalTimestamp => "originalTimestamp",
            Field::SentAt => "sentAt",
            Field::Properties => "properties",
            Field::Traits => "traits",
            Field::Context => "context",
            Field::Integrations => "integrations",
        }
    }
}

//! The wire shapes of a request body, deserialized without building a `Value` tree: strings are
//! borrowed from the body where possible and the JSON-valued fields stay as raw text.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

/// `{"batch": [...], "context": {...}, ...}` as analytics-node, analytics-python and the HTTP
/// Tracking API send it. Keys it does not name are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    #[serde(borrow)]
    pub batch: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    pub context: Option<&'a RawValue>,
    #[serde(borrow)]
    pub integrations: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub sent_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub write_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    pub anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    pub group_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    pub previous_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub original_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub sent_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub properties: Option<&'a RawValue>,
    #[serde(borrow)]
    pub traits: Option<&'a RawValue>,
    #[serde(borrow)]
    pub context: Option<&'a RawValue>,
    #[serde(borrow)]
    pub integrations: Option<&'a RawValue>,
}

/// The few context fields that get columns of their own. Wrong types are ignored rather than
/// rejected: context is free-form, and one odd SDK field must not cost the user an event.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContextView<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_object")]
    pub library: Option<LibraryView<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient_object")]
    pub page: Option<PageView<'a>>,
}

#[derive(Deserialize, Default)]
pub struct LibraryView<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub version: Option<Cow<'a, str>>,
}

/// Page fields, as found in a page call's properties or in `context.page`.
#[derive(Deserialize, Default)]
pub struct PageView<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub path: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub url: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub referrer: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub title: Option<Cow<'a, str>>,
}

/// Accepts what a given visitor mode allows; everything else is `None` (lenient) or an error
/// naming the expected type.
struct TextVisitor {
    lenient: bool,
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.number(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.number(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.number(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.other(de::Unexpected::Bool(v))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        self.other(de::Unexpected::Seq)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        self.other(de::Unexpected::Map)
    }
}

impl TextVisitor {
    fn number<'de, E: de::Error>(&self, v: impl ToString) -> Result<Option<Cow<'de, str>>, E> {
        if self.lenient {
            Ok(Some(Cow::Owned(v.to_string())))
        } else {
            self.other(de::Unexpected::Other("number"))
        }
    }

    fn other<'de, E: de::Error>(&self, what: de::Unexpected) -> Result<Option<Cow<'de, str>>, E> {
        if self.lenient {
            Ok(None)
        } else {
            Err(E::invalid_type(what, self))
        }
    }
}

/// User, anonymous, group and previous ids: SDKs in typed languages send numbers for ids,
/// which Segment stores as strings, so do we, with the digits as sent: read as a number, an id
/// beyond 2^64 would be rounded through a double.
fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    let Some(raw) = Option::<&'de RawValue>::deserialize(d)? else {
        return Ok(None);
    };
    let text = raw.get();
    if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
        return Ok(Some(Cow::Borrowed(text)));
    }
    serde_json::Deserializer::from_str(text)
        .deserialize_any(TextVisitor { lenient: false })
        .map_err(de::Error::custom)
}

fn lenient_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_any(TextVisitor { lenient: true })
}

fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw: &'de RawValue = Deserialize::deserialize(d)?;
    Ok(serde_json::from_str(raw.get()).ok())
}

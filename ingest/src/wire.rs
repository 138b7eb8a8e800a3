//! The wire shapes of a request body, deserialized without building a `Value` tree: strings are
//! borrowed from the body where possible and the JSON-valued fields stay as raw text.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

mod event;
#[cfg(test)]
mod event_agrees;
pub use event::{FreeForm, ReadError, WireEvent};

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

/// Accepts a string (numbers as their digits); anything else is `None`.
struct TextVisitor;

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

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

impl TextVisitor {
    fn number<'de, E: de::Error>(&self, v: impl ToString) -> Result<Option<Cow<'de, str>>, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
}

fn lenient_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_any(TextVisitor)
}

fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw: &'de RawValue = Deserialize::deserialize(d)?;
    Ok(serde_json::from_str(raw.get()).ok())
}

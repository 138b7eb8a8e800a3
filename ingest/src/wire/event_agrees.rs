//! The event reader against serde's derive (the reader it replaced) plus serde_json's walk of
//! the free-form objects, on generated events: every known key spelt plainly or escaped, given
//! twice, with every type of value, beside unknown keys.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::event::{FreeForm, ReadError, WireEvent};
use crate::json::scan_agrees::{KEYS, STRINGS, pick, value, whitespace};
use crate::json::serde_check;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Derived<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    group_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "id")]
    previous_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    original_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
    #[serde(borrow)]
    traits: Option<&'a RawValue>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    #[serde(borrow)]
    integrations: Option<&'a RawValue>,
}

/// An id: a string, or a number's digits as sent.
fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    let Some(raw) = Option::<&'de RawValue>::deserialize(d)? else {
        return Ok(None);
    };
    let text = raw.get();
    if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
        return Ok(Some(Cow::Borrowed(text)));
    }
    Option::<Cow<'de, str>>::deserialize(raw).map_err(serde::de::Error::custom)
}

const FIELDS: [&str; 16] = [
    "type",
    "messageId",
    "userId",
    "anonymousId",
    "groupId",
    "previousId",
    "event",
    "name",
    "category",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "properties",
    "traits",
    "context",
    "integrations",
];

/// What a reading gives, in a form both readers can be compared by: the fields, or the kind
/// of error.
#[derive(Debug, PartialEq)]
enum Outcome {
    Read {
        text: Vec<Option<String>>,
        free_form: Vec<String>,
        context_keys: Vec<String>,
        integrations_keys: Vec<String>,
    },
    Duplicate(String),
    WrongType,
    Undecodable,
}

/// The text fields of either reader's result, which share their names.
macro_rules! text_fields {
    ($e:expr) => {
        [
            &$e.event_type,
            &$e.message_id,
            &$e.user_id,
            &$e.anonymous_id,
            &$e.group_id,
            &$e.previous_id,
            &$e.event,
            &$e.name,
            &$e.category,
            &$e.timestamp,
            &$e.original_timestamp,
            &$e.sent_at,
        ]
        .map(|f: &Option<Cow<str>>| f.as_deref().map(str::to_owned))
        .to_vec()
    };
}

fn free_form(value: &FreeForm) -> String {
    match value {
        FreeForm::Absent => "absent".to_owned(),
        FreeForm::Object(text) => format!("object {text}"),
        FreeForm::NotAnObject => "not an object".to_owned(),
        FreeForm::Unkeepable(reason) => format!("unkeepable: {reason}"),
    }
}

/// A free-form field as the serde walk checks it, and its top-level keys.
fn oracle_free_form(value: Option<&RawValue>) -> (String, Vec<String>) {
    let Some(value) = value else {
        return ("absent".to_owned(), Vec::new());
    };
    let text = value.get();
    if !text.starts_with('{') {
        return ("not an object".to_owned(), Vec::new());
    }
    let mut keys = Vec::new();
    match serde_check::check(text, &mut keys) {
        Ok(()) => (
            format!("object {text}"),
            keys.into_iter().map(Cow::into_owned).collect(),
        ),
        Err(reason) => (format!("unkeepable: {reason}"), Vec::new()),
    }
}

fn read(text: &str) -> Outcome {
    match WireEvent::read(text) {
        Ok(e) => Outcome::Read {
            text: text_fields!(e),
            free_form: [&e.properties, &e.traits, &e.context, &e.integrations]
                .map(free_form)
                .to_vec(),
            context_keys: keys_of(&e.context, e.keys.context()),
            integrations_keys: keys_of(&e.integrations, e.keys.integrations()),
        },
        Err(ReadError::Duplicate(key)) => Outcome::Duplicate(key.to_owned()),
        Err(ReadError::WrongType(_)) => Outcome::WrongType,
        Err(ReadError::Undecodable) => Outcome::Undecodable,
    }
}

/// Keys only mean something for an object that was kept.
fn keys_of(value: &FreeForm, keys: &[Cow<str>]) -> Vec<String> {
    match value {
        FreeForm::Object(_) => keys.iter().map(|k| k.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn oracle(text: &str) -> Outcome {
    match serde_json::from_str::<Derived>(text) {
        Ok(e) => {
            let [properties, traits, context, integrations] =
                [e.properties, e.traits, e.context, e.integrations].map(oracle_free_form);
            Outcome::Read {
                text: text_fields!(e),
                free_form: vec![properties.0, traits.0, context.0, integrations.0],
                context_keys: context.1,
                integrations_keys: integrations.1,
            }
        }
        Err(error) => {
            let message = error.to_string();
            if let Some(rest) = message.strip_prefix("duplicate field `") {
                Outcome::Duplicate(rest.split('`').next().unwrap_or_default().to_owned())
            } else if message.contains("surrogate") || message.contains("escape") {
                Outcome::Undecodable
            } else {
                // serde reads a number before finding that a string was wanted, so one beyond
                // a double fails as out of range: the reader says "must be a string".
                assert!(
                    message.starts_with("invalid type")
                        || message.starts_with("number out of range"),
                    "{message}"
                );
                Outcome::WrongType
            }
        }
    }
}

/// A known key, now and then with an escape in it; or an unknown one.
fn key(rng: &mut fastrand::Rng, out: &mut String) {
    match rng.u8(..10) {
        0 => out.push_str(pick(rng, KEYS)),
        1 => out.push_str(pick(
            rng,
            &["\\u0074ype", "user\\u0049d", "\\ud800", "contex\\u0074"],
        )),
        _ => out.push_str(pick(rng, &FIELDS)),
    }
}

fn event(rng: &mut fastrand::Rng) -> String {
    let mut out = String::from("{");
    for i in 0..rng.usize(..12) {
        if i > 0 {
            out.push(',');
        }
        whitespace(rng, &mut out);
        out.push('"');
        key(rng, &mut out);
        out.push('"');
        whitespace(rng, &mut out);
        out.push(':');
        // Mostly what the field takes, a string or an object; else any value.
        match rng.u8(..4) {
            0 => {
                out.push('"');
                out.push_str(pick(rng, STRINGS));
                out.push('"');
            }
            1 => out.push_str(pick(rng, &["{}", r#"{"a":1,"b":{"c":[2]}}"#, "null", "42"])),
            _ => value(rng, 1, &mut out),
        }
        whitespace(rng, &mut out);
    }
    out.push('}');
    out
}

#[test]
fn reader_agrees_with_serde_derive_on_generated_events() {
    let mut read_whole = 0;
    let mut refused = [0; 3];
    for seed in 0..20_000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let text = event(&mut rng);
        // Only valid JSON reaches the reader: the request body's parse validated it.
        assert!(serde_json::from_str::<&RawValue>(&text).is_ok(), "{text}");
        let expected = oracle(&text);
        assert_eq!(read(&text), expected, "seed {seed}: {text}");
        match expected {
            Outcome::Read { .. } => read_whole += 1,
            Outcome::Duplicate(_) => refused[0] += 1,
            Outcome::WrongType => refused[1] += 1,
            Outcome::Undecodable => refused[2] += 1,
        }
    }
    // Every outcome is well represented, or the agreement says little.
    assert!(
        read_whole > 2_000 && refused.iter().all(|&n| n > 500),
        "read {read_whole}, refused {refused:?}"
    );
}

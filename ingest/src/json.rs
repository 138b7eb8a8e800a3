//! The free-form JSON objects of an event (properties, traits, context, integrations) are stored
//! as the client's own text. This module checks that a text can be kept as it is, and adds
//! keys to it (batch defaults, `context.ip`) without rewriting what is there.

mod scan;
#[cfg(test)]
pub(crate) mod scan_agrees;
#[cfg(test)]
pub(crate) mod serde_check;

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Nesting levels a free-form object may have, itself included: serde_json's recursion limit,
/// which also bounds the stack the check uses.
pub const MAX_DEPTH: usize = 127;

/// Objects with more keys than this are checked for duplicates by sorting, not pairwise.
const PAIRWISE_KEYS: usize = 16;

/// For JSON text already known to be valid: an object is the only value starting with `{`.
pub fn is_object(text: &str) -> bool {
    text.starts_with('{')
}

/// Why a free-form object cannot be stored as sent. Each case is one a reader would choke on
/// or misread: DuckDB's `json_extract*` fails on a lone surrogate, a number beyond a double
/// reads as infinity or an error, and with a key given twice readers disagree on which wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unkeepable(String);

impl fmt::Display for Unkeepable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `text` (valid JSON, as captured by serde_json) can be stored as it is: no lone
/// surrogate escape, every number within a double's range, nesting within [`MAX_DEPTH`], no key
/// twice in one object. `keys` is left holding the top-level
/// keys, decoded, for [`merge`] and for finding `context.ip`.
pub use scan::check;
/// The scanner's parts, for reading an event's own object in the same pass as its checks.
pub(crate) use scan::{object_end, skip_whitespace, string, value_end};

/// A batch-level object (context or integrations), checked once per request and split into its
/// members so each event can take the ones it lacks.
pub struct Defaults<'a> {
    /// Each top-level key, decoded, and its member's text (`"key": value`) as sent.
    members: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> Defaults<'a> {
    pub fn parse(object: &'a RawValue) -> Result<Self, Unkeepable> {
        let text = object.get();
        let mut keys = Vec::new();
        check(text, &mut keys)?;
        let members = members(text)
            .ok_or_else(|| Unkeepable("could not be split into its keys".to_owned()))?;
        Ok(Self {
            members: keys.into_iter().zip(members).collect(),
        })
    }

    pub fn has(&self, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k == key)
    }
}

/// The text of each top-level member of an object (`"key": value`), in order.
fn members(text: &str) -> Option<Vec<&str>> {
    struct Values<'a>(Vec<&'a RawValue>);
    impl<'de> de::Deserialize<'de> for Values<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Values<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Values<'de>, A::Error> {
                    let mut values = Vec::new();
                    while map.next_key::<de::IgnoredAny>()?.is_some() {
                        values.push(map.next_value::<&'de RawValue>()?);
                    }
                    Ok(Values(values))
                }
            }
            deserializer.deserialize_map(V)
        }
    }
    let Values(values) = serde_json::from_str(text).ok()?;
    let base = text.as_ptr() as usize;
    let mut members = Vec::with_capacity(values.len());
    // A member starts after the previous member's value (or the opening brace) and its comma.
    let mut from = 1;
    for value in values {
        let end = value.get().as_ptr() as usize - base + value.get().len();
        let member = text.get(from..end)?.trim_start();
        let member = member.strip_prefix(',').unwrap_or(member).trim_start();
        members.push(member);
        from = end;
    }
    Some(members)
}

/// The event's object (`own`, with top-level keys `own_keys`) with each default member whose
/// key it lacks appended, in the batch's order. The event's text is kept byte for byte.
pub fn merge(own: Option<&str>, own_keys: &[Cow<str>], defaults: &Defaults) -> String {
    let own = own.unwrap_or("{}");
    let body = own[..own.len() - 1].trim_end();
    let mut out = String::with_capacity(
        own.len()
            + defaults
                .members
                .iter()
                .map(|m| m.1.len() + 1)
                .sum::<usize>(),
    );
    out.push_str(body);
    let mut empty = body == "{";
    for (key, member) in &defaults.members {
        if own_keys.contains(key) {
            continue;
        }
        if !empty {
            out.push(',');
        }
        out.push_str(member);
        empty = false;
    }
    out.push('}');
    out
}

/// Adds `"ip": …` to a JSON object's text without re-serializing the rest of it.
pub fn with_ip(object: Option<&str>, ip: &str) -> String {
    let rest = match object.map(str::trim) {
        Some(text) if text.len() > 1 => text[1..].trim_start(),
        _ => "}",
    };
    let mut out = String::with_capacity(rest.len() + ip.len() + 10);
    out.push_str("{\"ip\":");
    push_json_string(&mut out, ip);
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out
}

/// Appends `text` as a JSON string. Addresses need no escaping; a forwarded header might.
fn push_json_string(out: &mut String, text: &str) {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::String(text.to_owned()).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }

    fn checked(text: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        check(text, &mut keys).map_err(|e| e.to_string())?;
        Ok(keys.into_iter().map(Cow::into_owned).collect())
    }

    #[test]
    fn ip_is_spliced_into_empty_and_full_objects() {
        assert_eq!(with_ip(None, "1.2.3.4"), r#"{"ip":"1.2.3.4"}"#);
        assert_eq!(with_ip(Some(" { } "), "1.2.3.4"), r#"{"ip":"1.2.3.4"}"#);
        assert_eq!(
            with_ip(Some(r#"{"a": 1}"#), "::1"),
            r#"{"ip":"::1","a": 1}"#
        );
        assert_eq!(with_ip(Some("{}"), "a\"b"), r#"{"ip":"a\"b"}"#);
    }

    const RANGE: &str = "a number is beyond the range of a double (about 1.8e308)";
    const SURROGATE: &str =
        "a string holds a lone surrogate escape (\\ud800-\\udfff without its pair)";

    #[test]
    fn what_readers_choke_on_is_refused() {
        let deep = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        assert_eq!(
            checked(&format!(r#"{{"a":{deep}}}"#)),
            Err("it is nested deeper than 127 levels".into())
        );
        let deep_enough = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        assert!(checked(&format!(r#"{{"a":{deep_enough}}}"#)).is_ok());
        for (text, reason) in [
            (r#"{"x":1e400}"#, RANGE),
            (r#"{"x":-1e309}"#, RANGE),
            (r#"{"x":"\ud800"}"#, SURROGATE),
            (r#"{"x":"\ud800\u0041"}"#, SURROGATE),
            (r#"{"x":["\udc00"]}"#, SURROGATE),
            (r#"{"\ud800":1}"#, SURROGATE),
            (
                r#"{"ip":null,"ip":"1"}"#,
                r#"the key "ip" appears twice in one object"#,
            ),
            (
                r#"{"a":{"b":1,"\u0062":2}}"#,
                r#"the key "b" appears twice in one object"#,
            ),
        ] {
            assert_eq!(checked(text), Err(reason.to_owned()), "{text}");
        }
        // Past the pairwise limit, duplicates are found by sorting.
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let mut text = format!("{{{},\"k7\":0}}", many.join(","));
        assert_eq!(
            checked(&text),
            Err(r#"the key "k7" appears twice in one object"#.into())
        );
        text = format!("{{{}}}", many.join(","));
        assert_eq!(checked(&text).map(|keys| keys.len()), Ok(40));
    }

    #[test]
    fn what_readers_parse_is_kept() {
        let text = r#"{"b":1e-400,"a":{"a":1,"b":[{"a":2}]},"\ud83d\ude00":123456789012345678901234567890,"c":-0}"#;
        assert_eq!(
            checked(text),
            Ok(vec!["b".into(), "a".into(), "😀".into(), "c".into()])
        );
    }

    #[test]
    fn defaults_are_appended_where_the_event_lacks_the_key() {
        let batch = raw(r#"{ "a" : 2 , "b":{"x":1e2},"c\n":-0 }"#);
        let defaults = Defaults::parse(&batch);
        let Ok(defaults) = defaults else {
            panic!("{:?}", defaults.err())
        };
        let own = r#"{"z": 123456789012345678901234567890, "a":1}"#;
        let keys = checked(own).unwrap_or_default();
        let keys: Vec<Cow<str>> = keys.into_iter().map(Cow::Owned).collect();
        assert_eq!(
            merge(Some(own), &keys, &defaults),
            r#"{"z": 123456789012345678901234567890, "a":1,"b":{"x":1e2},"c\n":-0}"#
        );
        assert_eq!(
            merge(None, &[], &defaults),
            r#"{"a" : 2,"b":{"x":1e2},"c\n":-0}"#
        );
        assert_eq!(
            merge(Some("{ }"), &[], &defaults),
            r#"{"a" : 2,"b":{"x":1e2},"c\n":-0}"#
        );
        assert!(defaults.has("c\n") && !defaults.has("ip"));
        assert!(Defaults::parse(&raw(r#"{"a":1,"a":2}"#)).is_err());
    }
}

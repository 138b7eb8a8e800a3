//! Small operations on raw JSON text that avoid building a `Value` tree on the common path.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// For JSON text already known to be valid: an object is the only value starting with `{`.
pub fn is_object(text: &str) -> bool {
    text.starts_with('{')
}

/// The object with `defaults`' keys added where it has none of its own (the event's keys win).
/// Only runs when a batch carries shared context, so building maps here is fine.
pub fn merge_defaults(own: Option<&RawValue>, defaults: &RawValue) -> Option<String> {
    let mut merged: Map<String, Value> = serde_json::from_str(defaults.get()).ok()?;
    if let Some(own) = own {
        let own: Map<String, Value> = serde_json::from_str(own.get()).ok()?;
        merged.extend(own);
    }
    serde_json::to_string(&merged).ok()
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
        out.push_str(&Value::String(text.to_owned()).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap_or_else(|_| RawValue::NULL.to_owned())
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

    #[test]
    fn event_keys_win_over_batch_defaults() {
        let merged = merge_defaults(Some(&raw(r#"{"a":1}"#)), &raw(r#"{"a":2,"b":3}"#));
        assert_eq!(merged.as_deref(), Some(r#"{"a":1,"b":3}"#));
    }
}

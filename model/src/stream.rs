//! Stream names: the first part of every file's path and a label on every stream's metrics.

use std::fmt;

/// Stream that receives events the collector rejected, with the raw event and the reason, so a
/// rejected event is never silently gone. Client stream names may not start with `_`.
pub const REJECTED_STREAM: &str = "_rejected";

/// Longest stream name: it is a path segment and a metric label, so it stays short.
const MAX_STREAM_NAME_BYTES: usize = 64;

/// A stream a client may write to: `[a-z0-9_-]{1,64}`, not starting with `_`, so it is safe
/// as a path segment and a label and never one of the collector's own (like [`REJECTED_STREAM`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream name {0:?} is invalid: use 1-64 characters from a-z, 0-9, _ and -, not starting with _"
)]
pub struct InvalidStreamName(pub String);

impl StreamName {
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidStreamName> {
        let name = name.into();
        let valid = (1..=MAX_STREAM_NAME_BYTES).contains(&name.len())
            && !name.starts_with('_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(name))
        } else {
            Err(InvalidStreamName(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<StreamName> for String {
    fn from(name: StreamName) -> String {
        name.0
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_follow_the_rule() {
        for good in ["web", "a", "app-2", "ios_prod", &"x".repeat(64)] {
            assert_eq!(
                StreamName::parse(good).map(String::from).as_deref(),
                Ok(good)
            );
        }
        for bad in [
            "",
            "Web",
            "web!",
            "a/b",
            "..",
            "é",
            "_private",
            REJECTED_STREAM,
            &"x".repeat(65),
        ] {
            assert_eq!(
                StreamName::parse(bad),
                Err(InvalidStreamName(bad.to_owned()))
            );
        }
    }
}

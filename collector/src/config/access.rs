//! Who may send events and where they land: write keys mapped to streams (`[[sources]]`), what
//! happens without a key (`[auth]`), and which browser origins may call (`[cors]`).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A Segment write key. Its `Debug` form hides the value: a key is a credential, and config
/// structs end up in logs and panic messages.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WriteKey(String);

impl WriteKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriteKey(<redacted>)")
    }
}

/// One Segment source: requests carrying `write_key` are stored in `stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub write_key: WriteKey,
    pub stream: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accept `/v1/*` requests whose write key is missing or unknown, storing them in
    /// `anonymous_stream`. For development only: anyone who can reach the port can write.
    pub allow_anonymous: bool,
    pub anonymous_stream: String,
    /// `/collect/<stream>` then needs a write key configured for that same stream.
    pub collect_requires_key: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: false,
            anonymous_stream: "default".to_owned(),
            collect_requires_key: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`https://shop.example`) whose pages may send events from the browser; `"*"`
    /// allows any. Empty: no cross-origin access.
    pub allowed_origins: Vec<String>,
}

/// `[[sources]]` tables from TOML, or `"key1=stream1,key2=stream2"` from `EVENTKIT_SOURCES`
/// (the environment can only carry a string).
pub fn deserialize_sources<'de, D>(deserializer: D) -> Result<Vec<SourceConfig>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_any(SourcesVisitor)
}

struct SourcesVisitor;

impl<'de> Visitor<'de> for SourcesVisitor {
    type Value = Vec<SourceConfig>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of {write_key, stream} tables, or \"key1=stream1,key2=stream2\"")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut sources = Vec::new();
        while let Some(source) = seq.next_element::<SourceConfig>()? {
            sources.push(source);
        }
        Ok(sources)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_pairs(text).map_err(E::custom)
    }
}

/// Error texts never repeat the key: they may be shown in logs.
pub fn parse_pairs(text: &str) -> Result<Vec<SourceConfig>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .enumerate()
        .map(|(index, pair)| match pair.split_once('=') {
            Some((key, stream)) if !key.trim().is_empty() && !stream.trim().is_empty() => {
                Ok(SourceConfig {
                    write_key: WriteKey::new(key.trim()),
                    stream: stream.trim().to_owned(),
                })
            }
            _ => Err(format!(
                "entry {} is not of the form write_key=stream (expected \"key1=stream1,key2=stream2\")",
                index + 1
            )),
        })
        .collect()
}

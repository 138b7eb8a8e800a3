//! `[[sinks]]`: the places files go, each taking the streams its patterns name. `[sink]` stays
//! as the one-sink shorthand: without `[[sinks]]` it is one Parquet sink named `default`
//! taking every stream. See specs/sinks.md.

use eventkit_model::{REJECTED_STREAM, StreamName};
use eventkit_sinks::PostgresSinkConfig;
use serde::Deserialize;

use super::{ConfigError, SinkConfig};

/// Every flush waits for each sink its stream goes to, and each sink is a `sink` label value on
/// the metrics and an entry in `/ready`: a handful covers a lake, a warehouse and a few
/// exports, and keeps both small.
pub const MAX_SINKS: usize = 16;
/// A sink's name is a metric label and a key in `/ready`: short, and safe in both.
pub const MAX_SINK_NAME_BYTES: usize = 32;
/// The name `[sink]` (and `EVENTKIT_SINK__URL`) gives its one sink.
pub const DEFAULT_SINK_NAME: &str = "default";
/// The pattern every stream matches.
pub const ALL_STREAMS: &str = "*";

/// One `[[sinks]]` entry: `name`, `type`, `streams`, and the type's own settings beside them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawSinkEntry")]
pub struct SinkEntry {
    pub name: String,
    /// Exact stream names, `prefix*`, or `*`; the dead-letter stream `_rejected` is matched
    /// like any other name.
    pub streams: Vec<String>,
    pub settings: SinkSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkSettings {
    Parquet(ParquetSinkSettings),
    Postgres(PostgresSinkConfig),
}

/// `type = "parquet"`: Parquet files in an object store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkSettings {
    /// As `sink.url`: a directory, `file:///abs/dir`, `memory://`, `gs://bucket/prefix`.
    pub url: String,
    /// Replaces the service host of a `gs://` URL (an emulator; no credentials are sent).
    /// Defaults to `STORAGE_EMULATOR_HOST`, as `sink.gcs_endpoint` does.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl SinkEntry {
    /// What `[sink]` means when no `[[sinks]]` is given.
    pub fn shorthand(sink: &SinkConfig) -> Self {
        Self {
            name: DEFAULT_SINK_NAME.to_owned(),
            streams: vec![ALL_STREAMS.to_owned()],
            settings: SinkSettings::Parquet(ParquetSinkSettings {
                url: sink.url.clone(),
                endpoint: sink.gcs_endpoint.clone(),
            }),
        }
    }

    /// For logs: the name, the type and, for Parquet, where (a PostgreSQL URL may hold a
    /// password, so it is left out).
    pub fn describe(&self) -> String {
        match &self.settings {
            SinkSettings::Parquet(parquet) => format!("{}=parquet:{}", self.name, parquet.url),
            SinkSettings::Postgres(_) => format!("{}=postgres", self.name),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SinkType {
    Parquet,
    Postgres,
}

/// The entry as written. The type's settings are collected apart and then read into the type's
/// own struct, whose `deny_unknown_fields` names a wrong key; serde cannot deny unknown keys
/// across a flattened map by itself.
#[derive(Deserialize)]
struct RawSinkEntry {
    name: String,
    #[serde(rename = "type")]
    kind: SinkType,
    #[serde(default = "all_streams")]
    streams: Vec<String>,
    #[serde(flatten)]
    settings: serde_json::Map<String, serde_json::Value>,
}

fn all_streams() -> Vec<String> {
    vec![ALL_STREAMS.to_owned()]
}

impl TryFrom<RawSinkEntry> for SinkEntry {
    type Error = String;

    fn try_from(raw: RawSinkEntry) -> Result<Self, String> {
        let settings = serde_json::Value::Object(raw.settings);
        let settings = match raw.kind {
            SinkType::Parquet => serde_json::from_value(settings).map(SinkSettings::Parquet),
            SinkType::Postgres => serde_json::from_value(settings).map(SinkSettings::Postgres),
        }
        .map_err(|error| format!("sink {:?}: {error}", raw.name))?;
        Ok(Self {
            name: raw.name,
            streams: raw.streams,
            settings,
        })
    }
}

/// Which streams a sink takes: one of its `streams` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPattern {
    All,
    Prefix(String),
    Exact(String),
}

impl StreamPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let stream_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b);
        if pattern == ALL_STREAMS {
            return Ok(Self::All);
        }
        if let Some(prefix) = pattern.strip_suffix('*')
            && !prefix.is_empty()
            && prefix.len() < 64
            && prefix.bytes().all(stream_byte)
        {
            return Ok(Self::Prefix(prefix.to_owned()));
        }
        if pattern == REJECTED_STREAM || StreamName::parse(pattern).is_ok() {
            return Ok(Self::Exact(pattern.to_owned()));
        }
        Err(format!(
            "stream pattern {pattern:?} is not a stream name, a prefix ending in * (\"web*\"), or \"*\""
        ))
    }

    pub fn matches(&self, stream: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(prefix) => stream.starts_with(prefix.as_str()),
            Self::Exact(name) => stream == name,
        }
    }
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: "sinks",
        reason,
    }
}

/// The error for `[sink]` and `[[sinks]]` given together: which one was meant is a guess.
pub fn both_given() -> ConfigError {
    invalid(format!(
        "sink.url (the [sink] table or EVENTKIT_SINK__URL) and [[sinks]] are both given: use one; \
         sink.url alone is one parquet sink named {DEFAULT_SINK_NAME:?} taking \"*\""
    ))
}

/// Names, patterns, bounds and the catch-all: what `[[sinks]]` must hold before anything opens.
pub fn validate(entries: &[SinkEntry]) -> Result<(), ConfigError> {
    if entries.len() > MAX_SINKS {
        return Err(invalid(format!(
            "{} sinks given; at most {MAX_SINKS} (each flush waits for every sink its stream goes to)",
            entries.len()
        )));
    }
    let mut names = std::collections::HashSet::new();
    for entry in entries {
        let name = &entry.name;
        let well_formed = (1..=MAX_SINK_NAME_BYTES).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
        if !well_formed {
            return Err(invalid(format!(
                "sink name {name:?} must be 1-{MAX_SINK_NAME_BYTES} characters from a-z, 0-9, _ and -"
            )));
        }
        if !names.insert(name.as_str()) {
            return Err(invalid(format!("sink name {name:?} is used twice")));
        }
        if entry.streams.is_empty() {
            return Err(invalid(format!(
                "sink {name:?}: streams is empty; list at least one pattern (the default is [\"*\"])"
            )));
        }
        for pattern in &entry.streams {
            StreamPattern::parse(pattern).map_err(|e| invalid(format!("sink {name:?}: {e}")))?;
        }
        let url = match &entry.settings {
            SinkSettings::Parquet(parquet) => &parquet.url,
            SinkSettings::Postgres(postgres) => &postgres.url,
        };
        if url.trim().is_empty() {
            return Err(invalid(format!("sink {name:?}: url must not be empty")));
        }
    }
    // A stream no sink takes could never be stored, and would hold its queue capacity forever.
    if !entries
        .iter()
        .any(|entry| entry.streams.iter().any(|p| p == ALL_STREAMS))
    {
        return Err(invalid(format!(
            "no sink takes every stream: give one sink streams = [\"{ALL_STREAMS}\"] (the default), \
             so streams no pattern names, and {REJECTED_STREAM}, are stored somewhere"
        )));
    }
    Ok(())
}

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
    /// Exact stream names, `prefix*`, or `*`, parsed as the config is read; the dead-letter
    /// stream `_rejected` is matched like any other name.
    pub streams: Vec<StreamPattern>,
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
    /// As `sink.url`: a directory, `file:///abs/dir`, `memory://`, `gs://bucket/prefix`,
    /// `s3://bucket/prefix`, `az://container/prefix`.
    pub url: String,
    /// Replaces the service host of a `gs://`, `s3://` or `az://` URL (an emulator, or an
    /// S3-compatible store). For `gs://` it defaults to `STORAGE_EMULATOR_HOST`.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl SinkEntry {
    /// What `[sink]` means when no `[[sinks]]` is given.
    pub fn shorthand(sink: &SinkConfig) -> Self {
        Self {
            name: DEFAULT_SINK_NAME.to_owned(),
            streams: vec![StreamPattern::All],
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
        let streams = raw
            .streams
            .iter()
            .map(|pattern| StreamPattern::parse(pattern))
            .collect::<Result<_, _>>()
            .map_err(|error| format!("sink {:?}: {error}", raw.name))?;
        Ok(Self {
            name: raw.name,
            streams,
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
        let stream_byte =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b);
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
        .any(|entry| entry.streams.contains(&StreamPattern::All))
    {
        return Err(invalid(format!(
            "no sink takes every stream: give one sink streams = [\"{ALL_STREAMS}\"] (the default), \
             so streams no pattern names, and {REJECTED_STREAM}, are stored somewhere"
        )));
    }
    Ok(())
}

#[cfg(test)]
// `figment::Jail` closures must return `figment::Error`, whose size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// `toml` as the config file (in a jail), loaded and validated; the error as text.
    fn load(jail: &mut figment::Jail, toml: &str) -> Result<Config, String> {
        jail.create_file("eventkit.toml", toml)
            .map_err(|e| e.to_string())?;
        Config::load(Some(Path::new("eventkit.toml"))).map_err(|e| e.to_string())
    }

    fn load_error(toml: &str) -> String {
        let mut error = String::new();
        figment::Jail::expect_with(|jail| {
            error = load(jail, toml).err().unwrap_or_default();
            Ok(())
        });
        error
    }

    fn parquet(name: &str, streams: &[&str], url: &str) -> SinkEntry {
        SinkEntry {
            name: name.to_owned(),
            streams: streams
                .iter()
                .map(|s| StreamPattern::parse(s).unwrap())
                .collect(),
            settings: SinkSettings::Parquet(ParquetSinkSettings {
                url: url.to_owned(),
                endpoint: None,
            }),
        }
    }

    #[test]
    fn sinks_take_patterns_and_their_own_type_settings() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let config = load(
                jail,
                r#"
[[sinks]]
name = "lake"
type = "parquet"
url = "/var/lib/eventkit"

[[sinks]]
name = "web-gcs"
type = "parquet"
streams = ["web*", "_rejected"]
url = "gs://bucket/events"
endpoint = "http://127.0.0.1:4443"

[[sinks]]
name = "pg"
type = "postgres"
streams = ["orders"]
url = "postgresql://eventkit@db/analytics"
max_connections = 2
"#,
            )?;
            let mut pg = PostgresSinkConfig::new("postgresql://eventkit@db/analytics");
            pg.max_connections = 2;
            let mut web = parquet("web-gcs", &["web*", "_rejected"], "gs://bucket/events");
            web.settings = SinkSettings::Parquet(ParquetSinkSettings {
                url: "gs://bucket/events".to_owned(),
                endpoint: Some("http://127.0.0.1:4443".to_owned()),
            });
            let expected = vec![
                // `streams` defaults to every stream.
                parquet("lake", &["*"], "/var/lib/eventkit"),
                web,
                SinkEntry {
                    name: "pg".to_owned(),
                    streams: vec![StreamPattern::Exact("orders".to_owned())],
                    settings: SinkSettings::Postgres(pg),
                },
            ];
            assert_eq!(config.sinks, expected);
            assert_eq!(config.sink_entries(), expected);
            Ok(())
        });
    }

    #[test]
    fn sink_url_alone_is_one_parquet_sink_named_default_taking_every_stream() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.sink_entries(),
                [parquet("default", &["*"], "./data")]
            );

            jail.set_env("EVENTKIT_SINK__URL", "memory://");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.sink_entries(),
                [parquet("default", &["*"], "memory://")]
            );

            // The GCS emulator variable reaches a gs:// shorthand's endpoint, and only that.
            jail.set_env("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.sink.gcs_endpoint, None);
            jail.set_env("EVENTKIT_SINK__URL", "gs://b/p");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.sink.gcs_endpoint.as_deref(),
                Some("http://127.0.0.1:4443")
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443");
            let config = load(
                jail,
                "[[sinks]]\nname = \"lake\"\ntype = \"parquet\"\nurl = \"gs://b/p\"\n",
            )?;
            let endpoint = match &config.sinks[0].settings {
                SinkSettings::Parquet(parquet) => parquet.endpoint.clone(),
                SinkSettings::Postgres(_) => None,
            };
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:4443"));
            let config = load(
                jail,
                "[[sinks]]\nname = \"lake\"\ntype = \"parquet\"\nurl = \"s3://b/p\"\n",
            )?;
            assert!(matches!(
                &config.sinks[0].settings,
                SinkSettings::Parquet(parquet) if parquet.endpoint.is_none()
            ));
            Ok(())
        });
    }

    #[test]
    fn sink_and_sinks_given_together_name_both_keys() {
        let list = "[[sinks]]\nname = \"lake\"\ntype = \"parquet\"\nurl = \"/tmp/lake\"\n";
        let error = load_error(&format!("[sink]\nurl = \"./data\"\n\n{list}"));
        assert!(
            error.contains("sink.url") && error.contains("[[sinks]]"),
            "{error}"
        );
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("EVENTKIT_SINK__URL", "memory://");
            let error = load(jail, list).err().unwrap_or_default();
            assert!(error.contains("EVENTKIT_SINK__URL"), "{error}");
            assert!(error.contains("[[sinks]]"), "{error}");
            Ok(())
        });
        // Built in code rather than loaded: validation catches it too.
        let config = Config {
            sink: SinkConfig {
                url: "memory://".to_owned(),
                gcs_endpoint: None,
            },
            sinks: vec![parquet("lake", &["*"], "/tmp/lake")],
            ..Config::default()
        };
        let error = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("sink.url") && error.contains("[[sinks]]"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_key_names_the_sink_and_the_key() {
        let error = load_error("[[sinks]]\nname = \"lake\"\ntype = \"parquet\"\nurll = \"/tmp\"\n");
        assert!(error.contains("sinks"), "{error}");
        assert!(
            error.contains("\"lake\"") && error.contains("urll"),
            "{error}"
        );

        let error = load_error(
            "[[sinks]]\nname = \"pg\"\ntype = \"postgres\"\nurl = \"postgresql://db\"\npasword = \"x\"\n",
        );
        assert!(
            error.contains("\"pg\"") && error.contains("pasword"),
            "{error}"
        );
        // A parquet key on a postgres sink is as wrong as a misspelt one.
        let error = load_error(
            "[[sinks]]\nname = \"pg\"\ntype = \"postgres\"\nurl = \"postgresql://db\"\nendpoint = \"x\"\n",
        );
        assert!(
            error.contains("\"pg\"") && error.contains("endpoint"),
            "{error}"
        );

        let error = load_error("[[sinks]]\nname = \"lake\"\ntype = \"kafka\"\nurl = \"x\"\n");
        assert!(error.contains("kafka"), "{error}");

        let error = load_error(
            "[[sinks]]\nname = \"lake\"\ntype = \"parquet\"\nurl = \"/a\"\nstreams = [\"*\", \"*web\"]\n",
        );
        assert!(
            error.contains("sink \"lake\": stream pattern \"*web\""),
            "{error}"
        );
    }

    fn validate(entries: Vec<SinkEntry>) -> String {
        let config = Config {
            sinks: entries,
            ..Config::default()
        };
        config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn at_most_sixteen_sinks() {
        let sinks = |n: usize| -> Vec<SinkEntry> {
            (0..n)
                .map(|i| parquet(&format!("s{i}"), &["*"], &format!("/tmp/s{i}")))
                .collect()
        };
        assert_eq!(validate(sinks(MAX_SINKS)), "");
        let error = validate(sinks(MAX_SINKS + 1));
        assert!(error.contains("at most 16"), "{error}");
    }

    #[test]
    fn some_sink_must_take_every_stream() {
        let error = validate(vec![
            parquet("web", &["web*"], "/tmp/web"),
            parquet("rest", &["app", "_rejected"], "/tmp/rest"),
        ]);
        assert!(error.contains("no sink takes every stream"), "{error}");
        assert!(error.contains("streams = [\"*\"]"), "{error}");
        assert_eq!(
            validate(vec![
                parquet("web", &["web*"], "/tmp/web"),
                parquet("rest", &["app", "*"], "/tmp/rest"),
            ]),
            ""
        );
    }

    #[test]
    fn names_and_patterns_are_checked_naming_the_sink() {
        let cases: [(Vec<SinkEntry>, &str); 5] = [
            (vec![parquet("Lake", &["*"], "/a")], "sink name \"Lake\""),
            (
                vec![parquet(&"x".repeat(33), &["*"], "/a")],
                "1-32 characters",
            ),
            (vec![parquet("", &["*"], "/a")], "1-32 characters"),
            (
                vec![parquet("a", &["*"], "/a"), parquet("a", &["*"], "/b")],
                "\"a\" is used twice",
            ),
            (
                vec![parquet("lake", &[], "/a")],
                "sink \"lake\": streams is empty",
            ),
        ];
        for (entries, expected) in cases {
            let error = validate(entries);
            assert!(error.starts_with("configuration key sinks:"), "{error}");
            assert!(error.contains(expected), "{expected}: {error}");
        }
        let error = validate(vec![parquet("lake", &["*"], " ")]);
        assert!(
            error.contains("sink \"lake\": url must not be empty"),
            "{error}"
        );
    }
}

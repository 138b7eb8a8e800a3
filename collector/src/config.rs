//! One typed configuration, from defaults, then an optional TOML file, then `EVENTKIT_*`
//! environment variables (`EVENTKIT_<SECTION>__<KEY>`). Validated once, at start-up.

mod access;
mod sinks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use eventkit_model::StreamName;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use access::{AuthConfig, CorsConfig, SourceConfig, WriteKey, parse_pairs};
pub use sinks::{
    ALL_STREAMS, DEFAULT_SINK_NAME, MAX_SINK_NAME_BYTES, MAX_SINKS, ParquetSinkSettings, SinkEntry,
    SinkSettings, StreamPattern,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    /// The one-sink shorthand; see `sinks`.
    pub sink: SinkConfig,
    /// Several sinks, each taking the streams its patterns name (file only: no environment
    /// override). Empty: `sink` is one Parquet sink named `default` taking every stream.
    /// Never serialized: only the defaults are, and they have none.
    #[serde(skip_serializing)]
    pub sinks: Vec<SinkEntry>,
    /// Segment sources: write key → stream.
    #[serde(deserialize_with = "access::deserialize_sources")]
    pub sources: Vec<SourceConfig>,
    pub auth: AuthConfig,
    pub cors: CorsConfig,
    pub pubsub: PubsubConfig,
    pub loader: LoaderConfig,
}

/// Where `queue.mode = "pubsub"` publishes and the loader fleet subscribes. `PUBSUB_EMULATOR_HOST`
/// points the clients at an emulator, as with Google's own clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PubsubConfig {
    pub project: String,
    pub topic: String,
    pub subscription: String,
    /// `host:port` of an emulator (no credentials are sent). Defaults to `PUBSUB_EMULATOR_HOST`.
    pub emulator_host: Option<String>,
    /// Create the topic (collector) or subscription (loader) when missing. For development:
    /// in production a missing topic is a deployment error and stops start-up.
    pub create_missing: bool,
    /// How long a stream's first event waits for others to share its message (group commit).
    pub coalesce_ms: u64,
    /// A message is published once its events reach this many bytes (decoded size) ...
    pub max_message_bytes: usize,
    /// ... or this many events.
    pub max_message_events: usize,
    /// A publish not acknowledged by then is answered 503; the client retries.
    pub publish_timeout_ms: u64,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        // See specs/pubsub.md: 5 ms adds little to a request's latency and, under load, fills
        // messages of hundreds of events; 4 MiB of events compress to well under Pub/Sub's 10 MB.
        Self {
            project: "eventkit-dev".to_owned(),
            topic: "eventkit-events".to_owned(),
            subscription: "eventkit-sink".to_owned(),
            emulator_host: None,
            create_missing: false,
            coalesce_ms: 5,
            max_message_bytes: 4 * 1024 * 1024,
            max_message_events: 5_000,
            publish_timeout_ms: 10_000,
        }
    }
}

/// `eventkit loader`: pulls from `pubsub.subscription` and writes with the `[batch]` and `[sink]`
/// settings; `queue.capacity`/`capacity_bytes` bound the events it holds unstored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    /// `/health`, `/ready` and `/metrics`.
    pub listen: SocketAddr,
    /// Messages pulled and not yet acknowledged (Pub/Sub flow control).
    pub max_outstanding_messages: i64,
    /// How far each lease extension reaches (10-600 s): after a loader dies, its messages go
    /// to another loader within this. Shorter costs more lease extensions.
    pub ack_deadline_secs: u64,
    /// Recently stored `messageId`s remembered per loader, to drop redelivered events.
    pub dedup_window_ids: usize,
    pub dedup_window_secs: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            max_outstanding_messages: 1_000,
            ack_deadline_secs: 60,
            dedup_window_ids: 1_000_000,
            dedup_window_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// When the request's address becomes `context.ip` (a client's own is always kept).
    pub capture_ip: crate::ingest::CaptureIp,
    /// Zero the last IPv4 octet / last 80 bits of IPv6 of a captured address.
    pub anonymize_ip: bool,
    /// The URL browsers reach this collector at (`https://collect.example.com`), written into
    /// the settings document analytics.js fetches. Unset: taken from each request's `Host`.
    pub public_url: Option<String>,
    /// Open connections. Also capped at the file-descriptor limit less `fd_reserve`; past the
    /// cap a new connection is closed at once.
    pub max_connections: usize,
    /// File descriptors kept free of connections, for the batch writer's files and the store.
    pub fd_reserve: usize,
    /// Requests being read or handled at once (probes excepted); past it: 503 with `Retry-After`.
    pub max_requests: usize,
    /// Largest request head; also the read buffer a connection keeps between requests.
    pub max_header_bytes: usize,
    /// Time for a request's headers to arrive, counted from when the connection waits for them:
    /// it also closes idle keep-alive connections.
    pub header_timeout_ms: u64,
    /// Time for a request's body to arrive once the handler waits for it; past it: 408.
    pub body_timeout_ms: u64,
    /// Distinct streams accepted since start, besides the dead-letter stream and the configured
    /// ones; a new stream past it gets 400 naming this key.
    pub max_streams: usize,
    /// From SIGTERM to exit: requests still being sent by then are cut off.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trust_forwarded_for: false,
            capture_ip: crate::ingest::CaptureIp::Auto,
            anonymize_ip: false,
            public_url: None,
            // The reasons for each default are in README.md, "How memory adds up".
            max_connections: 4096,
            fd_reserve: 256,
            max_requests: 1024,
            max_header_bytes: 16 * 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            max_streams: 1000,
            shutdown_grace_ms: 25_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    Async,
    Pubsub,
}

/// What an `async` queue promises for an accepted event when the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Appended and fdatasynced to a write-ahead log before the 2xx; replayed at the next start.
    Wal,
    /// Held in memory only: a crash (not a graceful stop) loses what was not yet stored.
    Memory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub mode: QueueMode,
    /// Events accepted but not yet stored, across all streams.
    pub capacity: usize,
    /// The same bound in bytes, for when events are large.
    pub capacity_bytes: usize,
    /// For `mode = "async"`; `pubsub` is durable by itself.
    pub durability: Durability,
    /// The write-ahead log's directory: local disk, outside `sink.url` so readers of the Parquet
    /// files never see it (and so it works when the sink is `gs://` or `memory://`).
    pub wal_dir: PathBuf,
    /// Bound on the log's segment files; past it requests get 503 + `Retry-After`.
    pub wal_max_bytes: u64,
    /// A segment is deleted once all its events are stored: smaller segments free disk sooner,
    /// larger ones mean fewer files.
    pub wal_segment_bytes: u64,
    /// `async` mode: recently queued `messageId`s remembered (across streams, keyed by stream),
    /// to drop an event a client sends again; 0 turns it off. The loader has its own.
    pub dedup_window_ids: usize,
    /// ... for at most this long.
    pub dedup_window_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        // 200k events is a few seconds of peak ingest on a small machine: enough to ride out a
        // slow flush, small enough (≤ 256 MiB) to fit next to anything.
        Self {
            mode: QueueMode::Async,
            capacity: 200_000,
            capacity_bytes: 256 * 1024 * 1024,
            durability: Durability::Wal,
            wal_dir: PathBuf::from("./wal"),
            // Four times what the in-memory bound holds (records are smaller encoded than in
            // memory), so segments pinned by a slow stream's last events rarely cause 503s.
            wal_max_bytes: 1024 * 1024 * 1024,
            wal_segment_bytes: 16 * 1024 * 1024,
            // As the loader's: about 100 MiB at a million ids (benchmarks/results/fidelity.md),
            // ten minutes covers the SDKs' retries.
            dedup_window_ids: 1_000_000,
            dedup_window_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_events: usize,
    pub max_bytes: usize,
    pub max_age_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        // See specs/architecture.md: files of ~50k events are large enough for efficient Parquet
        // and few objects per hour, and 10 s keeps data fresh at low traffic.
        Self {
            max_events: 50_000,
            max_bytes: 64 * 1024 * 1024,
            max_age_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// `file:///abs/dir`, a plain directory path, `memory://`, or `gs://bucket/prefix`.
    pub url: String,
    /// Endpoint for `gs://` sinks instead of storage.googleapis.com (an emulator; no
    /// credentials are sent). Defaults to `STORAGE_EMULATOR_HOST`, as in Google's clients.
    pub gcs_endpoint: Option<String>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            url: "./data".to_owned(),
            gcs_endpoint: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut given = Figment::new();
        if let Some(file) = file {
            given = given.merge(Toml::file_exact(file));
        }
        given = given.merge(Env::prefixed("EVENTKIT_").split("__"));
        // Asked of what was given, not of the merged defaults, which always have a `sink.url`.
        if given.contains("sink") && given.contains("sinks") {
            return Err(sinks::both_given());
        }
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(given)
            .extract()
            .map_err(|e| ConfigError::Load(describe(e)))?;
        // Google's clients treat STORAGE_EMULATOR_HOST as "use this emulator"; so does eventkit,
        // for gs:// only (S3 and Azure read their own variables).
        let emulator = non_empty_env("STORAGE_EMULATOR_HOST");
        let is_gcs = |url: &str| url.starts_with("gs://");
        if config.sinks.is_empty() && config.sink.gcs_endpoint.is_none() && is_gcs(&config.sink.url)
        {
            config.sink.gcs_endpoint = emulator.clone();
        }
        for entry in &mut config.sinks {
            if let SinkSettings::Parquet(parquet) = &mut entry.settings
                && parquet.endpoint.is_none()
                && is_gcs(&parquet.url)
            {
                parquet.endpoint = emulator.clone();
            }
        }
        if config.pubsub.emulator_host.is_none() {
            config.pubsub.emulator_host = non_empty_env("PUBSUB_EMULATOR_HOST");
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &'static str, value: usize| {
            if value == 0 {
                Err(ConfigError::Invalid {
                    key,
                    reason: "must be greater than 0".to_owned(),
                })
            } else {
                Ok(())
            }
        };
        positive("queue.capacity", self.queue.capacity)?;
        positive("queue.capacity_bytes", self.queue.capacity_bytes)?;
        positive("batch.max_events", self.batch.max_events)?;
        positive("batch.max_bytes", self.batch.max_bytes)?;
        self.validate_pubsub()?;
        self.server.validate_bounds()?;
        if self.batch.max_age_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "batch.max_age_ms",
                reason: "must be greater than 0".to_owned(),
            });
        }
        if self.queue.capacity < crate::ingest::MAX_EVENTS_PER_REQUEST {
            return Err(ConfigError::Invalid {
                key: "queue.capacity",
                reason: format!(
                    "must hold at least one full request ({} events)",
                    crate::ingest::MAX_EVENTS_PER_REQUEST
                ),
            });
        }
        self.validate_wal()?;
        self.validate_access()?;
        if self.sinks.is_empty() && self.sink.url.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "sink.url",
                reason: "must not be empty".to_owned(),
            });
        }
        // Set in code rather than loaded (load catches it first, with an explicit default too).
        if !self.sinks.is_empty() && self.sink != SinkConfig::default() {
            return Err(sinks::both_given());
        }
        sinks::validate(&self.sink_entries())
    }

    /// Every sink, in config order: `[[sinks]]`, or the one `[sink]` describes.
    pub fn sink_entries(&self) -> Vec<SinkEntry> {
        if self.sinks.is_empty() {
            vec![SinkEntry::shorthand(&self.sink)]
        } else {
            self.sinks.clone()
        }
    }
}

/// Pub/Sub refuses a message over 10 MB; a message's encoded size stays under its events'
/// decoded size, so this leaves room for attributes and framing.
const MAX_PUBSUB_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
impl ServerConfig {
    fn validate_bounds(&self) -> Result<(), ConfigError> {
        let at_least = |key: &'static str, value: u64, least: u64| {
            if value < least {
                Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be at least {least}"),
                })
            } else {
                Ok(())
            }
        };
        at_least("server.max_connections", self.max_connections as u64, 1)?;
        at_least("server.max_requests", self.max_requests as u64, 1)?;
        // hyper's own floor for its read buffer.
        at_least(
            "server.max_header_bytes",
            self.max_header_bytes as u64,
            8192,
        )?;
        at_least("server.header_timeout_ms", self.header_timeout_ms, 1)?;
        at_least("server.body_timeout_ms", self.body_timeout_ms, 1)?;
        at_least("server.max_streams", self.max_streams as u64, 1)?;
        at_least("server.shutdown_grace_ms", self.shutdown_grace_ms, 1)
    }
}

impl Config {
    fn validate_wal(&self) -> Result<(), ConfigError> {
        let queue = &self.queue;
        if queue.mode != QueueMode::Async || queue.durability != Durability::Wal {
            return Ok(());
        }
        if queue.wal_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "queue.wal_dir",
                reason: "must not be empty".to_owned(),
            });
        }
        if queue.wal_segment_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "queue.wal_segment_bytes",
                reason: "must be greater than 0".to_owned(),
            });
        }
        // Room for a full request once everything is stored: the segment being written and a
        // just-closed one are the only files left then.
        let least = 2 * queue.wal_segment_bytes + crate::ingest::MAX_ENRICHED_REQUEST_BYTES;
        if queue.wal_max_bytes < least {
            return Err(ConfigError::Invalid {
                key: "queue.wal_max_bytes",
                reason: format!(
                    "must be at least twice queue.wal_segment_bytes plus one full request ({least} bytes)"
                ),
            });
        }
        Ok(())
    }

    fn validate_pubsub(&self) -> Result<(), ConfigError> {
        let pubsub = &self.pubsub;
        for (key, name) in [
            ("pubsub.topic", &pubsub.topic),
            ("pubsub.subscription", &pubsub.subscription),
        ] {
            // Pub/Sub's own rule for topic and subscription ids.
            let well_formed = (3..=255).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
                && !name.starts_with("goog");
            if !well_formed {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "{name:?} is not a Pub/Sub id: 3-255 characters from letters, digits and -_.~+%, starting with a letter"
                    ),
                });
            }
        }
        if pubsub.project.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "pubsub.project",
                reason: "must not be empty".to_owned(),
            });
        }
        if !(1..=MAX_PUBSUB_MESSAGE_BYTES).contains(&pubsub.max_message_bytes) {
            return Err(ConfigError::Invalid {
                key: "pubsub.max_message_bytes",
                reason: format!("must be between 1 and {MAX_PUBSUB_MESSAGE_BYTES}"),
            });
        }
        if pubsub.max_message_events == 0 || pubsub.publish_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: if pubsub.max_message_events == 0 {
                    "pubsub.max_message_events"
                } else {
                    "pubsub.publish_timeout_ms"
                },
                reason: "must be greater than 0".to_owned(),
            });
        }
        if !(10..=600).contains(&self.loader.ack_deadline_secs) {
            return Err(ConfigError::Invalid {
                key: "loader.ack_deadline_secs",
                reason: "must be between 10 and 600 (Pub/Sub's range)".to_owned(),
            });
        }
        if self.loader.max_outstanding_messages <= 0 {
            return Err(ConfigError::Invalid {
                key: "loader.max_outstanding_messages",
                reason: "must be greater than 0".to_owned(),
            });
        }
        Ok(())
    }

    fn validate_access(&self) -> Result<(), ConfigError> {
        let stream_name = |key: &'static str, name: &str| {
            StreamName::parse(name)
                .map(drop)
                .map_err(|invalid| ConfigError::Invalid {
                    key,
                    reason: invalid.to_string(),
                })
        };
        let mut seen = std::collections::HashMap::new();
        for (index, source) in self.sources.iter().enumerate() {
            stream_name("sources", &source.stream)?;
            let key = source.write_key.as_str();
            if key.trim().is_empty() || key.trim() != key {
                return Err(ConfigError::Invalid {
                    key: "sources",
                    reason: format!(
                        "write_key of source {} (stream {}) is empty or has surrounding spaces",
                        index + 1,
                        source.stream
                    ),
                });
            }
            // Naming the streams, never the key, is enough to find the duplicate.
            if let Some(first) = seen.insert(key, &source.stream) {
                return Err(ConfigError::Invalid {
                    key: "sources",
                    reason: format!(
                        "the same write_key is listed for streams {first} and {}",
                        source.stream
                    ),
                });
            }
        }
        stream_name("auth.anonymous_stream", &self.auth.anonymous_stream)?;
        for origin in &self.cors.allowed_origins {
            let well_formed = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && axum::http::HeaderValue::from_str(origin).is_ok());
            if !well_formed {
                return Err(ConfigError::Invalid {
                    key: "cors.allowed_origins",
                    reason: format!(
                        "{origin:?} is not an origin: use scheme://host[:port] without a path, or \"*\""
                    ),
                });
            }
        }
        if let Some(url) = &self.server.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "server.public_url",
                reason: format!("{url:?} must start with http:// or https://"),
            });
        }
        Ok(())
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Every problem figment found, each led by the key it concerns (`queue.mode`) and where the
/// value came from, so a wrong setting is fixed at the first attempt.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e
                .path
                .iter()
                .map(|p| p.to_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("key {key}: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// `figment::Jail` closures must return `figment::Error`, whose size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "eventkit.toml",
                "[queue]\ncapacity = 5000\n[batch]\nmax_events = 10\n",
            )?;
            jail.set_env("EVENTKIT_BATCH__MAX_EVENTS", "20");
            jail.set_env("EVENTKIT_SERVER__LISTEN", "0.0.0.0:9000");
            jail.set_env("EVENTKIT_SINK__URL", "memory://");
            let config =
                Config::load(Some(Path::new("eventkit.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.queue.capacity, 5000);
            assert_eq!(config.batch.max_events, 20);
            assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
            assert_eq!(config.sink.url, "memory://");
            assert_eq!(config.queue.mode, QueueMode::Async);
            Ok(())
        });
    }

    #[test]
    fn wrong_values_name_their_key() {
        let cases = [
            (
                "EVENTKIT_QUEUE__MODE",
                "kafka",
                "key queue.mode: unknown variant",
            ),
            (
                "EVENTKIT_SERVER__LISTEN",
                "not-an-address",
                "key server.listen:",
            ),
            (
                "EVENTKIT_QUEUE__SIZE",
                "10",
                "key queue.size: unknown field",
            ),
            (
                "EVENTKIT_BATCH__MAX_EVENTS",
                "0",
                "configuration key batch.max_events: must be greater than 0",
            ),
        ];
        for (variable, value, expected) in cases {
            figment::Jail::expect_with(|jail| {
                jail.set_env(variable, value);
                let error = Config::load(None)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(error.contains(expected), "{variable}={value}: {error}");
                Ok(())
            });
        }
    }

    fn source_pairs(config: &Config) -> Vec<(&str, &str)> {
        config
            .sources
            .iter()
            .map(|s| (s.write_key.as_str(), s.stream.as_str()))
            .collect()
    }

    #[test]
    fn sources_come_from_toml_tables_or_one_env_string() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "eventkit.toml",
                "[[sources]]\nwrite_key = \"k-web\"\nstream = \"web\"\n\n[[sources]]\nwrite_key = \"k-app\"\nstream = \"app\"\n\n[auth]\nallow_anonymous = true\n\n[cors]\nallowed_origins = [\"https://shop.example\"]\n",
            )?;
            let config =
                Config::load(Some(Path::new("eventkit.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(source_pairs(&config), [("k-web", "web"), ("k-app", "app")]);
            assert!(config.auth.allow_anonymous);
            assert_eq!(config.cors.allowed_origins, ["https://shop.example"]);

            // The environment replaces the file's list.
            jail.set_env("EVENTKIT_SOURCES", "key1=stream1, key2=stream2");
            let config =
                Config::load(Some(Path::new("eventkit.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                source_pairs(&config),
                [("key1", "stream1"), ("key2", "stream2")]
            );
            Ok(())
        });
    }

    #[test]
    fn bad_sources_are_named_without_showing_the_key() {
        let load_error = |jail: &mut figment::Jail, env: &str| {
            jail.set_env("EVENTKIT_SOURCES", env);
            Config::load(None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        figment::Jail::expect_with(|jail| {
            let error = load_error(jail, "secret-1=web,secret-2");
            assert!(error.contains("key sources"), "{error}");
            assert!(error.contains("entry 2"), "{error}");
            assert!(!error.contains("secret"), "{error}");

            let error = load_error(jail, "secret-1=Web");
            assert!(error.starts_with("configuration key sources:"), "{error}");
            assert!(!error.contains("secret"), "{error}");

            let error = load_error(jail, "secret-1=web,secret-1=app");
            assert!(error.contains("streams web and app"), "{error}");
            assert!(!error.contains("secret"), "{error}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "eventkit.toml",
                "[[sources]]\nwrite_key = \"secret\"\nstream = \"web\"\nstraem = \"x\"\n",
            )?;
            let error = Config::load(Some(Path::new("eventkit.toml")))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("straem"), "{error}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "EVENTKIT_CORS__ALLOWED_ORIGINS",
                "[\"https://shop.example/\"]",
            );
            let error = Config::load(None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("cors.allowed_origins"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_readme_shows_the_real_defaults() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("```toml\n")
            .find(|block| block.starts_with("[server]"))
            .and_then(|block| block.split("```").next())
            .unwrap_or_default();
        assert!(
            block.contains("max_streams"),
            "no [server] block in README.md"
        );
        let documented: Config = match Figment::from(Toml::string(block)).extract() {
            Ok(config) => config,
            Err(error) => panic!("README.md's config block: {error}"),
        };
        let defaults = Config::default();
        assert_eq!(documented.server, defaults.server);
        assert_eq!(documented.queue, defaults.queue);
        assert_eq!(documented.batch, defaults.batch);
    }

    #[test]
    fn write_keys_stay_out_of_debug_output() {
        let config = Config {
            sources: parse_pairs("very-secret=web").unwrap(),
            ..Config::default()
        };
        assert_eq!(config.sources.len(), 1);
        let debug = format!("{config:?}");
        assert!(debug.contains("WriteKey(<redacted>)"), "{debug}");
        assert!(!debug.contains("very-secret"), "{debug}");
    }
}

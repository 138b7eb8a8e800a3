//! One typed configuration, from defaults, then an optional TOML file, then `EVENTKIT_*`
//! environment variables (`EVENTKIT_<SECTION>__<KEY>`). Validated once, at start-up.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    pub sink: SinkConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trust_forwarded_for: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    Async,
    Pubsub,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub mode: QueueMode,
    /// Events accepted but not yet stored, across all streams.
    pub capacity: usize,
    /// The same bound in bytes, for when events are large.
    pub capacity_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        // 200k events is a few seconds of peak ingest on a small machine: enough to ride out a
        // slow flush, small enough (≤ 256 MiB) to fit next to anything.
        Self {
            mode: QueueMode::Async,
            capacity: 200_000,
            capacity_bytes: 256 * 1024 * 1024,
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
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            url: "./data".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("EVENTKIT_").split("__"));
        let config: Config = figment.extract().map_err(Box::new)?;
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
        if self.sink.url.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "sink.url",
                reason: "must not be empty".to_owned(),
            });
        }
        Ok(())
    }
}

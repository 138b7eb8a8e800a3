//! Which sinks a stream's files go to: the opened `[[sinks]]` (or `[sink]`), each with its
//! stream patterns. Patterns are few (at most `MAX_SINKS` sinks), so each flush simply matches
//! them: no cache to bound.

use std::sync::Arc;

use eventkit_sinks::store::open_store_with;
use eventkit_sinks::{ParquetSink, PostgresSink, Sink, SinkError, StoreError};

use crate::config::{Config, DEFAULT_SINK_NAME, SinkEntry, SinkSettings, StreamPattern};

/// A sink that could not be opened at start-up, by name.
#[derive(Debug, thiserror::Error)]
#[error("sink {name:?}")]
pub struct OpenError {
    pub name: String,
    #[source]
    pub source: OpenFailure,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenFailure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// One sink a table is to be written to.
#[derive(Clone)]
pub struct Target {
    /// Its place in the configured list, which is also its place in `SinkHealth`.
    pub index: usize,
    pub name: Arc<str>,
    pub sink: Arc<dyn Sink>,
}

struct Route {
    target: Target,
    patterns: Vec<StreamPattern>,
}

pub struct Routes(Vec<Route>);

impl Routes {
    /// One sink taking every stream, named as `[sink]` names its one.
    pub fn single(sink: Arc<dyn Sink>) -> Self {
        Self(vec![Route {
            target: Target {
                index: 0,
                name: Arc::from(DEFAULT_SINK_NAME),
                sink,
            },
            patterns: vec![StreamPattern::All],
        }])
    }

    /// Sinks in config order, each with its `streams` patterns.
    pub fn new(sinks: Vec<(String, Vec<StreamPattern>, Arc<dyn Sink>)>) -> Self {
        Self(
            sinks
                .into_iter()
                .enumerate()
                .map(|(index, (name, patterns, sink))| Route {
                    target: Target {
                        index,
                        name: Arc::from(name),
                        sink,
                    },
                    patterns,
                })
                .collect(),
        )
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|route| &*route.target.name)
    }

    /// The sinks `stream` goes to, in config order. Empty only for routes built without a
    /// catch-all, which config validation refuses.
    pub fn targets(&self, stream: &str) -> Vec<Target> {
        self.0
            .iter()
            .filter(|route| route.patterns.iter().any(|p| p.matches(stream)))
            .map(|route| route.target.clone())
            .collect()
    }
}

/// Opens every configured sink; a PostgreSQL sink connects here, so a wrong URL or a server
/// that is down stops start-up, naming the sink.
pub async fn open(config: &Config) -> Result<Routes, OpenError> {
    let mut sinks = Vec::new();
    for entry in config.sink_entries() {
        let sink = open_one(&entry).await.map_err(|source| OpenError {
            name: entry.name.clone(),
            source,
        })?;
        sinks.push((entry.name, entry.streams, sink));
    }
    Ok(Routes::new(sinks))
}

async fn open_one(entry: &SinkEntry) -> Result<Arc<dyn Sink>, OpenFailure> {
    Ok(match &entry.settings {
        SinkSettings::Parquet(parquet) => {
            let store = open_store_with(&parquet.url, parquet.endpoint.as_deref())?;
            Arc::new(ParquetSink::new(store)?)
        }
        SinkSettings::Postgres(postgres) => Arc::new(PostgresSink::connect(postgres).await?),
    })
}

/// For start-up logs: each sink's name, type and (Parquet) location.
pub fn describe(config: &Config) -> String {
    let entries = config.sink_entries();
    let described: Vec<String> = entries.iter().map(SinkEntry::describe).collect();
    described.join(",")
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use eventkit_model::Table;
    use eventkit_sinks::WrittenFile;

    use super::*;

    struct Nowhere;

    #[async_trait]
    impl Sink for Nowhere {
        async fn write(&self, _table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError> {
            Ok(vec![])
        }
    }

    fn routes(sinks: &[(&str, &[&str])]) -> Routes {
        Routes::new(
            sinks
                .iter()
                .map(|(name, patterns)| {
                    let patterns = patterns
                        .iter()
                        .map(|p| StreamPattern::parse(p).unwrap_or_else(|e| panic!("{e}")))
                        .collect();
                    let sink: Arc<dyn Sink> = Arc::new(Nowhere);
                    ((*name).to_owned(), patterns, sink)
                })
                .collect(),
        )
    }

    fn names(routes: &Routes, stream: &str) -> Vec<String> {
        routes
            .targets(stream)
            .iter()
            .map(|t| format!("{}:{}", t.index, t.name))
            .collect()
    }

    #[test]
    fn a_stream_goes_to_every_sink_whose_pattern_matches_in_config_order() {
        let routes = routes(&[
            ("web", &["web*"]),
            ("lake", &["*"]),
            ("pg", &["orders", "_rejected"]),
        ]);
        assert_eq!(names(&routes, "web"), ["0:web", "1:lake"]);
        assert_eq!(names(&routes, "webshop"), ["0:web", "1:lake"]);
        assert_eq!(names(&routes, "orders"), ["1:lake", "2:pg"]);
        // Exact means exact: not a prefix, not a suffix.
        assert_eq!(names(&routes, "orders2"), ["1:lake"]);
        assert_eq!(names(&routes, "app"), ["1:lake"]);
        // The dead-letter stream is a name like any other.
        assert_eq!(names(&routes, "_rejected"), ["1:lake", "2:pg"]);
        assert_eq!(routes.names().collect::<Vec<_>>(), ["web", "lake", "pg"]);
    }

    #[test]
    fn without_a_catch_all_an_unmatched_stream_has_no_sink() {
        let routes = routes(&[("web", &["web*"])]);
        assert!(routes.targets("app").is_empty());
        assert_eq!(names(&routes, "web-eu"), ["0:web"]);
    }

    #[test]
    fn the_single_sink_takes_everything_as_default() {
        let routes = Routes::single(Arc::new(Nowhere));
        assert_eq!(names(&routes, "anything"), ["0:default"]);
        assert_eq!(names(&routes, "_rejected"), ["0:default"]);
    }

    #[test]
    fn patterns_are_a_name_a_prefix_or_everything() {
        assert_eq!(StreamPattern::parse("*"), Ok(StreamPattern::All));
        assert_eq!(
            StreamPattern::parse("web*"),
            Ok(StreamPattern::Prefix("web".to_owned()))
        );
        assert_eq!(
            StreamPattern::parse("_rejected"),
            Ok(StreamPattern::Exact("_rejected".to_owned()))
        );
        assert_eq!(
            StreamPattern::parse("_*"),
            Ok(StreamPattern::Prefix("_".to_owned()))
        );
        for bad in ["", "*web", "we*b", "web**", "Web", "a b", "_other"] {
            assert!(StreamPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StreamPattern::Prefix("web".to_owned()).matches("web"));
        assert!(!StreamPattern::Prefix("web".to_owned()).matches("we"));
    }
}

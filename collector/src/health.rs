//! What `/ready` reports besides queue room: whether each sink is taking files. The batcher
//! sets a sink's flag after each write to it; the probe only reads them.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::DEFAULT_SINK_NAME;

/// Whether the last write to each sink succeeded, in the order the sinks were configured.
#[derive(Debug)]
pub struct SinkHealth(Vec<(String, AtomicBool)>);

/// One sink, named as `[sink]` names its one: what a batcher given a single sink reports to.
impl Default for SinkHealth {
    fn default() -> Self {
        Self::new([DEFAULT_SINK_NAME])
    }
}

impl SinkHealth {
    /// Every sink starts healthy: a failure shows once a write to it has failed.
    pub fn new<Name: Into<String>>(names: impl IntoIterator<Item = Name>) -> Self {
        Self(
            names
                .into_iter()
                .map(|name| (name.into(), AtomicBool::new(true)))
                .collect(),
        )
    }

    /// No sink failing (true too when there are none, as for a `pubsub` collector).
    pub fn is_healthy(&self) -> bool {
        self.0.iter().all(|(_, ok)| ok.load(Ordering::Relaxed))
    }

    /// Sets sink `index` (its position in the configured list); other indices are ignored.
    pub fn set(&self, index: usize, healthy: bool) {
        if let Some((_, ok)) = self.0.get(index) {
            ok.store(healthy, Ordering::Relaxed);
        }
    }

    /// Each sink's name and whether its last write succeeded.
    pub fn sinks(&self) -> impl Iterator<Item = (&str, bool)> {
        self.0
            .iter()
            .map(|(name, ok)| (name.as_str(), ok.load(Ordering::Relaxed)))
    }

    pub fn failing(&self) -> Vec<&str> {
        self.sinks()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect()
    }

    /// The `/ready` fields of the collector and the loader: `sink` (any failing, kept for
    /// probes written before there were several), `sinks` by name and `failing_sinks`.
    pub fn report(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        let state = |ok: bool| serde_json::Value::from(if ok { "ok" } else { "failing" });
        fields.insert("sink".to_owned(), state(self.is_healthy()));
        let sinks = self
            .sinks()
            .map(|(name, ok)| (name.to_owned(), state(ok)))
            .collect();
        fields.insert("sinks".to_owned(), serde_json::Value::Object(sinks));
        fields.insert("failing_sinks".to_owned(), self.failing().into());
        fields
    }
}

/// What a `/ready` says, for the collector's and the loader's: ready when every check holds and
/// no sink is failing; the body has the sinks' report, `ready`, and each check by name as `"ok"`
/// or its word for failing.
pub fn readiness(
    sinks: &SinkHealth,
    checks: &[(&str, bool, &str)],
) -> (bool, serde_json::Map<String, serde_json::Value>) {
    let ready = sinks.is_healthy() && checks.iter().all(|(_, ok, _)| *ok);
    let mut body = sinks.report();
    body.insert("ready".to_owned(), ready.into());
    for (name, ok, failing) in checks {
        body.insert((*name).to_owned(), if *ok { "ok" } else { *failing }.into());
    }
    (ready, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failing_sink_makes_the_whole_unhealthy_and_is_named() {
        let health = SinkHealth::new(["lake", "pg"]);
        assert!(health.is_healthy());
        health.set(1, false);
        health.set(7, false);
        assert!(!health.is_healthy());
        assert_eq!(health.failing(), ["pg"]);
        let report = serde_json::Value::Object(health.report());
        assert_eq!(
            report,
            serde_json::json!({"sink": "failing", "sinks": {"lake": "ok", "pg": "failing"},
                               "failing_sinks": ["pg"]})
        );
        health.set(1, true);
        assert!(health.is_healthy());
    }
}

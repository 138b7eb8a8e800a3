//! `<scenario>.json` and `<scenario>.csv`.

use std::fmt::Write as _;
use std::path::Path;

use super::{ModeResults, UNAVAILABLE_FILE};
use crate::error::{BenchError, Result};
use crate::result::ScenarioResult;
use crate::suite::ALL_SCENARIOS;

pub fn write_scenario(dir: &Path, r: &ScenarioResult) -> Result<()> {
    let json = dir.join(format!("{}.json", r.scenario));
    let body = serde_json::to_vec_pretty(r)?;
    std::fs::write(&json, body).map_err(|e| BenchError::io(&json, e))?;
    let csv = dir.join(format!("{}.csv", r.scenario));
    std::fs::write(&csv, timeline_csv(r)).map_err(|e| BenchError::io(&csv, e))?;
    Ok(())
}

/// One row per timeline bucket; empty cells where the collector gave no sample.
pub fn timeline_csv(r: &ScenarioResult) -> String {
    let mut out = String::from(
        "t_s,requests_per_sec,completed_per_sec,events_per_sec,errors,throttled,p50_ms,p99_ms,max_ms,queue_depth,rss_mb\n",
    );
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    for row in &r.timeline {
        let _ = writeln!(
            out,
            "{},{:.1},{:.1},{:.1},{},{},{:.3},{:.3},{:.3},{},{}",
            row.t_s,
            row.requests_per_sec,
            row.completed_per_sec,
            row.events_per_sec,
            row.errors,
            row.throttled,
            row.p50_ms,
            row.p99_ms,
            row.max_ms,
            opt(row.queue_depth),
            opt(row.rss_mb.map(|m| (m * 10.0).round() / 10.0)),
        );
    }
    out
}

/// Reads a mode directory; unreadable scenario files are skipped rather than failing the
/// whole report, and the summary shows them as absent.
pub fn load_mode(dir: &Path) -> ModeResults {
    if let Ok(reason) = std::fs::read_to_string(dir.join(UNAVAILABLE_FILE)) {
        return ModeResults::Unavailable(reason.trim().to_owned());
    }
    let results: Vec<ScenarioResult> = ALL_SCENARIOS
        .iter()
        .filter_map(|s| std::fs::read(dir.join(format!("{s}.json"))).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    if results.is_empty() {
        ModeResults::Missing
    } else {
        ModeResults::Ran(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::TimelineRow;

    #[test]
    fn round_trips_through_a_mode_directory() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let r = ScenarioResult {
            scenario: "baseline".into(),
            mode: "async".into(),
            timeline: vec![TimelineRow {
                t_s: 0.0,
                requests_per_sec: 10.0,
                completed_per_sec: 9.0,
                events_per_sec: 10.0,
                errors: 0,
                throttled: 0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                max_ms: 3.0,
                queue_depth: Some(4.0),
                rss_mb: None,
            }],
            ..ScenarioResult::default()
        };
        assert!(write_scenario(dir.path(), &r).is_ok());
        let csv = std::fs::read_to_string(dir.path().join("baseline.csv")).unwrap_or_default();
        assert_eq!(
            csv.lines().nth(1),
            Some("0,10.0,9.0,10.0,0,0,1.000,2.000,3.000,4,")
        );
        let ModeResults::Ran(back) = load_mode(dir.path()) else {
            panic!("not loaded")
        };
        assert_eq!(back[0].scenario, "baseline");
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("baseline.json")).unwrap_or_default(),
        )
        .unwrap_or_default();
        for field in [
            "scenario",
            "mode",
            "requests",
            "events_accepted",
            "events_landed",
            "events_lost",
            "duplicates",
            "events_per_sec",
            "ceiling_ratio",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        for p in ["p50", "p90", "p95", "p99", "p999", "max"] {
            assert!(json["latency_ms"].get(p).is_some(), "{p}");
        }
        std::fs::write(dir.path().join(UNAVAILABLE_FILE), "no pubsub\n").unwrap_or_default();
        assert!(matches!(load_mode(dir.path()), ModeResults::Unavailable(r) if r == "no pubsub"));
    }
}

//! The shape of `<scenario>.json`: what the report reads back and what CI can assert on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cpu::CpuFigures;
use crate::load::RuleTally;
use crate::probe::Sample;
use crate::scenario::WrkFigures;
use crate::stats::Percentiles;
use crate::timeline::TimelineRow;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub mode: String,
    pub description: String,
    pub load: String,
    pub run_id: String,
    pub started_at: String,
    pub target: String,
    pub sink: String,
    pub duration_s: f64,
    pub requests: u64,
    pub events_sent: u64,
    pub events_accepted: u64,
    pub events_rejected: u64,
    /// Distinct events of this scenario found in the output.
    pub events_landed: u64,
    pub events_lost: u64,
    pub duplicates: u64,
    pub unexpected_landed: u64,
    pub loss_checked: bool,
    pub requests_per_sec: f64,
    pub events_per_sec: f64,
    /// Events found in the output over the time from the start of the load until the last
    /// of them was stored (pubsub: through Pub/Sub and the loader).
    pub end_to_end_events_per_sec: Option<f64>,
    pub mb_per_sec: f64,
    /// CPU time of the collector, generator and (pubsub) loader and emulators.
    pub cpu: Option<CpuFigures>,
    /// realistic only: the same bodies sent by wrk, in the same run.
    pub wrk: Option<WrkFigures>,
    /// requests/s of this scenario over requests/s of the bare 202 endpoint at the same
    /// concurrency, measured in the same run.
    pub ceiling_ratio: Option<f64>,
    pub latency_ms: Percentiles,
    pub status_counts: BTreeMap<String, u64>,
    /// 503 answers, each followed by a wait of Retry-After and a resend.
    pub retries_after_503: u64,
    /// Seconds requests waited out Retry-After in all, before resending.
    pub retry_wait_s: f64,
    /// burst: the collector's queue bounds (events, MiB), as run.sh configured them.
    pub queue_bound_events: Option<u64>,
    pub queue_bound_mib: Option<f64>,
    /// Send → file landed, per event, at file granularity.
    pub freshness_ms: Option<Percentiles>,
    pub output_files: u64,
    /// Parquet bytes per row over the scenario's output files.
    pub output_bytes_per_event: Option<f64>,
    /// pubsub: what the collector published during the scenario (messages, bytes), from its
    /// `eventkit_pubsub_*_published_total` counters.
    pub published_messages: Option<f64>,
    pub published_bytes: Option<f64>,
    /// Time from the end of the load until the collector reported an empty queue.
    pub flush_wait_s: f64,
    pub queue_depth_max: Option<f64>,
    pub rss_max_mb: Option<f64>,
    pub drain_time_s: Option<f64>,
    /// 1-minute load average when the scenario ended: on a shared machine, other work skews
    /// every figure, and this says how much was going on.
    pub load_avg_1m: Option<f64>,
    pub variants: Vec<VariantResult>,
    pub phases: Vec<PhaseResult>,
    pub rules: Option<RuleTally>,
    pub probes: Vec<ProbeResult>,
    pub checks: Vec<Check>,
    pub ok: bool,
    pub notes: Vec<String>,
    pub timeline: Vec<TimelineRow>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VariantResult {
    pub name: String,
    pub load: String,
    pub duration_s: f64,
    pub requests: u64,
    pub events_sent: u64,
    pub events_accepted: u64,
    pub bytes_per_request: f64,
    pub requests_per_sec: f64,
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
    pub ceiling_ratio: Option<f64>,
    pub latency_ms: Percentiles,
    pub status_counts: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: String,
    pub rate_per_sec: f64,
    pub start_s: f64,
    pub end_s: f64,
    pub requests: u64,
    pub throttled: u64,
    pub latency_ms: Percentiles,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProbeResult {
    pub name: String,
    pub expected_status: u16,
    pub status: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

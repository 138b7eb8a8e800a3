//! Scenario plumbing shared by all six: run load variants, wait for the collector to store
//! everything, read the output back, and fold it all into one `ScenarioResult`.

mod burst;
mod errors;
mod fold;
mod payload;
mod plain;
mod run;
mod wrk;

use std::sync::Arc;
use std::time::Duration;

pub use burst::{burst, drain_time};
pub use errors::{error_rate, per_core_eps};
pub use fold::{Subject, finish, seal};
pub use payload::payload_size;
pub use plain::{baseline, ceiling, realistic};
pub use run::{
    Load, MAX_IN_FLIGHT, Variant, VariantOutcome, run_single, run_variant, run_variants,
};
pub use wrk::WrkFigures;

use crate::client::Target;
use crate::cpu::Watched;
use crate::ids::Ids;
use crate::landing::Sink;

/// Durations for `--quick` (CI: the whole suite well under two minutes) and for a full run
/// (long enough for several flushes and a stable p99.9, the whole suite in about five minutes
/// per mode on two cores).
#[derive(Clone, Copy, Debug)]
pub struct Durations {
    pub ceiling: Duration,
    pub baseline: Duration,
    pub payload_each: Duration,
    pub realistic: Duration,
    /// wrk with realistic's bodies, right after realistic.
    pub wrk: Duration,
    pub burst: [Duration; 3],
    pub error_control: Duration,
    pub error_faulty: Duration,
}

impl Durations {
    pub fn quick() -> Self {
        let s = Duration::from_secs;
        Self {
            ceiling: s(4),
            baseline: s(5),
            payload_each: s(3),
            realistic: s(6),
            wrk: s(3),
            burst: [s(3), s(2), s(7)],
            error_control: s(3),
            error_faulty: s(4),
        }
    }

    pub fn full() -> Self {
        let s = Duration::from_secs;
        Self {
            ceiling: s(15),
            baseline: s(30),
            payload_each: s(12),
            realistic: s(40),
            wrk: s(15),
            burst: [s(15), s(10), s(25)],
            error_control: s(15),
            error_faulty: s(20),
        }
    }
}

/// Everything a scenario needs to know about the run it is part of.
pub struct Ctx {
    pub mode: String,
    pub collector_url: String,
    pub ceiling_url: Option<String>,
    pub sink: Sink,
    pub load_client: reqwest::Client,
    /// Separate pool for /metrics and object reads so they never queue behind the load.
    pub admin_client: reqwest::Client,
    pub collector_pid: Option<u32>,
    pub ceiling_pid: Option<u32>,
    /// pubsub mode: the loader's probe address; a scenario's events count as stored once it
    /// has written them.
    pub loader_url: Option<String>,
    /// Processes besides the server under test and the generator whose CPU time is recorded
    /// (the loader, the emulators).
    pub also_watched: Vec<Watched>,
    /// Write key the collector maps to `bench_realistic_wrk`, for the wrk comparison.
    pub wrk_write_key: String,
    /// The collector's queue bounds (events, MiB), when run.sh says.
    pub queue_bound: (Option<u64>, Option<f64>),
    pub run_id: String,
    pub write_key: String,
    pub users: usize,
    pub durations: Durations,
    pub bucket: Duration,
    pub sample_every: Duration,
    pub flush_timeout: Duration,
    pub progress: indicatif::MultiProgress,
    /// Filled by the ceiling scenario, read by every later one.
    pub ceiling_rps: Option<f64>,
    /// Filled by baseline: the burst rates and the error-rate overhead are relative to it.
    pub baseline_rps: Option<f64>,
    /// Filled by error-rate (batches of 10 tiny events): events per collector CPU-second, what
    /// one collector core sustains of batched tiny events. Burst sizes its spike from it.
    pub batched_per_core_eps: Option<f64>,
}

impl Ctx {
    pub fn ratio(&self, rps: f64) -> Option<f64> {
        self.ceiling_rps.filter(|c| *c > 0.0).map(|c| rps / c)
    }

    pub fn stream(scenario: &str) -> String {
        format!("bench_{}", scenario.replace('-', "_"))
    }

    /// A scenario against the collector: its own stream, and ids tagged `tag`.
    pub fn subject(&self, name: &'static str, tag: char, description: &'static str) -> Subject {
        Subject {
            name,
            description,
            target: Arc::new(Target::new(
                self.load_client.clone(),
                &self.collector_url,
                &Ctx::stream(name),
            )),
            ids: Arc::new(Ids::new(&self.run_id, tag)),
        }
    }
}

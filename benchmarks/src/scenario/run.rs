//! Running one load variant: its load model, its sampler and its progress bar.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};

use super::{Ctx, Subject, finish};
use crate::client::Target;
use crate::cpu::{self, CpuSnapshot, Watched};
use crate::ids::Ids;
use crate::ledger::Ledger;
use crate::load::{self, Recorder, lock};
use crate::probe::{self, Sample, Sampler};
use crate::result::{ScenarioResult, VariantResult};
use crate::schedule::Phase;
use crate::workload::Workload;

/// Open-loop sockets in flight at most; far above what a healthy loopback server needs at the
/// rates we schedule, low enough to stay clear of the default 1024 file descriptors.
pub const MAX_IN_FLIGHT: u32 = 512;

pub enum Load {
    Closed { users: usize, duration: Duration },
    Open { phases: Vec<Phase> },
}

impl Load {
    pub fn describe(&self) -> String {
        match self {
            Load::Closed { users, duration } => format!(
                "closed loop, {users} users, {:.0} s",
                duration.as_secs_f64()
            ),
            Load::Open { phases } => {
                let parts: Vec<String> = phases
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {:.0}/s for {:.0} s",
                            p.name,
                            p.rate_per_sec,
                            p.duration.as_secs_f64()
                        )
                    })
                    .collect();
                format!("open loop: {}", parts.join(", "))
            }
        }
    }

    fn duration(&self) -> Duration {
        match self {
            Load::Closed { duration, .. } => *duration,
            Load::Open { phases } => phases.iter().map(|p| p.duration).sum(),
        }
    }
}

pub struct Variant {
    pub name: String,
    pub load: Load,
    pub workload: Arc<dyn Workload>,
}

pub struct VariantOutcome {
    pub result: VariantResult,
    pub rec: Recorder,
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
    /// The collector's published (messages, bytes) counters when the load started (pubsub).
    pub published_start: Option<(f64, f64)>,
    /// The open loop's phases (empty for a closed loop), for per-phase results.
    pub phases: Vec<Phase>,
    /// The processes whose CPU time is counted, and their CPU time around the load.
    pub watched: Vec<Watched>,
    pub cpu_start: CpuSnapshot,
    pub cpu_end: CpuSnapshot,
}

/// The processes a variant's CPU time is counted for: the server under test (`pid`) as the
/// collector, this process as the generator, and the loader and emulators when there are any.
fn watched(ctx: &Ctx, pid: Option<u32>) -> Vec<Watched> {
    let one = |role: &str, pid: u32| Watched {
        role: role.into(),
        pids: vec![pid],
        tree: false,
    };
    let mut out: Vec<Watched> = pid.map(|p| one(cpu::COLLECTOR, p)).into_iter().collect();
    out.push(one(cpu::GENERATOR, std::process::id()));
    out.extend(ctx.also_watched.iter().cloned());
    out
}

/// A scenario of one variant: run it on a fresh ledger and fold the result.
pub async fn run_single(
    ctx: &Ctx,
    subject: &Subject,
    variant: Variant,
    pid: Option<u32>,
    seed: u64,
    check_sink: bool,
) -> ScenarioResult {
    let (outcome, ledger) = run_variant(
        ctx,
        subject.target.clone(),
        subject.ids.clone(),
        Ledger::new(SystemTime::now()),
        variant,
        pid,
        seed,
    )
    .await;
    finish(ctx, subject, &ledger, vec![outcome], check_sink).await
}

pub async fn run_variant(
    ctx: &Ctx,
    target: Arc<Target>,
    ids: Arc<Ids>,
    ledger: Ledger,
    variant: Variant,
    pid: Option<u32>,
    seed: u64,
) -> (VariantOutcome, Ledger) {
    let rec = Arc::new(Mutex::new(Recorder::new(ledger, ctx.bucket)));
    let start = lock(&rec).start;
    let metrics_url = format!("{}/metrics", target.base());
    let sampler = Sampler::spawn(
        ctx.admin_client.clone(),
        metrics_url.clone(),
        pid,
        start,
        ctx.sample_every,
    );
    let bar = progress_bar(ctx, &variant);
    let phases = match &variant.load {
        Load::Open { phases } => phases.clone(),
        Load::Closed { .. } => Vec::new(),
    };
    let watched = watched(ctx, pid);
    let published_start = probe::published(&ctx.admin_client, &metrics_url).await;
    let cpu_start = CpuSnapshot::take(&watched);

    let run = async {
        match variant.load {
            Load::Closed { users, duration } => {
                load::closed_loop(
                    target.clone(),
                    variant.workload.clone(),
                    ids.clone(),
                    rec.clone(),
                    users,
                    duration,
                    seed,
                )
                .await;
            }
            Load::Open { ref phases } => {
                load::open_loop(
                    target.clone(),
                    variant.workload.clone(),
                    ids.clone(),
                    rec.clone(),
                    phases.clone(),
                    MAX_IN_FLIGHT,
                    seed,
                )
                .await;
            }
        }
    };
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = &mut run => break,
            _ = tick.tick() => {
                let requests = lock(&rec).requests;
                let secs = start.elapsed().as_secs_f64().max(0.001);
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!("{requests} requests, {:.0} req/s", requests as f64 / secs));
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu_end = CpuSnapshot::take(&watched);
    let samples = sampler.finish().await;
    bar.finish_and_clear();

    let mut rec = std::mem::replace(
        &mut *lock(&rec),
        Recorder::new(Ledger::new(SystemTime::now()), ctx.bucket),
    );
    let ledger = std::mem::replace(&mut rec.ledger, Ledger::new(SystemTime::now()));
    let secs = elapsed.as_secs_f64().max(0.001);
    let rps = rec.requests as f64 / secs;
    let result = VariantResult {
        name: variant.name,
        load: variant.load.describe(),
        duration_s: secs,
        requests: rec.requests,
        events_sent: rec.events_sent,
        events_accepted: rec.events_accepted,
        bytes_per_request: rec.body_bytes as f64 / rec.requests.max(1) as f64,
        requests_per_sec: rps,
        events_per_sec: rec.events_accepted as f64 / secs,
        mb_per_sec: rec.body_bytes as f64 / secs / 1e6,
        ceiling_ratio: ctx.ratio(rps),
        latency_ms: rec.latency.percentiles(),
        status_counts: rec.status.clone(),
    };
    (
        VariantOutcome {
            result,
            rec,
            samples,
            elapsed,
            published_start,
            phases,
            watched,
            cpu_start,
            cpu_end,
        },
        ledger,
    )
}

fn progress_bar(ctx: &Ctx, variant: &Variant) -> ProgressBar {
    let bar = ctx
        .progress
        .add(ProgressBar::new(variant.load.duration().as_millis() as u64));
    if let Ok(style) = ProgressStyle::with_template("  {prefix:<28} [{bar:30}] {percent:>3}% {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(variant.name.clone());
    bar
}

/// Runs `variants` one after another against one stream, threading one ledger through them so
/// the loss check afterwards covers all of them; the i-th variant is seeded `first_seed + i`.
pub async fn run_variants(
    ctx: &Ctx,
    target: &Arc<Target>,
    ids: &Arc<Ids>,
    variants: Vec<Variant>,
    first_seed: u64,
) -> (Vec<VariantOutcome>, Ledger) {
    let mut ledger = Ledger::new(SystemTime::now());
    let mut outcomes = Vec::with_capacity(variants.len());
    for (seed, variant) in (first_seed..).zip(variants) {
        let (outcome, back) = run_variant(
            ctx,
            target.clone(),
            ids.clone(),
            ledger,
            variant,
            ctx.collector_pid,
            seed,
        )
        .await;
        ledger = back;
        outcomes.push(outcome);
    }
    (outcomes, ledger)
}

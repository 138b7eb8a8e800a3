//! Folding a scenario's variants into one result, then the end-to-end check: wait until the
//! collector has stored everything, read the output back, account for every event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ctx;
use super::run::VariantOutcome;
use crate::client::Target;
use crate::cpu::{CpuFigures, CpuSnapshot};
use crate::ids::Ids;
use crate::ledger::{Ledger, LossReport};
use crate::probe::{self, Sample};
use crate::result::{Check, PhaseResult, ScenarioResult};
use crate::schedule::Schedule;
use crate::stats::{LatencyHist, RUN_SIGFIG};
use crate::timeline::TimelineRow;

/// What a scenario result is about.
pub struct Subject {
    pub name: &'static str,
    pub description: &'static str,
    pub target: Arc<Target>,
    pub ids: Arc<Ids>,
}

/// Folds a scenario's variants together, waits for the collector to store everything and
/// checks what landed. `check_sink` is false for the ceiling, which stores nothing.
pub async fn finish(
    ctx: &Ctx,
    subject: &Subject,
    ledger: &Ledger,
    outcomes: Vec<VariantOutcome>,
    check_sink: bool,
) -> ScenarioResult {
    let Subject {
        name: scenario,
        description,
        target,
        ids,
    } = subject;
    let (scenario, description) = (*scenario, *description);
    let mut r = ScenarioResult {
        scenario: scenario.into(),
        mode: ctx.mode.clone(),
        description: description.into(),
        run_id: ctx.run_id.clone(),
        target: target.base().into(),
        sink: if check_sink {
            ctx.sink.describe()
        } else {
            "none".into()
        },
        ..ScenarioResult::default()
    };
    if let Some(first) = outcomes.first() {
        r.started_at = chrono::DateTime::<chrono::Utc>::from(first.rec.wall_start).to_rfc3339();
    }
    let mut latency = LatencyHist::new(RUN_SIGFIG);
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut offset = 0.0;
    let mut body_bytes = 0;
    let mut loads = Vec::new();
    let cpu_start = outcomes.first().map(|o| o.cpu_start.clone());
    let published_start = outcomes.first().and_then(|o| o.published_start);
    let watched = outcomes
        .first()
        .map(|o| o.watched.clone())
        .unwrap_or_default();
    let mut cpu_during_load: BTreeMap<String, f64> = BTreeMap::new();
    for o in outcomes {
        for (role, secs) in o.cpu_end.since(&o.cpu_start) {
            *cpu_during_load.entry(role).or_default() += secs;
        }
        r.requests += o.rec.requests;
        r.events_sent += o.rec.events_sent;
        r.events_accepted += o.rec.events_accepted;
        r.events_rejected += o.rec.events_rejected;
        r.retries_after_503 += o.rec.throttled;
        r.retry_wait_s += o.rec.retry_wait.as_secs_f64();
        body_bytes += o.rec.body_bytes;
        latency.merge(&o.rec.latency);
        for (k, v) in &o.rec.status {
            *status.entry(k.clone()).or_default() += v;
        }
        let mut rows = o.rec.timeline.rows();
        attach_samples(&mut rows, &o.samples, ctx.bucket.as_secs_f64());
        r.timeline.extend(rows.into_iter().map(|mut row| {
            row.t_s += offset;
            row
        }));
        r.samples.extend(o.samples.into_iter().map(|mut s| {
            s.t_s += offset;
            s
        }));
        for e in &o.rec.transport_samples {
            r.notes
                .push(format!("transport error in {}: {e}", o.result.name));
        }
        for ((name, start, end), (phase, tally)) in Schedule::boundaries(&o.phases)
            .into_iter()
            .zip(o.phases.iter().zip(o.rec.phases.iter()))
        {
            r.phases.push(PhaseResult {
                name,
                rate_per_sec: phase.rate_per_sec,
                start_s: offset + start.as_secs_f64(),
                end_s: offset + end.as_secs_f64(),
                requests: tally.requests,
                throttled: tally.throttled,
                latency_ms: tally.latency.percentiles(),
            });
        }
        offset += o.elapsed.as_secs_f64();
        loads.push(o.result.load.clone());
        r.variants.push(o.result);
    }
    r.load = loads.join("; ");
    r.duration_s = offset;
    let secs = offset.max(0.001);
    r.requests_per_sec = r.requests as f64 / secs;
    r.events_per_sec = r.events_accepted as f64 / secs;
    r.mb_per_sec = body_bytes as f64 / secs / 1e6;
    r.ceiling_ratio = ctx.ratio(r.requests_per_sec);
    r.latency_ms = latency.percentiles();
    r.status_counts = status;
    r.queue_depth_max = r
        .samples
        .iter()
        .filter_map(|s| s.queue_depth)
        .reduce(f64::max);
    r.rss_max_mb = r.samples.iter().filter_map(|s| s.rss_mb).reduce(f64::max);
    if r.variants.len() == 1 {
        // A single variant only repeats the scenario's own figures.
        r.variants.clear();
    }
    let transport = r.status_counts.get("transport_error").copied().unwrap_or(0);
    r.checks.push(Check::new(
        "no transport errors",
        transport == 0,
        format!("{transport} requests failed without an HTTP answer"),
    ));
    let checkable = check_sink && ctx.sink.checkable();
    if checkable {
        let (waited, note) = wait_stored(ctx, target, ledger.accepted()).await;
        r.flush_wait_s = waited.as_secs_f64();
        r.notes.extend(note);
    } else if check_sink {
        r.notes.push(format!(
            "sink {} cannot be read back: loss not checked",
            ctx.sink.describe()
        ));
    }
    // Taken before the output is read back, which costs the generator and the emulator
    // work that is not the collector's.
    let until_stored = CpuSnapshot::take(&watched);
    let metrics_url = format!("{}/metrics", target.base());
    if let (Some((m0, b0)), Some((m1, b1))) = (
        published_start,
        probe::published(&ctx.admin_client, &metrics_url).await,
    ) && m1 > m0
    {
        r.published_messages = Some(m1 - m0);
        r.published_bytes = Some(b1 - b0);
    }
    if let Some(start) = cpu_start {
        r.cpu = Some(CpuFigures::new(
            cpu_during_load,
            until_stored.since(&start),
            r.duration_s,
            r.events_accepted,
        ));
    }
    if checkable {
        check_landed(ctx, target, ids, ledger, &mut r).await;
        let landed_in = r.duration_s + r.flush_wait_s;
        r.end_to_end_events_per_sec = Some(r.events_landed as f64 / landed_in.max(1e-3));
    }
    r.load_avg_1m = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()));
    seal(&mut r);
    r
}

async fn check_landed(
    ctx: &Ctx,
    target: &Target,
    ids: &Ids,
    ledger: &Ledger,
    r: &mut ScenarioResult,
) {
    let mut report = LossReport::default();
    // A file may be mid-rename when the queue reports empty; a few re-reads settle that
    // without hiding a real loss, which persists.
    for attempt in 0..4 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match ctx.sink.read(target.stream(), ids).await {
            Ok(files) => report = ledger.account(&files),
            Err(e) => {
                r.checks
                    .push(Check::new("output readable", false, e.to_string()));
                return;
            }
        }
        if report.lost == 0 {
            break;
        }
    }
    apply_loss(r, &report);
}

pub fn apply_loss(r: &mut ScenarioResult, report: &LossReport) {
    r.loss_checked = true;
    r.events_landed = report.landed_distinct - report.unexpected.min(report.landed_distinct);
    r.events_lost = report.lost;
    r.duplicates = report.duplicates;
    r.unexpected_landed = report.unexpected;
    r.output_files = report.files;
    r.output_bytes_per_event =
        (report.file_rows > 0).then(|| report.file_bytes as f64 / report.file_rows as f64);
    r.freshness_ms = (report.freshness_ms.count > 0).then(|| report.freshness_ms.clone());
    r.checks.push(Check::new(
        "no accepted event lost",
        report.lost == 0,
        format!(
            "{} accepted, {} lost (first: {:?})",
            report.accepted, report.lost, report.lost_sample
        ),
    ));
    r.checks.push(Check::new(
        "nothing landed that was not accepted",
        report.unexpected == 0,
        format!(
            "{} unexpected rows, {} rows of uncertain requests",
            report.unexpected, report.uncertain_landed
        ),
    ));
    if report.duplicates > 0 {
        r.notes.push(format!(
            "{} duplicate rows (at-least-once delivery)",
            report.duplicates
        ));
    }
}

/// Waits until every accepted event of the scenario is stored: the collector's queue empty
/// and, in pubsub mode, the loader's rows for the stream at least the accepted count.
async fn wait_stored(ctx: &Ctx, target: &Target, accepted: u64) -> (Duration, Option<String>) {
    let start = Instant::now();
    let (_, note) = wait_flushed(ctx, target).await;
    if note.is_some() {
        return (start.elapsed(), note);
    }
    let Some(loader) = &ctx.loader_url else {
        return (start.elapsed(), None);
    };
    let note = wait_loaded(ctx, loader, target.stream(), accepted).await;
    (start.elapsed(), note)
}

/// Polls `eventkit_queue_depth` until it reads 0, which the collector defines as every
/// accepted event stored (async) or acknowledged by Pub/Sub (pubsub). Without the metric it
/// falls back to waiting the flush timeout's tenth, a guess that the note makes visible.
async fn wait_flushed(ctx: &Ctx, target: &Target) -> (Duration, Option<String>) {
    let start = Instant::now();
    let url = format!("{}/metrics", target.base());
    let mut seen_metric = false;
    while start.elapsed() < ctx.flush_timeout {
        match probe::queue_depth(&ctx.admin_client, &url).await {
            Some(d) if d <= 0.0 => return (start.elapsed(), None),
            Some(_) => seen_metric = true,
            None if !seen_metric => {
                let guess = ctx.flush_timeout / 10;
                tokio::time::sleep(guess).await;
                return (
                    start.elapsed(),
                    Some(format!(
                        "no eventkit_queue_depth metric: waited {:.0} s before reading the output",
                        guess.as_secs_f64()
                    )),
                );
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (
        start.elapsed(),
        Some(format!(
            "queue not empty after {:.0} s",
            ctx.flush_timeout.as_secs_f64()
        )),
    )
}

/// How long the loader may go without writing a row of the stream before the check reads
/// what there is: several batch ages plus redelivery after an expired lease.
const LOADER_STALL: Duration = Duration::from_secs(30);
/// The longest a loader may take to write a scenario's rows at all: a backlog of several
/// million events at a few thousand a second.
const LOADER_MAX_WAIT: Duration = Duration::from_secs(600);

/// Polls the loader's `eventkit_rows_written_total{stream=…}` until it reaches `accepted`
/// (duplicates can make it reach that early; the re-reads of the output cover that).
async fn wait_loaded(ctx: &Ctx, loader: &str, stream: &str, accepted: u64) -> Option<String> {
    let url = format!("{}/metrics", loader.trim_end_matches('/'));
    let started = Instant::now();
    let mut last = (0.0, started);
    loop {
        let rows = probe::scrape(&ctx.admin_client, &url)
            .await
            .and_then(|text| {
                probe::metric_sum_labelled(&text, "eventkit_rows_written_total", "stream", stream)
            })
            .unwrap_or(0.0);
        if rows >= accepted as f64 {
            return None;
        }
        if rows > last.0 {
            last = (rows, Instant::now());
        }
        if last.1.elapsed() > LOADER_STALL || started.elapsed() > LOADER_MAX_WAIT {
            return Some(format!(
                "stopped waiting for the loader after {:.0} s with {rows:.0} of {accepted} rows of {stream} written",
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn attach_samples(rows: &mut [TimelineRow], samples: &[Sample], width: f64) {
    for row in rows {
        let (lo, hi) = (row.t_s, row.t_s + width);
        let within = || samples.iter().filter(|s| s.t_s >= lo && s.t_s < hi);
        row.queue_depth = within().filter_map(|s| s.queue_depth).reduce(f64::max);
        row.rss_mb = within().filter_map(|s| s.rss_mb).reduce(f64::max);
    }
}

pub fn seal(r: &mut ScenarioResult) {
    r.ok = r.checks.iter().all(|c| c.ok);
}

//! Folding a scenario's variants into one result, then the end-to-end check: wait until the
//! collector has stored everything, read the output back, account for every event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Ctx;
use super::run::VariantOutcome;
use crate::client::Target;
use crate::ids::Ids;
use crate::ledger::{Ledger, LossReport};
use crate::probe::{self, Sample};
use crate::result::{Check, ScenarioResult};
use crate::stats::{LatencyHist, RUN_SIGFIG};
use crate::timeline::TimelineRow;

/// What a scenario result is about.
pub struct Subject<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub target: &'a Target,
    pub ids: &'a Ids,
}

/// Folds a scenario's variants together, waits for the collector to store everything and
/// checks what landed. `check_sink` is false for the ceiling, which stores nothing.
pub async fn finish(
    ctx: &Ctx,
    subject: Subject<'_>,
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
    for o in outcomes {
        r.requests += o.rec.requests;
        r.events_sent += o.rec.events_sent;
        r.events_accepted += o.rec.events_accepted;
        r.events_rejected += o.rec.events_rejected;
        r.retries_after_503 += o.rec.throttled;
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
    if check_sink && ctx.sink.checkable() {
        end_to_end(ctx, target, ids, ledger, &mut r).await;
    } else if check_sink {
        r.notes.push(format!(
            "sink {} cannot be read back: loss not checked",
            ctx.sink.describe()
        ));
    }
    r.load_avg_1m = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()));
    seal(&mut r);
    r
}

async fn end_to_end(
    ctx: &Ctx,
    target: &Target,
    ids: &Ids,
    ledger: &Ledger,
    r: &mut ScenarioResult,
) {
    let waited = wait_flushed(ctx, target).await;
    r.flush_wait_s = waited.0.as_secs_f64();
    if let Some(note) = waited.1 {
        r.notes.push(note);
    }
    let mut report = LossReport::default();
    // A file may be mid-rename when the queue reports empty; a few re-reads settle that
    // without hiding a real loss, which persists.
    for attempt in 0..4 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match ctx.sink.read(&ctx.admin_client, target.stream(), ids).await {
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

/// Polls `eventkit_queue_depth` until it reads 0, which the collector defines as every
/// accepted event stored. Without the metric it falls back to waiting the flush timeout's
/// tenth, a guess that the note makes visible.
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

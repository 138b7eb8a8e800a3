//! Burst: steady → 10× spike → steady, open loop, so latency during and after the spike is
//! measured from when each request was due. Reports 503s (honoured via Retry-After) and how
//! long the collector takes to get back to its steady-state behaviour.

use std::sync::Arc;

use super::{Ctx, Load, Variant, run_single, seal};
use crate::result::ScenarioResult;
use crate::schedule::Phase;
use crate::timeline::TimelineRow;
use crate::workload::batched;

/// Events per request. Ten times error-rate's batches of ten: the spike must move far more
/// events than the collector sustains while the generator, one thread sending prepared bodies,
/// stays well below its own request-rate limit.
const BATCH: u32 = 100;
const SPIKE_FACTOR: f64 = 10.0;
/// The spike offers 3× what one collector core handles of batches of ten (error-rate's events
/// per collector CPU-second): more than the collector could take on every core of this machine,
/// whether the closed loops before were CPU-bound (async) or latency-bound (pubsub), and even
/// though batches of a hundred cost less per event. The queue fills and the collector answers
/// 503. The steady phases run at a tenth of the spike, comfortably within capacity.
const SPIKE_VS_SUSTAINED: f64 = 3.0;
/// Without the control run, sustained batched ingest is estimated from baseline's single-event
/// requests/s; batches of ten move several times more events per second than single calls.
const BATCHED_VS_SINGLE_ESTIMATE: f64 = 5.0;
/// Used when neither ran (e.g. `--scenarios burst` alone).
const FALLBACK_STEADY_RPS: f64 = 50.0;
const MIN_STEADY_RPS: f64 = 5.0;
/// Back to steady means the median latency within this factor of the steady median (or 5 ms
/// of it, for servers so fast that their median is timer noise). The median, not p99: at
/// steady rates a one-second bucket holds too few requests for a stable p99, and one
/// scheduler hiccup on a shared machine would read as "not drained"...
const SETTLED_P50_FACTOR: f64 = 2.0;
const SETTLED_P50_SLACK_MS: f64 = 5.0;
/// ...and the queue back within 1.5× its steady high-water mark plus one batch's worth...
const SETTLED_DEPTH_FACTOR: f64 = 1.5;
/// ...for this many consecutive buckets, so one quiet second in the middle of a backlog does
/// not count as drained.
const SETTLED_BUCKETS: usize = 2;

pub async fn burst(ctx: &mut Ctx) -> ScenarioResult {
    let subject = ctx.subject(
        "burst",
        'u',
        "Batches of 100 tiny events at a steady rate, a 10x spike well above what the collector sustains, then the steady rate again; open loop with up to 512 requests in flight, 503s resent after Retry-After.",
    );
    let sustained_eps = ctx
        .batched_per_core_eps
        .or(ctx.baseline_rps.map(|b| b * BATCHED_VS_SINGLE_ESTIMATE));
    let steady = sustained_eps
        .map(|eps| eps * SPIKE_VS_SUSTAINED / SPIKE_FACTOR / f64::from(BATCH))
        .unwrap_or(FALLBACK_STEADY_RPS)
        .max(MIN_STEADY_RPS)
        .round();
    let [d0, d1, d2] = ctx.durations.burst;
    let phases = vec![
        Phase {
            name: "steady".into(),
            rate_per_sec: steady,
            duration: d0,
        },
        Phase {
            name: "spike".into(),
            rate_per_sec: steady * SPIKE_FACTOR,
            duration: d1,
        },
        Phase {
            name: "recovery".into(),
            rate_per_sec: steady,
            duration: d2,
        },
    ];
    let variant = Variant {
        name: "burst".into(),
        load: Load::Open { phases },
        workload: Arc::new(batched(BATCH, &subject.ids)),
    };
    let mut r = run_single(ctx, &subject, variant, ctx.collector_pid, 20, true).await;
    (r.queue_bound_events, r.queue_bound_mib) = ctx.queue_bound;
    let steady_p50 = r.phases.first().map_or(0.0, |p| p.latency_ms.p50);
    let steady_depth = r
        .samples
        .iter()
        .filter(|s| s.t_s < d0.as_secs_f64())
        .filter_map(|s| s.queue_depth)
        .reduce(f64::max);
    let spike_end = (d0 + d1).as_secs_f64();
    r.drain_time_s = drain_time(
        &r.timeline,
        spike_end,
        steady_p50,
        steady_depth,
        f64::from(BATCH),
    );
    r.notes.push(match sustained_eps {
        Some(eps) => format!(
            "spike of {:.0} events/s ({BATCH} per request) sized from {eps:.0} events per collector CPU-second in error-rate",
            steady * SPIKE_FACTOR * f64::from(BATCH)
        ),
        None => {
            format!("no earlier measurement to size the spike: steady {steady:.0} req/s by default")
        }
    });
    let throttled = r.retries_after_503;
    r.notes.push(if throttled == 0 {
        format!(
            "no 503 answers: the collector's queue never reached its bound (max depth {}), so the overload showed as latency instead",
            r.queue_depth_max.map_or_else(|| "unknown".into(), |d| format!("{d:.0}"))
        )
    } else {
        format!("{throttled} answers were 503; each request was resent after its Retry-After")
    });
    // Reported, not checked: how fast a backlog drains is a performance figure, and a slow
    // shared machine must not turn it into a failed run.
    match r.drain_time_s {
        Some(t) => r.notes.push(format!("back to steady state {t:.1} s after the spike")),
        None => r.notes.push(format!(
            "not back to steady state by the end of the run (steady p50 {steady_p50:.1} ms, queue depth {steady_depth:?})"
        )),
    }
    seal(&mut r);
    r
}

/// Seconds from the end of the spike to the first of `SETTLED_BUCKETS` consecutive buckets
/// that look like the steady phase again, or `None` if the run ended first.
pub fn drain_time(
    rows: &[TimelineRow],
    spike_end: f64,
    steady_p50: f64,
    steady_depth: Option<f64>,
    batch: f64,
) -> Option<f64> {
    let p50_limit = (steady_p50 * SETTLED_P50_FACTOR).max(steady_p50 + SETTLED_P50_SLACK_MS);
    let depth_limit = steady_depth.map(|d| d * SETTLED_DEPTH_FACTOR + batch);
    let settled = |row: &TimelineRow| {
        row.requests_per_sec > 0.0
            && row.throttled == 0
            && row.errors == 0
            && row.p50_ms <= p50_limit
            && match (depth_limit, row.queue_depth) {
                (Some(limit), Some(d)) => d <= limit,
                _ => true,
            }
    };
    let after: Vec<&TimelineRow> = rows.iter().filter(|r| r.t_s + 1e-9 >= spike_end).collect();
    after
        .windows(SETTLED_BUCKETS)
        .find(|w| w.iter().all(|r| settled(r)))
        .map(|w| (w[0].t_s - spike_end).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: f64, p99: f64, throttled: u64, depth: f64) -> TimelineRow {
        TimelineRow {
            t_s: t,
            requests_per_sec: 100.0,
            completed_per_sec: 100.0,
            events_per_sec: 1_000.0,
            errors: 0,
            throttled,
            p50_ms: p99 / 2.0,
            p99_ms: p99,
            max_ms: p99,
            queue_depth: Some(depth),
            rss_mb: None,
        }
    }

    #[test]
    fn drain_ends_at_the_first_lasting_return_to_steady() {
        let rows = vec![
            row(0.0, 2.0, 0, 100.0),
            row(1.0, 2.0, 0, 100.0),
            row(2.0, 400.0, 30, 9_000.0), // spike
            row(3.0, 900.0, 10, 20_000.0),
            row(4.0, 3.0, 0, 120.0),     // one quiet bucket...
            row(5.0, 300.0, 0, 5_000.0), // ...then the backlog again
            row(6.0, 3.0, 0, 140.0),
            row(7.0, 2.5, 0, 100.0),
        ];
        assert_eq!(drain_time(&rows, 3.0, 1.0, Some(100.0), 10.0), Some(3.0));
    }

    #[test]
    fn never_drained_is_none_and_immediate_is_zero() {
        let stuck = vec![
            row(0.0, 2.0, 0, 0.0),
            row(1.0, 500.0, 1, 0.0),
            row(2.0, 500.0, 0, 0.0),
        ];
        assert_eq!(drain_time(&stuck, 1.0, 1.0, None, 10.0), None);
        let fine = vec![
            row(0.0, 2.0, 0, 0.0),
            row(1.0, 2.0, 0, 0.0),
            row(2.0, 2.0, 0, 0.0),
        ];
        assert_eq!(drain_time(&fine, 1.0, 1.0, Some(0.0), 10.0), Some(0.0));
    }
}

//! The scenarios that are one closed-loop variant each: ceiling, baseline, realistic.

use std::sync::Arc;

use super::{Ctx, Load, Subject, Variant, run_single, wrk};
use crate::client::Target;
use crate::ids::Ids;
use crate::result::ScenarioResult;
use crate::workload::{Realistic, Tiny};

/// Distinct users in the realistic scenario: enough that batches rarely repeat a user.
const REALISTIC_USER_POOL: u64 = 50_000;
/// Realistic traffic comes from many clients at once: six times the baseline concurrency, so
/// that in pubsub mode, where each request waits for its publish (coalescing window plus a
/// round trip to Pub/Sub), the closed loop is not bounded by latency instead of by the
/// collector.
const REALISTIC_USERS_FACTOR: usize = 6;
/// Requests prepared before the timed phase and cycled through: ~52 000 events, ~35 MB, so
/// the cycle holds every request shape many times over and fits in memory easily.
const REALISTIC_PREPARED: usize = 2_000;

/// The bare 202 endpoint, driven exactly like baseline, so every ratio compares like with like.
pub async fn ceiling(ctx: &mut Ctx) -> Option<ScenarioResult> {
    let url = ctx.ceiling_url.clone()?;
    let subject = Subject {
        name: "ceiling",
        description: "A bare HTTP handler that reads the body and answers 202: the most this machine and this generator can do at all.",
        target: Arc::new(Target::new(ctx.load_client.clone(), &url, "ceiling")),
        ids: Arc::new(Ids::new(&ctx.run_id, 'c')),
    };
    let variant = Variant {
        name: "ceiling".into(),
        load: Load::Closed {
            users: ctx.users,
            duration: ctx.durations.ceiling,
        },
        workload: Arc::new(Tiny),
    };
    let r = run_single(ctx, &subject, variant, ctx.ceiling_pid, 1, false).await;
    ctx.ceiling_rps = Some(r.requests_per_sec);
    Some(r)
}

pub async fn baseline(ctx: &mut Ctx) -> ScenarioResult {
    let subject = ctx.subject(
        "baseline",
        'b',
        "One tiny valid track event per request, as fast as responses return.",
    );
    let variant = Variant {
        name: "baseline".into(),
        load: Load::Closed {
            users: ctx.users,
            duration: ctx.durations.baseline,
        },
        workload: Arc::new(Tiny),
    };
    let r = run_single(ctx, &subject, variant, ctx.collector_pid, 2, true).await;
    ctx.baseline_rps = Some(r.requests_per_sec);
    r
}

pub async fn realistic(ctx: &mut Ctx) -> ScenarioResult {
    let mut subject = ctx.subject(
        "realistic",
        'r',
        "60/30/10 track/identify/page with properties and context from 50 000 users; half single calls to /collect, half Segment batches of 2-100 events. Bodies are built before the timed phase and stamped with fresh messageIds while sending.",
    );
    let mut target = (*subject.target).clone();
    let route_note = target.enable_segment(&ctx.write_key).await;
    subject.target = Arc::new(target);
    let users = ctx.users * REALISTIC_USERS_FACTOR;
    let prepared = Arc::new(
        Realistic {
            users: REALISTIC_USER_POOL,
        }
        .prepare(3, REALISTIC_PREPARED, &subject.ids),
    );
    let variant = Variant {
        name: "realistic".into(),
        load: Load::Closed {
            users,
            duration: ctx.durations.realistic,
        },
        workload: prepared.clone(),
    };
    let mut r = run_single(ctx, &subject, variant, ctx.collector_pid, 3, true).await;
    r.notes.push(route_note);
    // The same bodies through wrk, against the same collector, right after: how close the
    // generator comes to a load tool that does nothing per request but send.
    let wrk_ids = Ids::new(&ctx.run_id, 'w');
    match wrk::compare(ctx, &prepared, &wrk_ids, users, ctx.durations.wrk).await {
        Ok(figures) => {
            r.notes.push(format!(
                "wrk with the same bodies: {:.0} req/s, {:.0} events/s (this generator: {:.0} events/s, {:.0}% of wrk)",
                figures.requests_per_sec,
                figures.events_per_sec,
                r.events_per_sec,
                100.0 * r.events_per_sec / figures.events_per_sec.max(f64::MIN_POSITIVE)
            ));
            r.wrk = Some(figures);
        }
        Err(why) => r.notes.push(format!("no wrk comparison: {why}")),
    }
    r
}

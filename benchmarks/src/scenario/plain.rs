//! The scenarios that are one closed-loop variant each: ceiling, baseline, realistic.

use std::sync::Arc;
use std::time::SystemTime;

use super::{Ctx, Load, Subject, Variant, finish, run_variant};
use crate::client::Target;
use crate::ids::Ids;
use crate::ledger::Ledger;
use crate::result::ScenarioResult;
use crate::workload::{Realistic, Tiny};

/// Distinct users in the realistic scenario: enough that batches rarely repeat a user.
const REALISTIC_USER_POOL: u64 = 50_000;
/// Realistic traffic comes from many clients at once; twice the baseline concurrency.
const REALISTIC_USERS_FACTOR: usize = 2;

/// The bare 202 endpoint, driven exactly like baseline, so every ratio compares like with like.
pub async fn ceiling(ctx: &mut Ctx) -> Option<ScenarioResult> {
    let url = ctx.ceiling_url.clone()?;
    let target = Arc::new(Target::new(ctx.load_client.clone(), &url, "ceiling"));
    let ids = Arc::new(Ids::new(&ctx.run_id, 'c'));
    let variant = Variant {
        name: "ceiling".into(),
        load: Load::Closed {
            users: ctx.users,
            duration: ctx.durations.ceiling,
        },
        workload: Arc::new(Tiny),
    };
    let (outcome, ledger) = run_variant(
        ctx,
        target.clone(),
        ids.clone(),
        Ledger::new(SystemTime::now()),
        variant,
        ctx.ceiling_pid,
        1,
    )
    .await;
    let r = finish(
        ctx,
        Subject { name: "ceiling", description: "A bare HTTP handler that reads the body and answers 202: the most this machine and this generator can do at all.", target: &target, ids: &ids },
        &ledger,
        vec![outcome],
        false,
    )
    .await;
    ctx.ceiling_rps = Some(r.requests_per_sec);
    Some(r)
}

pub async fn baseline(ctx: &mut Ctx) -> ScenarioResult {
    let target = Arc::new(Target::new(
        ctx.load_client.clone(),
        &ctx.collector_url,
        &Ctx::stream("baseline"),
    ));
    let ids = Arc::new(Ids::new(&ctx.run_id, 'b'));
    let variant = Variant {
        name: "baseline".into(),
        load: Load::Closed {
            users: ctx.users,
            duration: ctx.durations.baseline,
        },
        workload: Arc::new(Tiny),
    };
    let (outcome, ledger) = run_variant(
        ctx,
        target.clone(),
        ids.clone(),
        Ledger::new(SystemTime::now()),
        variant,
        ctx.collector_pid,
        2,
    )
    .await;
    let r = finish(
        ctx,
        Subject {
            name: "baseline",
            description: "One tiny valid track event per request, as fast as responses return.",
            target: &target,
            ids: &ids,
        },
        &ledger,
        vec![outcome],
        true,
    )
    .await;
    ctx.baseline_rps = Some(r.requests_per_sec);
    r
}

pub async fn realistic(ctx: &mut Ctx) -> ScenarioResult {
    let mut target = Target::new(
        ctx.load_client.clone(),
        &ctx.collector_url,
        &Ctx::stream("realistic"),
    );
    let route_note = target.enable_segment(&ctx.write_key).await;
    let target = Arc::new(target);
    let ids = Arc::new(Ids::new(&ctx.run_id, 'r'));
    let variant = Variant {
        name: "realistic".into(),
        load: Load::Closed {
            users: ctx.users * REALISTIC_USERS_FACTOR,
            duration: ctx.durations.realistic,
        },
        workload: Arc::new(Realistic {
            users: REALISTIC_USER_POOL,
        }),
    };
    let (outcome, ledger) = run_variant(
        ctx,
        target.clone(),
        ids.clone(),
        Ledger::new(SystemTime::now()),
        variant,
        ctx.collector_pid,
        3,
    )
    .await;
    let mut r = finish(
        ctx,
        Subject { name: "realistic", description: "60/30/10 track/identify/page with properties and context from 50 000 users; half single calls to /collect, half Segment batches of 2-100 events.", target: &target, ids: &ids },
        &ledger,
        vec![outcome],
        true,
    )
    .await;
    r.notes.push(route_note);
    r
}

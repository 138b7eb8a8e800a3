//! Payload-size: the same closed loop at four event sizes. 50 KB is over the 32 KB event
//! limit, so that variant measures how fast the collector turns oversized events away.

use std::sync::Arc;

use super::{Ctx, Load, Variant, finish, run_variants, seal};
use crate::result::{Check, ScenarioResult};
use crate::workload::Sized;

const SIZES: [(&str, usize); 4] = [
    ("50 B", 50),
    ("500 B", 500),
    ("5 KB", 5 * 1024),
    ("50 KB", 50 * 1024),
];
/// The collector's per-event limit: above it an event must be refused.
const EVENT_LIMIT: usize = 32 * 1024;

pub async fn payload_size(ctx: &mut Ctx) -> ScenarioResult {
    let subject = ctx.subject(
        "payload-size",
        'p',
        "One event per request at 50 B, 500 B, 5 KB and 50 KB; the 50 KB event exceeds the 32 KB limit and must be refused.",
    );
    let (target, ids) = (&subject.target, &subject.ids);
    let variants = SIZES
        .into_iter()
        .map(|(name, bytes)| Variant {
            name: format!("payload {name}"),
            load: Load::Closed {
                users: ctx.users,
                duration: ctx.durations.payload_each,
            },
            workload: Arc::new(Sized { target: bytes }),
        })
        .collect();
    let (outcomes, ledger) = run_variants(ctx, target, ids, variants, 10).await;
    let limits: Vec<(String, u64, u64, Vec<String>)> = outcomes
        .iter()
        .zip(SIZES)
        .filter(|(_, (_, bytes))| *bytes > EVENT_LIMIT)
        .map(|(o, (name, _))| {
            let codes = o.rec.status.keys().cloned().collect();
            (
                name.to_owned(),
                o.rec.events_accepted,
                o.rec.requests,
                codes,
            )
        })
        .collect();
    let mut r = finish(ctx, &subject, &ledger, outcomes, true).await;
    for (name, accepted, requests, codes) in limits {
        // 503 is back-pressure, not a verdict: the request was retried after Retry-After.
        let refused = codes.iter().all(|c| c == "400" || c == "503");
        r.checks.push(Check::new(
            &format!("{name} events refused"),
            accepted == 0 && refused,
            format!("{accepted} of {requests} accepted; statuses {codes:?} (expected 400, with 503 while the queue was full)"),
        ));
    }
    seal(&mut r);
    r
}

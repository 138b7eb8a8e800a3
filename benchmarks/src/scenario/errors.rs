//! Error-rate: 10% invalid events, one validation rule each, checked against the collector's
//! per-event verdicts; plus one probe per request-level rule. A valid-only control run of the
//! same shape gives the overhead of rejecting.

use std::sync::Arc;

use super::{Ctx, Load, Variant, finish, run_variants, seal};
use crate::client::{Target, http_client};
use crate::load::RuleTally;
use crate::result::{Check, ProbeResult, ScenarioResult};
use crate::workload::{Faulty, probes};

const BATCH: u32 = 10;

pub async fn error_rate(ctx: &mut Ctx) -> ScenarioResult {
    let subject = ctx.subject(
        "error-rate",
        'e',
        "Batches of 10 events, one invalid (each validation rule in turn), after a valid-only control of the same shape; plus one probe per request-level rule.",
    );
    let (target, ids) = (&subject.target, &subject.ids);

    // Probes get a client of their own: after a 413 the server may drop the connection with
    // the oversized body unread, and a pooled connection closed that way would surface as a
    // transport error in the load that follows.
    let probe_target = match http_client(1) {
        Ok(client) => Target::new(client, &ctx.collector_url, target.stream()),
        Err(_) => (**target).clone(),
    };
    const PROBE_ATTEMPTS: usize = 3;
    let mut probe_results = Vec::new();
    for p in probes() {
        // A server may answer 413 and close before an oversized body is sent in full; the
        // client then sees a reset instead of the answer. Only such transport races are retried.
        let mut status = probe_target.post_raw(p.body.clone()).await.status_label();
        for _ in 0..PROBE_ATTEMPTS {
            if status.parse::<u16>().is_ok() {
                break;
            }
            status = probe_target.post_raw(p.body.clone()).await.status_label();
        }
        probe_results.push(ProbeResult {
            name: p.name.into(),
            expected_status: p.expect_status,
            status,
        });
    }

    let runs = [
        ("valid only (control)", 0, ctx.durations.error_control),
        ("10% invalid", 1, ctx.durations.error_faulty),
    ];
    let variants = runs
        .into_iter()
        .map(|(name, invalid, duration)| Variant {
            name: name.into(),
            load: Load::Closed {
                users: ctx.users,
                duration,
            },
            workload: Arc::new(Faulty::new(BATCH, invalid)),
        })
        .collect();
    let (outcomes, ledger) = run_variants(ctx, target, ids, variants, 30).await;
    let mut tally = RuleTally::default();
    for o in &outcomes {
        tally.merge(&o.rec.rules);
    }

    let mut r = finish(ctx, &subject, &ledger, outcomes, true).await;

    for p in &probe_results {
        r.checks.push(Check::new(
            &format!("probe: {}", p.name),
            p.status == p.expected_status.to_string(),
            format!("expected {}, got {}", p.expected_status, p.status),
        ));
    }
    for (rule, s) in &tally.per_rule {
        r.checks.push(Check::new(
            &format!("rule {rule:?}"),
            s.sent > 0 && s.rejected == s.sent && s.reason_mismatch == 0,
            format!(
                "{} sent, {} rejected, {} accepted anyway, {} whole-request refusals, {} reasons not naming the field; e.g. {:?}",
                s.sent, s.rejected, s.accepted_anyway, s.request_refused, s.reason_mismatch, s.sample_reason.as_deref().unwrap_or("")
            ),
        ));
    }
    r.checks.push(Check::new(
        "no valid event rejected",
        tally.valid_rejected == 0,
        format!(
            "{} valid events rejected; {}",
            tally.valid_rejected,
            tally.valid_rejected_sample.take().unwrap_or_default()
        ),
    ));
    if let [control, faulty] = r.variants.as_slice() {
        let drop = 1.0 - faulty.requests_per_sec / control.requests_per_sec.max(f64::MIN_POSITIVE);
        r.notes.push(format!(
            "overhead of 10% invalid vs valid-only: {:.0} vs {:.0} req/s ({:+.1}%), p99 {:.2} vs {:.2} ms",
            faulty.requests_per_sec,
            control.requests_per_sec,
            -drop * 100.0,
            faulty.latency_ms.p99,
            control.latency_ms.p99
        ));
        if let Some(b) = ctx.baseline_rps {
            r.notes.push(format!(
                "vs baseline (single events): {:.0} events/s here vs {b:.0} events/s",
                faulty.events_per_sec
            ));
        }
    }
    ctx.batched_per_core_eps = per_core_eps(&r);
    r.rules = Some(tally);
    r.probes = probe_results;
    seal(&mut r);
    r
}

/// What one collector core handles of batches of ten: accepted events per collector
/// CPU-second, or, without CPU figures, the valid-only control's events/s.
pub fn per_core_eps(r: &ScenarioResult) -> Option<f64> {
    r.cpu
        .as_ref()
        .and_then(|c| c.events_per_collector_cpu_s)
        .or_else(|| r.variants.first().map(|v| v.events_per_sec))
}

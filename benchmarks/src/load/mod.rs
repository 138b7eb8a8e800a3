//! Load models and the recorder both feed.

mod closed;
mod open;
mod rules;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub use closed::closed_loop;
pub use open::open_loop;
pub use rules::{RuleStat, RuleTally};

use crate::client::{Outcome, Sent};
use crate::ledger::{Fate, Ledger};
use crate::stats::{LatencyHist, RUN_SIGFIG};
use crate::timeline::Timeline;
use crate::workload::Request;

/// Everything measured during one load run. Workers share it behind one mutex: a lock per
/// request costs well under a microsecond, against tens of microseconds per HTTP round trip,
/// and it keeps the per-second timeline exact without per-worker copies to merge.
#[derive(Debug)]
pub struct Recorder {
    pub start: Instant,
    pub wall_start: SystemTime,
    pub latency: LatencyHist,
    pub timeline: Timeline,
    pub phases: Vec<PhaseTally>,
    pub status: BTreeMap<String, u64>,
    pub requests: u64,
    pub body_bytes: u64,
    pub events_sent: u64,
    pub events_accepted: u64,
    pub events_rejected: u64,
    pub throttled: u64,
    /// Time requests spent waiting out Retry-After before resending.
    pub retry_wait: Duration,
    pub rules: RuleTally,
    pub ledger: Ledger,
    /// The first few transport errors verbatim, so a report can say what went wrong.
    pub transport_samples: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct PhaseTally {
    pub requests: u64,
    pub throttled: u64,
    pub latency: LatencyHist,
}

impl Recorder {
    pub fn new(ledger: Ledger, bucket: Duration) -> Self {
        Self {
            start: Instant::now(),
            wall_start: SystemTime::now(),
            latency: LatencyHist::new(RUN_SIGFIG),
            timeline: Timeline::new(bucket),
            phases: Vec::new(),
            status: BTreeMap::new(),
            requests: 0,
            body_bytes: 0,
            events_sent: 0,
            events_accepted: 0,
            events_rejected: 0,
            throttled: 0,
            retry_wait: Duration::ZERO,
            rules: RuleTally::default(),
            ledger,
            transport_samples: Vec::new(),
        }
    }

    /// `intended` is when the request should have left: for the open loop that is the
    /// schedule, so time spent waiting for a free connection counts as latency.
    pub fn record(
        &mut self,
        req: &Request,
        intended: Instant,
        done: Instant,
        sent: &Sent,
        phase: usize,
    ) {
        let latency_us =
            u64::try_from(done.saturating_duration_since(intended).as_micros()).unwrap_or(u64::MAX);
        let offset = intended.saturating_duration_since(self.start);
        let wall_sent = self.wall_start + offset;
        self.requests += 1;
        self.body_bytes += req.body.len() as u64;
        self.events_sent += u64::from(req.events);
        self.throttled += u64::from(sent.throttled);
        self.retry_wait += sent.waited;
        if sent.throttled > 0 {
            *self.status.entry("503".into()).or_default() += u64::from(sent.throttled);
        }
        if !matches!(sent.outcome, Outcome::Throttled { .. }) {
            *self.status.entry(sent.outcome.status_label()).or_default() += 1;
        }
        self.latency.record_us(latency_us);

        let accepted = match &sent.outcome {
            Outcome::Accepted { rejected, .. } => {
                self.ledger
                    .mark(req.first_seq, req.events, Fate::Accepted, wall_sent);
                let mut rejected_here = 0;
                for r in rejected.iter().filter(|r| r.index < req.events) {
                    self.ledger
                        .set(req.first_seq + u64::from(r.index), Fate::Rejected);
                    rejected_here += 1;
                }
                self.rules.record(req, rejected);
                u64::from(req.events) - rejected_here
            }
            Outcome::Transport(e) => {
                if self.transport_samples.len() < MAX_TRANSPORT_SAMPLES {
                    self.transport_samples.push(e.clone());
                }
                self.ledger
                    .mark(req.first_seq, req.events, Fate::Uncertain, wall_sent);
                0
            }
            Outcome::Throttled { .. } | Outcome::Status(_) => {
                self.ledger
                    .mark(req.first_seq, req.events, Fate::Rejected, wall_sent);
                self.rules.record_whole(req, &sent.outcome.status_label());
                0
            }
        };
        self.events_accepted += accepted;
        self.events_rejected += u64::from(req.events) - accepted;

        let bucket = self.timeline.bucket_mut(offset);
        bucket.requests += 1;
        bucket.events_accepted += accepted;
        bucket.throttled += u64::from(sent.throttled);
        if !matches!(sent.outcome, Outcome::Accepted { .. }) {
            bucket.errors += 1;
        }
        bucket.latency.record_us(latency_us);

        self.timeline
            .bucket_mut(done.saturating_duration_since(self.start))
            .completed += 1;

        if self.phases.len() <= phase {
            self.phases.resize_with(phase + 1, || PhaseTally {
                requests: 0,
                throttled: 0,
                latency: LatencyHist::new(RUN_SIGFIG),
            });
        }
        let p = &mut self.phases[phase];
        p.requests += 1;
        p.throttled += u64::from(sent.throttled);
        p.latency.record_us(latency_us);
    }
}

/// A poisoned lock only means another worker panicked mid-record; the counters are still
/// the best data we have, so keep going rather than abort the run.
pub fn lock(rec: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    rec.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const MAX_TRANSPORT_SAMPLES: usize = 3;

/// After the last scheduled send, in-flight and throttled requests get this long to finish.
pub const GRACE: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Rejection;
    use crate::workload::{Route, Rule};

    fn req(first_seq: u64, events: u32) -> Request {
        Request {
            route: Route::Collect,
            body: bytes::Bytes::from_static(b"{}"),
            first_seq,
            events,
            invalid: vec![(1, Rule::BadTimestamp)],
        }
    }

    #[test]
    fn records_partial_acceptance_retries_and_failures() {
        let mut r = Recorder::new(Ledger::new(SystemTime::now()), Duration::from_secs(1));
        let t0 = r.start;
        let ok = Sent {
            outcome: Outcome::Accepted {
                status: 202,
                rejected: vec![Rejection {
                    index: 1,
                    error: "bad timestamp".into(),
                }],
            },
            throttled: 2,
            waited: Duration::from_secs(2),
        };
        r.record(&req(0, 3), t0, t0 + Duration::from_millis(5), &ok, 0);
        let failed = Sent {
            outcome: Outcome::Transport("reset".into()),
            throttled: 0,
            waited: Duration::ZERO,
        };
        r.record(
            &req(3, 2),
            t0 + Duration::from_millis(1_500),
            t0 + Duration::from_secs(2),
            &failed,
            1,
        );
        assert_eq!(
            (
                r.requests,
                r.events_sent,
                r.events_accepted,
                r.events_rejected
            ),
            (2, 5, 2, 3)
        );
        assert_eq!(r.status.get("503"), Some(&2));
        assert_eq!(r.retry_wait, Duration::from_secs(2));
        assert_eq!(r.status.get("202"), Some(&1));
        assert_eq!(r.status.get("transport_error"), Some(&1));
        assert_eq!(r.ledger.accepted(), 2);
        assert_eq!(r.phases.len(), 2);
        let rows = r.timeline.rows();
        assert_eq!((rows[0].throttled, rows[1].errors), (2, 1));
        assert!(
            (rows[1].p50_ms - 500.0).abs() < 5.0,
            "latency runs from the intended send time"
        );
        assert_eq!(
            r.rules
                .per_rule
                .get(&Rule::BadTimestamp)
                .map(|s| s.rejected),
            Some(1)
        );
    }
}

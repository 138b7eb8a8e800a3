//! Per-interval buckets behind the "over time" charts and the burst drain calculation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::{BUCKET_SIGFIG, LatencyHist};

/// Requests are bucketed by their *intended* send time, so a stall shows up as high latency in
/// the second the request should have gone out, not in the second it finally completed.
#[derive(Clone, Debug)]
pub struct Timeline {
    width: Duration,
    buckets: Vec<Bucket>,
}

#[derive(Clone, Debug)]
pub struct Bucket {
    pub requests: u64,
    /// Requests that *finished* in this interval: in an open loop `requests` is the schedule,
    /// this is what the server actually got through.
    pub completed: u64,
    pub events_accepted: u64,
    pub errors: u64,
    pub throttled: u64,
    pub latency: LatencyHist,
}

impl Bucket {
    fn new() -> Self {
        Self {
            requests: 0,
            completed: 0,
            events_accepted: 0,
            errors: 0,
            throttled: 0,
            latency: LatencyHist::new(BUCKET_SIGFIG),
        }
    }
}

/// One row of `<scenario>.csv` and one point of each chart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub t_s: f64,
    pub requests_per_sec: f64,
    pub completed_per_sec: f64,
    pub events_per_sec: f64,
    pub errors: u64,
    pub throttled: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Filled in afterwards from the /metrics and /proc samples nearest to this bucket.
    pub queue_depth: Option<f64>,
    pub rss_mb: Option<f64>,
}

impl Timeline {
    pub fn new(width: Duration) -> Self {
        Self {
            width: width.max(Duration::from_millis(10)),
            buckets: Vec::new(),
        }
    }

    pub fn bucket_mut(&mut self, since_start: Duration) -> &mut Bucket {
        let idx = (since_start.as_micros() / self.width.as_micros()) as usize;
        if self.buckets.len() <= idx {
            self.buckets.resize_with(idx + 1, Bucket::new);
        }
        &mut self.buckets[idx]
    }

    pub fn rows(&self) -> Vec<TimelineRow> {
        let w = self.width.as_secs_f64();
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| TimelineRow {
                t_s: i as f64 * w,
                requests_per_sec: b.requests as f64 / w,
                completed_per_sec: b.completed as f64 / w,
                events_per_sec: b.events_accepted as f64 / w,
                errors: b.errors,
                throttled: b.throttled,
                p50_ms: b.latency.quantile_ms(0.5),
                p99_ms: b.latency.quantile_ms(0.99),
                max_ms: b.latency.max_ms(),
                queue_depth: None,
                rss_mb: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_interval_and_reports_rates_per_second() {
        let mut t = Timeline::new(Duration::from_millis(500));
        t.bucket_mut(Duration::from_millis(100)).requests += 1;
        t.bucket_mut(Duration::from_millis(1_200)).requests += 3;
        let rows = t.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].requests_per_sec, 2.0);
        assert_eq!(rows[1].requests_per_sec, 0.0);
        assert_eq!(rows[2].requests_per_sec, 6.0);
        assert_eq!(rows[2].t_s, 1.0);
    }
}

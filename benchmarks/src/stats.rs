//! Latency histograms and the percentile summary every report uses.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds: loopback requests take tens of µs, so milliseconds
/// would round most of them to zero.
const LOWEST_US: u64 = 1;
/// One hour: anything longer is a hung run, and `saturating_record` clamps it rather than
/// losing the sample.
const HIGHEST_US: u64 = 3_600_000_000;

/// Three significant figures for the whole-run histogram (0.1% error at any percentile), two
/// for the per-second timeline buckets, which only feed charts and would otherwise cost
/// ~140 KB each.
pub const RUN_SIGFIG: u8 = 3;
pub const BUCKET_SIGFIG: u8 = 2;

#[derive(Clone, Debug)]
pub struct LatencyHist(Histogram<u64>);

impl LatencyHist {
    /// `sigfig` is one of the two constants above.
    #[allow(clippy::expect_used)]
    pub fn new(sigfig: u8) -> Self {
        // Constant bounds and precision, exercised by every unit test below: a failure is a
        // programming error, not a runtime condition, so there is nothing to report upward.
        let h = Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, sigfig)
            .expect("constant histogram bounds are valid");
        Self(h)
    }

    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(LOWEST_US, HIGHEST_US));
    }

    /// Lossless between histograms of equal precision. Merging a coarser bucket into a finer
    /// run histogram keeps every count at the coarser resolution, which is all it had.
    pub fn merge(&mut self, other: &LatencyHist) {
        if self.0.add(&other.0).is_err() {
            // Only reachable if `other` held values above our bound, which `record_us`
            // prevents; keep its extreme rather than silently dropping it.
            self.0.saturating_record(other.0.max());
        }
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        us_to_ms(self.0.value_at_quantile(q))
    }

    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        us_to_ms(self.0.max())
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
            max: self.max_ms(),
            count: self.len(),
        }
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Milliseconds, as written to every JSON and CSV file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = LatencyHist::new(RUN_SIGFIG);
        for us in 1..=10_000 {
            h.record_us(us);
        }
        let p = h.percentiles();
        assert!((p.p50 - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.p99 - 9.9).abs() < 0.02, "{p:?}");
        assert!((p.max - 10.0).abs() < 0.01, "{p:?}");
        assert_eq!(p.count, 10_000);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let mut a = LatencyHist::new(RUN_SIGFIG);
        let mut b = LatencyHist::new(RUN_SIGFIG);
        let mut all = LatencyHist::new(RUN_SIGFIG);
        for i in 0..5_000u64 {
            let v = (i * 7919) % 50_000 + 1;
            if i % 3 == 0 {
                a.record_us(v);
            } else {
                b.record_us(v);
            }
            all.record_us(v);
        }
        a.merge(&b);
        assert_eq!(a.percentiles(), all.percentiles());
    }

    #[test]
    fn merging_a_coarse_bucket_into_the_run_histogram_keeps_count_and_max() {
        let mut run = LatencyHist::new(RUN_SIGFIG);
        let mut bucket = LatencyHist::new(BUCKET_SIGFIG);
        bucket.record_us(123_456);
        bucket.record_us(10);
        run.merge(&bucket);
        assert_eq!(run.len(), 2);
        assert!((run.max_ms() - 123.456).abs() / 123.456 < 0.01);
    }

    #[test]
    fn empty_and_out_of_range_values_do_not_panic() {
        let mut h = LatencyHist::new(RUN_SIGFIG);
        assert_eq!(h.percentiles().p99, 0.0);
        h.record_us(0);
        h.record_us(u64::MAX);
        assert_eq!(h.len(), 2);
        assert!(h.max_ms() >= 3_599_000.0);
    }
}

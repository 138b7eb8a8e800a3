//! The open-loop arrival schedule: when each request *should* leave, whatever the server does.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A constant-rate stretch of an open-loop run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub rate_per_sec: f64,
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// Intended send offsets for a sequence of phases. Send `i` of a phase at rate `r` is due at
/// `phase_start + i / r`: computed from the index rather than by adding intervals, so float
/// error never accumulates over a long run.
#[derive(Clone, Debug)]
pub struct Schedule {
    phases: Vec<Phase>,
    phase: usize,
    index_in_phase: u64,
    phase_start: Duration,
}

impl Schedule {
    pub fn new(phases: Vec<Phase>) -> Self {
        Self {
            phases,
            phase: 0,
            index_in_phase: 0,
            phase_start: Duration::ZERO,
        }
    }

    pub fn total(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// Start offset of each phase, for reporting phase-level figures afterwards.
    pub fn boundaries(phases: &[Phase]) -> Vec<(String, Duration, Duration)> {
        let mut at = Duration::ZERO;
        phases
            .iter()
            .map(|p| {
                let start = at;
                at += p.duration;
                (p.name.clone(), start, at)
            })
            .collect()
    }
}

impl Iterator for Schedule {
    /// (phase index, intended offset from the start of the run)
    type Item = (usize, Duration);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let phase = self.phases.get(self.phase)?;
            if phase.rate_per_sec > 0.0 {
                let offset =
                    Duration::from_secs_f64(self.index_in_phase as f64 / phase.rate_per_sec);
                if offset < phase.duration {
                    self.index_in_phase += 1;
                    return Some((self.phase, self.phase_start + offset));
                }
            }
            self.phase_start += phase.duration;
            self.phase += 1;
            self.index_in_phase = 0;
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(name: &str, rate: f64, secs: u64) -> Phase {
        Phase {
            name: name.into(),
            rate_per_sec: rate,
            duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let times: Vec<_> = Schedule::new(vec![phase("s", 4.0, 1)]).collect();
        let ms: Vec<u128> = times.iter().map(|(_, t)| t.as_millis()).collect();
        assert_eq!(ms, vec![0, 250, 500, 750]);
    }

    #[test]
    fn spike_phases_follow_each_other_with_their_own_rates() {
        let s = Schedule::new(vec![
            phase("steady", 10.0, 2),
            phase("spike", 100.0, 1),
            phase("after", 10.0, 2),
        ]);
        assert_eq!(s.total(), Duration::from_secs(5));
        let all: Vec<_> = s.collect();
        let count = |p| all.iter().filter(|(i, _)| *i == p).count();
        assert_eq!((count(0), count(1), count(2)), (20, 100, 20));
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
        let first_spike = all.iter().find(|(i, _)| *i == 1).map(|(_, t)| *t);
        assert_eq!(first_spike, Some(Duration::from_secs(2)));
    }

    #[test]
    fn no_drift_over_a_long_run() {
        let last = Schedule::new(vec![phase("s", 3.0, 3_600)]).last();
        let (_, t) = last.unwrap_or_default();
        // 10 800 sends: the last one is due exactly one interval before the end.
        let expected = Duration::from_secs_f64(10_799.0 / 3.0);
        assert!(t.abs_diff(expected) < Duration::from_micros(1), "{t:?}");
    }

    #[test]
    fn zero_rate_phase_is_a_pause() {
        let all: Vec<_> = Schedule::new(vec![
            phase("a", 1.0, 1),
            phase("gap", 0.0, 5),
            phase("b", 1.0, 1),
        ])
        .collect();
        assert_eq!(all, vec![(0, Duration::ZERO), (2, Duration::from_secs(6))]);
    }

    #[test]
    fn boundaries_are_cumulative() {
        let b = Schedule::boundaries(&[phase("a", 1.0, 2), phase("b", 1.0, 3)]);
        assert_eq!(
            b[1],
            ("b".into(), Duration::from_secs(2), Duration::from_secs(5))
        );
    }
}

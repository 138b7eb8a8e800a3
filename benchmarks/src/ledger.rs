//! What was sent and what the collector said about it, per event, so the end-to-end check can
//! tell lost events from duplicates from events it never owed us.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::stats::{LatencyHist, Percentiles, RUN_SIGFIG};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fate {
    Unsent = 0,
    Accepted = 1,
    Rejected = 2,
    /// The request failed in transit or was still throttled at the end: the server may or may
    /// not hold these events, so landing is allowed but not owed.
    Uncertain = 3,
}

/// One byte of fate and four of send time per event: a million events cost 5 MB.
#[derive(Debug)]
pub struct Ledger {
    base: SystemTime,
    fate: Vec<u8>,
    sent_ms: Vec<u32>,
}

/// Rows read back from one output file (already mapped to sequence numbers of this run).
#[derive(Clone, Debug)]
pub struct Landed {
    pub landed_at: SystemTime,
    pub seqs: Vec<u64>,
    /// Rows whose message_id belongs to another run or scenario.
    pub foreign: u64,
    /// The file's size.
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossReport {
    pub accepted: u64,
    pub landed_rows: u64,
    pub landed_distinct: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Landed although the collector rejected them or we never sent them: a correctness bug.
    pub unexpected: u64,
    pub uncertain_landed: u64,
    pub foreign_rows: u64,
    pub files: u64,
    /// Bytes of every file read, and the rows they hold (this scenario's and others').
    pub file_bytes: u64,
    pub file_rows: u64,
    pub lost_sample: Vec<u64>,
    pub freshness_ms: Percentiles,
}

impl Ledger {
    pub fn new(base: SystemTime) -> Self {
        Self {
            base,
            fate: Vec::new(),
            sent_ms: Vec::new(),
        }
    }

    pub fn mark(&mut self, first: u64, n: u32, fate: Fate, sent_at: SystemTime) {
        let (Ok(first), Ok(n)) = (usize::try_from(first), usize::try_from(n)) else {
            return;
        };
        let end = first + n;
        if self.fate.len() < end {
            self.fate.resize(end, Fate::Unsent as u8);
            self.sent_ms.resize(end, 0);
        }
        let ms = sent_at
            .duration_since(self.base)
            .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        self.fate[first..end].fill(fate as u8);
        self.sent_ms[first..end].fill(ms);
    }

    pub fn set(&mut self, seq: u64, fate: Fate) {
        if let Some(f) = usize::try_from(seq).ok().and_then(|i| self.fate.get_mut(i)) {
            *f = fate as u8;
        }
    }

    pub fn accepted(&self) -> u64 {
        self.fate
            .iter()
            .filter(|&&f| f == Fate::Accepted as u8)
            .count() as u64
    }

    fn sent_at(&self, i: usize) -> SystemTime {
        self.base + Duration::from_millis(u64::from(self.sent_ms[i]))
    }

    /// Freshness is measured per file: every row of a file gets the file's landing time, so
    /// it overstates time-to-land by up to the time the file took to write.
    pub fn account(&self, files: &[Landed]) -> LossReport {
        let mut order: Vec<&Landed> = files.iter().collect();
        order.sort_by_key(|f| f.landed_at);
        let mut seen = vec![0u32; self.fate.len()];
        let mut fresh = LatencyHist::new(RUN_SIGFIG);
        let mut r = LossReport {
            files: files.len() as u64,
            ..LossReport::default()
        };
        for file in order {
            r.foreign_rows += file.foreign;
            r.file_bytes += file.bytes;
            r.file_rows += file.foreign + file.seqs.len() as u64;
            for &seq in &file.seqs {
                r.landed_rows += 1;
                let Some(i) = usize::try_from(seq).ok().filter(|&i| i < self.fate.len()) else {
                    r.unexpected += 1;
                    continue;
                };
                seen[i] += 1;
                if seen[i] > 1 {
                    r.duplicates += 1;
                    continue;
                }
                match self.fate[i] {
                    f if f == Fate::Accepted as u8 => {
                        let age = file
                            .landed_at
                            .duration_since(self.sent_at(i))
                            .unwrap_or_default();
                        fresh.record_us(u64::try_from(age.as_micros()).unwrap_or(u64::MAX));
                    }
                    f if f == Fate::Uncertain as u8 => r.uncertain_landed += 1,
                    _ => r.unexpected += 1,
                }
            }
        }
        for (i, &f) in self.fate.iter().enumerate() {
            if f == Fate::Accepted as u8 {
                r.accepted += 1;
                if seen[i] == 0 {
                    r.lost += 1;
                    if r.lost_sample.len() < 10 {
                        r.lost_sample.push(i as u64);
                    }
                }
            }
        }
        r.landed_distinct = r.landed_rows - r.duplicates;
        r.freshness_ms = fresh.percentiles();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: SystemTime, ms: u64) -> SystemTime {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn lost_duplicates_and_unexpected_are_counted_separately() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut l = Ledger::new(base);
        l.mark(0, 5, Fate::Accepted, at(base, 0));
        l.set(3, Fate::Rejected);
        l.mark(5, 1, Fate::Uncertain, at(base, 0));
        let files = vec![
            Landed {
                landed_at: at(base, 2_000),
                seqs: vec![0, 1, 3, 5],
                foreign: 2,
                bytes: 100,
            },
            Landed {
                landed_at: at(base, 1_000),
                seqs: vec![1, 99],
                foreign: 0,
                bytes: 50,
            },
        ];
        let r = l.account(&files);
        assert_eq!(r.accepted, 4); // 0,1,2,4
        assert_eq!(r.lost, 2); // 2 and 4
        assert_eq!(r.lost_sample, vec![2, 4]);
        assert_eq!(r.duplicates, 1); // 1 twice
        assert_eq!(r.unexpected, 2); // 3 was rejected, 99 never sent
        assert_eq!(r.uncertain_landed, 1);
        assert_eq!(r.foreign_rows, 2);
        assert_eq!((r.landed_rows, r.landed_distinct, r.files), (6, 5, 2));
        assert_eq!((r.file_bytes, r.file_rows), (150, 8));
        // Freshness uses the earliest landing of each accepted event: 0 at 2 s, 1 at 1 s.
        assert_eq!(r.freshness_ms.count, 2);
        assert!((r.freshness_ms.max - 2_000.0).abs() < 2.0);
        assert!((r.freshness_ms.p50 - 1_000.0).abs() < 1.0);
    }

    #[test]
    fn nothing_sent_nothing_owed() {
        let r = Ledger::new(SystemTime::now()).account(&[]);
        assert_eq!(
            r,
            LossReport {
                freshness_ms: r.freshness_ms.clone(),
                ..LossReport::default()
            }
        );
        assert_eq!(r.lost, 0);
    }
}

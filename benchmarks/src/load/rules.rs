//! Tally of the error-rate checks: was every invalid event rejected, for the right reason, and
//! no valid one?

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::Rejection;
use crate::workload::{Request, Rule};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleStat {
    pub sent: u64,
    pub rejected: u64,
    /// Invalid events the collector accepted.
    pub accepted_anyway: u64,
    /// Rejections whose reason does not name the broken field.
    pub reason_mismatch: u64,
    /// Whole request refused with a non-2xx status, so no per-event verdict.
    pub request_refused: u64,
    pub sample_reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleTally {
    pub per_rule: BTreeMap<Rule, RuleStat>,
    pub valid_rejected: u64,
    pub valid_rejected_sample: Option<String>,
}

impl RuleTally {
    pub fn record(&mut self, req: &Request, rejected: &[Rejection]) {
        for &(idx, rule) in &req.invalid {
            let stat = self.per_rule.entry(rule).or_default();
            stat.sent += 1;
            match rejected.iter().find(|r| r.index == idx) {
                Some(r) => {
                    stat.rejected += 1;
                    if !rule.reason_matches(&r.error) {
                        stat.reason_mismatch += 1;
                    }
                    if stat.sample_reason.is_none() {
                        stat.sample_reason = Some(r.error.clone());
                    }
                }
                None => stat.accepted_anyway += 1,
            }
        }
        for r in rejected {
            if !req.invalid.iter().any(|(i, _)| *i == r.index) {
                self.valid_rejected += 1;
                if self.valid_rejected_sample.is_none() {
                    self.valid_rejected_sample = Some(format!("index {}: {}", r.index, r.error));
                }
            }
        }
    }

    pub fn record_whole(&mut self, req: &Request, _status: &str) {
        for &(_, rule) in &req.invalid {
            let stat = self.per_rule.entry(rule).or_default();
            stat.sent += 1;
            stat.request_refused += 1;
        }
    }

    pub fn merge(&mut self, other: &RuleTally) {
        for (rule, s) in &other.per_rule {
            let a = self.per_rule.entry(*rule).or_default();
            a.sent += s.sent;
            a.rejected += s.rejected;
            a.accepted_anyway += s.accepted_anyway;
            a.reason_mismatch += s.reason_mismatch;
            a.request_refused += s.request_refused;
            if a.sample_reason.is_none() {
                a.sample_reason.clone_from(&s.sample_reason);
            }
        }
        self.valid_rejected += other.valid_rejected;
        if self.valid_rejected_sample.is_none() {
            self.valid_rejected_sample
                .clone_from(&other.valid_rejected_sample);
        }
    }
}

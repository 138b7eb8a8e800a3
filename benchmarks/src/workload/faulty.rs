//! Error-rate traffic: batches where one event in ten breaks exactly one validation rule, plus
//! one-off probes for the rules that apply to a whole request.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Request, Route, Workload, batch, tiny_event};
use crate::ids::Ids;

/// One per event-level rule of the Segment spec as the collector enforces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    MissingType,
    UnknownType,
    NoUserOrAnonymousId,
    TrackWithoutEvent,
    GroupWithoutGroupId,
    AliasWithoutPreviousId,
    BadTimestamp,
    MessageIdTooLong,
    EventOver32Kb,
    NotAnObject,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::MissingType,
        Rule::UnknownType,
        Rule::NoUserOrAnonymousId,
        Rule::TrackWithoutEvent,
        Rule::GroupWithoutGroupId,
        Rule::AliasWithoutPreviousId,
        Rule::BadTimestamp,
        Rule::MessageIdTooLong,
        Rule::EventOver32Kb,
        Rule::NotAnObject,
    ];

    /// Words one of which a reason for this rule should contain (lower-case match). The
    /// collector's wording is its own; these only check the reason names the right field.
    pub fn keywords(self) -> &'static [&'static str] {
        match self {
            Rule::MissingType | Rule::UnknownType => &["type"],
            Rule::NoUserOrAnonymousId => &["userid", "anonymousid"],
            Rule::TrackWithoutEvent => &["event"],
            Rule::GroupWithoutGroupId => &["groupid"],
            Rule::AliasWithoutPreviousId => &["previousid"],
            Rule::BadTimestamp => &["timestamp"],
            Rule::MessageIdTooLong => &["messageid"],
            Rule::EventOver32Kb => &["large", "size", "bytes", "kb", "32"],
            Rule::NotAnObject => &["object"],
        }
    }

    pub fn reason_matches(self, reason: &str) -> bool {
        let r = reason.to_ascii_lowercase();
        self.keywords().iter().any(|k| r.contains(k))
    }

    pub fn event(self, ids: &Ids, seq: u64) -> Value {
        let mut e = tiny_event(ids, seq);
        match self {
            Rule::MissingType => drop(e.as_object_mut().and_then(|o| o.remove("type"))),
            Rule::UnknownType => e["type"] = json!("purchase"),
            Rule::NoUserOrAnonymousId => drop(e.as_object_mut().and_then(|o| o.remove("userId"))),
            Rule::TrackWithoutEvent => drop(e.as_object_mut().and_then(|o| o.remove("event"))),
            Rule::GroupWithoutGroupId => {
                e = json!({"type": "group", "userId": "u", "messageId": ids.message_id(seq)})
            }
            Rule::AliasWithoutPreviousId => {
                e = json!({"type": "alias", "userId": "u", "messageId": ids.message_id(seq)})
            }
            Rule::BadTimestamp => e["timestamp"] = json!("yesterday at noon"),
            Rule::MessageIdTooLong => e["messageId"] = json!("m".repeat(101)),
            Rule::EventOver32Kb => e["properties"] = json!({"blob": "x".repeat(33 * 1024)}),
            Rule::NotAnObject => e = json!(42),
        }
        e
    }
}

/// Batches of `batch` events, one of which (so 1/batch of all events) is invalid, cycling
/// through every rule so each is represented whatever the run length.
pub struct Faulty {
    pub batch: u32,
    /// 0 sends only valid events: the control run the overhead is measured against.
    pub invalid_per_batch: u32,
    next_rule: std::sync::atomic::AtomicUsize,
}

impl Faulty {
    pub fn new(batch: u32, invalid_per_batch: u32) -> Self {
        Self {
            batch,
            invalid_per_batch: invalid_per_batch.min(batch),
            next_rule: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Workload for Faulty {
    fn next(&self, rng: &mut fastrand::Rng, ids: &Ids) -> Request {
        let n = u64::from(self.batch);
        let first = ids.reserve(n);
        let mut events: Vec<Value> = (0..n).map(|i| tiny_event(ids, first + i)).collect();
        let mut invalid = Vec::new();
        for _ in 0..self.invalid_per_batch {
            let idx = loop {
                let i = rng.u32(0..self.batch);
                if !invalid.iter().any(|(j, _)| *j == i) {
                    break i;
                }
            };
            let k = self
                .next_rule
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let rule = Rule::ALL[k % Rule::ALL.len()];
            events[idx as usize] = rule.event(ids, first + u64::from(idx));
            invalid.push((idx, rule));
        }
        invalid.sort();
        batch(Route::Collect, events, first, invalid)
    }
}

/// A request-level rule and the status the collector must answer it with.
#[derive(Clone, Debug)]
pub struct Probe {
    pub name: &'static str,
    pub body: Bytes,
    pub expect_status: u16,
}

/// Sent once each before the error-rate load. Their events never carry ids of this run, so
/// whatever happens to them cannot disturb the loss check.
pub fn probes() -> Vec<Probe> {
    let tiny = json!({"type": "track", "event": "e", "userId": "u"});
    let too_many: Vec<Value> = (0..2_501).map(|_| tiny.clone()).collect();
    let huge = json!({"batch": (0..20).map(|_| json!({
        "type": "track", "event": "e", "userId": "u",
        "properties": {"blob": "x".repeat(30 * 1024)}
    })).collect::<Vec<_>>()});
    let all_invalid = json!([{"type": "track", "userId": "u"}, {"event": "e"}]);
    vec![
        Probe {
            name: "malformed JSON",
            body: Bytes::from_static(b"{\"type\":\"track\","),
            expect_status: 400,
        },
        Probe {
            name: "empty batch",
            body: Bytes::from_static(b"{\"batch\":[]}"),
            expect_status: 400,
        },
        Probe {
            name: "no valid event",
            body: Bytes::from(all_invalid.to_string()),
            expect_status: 400,
        },
        Probe {
            name: "more than 2500 events",
            body: Bytes::from(json!(too_many).to_string()),
            expect_status: 400,
        },
        Probe {
            name: "body over 500 KB",
            body: Bytes::from(huge.to_string()),
            expect_status: 413,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_appears_and_one_in_ten_is_invalid() {
        let ids = Ids::new("r", 'e');
        let w = Faulty::new(10, 1);
        let mut rng = fastrand::Rng::with_seed(5);
        let reqs: Vec<_> = (0..20).map(|_| w.next(&mut rng, &ids)).collect();
        let mut seen: Vec<Rule> = reqs
            .iter()
            .flat_map(|r| r.invalid.iter().map(|(_, k)| *k))
            .collect();
        assert_eq!(seen.len(), 20);
        seen.sort();
        seen.dedup();
        assert_eq!(seen, Rule::ALL.to_vec());
        for r in &reqs {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let (idx, rule) = r.invalid[0];
            assert_eq!(
                v["batch"][idx as usize],
                rule.event(&ids, r.first_seq + u64::from(idx))
            );
        }
    }

    #[test]
    fn rule_events_break_only_their_rule() {
        let ids = Ids::new("r", 'e');
        assert!(Rule::EventOver32Kb.event(&ids, 0).to_string().len() > 32 * 1024);
        assert!(
            Rule::MessageIdTooLong.event(&ids, 0)["messageId"]
                .as_str()
                .is_some_and(|m| m.len() > 100)
        );
        assert!(
            Rule::NoUserOrAnonymousId
                .event(&ids, 0)
                .get("anonymousId")
                .is_none()
        );
        assert!(
            Rule::NoUserOrAnonymousId.reason_matches("either userId or anonymousId is required")
        );
        assert!(!Rule::BadTimestamp.reason_matches("missing field `event`"));
    }

    #[test]
    fn probes_exceed_their_limits() {
        let p = probes();
        let big = p
            .iter()
            .find(|p| p.expect_status == 413)
            .map(|p| p.body.len());
        assert!(big.is_some_and(|n| n > 500 * 1024));
        assert!(p.iter().all(|p| p.body.len() < 2 * 1024 * 1024));
    }
}

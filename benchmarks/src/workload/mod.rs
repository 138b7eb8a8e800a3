//! What each scenario sends. A workload turns sequence numbers into request bodies; it never
//! touches the network, so its shapes are unit-testable.

mod faulty;
mod prepared;
mod realistic;

use bytes::Bytes;
use serde_json::{Value, json};

pub use faulty::{Faulty, Probe, Rule, probes};
pub use prepared::{Prepared, SEQ_WIDTH, Shape};
pub use realistic::Realistic;

use crate::ids::Ids;

/// Where a request goes. `Segment` is `/v1/batch` with a write key; when the collector does not
/// serve it yet the client sends the same `{"batch":[…]}` body to `/collect/<stream>` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Collect,
    Segment,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub route: Route,
    pub body: Bytes,
    pub first_seq: u64,
    pub events: u32,
    /// Indices (within the request) the collector must reject, and why.
    pub invalid: Vec<(u32, Rule)>,
}

pub trait Workload: Send + Sync {
    fn next(&self, rng: &mut fastrand::Rng, ids: &Ids) -> Request;
}

/// The smallest valid event: one `track` call.
pub fn tiny_event(ids: &Ids, seq: u64) -> Value {
    json!({"type": "track", "event": "e", "userId": "u", "messageId": ids.message_id(seq)})
}

fn single(route: Route, event: &Value, first_seq: u64) -> Request {
    Request {
        route,
        body: Bytes::from(event.to_string()),
        first_seq,
        events: 1,
        invalid: Vec::new(),
    }
}

fn batch(route: Route, events: Vec<Value>, first_seq: u64, invalid: Vec<(u32, Rule)>) -> Request {
    let n = events.len() as u32;
    Request {
        route,
        body: Bytes::from(json!({ "batch": events }).to_string()),
        first_seq,
        events: n,
        invalid,
    }
}

/// Baseline: one tiny event per request.
pub struct Tiny;

impl Workload for Tiny {
    fn next(&self, _rng: &mut fastrand::Rng, ids: &Ids) -> Request {
        let seq = ids.reserve(1);
        single(Route::Collect, &tiny_event(ids, seq), seq)
    }
}

/// Payload-size: one event whose serialised size is at least `target` bytes (the smallest
/// valid event is ~60 B, so the 50 B case is really "as small as the spec allows").
pub struct Sized {
    pub target: usize,
}

impl Sized {
    pub fn event(&self, ids: &Ids, seq: u64) -> Value {
        let mut event = tiny_event(ids, seq);
        let base = event.to_string().len();
        // `,"properties":{"p":""}` adds 22 bytes around the padding.
        let pad = self.target.saturating_sub(base + 22);
        if pad > 0 {
            event["properties"] = json!({ "p": "x".repeat(pad) });
        }
        event
    }
}

impl Workload for Sized {
    fn next(&self, _rng: &mut fastrand::Rng, ids: &Ids) -> Request {
        let seq = ids.reserve(1);
        single(Route::Collect, &self.event(ids, seq), seq)
    }
}

/// Burst: `size` tiny events in one `{"batch":[…]}` body, so a spike moves many events, and
/// prepared so that a spike costs the generator as little as possible.
pub fn batched(size: u32, ids: &Ids) -> Prepared {
    let event = json!({"type": "track", "event": "e", "userId": "u"});
    let shape = Shape {
        route: Route::Collect,
        events: vec![event; size as usize],
        batch: true,
    };
    Prepared::new([shape], ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_events_reach_their_target_exactly_when_padding_is_possible() {
        let ids = Ids::new("abcdef", 'p');
        for target in [500, 5_000, 50_000] {
            let len = Sized { target }.event(&ids, 12_345).to_string().len();
            assert_eq!(len, target);
        }
        let small = Sized { target: 50 }.event(&ids, 1).to_string().len();
        assert!(small < 80, "{small}");
    }

    #[test]
    fn batched_bodies_carry_consecutive_ids() {
        let ids = Ids::new("r", 'u');
        let batched = batched(3, &ids);
        let mut rng = fastrand::Rng::with_seed(1);
        for expected in [vec![0, 1, 2], vec![3, 4, 5]] {
            let req = batched.next(&mut rng, &ids);
            let v: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let got: Vec<_> = v["batch"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| ids.parse(e["messageId"].as_str()?))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(got, expected);
            assert_eq!(req.events, 3);
        }
    }
}

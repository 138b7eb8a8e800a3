//! Request bodies built before the timed phase. Sending one copies its bytes and writes fresh
//! messageIds into fixed-width slots, so the generator's cost per request is a copy, not the
//! JSON building of the workload it came from.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Request, Route, Workload};
use crate::ids::Ids;

/// Base-36 digits of a stamped sequence number: 36^9 ≈ 10^14 events per scenario.
pub const SEQ_WIDTH: usize = 9;
/// What a slot holds until stamped; `z` never starts a zero-padded sequence number this small.
const PLACEHOLDER: &str = "zzzzzzzzz";

/// One request's shape: where it goes and its events, messageIds still to be filled in.
pub struct Shape {
    pub route: Route,
    pub events: Vec<Value>,
    /// `{"batch":[…]}` even for one event (Segment batches may hold one).
    pub batch: bool,
}

struct Template {
    route: Route,
    body: Vec<u8>,
    /// Byte offsets of each event's sequence-number digits, in event order.
    slots: Vec<usize>,
}

pub struct Prepared {
    templates: Vec<Template>,
    next: AtomicUsize,
}

impl Prepared {
    /// Serialises every shape once, with `ids`' prefix and a placeholder sequence number in
    /// each event's `messageId`.
    pub fn new(shapes: impl IntoIterator<Item = Shape>, ids: &Ids) -> Self {
        let placeholder_id = format!("{}{PLACEHOLDER}", ids.prefix());
        let needle = format!("\"{placeholder_id}\"");
        let templates = shapes
            .into_iter()
            .map(|shape| {
                let mut events = shape.events;
                for e in &mut events {
                    e["messageId"] = json!(placeholder_id);
                }
                let n = events.len();
                let value = match (shape.batch, events.pop()) {
                    (false, Some(single)) if n == 1 => single,
                    (_, last) => {
                        events.extend(last);
                        json!({ "batch": events })
                    }
                };
                let body = value.to_string().into_bytes();
                let slots = find_all(&body, needle.as_bytes())
                    .into_iter()
                    .map(|at| at + needle.len() - 1 - SEQ_WIDTH)
                    .collect();
                Template {
                    route: shape.route,
                    body,
                    slots,
                }
            })
            .filter(|t: &Template| !t.slots.is_empty())
            .collect();
        Self {
            templates,
            next: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Mean events per request over one cycle through the templates.
    pub fn mean_events(&self) -> f64 {
        let events: usize = self.templates.iter().map(|t| t.slots.len()).sum();
        events as f64 / self.templates.len().max(1) as f64
    }

    /// Every template stamped once with ids of `ids`, in order: the same bodies for another
    /// load tool (`wrk`), which sends them as they are.
    pub fn bodies(&self, ids: &Ids) -> Vec<(Route, Vec<u8>)> {
        self.templates
            .iter()
            .map(|t| {
                let first = ids.reserve(t.slots.len() as u64);
                (t.route, stamp(t, first))
            })
            .collect()
    }
}

impl Workload for Prepared {
    fn next(&self, _rng: &mut fastrand::Rng, ids: &Ids) -> Request {
        // Round robin: every template is sent equally often, so the mix over a run is the mix
        // that was prepared.
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.templates.len().max(1);
        let Some(t) = self.templates.get(i) else {
            return Request {
                route: Route::Collect,
                body: Bytes::from_static(b"{}"),
                first_seq: 0,
                events: 0,
                invalid: Vec::new(),
            };
        };
        let first = ids.reserve(t.slots.len() as u64);
        Request {
            route: t.route,
            body: Bytes::from(stamp(t, first)),
            first_seq: first,
            events: t.slots.len() as u32,
            invalid: Vec::new(),
        }
    }
}

fn stamp(t: &Template, first: u64) -> Vec<u8> {
    let mut body = t.body.clone();
    for (i, &at) in t.slots.iter().enumerate() {
        write_base36(&mut body[at..at + SEQ_WIDTH], first + i as u64);
    }
    body
}

/// Zero-padded base 36 into exactly `out.len()` bytes (higher digits are cut, which
/// `SEQ_WIDTH` makes unreachable in practice).
fn write_base36(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v % 36) as usize];
        v /= 36;
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shapes() -> Vec<Shape> {
        let event = |name: &str| json!({"type": "track", "event": name, "userId": "u"});
        vec![
            Shape {
                route: Route::Collect,
                events: vec![event("one")],
                batch: false,
            },
            Shape {
                route: Route::Segment,
                events: vec![event("a"), event("b"), event("c")],
                batch: true,
            },
        ]
    }

    fn ids_of(body: &[u8], ids: &Ids) -> Vec<u64> {
        let v: Value = serde_json::from_slice(body).unwrap();
        let events = match v.get("batch") {
            Some(batch) => batch.as_array().unwrap().clone(),
            None => vec![v],
        };
        events
            .iter()
            .map(|e| ids.parse(e["messageId"].as_str().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn every_send_carries_fresh_consecutive_ids_in_valid_json() {
        let ids = Ids::new("a1b2c3", 'r');
        let p = Prepared::new(shapes(), &ids);
        assert_eq!((p.len(), p.mean_events()), (2, 2.0));
        let mut rng = fastrand::Rng::with_seed(1);
        let sent: Vec<Request> = (0..4).map(|_| p.next(&mut rng, &ids)).collect();
        let got: Vec<Vec<u64>> = sent.iter().map(|r| ids_of(&r.body, &ids)).collect();
        assert_eq!(got, vec![vec![0], vec![1, 2, 3], vec![4], vec![5, 6, 7]]);
        assert_eq!(sent[1].route, Route::Segment);
        assert_eq!(sent[1].first_seq, 1);
        assert_eq!(ids.issued(), 8);
        let single: Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(
            single["event"], "one",
            "a single event is sent bare, not as a batch"
        );
    }

    #[test]
    fn stamped_numbers_round_trip_at_full_width() {
        let mut buf = [0u8; SEQ_WIDTH];
        write_base36(&mut buf, 36u64.pow(9) - 1);
        assert_eq!(&buf, b"zzzzzzzzz");
        write_base36(&mut buf, 37);
        assert_eq!(&buf, b"000000011");
        let ids = Ids::new("r", 'x');
        assert_eq!(ids.parse("r-x000000011"), Some(37));
    }
}

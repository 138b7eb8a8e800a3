//! A bounded window of recently seen `messageId`s per stream, so an event delivered twice (a
//! Pub/Sub redelivery, a client retrying after a lost answer) is stored once. The window holds
//! at most `max_ids` ids for at most `max_age`; what falls outside it is not deduplicated here
//! and is left to queries (`specs/pubsub.md` says how).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use eventkit_model::Event;

/// An id's place in the window: a 128-bit hash of stream and message id. Hash keys are random
/// per process, so a client cannot craft ids that collide with another client's and get them
/// dropped; by chance, two of a million ids collide with odds near 10⁻²⁷.
pub type Key = u128;

/// Which delivery holds an id until it is stored. An id whose delivery is released unstored is
/// forgotten, so its redelivery is not mistaken for a duplicate.
pub type Owner = u64;

pub struct DedupWindow {
    max_ids: usize,
    max_age: Duration,
    started: Instant,
    owners: HashMap<Key, Owner>,
    /// Ids in arrival order, with their owner and arrival second, for eviction by count and age.
    order: VecDeque<(Key, Owner, u32)>,
    hashers: [RandomState; 2],
}

impl DedupWindow {
    pub fn new(max_ids: usize, max_age: Duration) -> Self {
        Self {
            max_ids,
            max_age,
            started: Instant::now(),
            owners: HashMap::new(),
            order: VecDeque::new(),
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    pub fn key(&self, stream: &str, message_id: &str) -> Key {
        let [high, low] = self
            .hashers
            .each_ref()
            .map(|h| h.hash_one((stream, message_id)));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Records `key` for `owner`; false when the window already holds it (a duplicate).
    pub fn insert(&mut self, key: Key, owner: Owner) -> bool {
        self.evict(Instant::now());
        if self.max_ids == 0 {
            return true;
        }
        match self.owners.entry(key) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(owner);
                self.order
                    .push_back((key, owner, self.seconds(Instant::now())));
                true
            }
        }
    }

    /// `events` without those whose id the window holds, recording the rest for `owner`; also
    /// the keys recorded, for [`DedupWindow::forget`]. Removed events are counted.
    pub fn retain_new(
        &mut self,
        stream: &str,
        events: Vec<Event>,
        owner: Owner,
    ) -> (Vec<Event>, Vec<Key>) {
        let before = events.len();
        let mut keys = Vec::with_capacity(before);
        let kept: Vec<Event> = events
            .into_iter()
            .filter(|event| {
                let key = self.key(stream, event.message_id());
                let new = self.insert(key, owner);
                if new {
                    keys.push(key);
                }
                new
            })
            .collect();
        let removed = before - kept.len();
        if removed > 0 {
            metrics::counter!(crate::telemetry::DUPLICATES_REMOVED).increment(removed as u64);
        }
        (kept, keys)
    }

    /// Forgets the ids `owner` recorded: its delivery was released without being stored.
    pub fn forget(&mut self, keys: &[Key], owner: Owner) {
        for key in keys {
            if let Entry::Occupied(entry) = self.owners.entry(*key)
                && *entry.get() == owner
            {
                entry.remove();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    fn seconds(&self, now: Instant) -> u32 {
        u32::try_from(now.duration_since(self.started).as_secs()).unwrap_or(u32::MAX)
    }

    fn evict(&mut self, now: Instant) {
        let max_age = u32::try_from(self.max_age.as_secs()).unwrap_or(u32::MAX);
        let oldest_kept = self.seconds(now).saturating_sub(max_age);
        while let Some(&(key, owner, second)) = self.order.front() {
            if self.order.len() < self.max_ids && second >= oldest_kept {
                break;
            }
            self.order.pop_front();
            // A forgotten id may have been recorded again since, by another owner.
            if self.owners.get(&key) == Some(&owner) {
                self.owners.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_a_duplicate_within_the_window_only() {
        let mut window = DedupWindow::new(3, Duration::from_secs(600));
        let keys: Vec<Key> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| window.key("web", id))
            .collect();
        assert!(window.insert(keys[0], 1));
        assert!(!window.insert(keys[0], 2), "same id again");
        assert!(
            window.insert(window.key("app", "a"), 1),
            "same id, other stream"
        );
        assert!(window.insert(keys[1], 1));
        // The window holds three ids: recording a fourth evicts the oldest ("a" in web).
        assert!(window.insert(keys[2], 1));
        assert_eq!(window.len(), 3);
        assert!(window.insert(keys[0], 3), "evicted, so no longer known");
    }

    #[test]
    fn forgotten_ids_are_new_again_but_only_their_owners() {
        let mut window = DedupWindow::new(10, Duration::from_secs(600));
        let (a, b) = (window.key("web", "a"), window.key("web", "b"));
        assert!(window.insert(a, 1));
        assert!(window.insert(b, 2));
        window.forget(&[a, b], 1);
        assert!(window.insert(a, 3), "owner 1 released it unstored");
        assert!(!window.insert(b, 3), "owner 2 still holds it");
    }

    #[test]
    fn ids_older_than_the_window_are_evicted() {
        let mut window = DedupWindow::new(10, Duration::ZERO);
        let a = window.key("web", "a");
        assert!(window.insert(a, 1));
        // With a zero age, the next insert (a second or more later, or now) may evict it; force
        // the clock past it by rewinding the window's start.
        window.started -= Duration::from_secs(2);
        window.order.iter_mut().for_each(|entry| entry.2 = 0);
        assert!(window.insert(window.key("web", "b"), 1));
        assert!(window.insert(a, 2));
    }

    /// Resident memory of this process, from `/proc/self/statm` (Linux).
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// The figure in benchmarks/results/fidelity.md. Run alone (other tests would move the
    /// process's memory): `cargo test -p eventkit --lib memory_per_million -- --ignored --nocapture`
    #[test]
    #[ignore = "prints a figure; run alone"]
    fn memory_per_million_ids() {
        const IDS: usize = 1_000_000;
        let before = resident_bytes();
        let mut window = DedupWindow::new(IDS, Duration::from_secs(600));
        for i in 0..IDS {
            let key = window.key("web", &format!("{i:08x}-5f0e-7c1a-9d2b-3e4f5a6b7c8d"));
            assert!(window.insert(key, 1));
        }
        let after = resident_bytes();
        assert_eq!(window.len(), IDS);
        println!(
            "{IDS} ids: {:.1} MiB resident, {:.0} bytes per id",
            (after - before) as f64 / (1024.0 * 1024.0),
            (after - before) as f64 / IDS as f64
        );
    }
}

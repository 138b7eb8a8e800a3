//! The bound on distinct streams. Stream names come from clients (`/collect/<stream>`), and each
//! one costs a batch buffer, files and metric series for as long as the process runs; so only
//! `server.max_streams` of them are taken, first come, besides the dead-letter stream and the
//! configured ones, which are always taken.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use eventkit_model::EventType;
use metrics::Counter;

use crate::telemetry;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "stream {stream:?} is refused: this collector takes at most {limit} streams besides its configured ones (server.max_streams), and all are in use"
)]
pub struct StreamLimit {
    pub stream: String,
    pub limit: usize,
}

/// A stream's ingest counters, registered once when the stream is first taken, so a request
/// counts without looking its series up.
pub struct StreamCounters {
    accepted: [Counter; EventType::ALL.len()],
    rejected: Counter,
    refused: Counter,
}

impl StreamCounters {
    fn register(stream: &str) -> Arc<Self> {
        Arc::new(Self {
            accepted: EventType::ALL.map(|event_type| {
                metrics::counter!(telemetry::EVENTS_ACCEPTED, "stream" => stream.to_owned(), "type" => event_type.as_str())
            }),
            rejected: metrics::counter!(telemetry::EVENTS_REJECTED, "stream" => stream.to_owned()),
            refused: metrics::counter!(telemetry::REQUESTS_REFUSED, "stream" => stream.to_owned()),
        })
    }

    pub fn accepted(&self, event_type: EventType, count: u64) {
        // `ALL` lists the variants in declaration order.
        self.accepted[event_type as usize].increment(count);
    }

    pub fn rejected(&self, count: u64) {
        self.rejected.increment(count);
    }

    pub fn refused(&self) {
        self.refused.increment(1);
    }
}

pub struct StreamRegistry {
    /// Tells this registry's entries in a thread's cache from another's (tests run several
    /// servers in one process).
    id: u64,
    limit: usize,
    always: HashSet<String>,
    taken: Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    counters: HashMap<String, Arc<StreamCounters>>,
    /// Of those, the ones that count against the limit (not configured).
    limited: usize,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Streams this thread has seen taken, so a request normally checks its stream without a lock.
#[derive(Default)]
struct ThreadTaken {
    registry: u64,
    last: Option<(String, Arc<StreamCounters>)>,
    seen: HashMap<String, Arc<StreamCounters>>,
}

thread_local! {
    static THREAD_TAKEN: RefCell<ThreadTaken> = RefCell::default();
}

impl StreamRegistry {
    pub fn new(limit: usize, always: impl IntoIterator<Item = String>) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            limit,
            always: always.into_iter().collect(),
            taken: Mutex::default(),
        }
    }

    /// Takes `stream` if it is known or there is room for it, and hands back its counters.
    pub fn admit(&self, stream: &str) -> Result<Arc<StreamCounters>, StreamLimit> {
        let cached = THREAD_TAKEN.with(|cell| {
            let mut cache = cell.try_borrow_mut().ok()?;
            if cache.registry != self.id {
                *cache = ThreadTaken {
                    registry: self.id,
                    ..ThreadTaken::default()
                };
            }
            if let Some((name, counters)) = &cache.last
                && name == stream
            {
                return Some(counters.clone());
            }
            let counters = cache.seen.get(stream)?.clone();
            cache.last = Some((stream.to_owned(), counters.clone()));
            Some(counters)
        });
        if let Some(counters) = cached {
            return Ok(counters);
        }
        let counters = self.admit_shared(stream)?;
        THREAD_TAKEN.with(|cell| {
            if let Ok(mut cache) = cell.try_borrow_mut()
                && cache.registry == self.id
            {
                cache.seen.insert(stream.to_owned(), counters.clone());
                cache.last = Some((stream.to_owned(), counters.clone()));
            }
        });
        Ok(counters)
    }

    fn admit_shared(&self, stream: &str) -> Result<Arc<StreamCounters>, StreamLimit> {
        // Only names and counters, whole at every step: a poisoned lock is used as it is.
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = taken.counters.get(stream) {
            return Ok(counters.clone());
        }
        let limited = !self.always.contains(stream);
        if limited && taken.limited >= self.limit {
            metrics::counter!(telemetry::STREAMS_REFUSED).increment(1);
            return Err(StreamLimit {
                stream: stream.to_owned(),
                limit: self.limit,
            });
        }
        let counters = StreamCounters::register(stream);
        taken.counters.insert(stream.to_owned(), counters.clone());
        taken.limited += usize::from(limited);
        Ok(counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_streams_up_to_the_limit_and_always_the_configured_ones() {
        let registry = StreamRegistry::new(2, ["_rejected".to_owned(), "web".to_owned()]);
        assert!(registry.admit("a").is_ok());
        assert!(registry.admit("b").is_ok());
        assert!(registry.admit("a").is_ok());
        let refused = registry.admit("c").err();
        assert_eq!(
            refused,
            Some(StreamLimit {
                stream: "c".to_owned(),
                limit: 2
            })
        );
        assert!(refused.is_some_and(|e| e.to_string().contains("server.max_streams")));
        assert!(registry.admit("web").is_ok());
        assert!(registry.admit("_rejected").is_ok());
        // Another registry on the same thread keeps its own count.
        let other = StreamRegistry::new(1, []);
        assert!(other.admit("c").is_ok());
        assert!(other.admit("a").is_err());
        assert!(registry.admit("b").is_ok());
        // A stream's counters are registered once, whichever thread asks.
        let (Ok(first), Ok(again)) = (registry.admit("a"), registry.admit("a")) else {
            panic!("a was taken");
        };
        assert!(Arc::ptr_eq(&first, &again));
        let elsewhere = std::thread::scope(|scope| scope.spawn(|| registry.admit("a").ok()).join());
        assert!(
            elsewhere
                .ok()
                .flatten()
                .is_some_and(|c| Arc::ptr_eq(&c, &first))
        );
    }
}

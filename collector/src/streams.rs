//! The bound on distinct streams. Stream names come from clients (`/collect/<stream>`), and each
//! one costs a batch buffer, files and metric series for as long as the process runs; so only
//! `server.max_streams` of them are taken, first come, besides the dead-letter stream and the
//! configured ones, which are always taken.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "stream {stream:?} is refused: this collector takes at most {limit} streams besides its configured ones (server.max_streams), and all are in use"
)]
pub struct StreamLimit {
    pub stream: String,
    pub limit: usize,
}

pub struct StreamRegistry {
    /// Tells this registry's entries in a thread's cache from another's (tests run several
    /// servers in one process).
    id: u64,
    limit: usize,
    always: HashSet<String>,
    taken: Mutex<HashSet<String>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Streams this thread has seen taken, so a request normally checks its stream without a lock.
#[derive(Default)]
struct ThreadTaken {
    registry: u64,
    last: String,
    seen: HashSet<String>,
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

    /// Takes `stream` if it is known or there is room for it.
    pub fn admit(&self, stream: &str) -> Result<(), StreamLimit> {
        let cached = THREAD_TAKEN.with(|cell| {
            let Ok(mut cache) = cell.try_borrow_mut() else {
                return false;
            };
            if cache.registry != self.id {
                *cache = ThreadTaken {
                    registry: self.id,
                    ..ThreadTaken::default()
                };
            }
            if cache.last == stream {
                return true;
            }
            if cache.seen.contains(stream) {
                stream.clone_into(&mut cache.last);
                return true;
            }
            false
        });
        if cached || self.always.contains(stream) {
            return Ok(());
        }
        self.admit_shared(stream)?;
        THREAD_TAKEN.with(|cell| {
            if let Ok(mut cache) = cell.try_borrow_mut()
                && cache.registry == self.id
            {
                cache.seen.insert(stream.to_owned());
                stream.clone_into(&mut cache.last);
            }
        });
        Ok(())
    }

    fn admit_shared(&self, stream: &str) -> Result<(), StreamLimit> {
        // Only names, whole at every step: a poisoned lock is used as it is.
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        if taken.contains(stream) {
            return Ok(());
        }
        if taken.len() >= self.limit {
            metrics::counter!(crate::telemetry::STREAMS_REFUSED).increment(1);
            return Err(StreamLimit {
                stream: stream.to_owned(),
                limit: self.limit,
            });
        }
        taken.insert(stream.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_streams_up_to_the_limit_and_always_the_configured_ones() {
        let registry = StreamRegistry::new(2, ["_rejected".to_owned(), "web".to_owned()]);
        assert_eq!(registry.admit("a"), Ok(()));
        assert_eq!(registry.admit("b"), Ok(()));
        assert_eq!(registry.admit("a"), Ok(()));
        let refused = registry.admit("c");
        assert_eq!(
            refused,
            Err(StreamLimit {
                stream: "c".to_owned(),
                limit: 2
            })
        );
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("server.max_streams"))
        );
        assert_eq!(registry.admit("web"), Ok(()));
        assert_eq!(registry.admit("_rejected"), Ok(()));
        // Another registry on the same thread keeps its own count.
        let other = StreamRegistry::new(1, []);
        assert_eq!(other.admit("c"), Ok(()));
        assert!(other.admit("a").is_err());
        assert_eq!(registry.admit("b"), Ok(()));
    }
}

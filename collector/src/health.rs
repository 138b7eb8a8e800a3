//! What `/ready` reports besides queue room: whether the store is taking files. The batcher
//! sets it after each write; the probe only reads it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the last write to the sink succeeded.
#[derive(Debug)]
pub struct SinkHealth(AtomicBool);

impl Default for SinkHealth {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl SinkHealth {
    pub fn is_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }
}

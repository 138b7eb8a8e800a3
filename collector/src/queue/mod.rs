//! The queue between the HTTP handlers and the batch writers. Modes differ only here.
//!
//! The contract every mode keeps:
//! - `enqueue` resolves only when the records are as safe as the mode promises (in memory for
//!   `async`; acknowledged by Pub/Sub for `pubsub`; fsynced for a write-ahead log), so a 2xx
//!   answer is never given for records the mode could still lose.
//! - A delivery is acknowledged with [`Ack::ack`] only after its file is stored. Until then the
//!   queue still holds it (and, for in-process mode, still counts it against capacity), which is
//!   what bounds memory across the queue *and* the batch buffers. An `Ack` dropped unacknowledged
//!   gives its capacity back and leaves the records to the mode's redelivery (the WAL replays
//!   them at the next start; Pub/Sub redelivers the message).

mod deduplicated;
mod in_process;
pub mod pubsub;
pub mod wal;

use async_trait::async_trait;
use eventkit_model::Batch;

pub use deduplicated::Deduplicated;
pub use in_process::{InProcessConsumer, InProcessQueue};
pub use wal::{WalConsumer, WalQueue};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// Back-pressure: the caller should answer 503 with `Retry-After`.
    #[error("the queue is full")]
    Full,
    /// Larger than the queue could ever hold: retrying will not help.
    #[error("{0} exceeds the queue's total capacity")]
    TooLarge(String),
    #[error("the queue is shutting down")]
    Closed,
    #[error("the queue backend failed: {0}")]
    Backend(String),
    /// The backend cannot take records now (unreachable, or too slow to acknowledge): 503.
    #[error("{0}")]
    Unavailable(&'static str),
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    async fn enqueue(&self, batches: Vec<Batch>) -> Result<(), QueueError>;

    /// Records accepted and not yet stored.
    fn depth(&self) -> usize;

    /// Whether a typical request would be accepted now; feeds `/ready`.
    fn has_room(&self) -> bool;

    /// Stops accepting. The consumer then drains what is queued and ends.
    fn close(&self);
}

#[async_trait]
pub trait Consumer: Send + 'static {
    /// Waits for a delivery, then moves up to `max` of those ready into `into`. Returns how many
    /// it moved: 0 only once the queue is closed and drained. Taking what is ready in one call
    /// spares the batcher a wake-up per request under load.
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize;

    /// True when the queue cannot take a full request until deliveries are acknowledged: the
    /// batcher then writes what it holds now instead of waiting for size or age limits, which
    /// could otherwise never be reached while clients are being refused.
    fn is_backlogged(&self) -> bool {
        false
    }
}

pub struct Delivery {
    pub batch: Batch,
    pub ack: Ack,
    /// `batch.records.approx_bytes()`, measured once by the queue (which sizes its capacity by
    /// it) so the batcher's byte limit does not walk every record again.
    pub approx_bytes: usize,
}

/// How a delivery left the batcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its file is stored: the queue may forget it.
    Stored,
    /// Dropped unacknowledged (a failed encode, a stop at the grace deadline, a panic): the
    /// queue gives back its capacity, and a durable mode keeps the records for redelivery.
    Released,
}

/// Settles a delivery with the queue: [`Ack::ack`] once its file is stored; dropping it
/// unacknowledged releases it instead, so capacity always comes back.
#[must_use = "an Ack dropped unacknowledged releases its delivery for redelivery"]
pub struct Ack(Option<Box<dyn FnOnce(Settled) + Send>>);

impl Ack {
    /// An ack whose release does nothing (the records are simply forgotten).
    pub fn new(on_ack: impl FnOnce() + Send + 'static) -> Self {
        Self::settled_by(|settled| {
            if settled == Settled::Stored {
                on_ack();
            }
        })
    }

    /// One closure for both paths, so an ack that does something either way (give capacity
    /// back; ack or nack a message) is one allocation.
    pub fn settled_by(on_settle: impl FnOnce(Settled) + Send + 'static) -> Self {
        Self(Some(Box::new(on_settle)))
    }

    /// This ack, with `also` run when it is released unstored (before the queue's own release).
    pub fn on_release(mut self, also: impl FnOnce() + Send + 'static) -> Self {
        let inner = self.0.take();
        Self::settled_by(move |settled| {
            if settled == Settled::Released {
                also();
            }
            if let Some(on_settle) = inner {
                on_settle(settled);
            }
        })
    }

    pub fn ack(mut self) {
        if let Some(on_settle) = self.0.take() {
            on_settle(Settled::Stored);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(on_settle) = self.0.take() {
            metrics::counter!(crate::telemetry::DELIVERIES_RELEASED).increment(1);
            on_settle(Settled::Released);
        }
    }
}

/// `n` dead letters for `stream`: the smallest records, for queue and batcher tests.
#[cfg(test)]
pub(crate) fn test_batch(stream: &str, n: usize) -> Batch {
    let rejected = (0..n)
        .map(|i| eventkit_model::Rejected {
            received_at: chrono::Utc::now(),
            stream: stream.into(),
            index: u32::try_from(i).unwrap_or(u32::MAX),
            error: "e".into(),
            raw: "{}".into(),
            context_ip: None,
        })
        .collect();
    Batch {
        stream: stream.into(),
        records: eventkit_model::Records::Rejected(rejected),
    }
}

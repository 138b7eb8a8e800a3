//! `async` mode: a bounded in-process queue. Accepted records live in memory until stored, so a
//! crash loses them; a graceful stop does not (the batcher drains and flushes everything).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use eventkit_sinks::Batch;
use tokio::sync::mpsc;

use super::{Ack, Consumer, Delivery, Queue, QueueError};

/// Bytes are counted in KiB so both budgets fit one 64-bit word.
const BYTES_PER_KIB: usize = 1024;

/// Room for "a full request": the most events one request may carry, and a request body's
/// worth of bytes twice over (decoded records take more memory than their JSON).
const FULL_REQUEST_KIB: u64 = (2 * crate::ingest::MAX_BODY_BYTES / BYTES_PER_KIB) as u64;

/// Both budgets, events and KiB, in one word: a request takes its share of both in a single
/// compare-and-swap, so it is queued whole or not at all and no lock sits on the request path.
/// Aligned to a cache line of its own so the reference count beside it in its `Arc` (touched by
/// the batcher) does not share the line every request writes.
#[repr(align(64))]
struct Capacity {
    /// Free events in the low 32 bits, free KiB in the high 32.
    free: AtomicU64,
    events: u64,
    kib: u64,
}

const LOW: u64 = u32::MAX as u64;

fn pack(events: u64, kib: u64) -> u64 {
    events | (kib << 32)
}

fn unpack(free: u64) -> (u64, u64) {
    (free & LOW, free >> 32)
}

impl Capacity {
    fn new(events: usize, bytes: usize) -> Self {
        let events = (events as u64).min(LOW);
        let kib = ((bytes / BYTES_PER_KIB).max(1) as u64).min(LOW);
        Self {
            free: AtomicU64::new(pack(events, kib)),
            events,
            kib,
        }
    }

    fn free(&self) -> (u64, u64) {
        unpack(self.free.load(Ordering::Relaxed))
    }

    fn try_take(&self, events: u64, kib: u64) -> bool {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                let (free_events, free_kib) = unpack(free);
                (free_events >= events && free_kib >= kib)
                    .then(|| pack(free_events - events, free_kib - kib))
            })
            .is_ok()
    }

    fn give_back(&self, events: u64, kib: u64) {
        self.free.fetch_add(pack(events, kib), Ordering::AcqRel);
    }

    fn fits_a_full_request(&self) -> bool {
        let (events, kib) = self.free();
        events >= (crate::ingest::MAX_EVENTS_PER_REQUEST as u64).min(self.events)
            && kib >= FULL_REQUEST_KIB.min(self.kib)
    }
}

/// What the channel carries: a request's batch with its measured size, and the mark that the
/// producing side has closed. The consumer turns a batch into a [`Delivery`] with its ack, so
/// the request path allocates no ack and touches no reference count.
enum Message {
    Batch { batch: Batch, approx_bytes: usize },
    Closed,
}

/// The capacity a batch holds: its records, and its size in KiB.
fn held(batch: &Batch, approx_bytes: usize) -> (u64, u64) {
    (batch.records.len() as u64, kib(approx_bytes))
}

pub struct InProcessQueue {
    capacity: Arc<Capacity>,
    closed: AtomicBool,
    sender: mpsc::UnboundedSender<Message>,
}

pub struct InProcessConsumer {
    receiver: mpsc::UnboundedReceiver<Message>,
    received: Vec<Message>,
    capacity: Arc<Capacity>,
}

impl InProcessQueue {
    /// The channel itself is unbounded only in name: nothing enters it without capacity taken
    /// first, and capacity returns only when the delivery's file is stored.
    pub fn new(event_capacity: usize, byte_capacity: usize) -> (Arc<Self>, InProcessConsumer) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let capacity = Arc::new(Capacity::new(event_capacity, byte_capacity));
        let consumer = InProcessConsumer {
            receiver,
            received: Vec::new(),
            capacity: capacity.clone(),
        };
        let queue = Arc::new(Self {
            capacity,
            closed: AtomicBool::new(false),
            sender,
        });
        (queue, consumer)
    }
}

fn kib(bytes: usize) -> u64 {
    bytes.div_ceil(BYTES_PER_KIB) as u64
}

#[async_trait]
impl Queue for InProcessQueue {
    async fn enqueue(&self, batches: Vec<Batch>) -> Result<(), QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        // Sizing a batch is a sum over its records of lengths already known, cheap enough to
        // do twice rather than keep the sizes.
        let (mut events, mut kibs) = (0, 0);
        for batch in &batches {
            let (batch_events, batch_kib) = held(batch, batch.records.approx_bytes());
            events += batch_events;
            kibs += batch_kib;
        }
        if events > self.capacity.events {
            return Err(QueueError::TooLarge(format!(
                "a request of {events} events"
            )));
        }
        if kibs > self.capacity.kib {
            return Err(QueueError::TooLarge(format!("a request of {kibs} KiB")));
        }
        if !self.capacity.try_take(events, kibs) {
            return Err(QueueError::Full);
        }
        for batch in batches {
            let approx_bytes = batch.records.approx_bytes();
            let (batch_events, batch_kib) = held(&batch, approx_bytes);
            if self
                .sender
                .send(Message::Batch {
                    batch,
                    approx_bytes,
                })
                .is_err()
            {
                // The consumer is gone: what was not sent goes back.
                self.capacity.give_back(events, kibs);
                return Err(QueueError::Closed);
            }
            events -= batch_events;
            kibs -= batch_kib;
        }
        Ok(())
    }

    fn depth(&self) -> usize {
        let (free_events, _) = self.capacity.free();
        usize::try_from(self.capacity.events.saturating_sub(free_events)).unwrap_or(usize::MAX)
    }

    fn has_room(&self) -> bool {
        // "Room" means a full-size request would fit; near-full is reported as not ready so a
        // load balancer can steer traffic away before clients see 503s.
        self.capacity.fits_a_full_request()
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // The consumer closes its end when it reads this, so a request that slipped past
            // the flag above either lands before the mark is acted on (and is drained) or is
            // refused: never queued and then dropped.
            let _ = self.sender.send(Message::Closed);
        }
    }
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize {
        loop {
            if self.receiver.recv_many(&mut self.received, max).await == 0 {
                return 0;
            }
            let before = into.len();
            for message in self.received.drain(..) {
                match message {
                    Message::Batch {
                        batch,
                        approx_bytes,
                    } => {
                        let (events, kib) = held(&batch, approx_bytes);
                        let capacity = self.capacity.clone();
                        into.push(Delivery {
                            batch,
                            ack: Ack::new(move || capacity.give_back(events, kib)),
                            approx_bytes,
                        });
                    }
                    Message::Closed => self.receiver.close(),
                }
            }
            if into.len() > before {
                return into.len() - before;
            }
        }
    }

    fn is_backlogged(&self) -> bool {
        !self.capacity.fits_a_full_request()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Batch {
        crate::queue::test_batch("_rejected", n)
    }

    async fn next(consumer: &mut InProcessConsumer) -> Option<Delivery> {
        let mut one = Vec::with_capacity(1);
        consumer.next_many(&mut one, 1).await;
        one.pop()
    }

    #[tokio::test]
    async fn full_queue_refuses_until_acknowledged() {
        let (queue, mut consumer) = InProcessQueue::new(10, 1 << 20);
        assert_eq!(queue.enqueue(vec![batch(6)]).await, Ok(()));
        assert_eq!(queue.enqueue(vec![batch(6)]).await, Err(QueueError::Full));
        assert_eq!(queue.depth(), 6);
        let delivery = next(&mut consumer).await;
        assert!(delivery.is_some());
        // Still held: received by the batcher is not the same as stored.
        assert_eq!(queue.enqueue(vec![batch(6)]).await, Err(QueueError::Full));
        if let Some(d) = delivery {
            d.ack.ack();
        }
        assert_eq!(queue.depth(), 0);
        assert_eq!(queue.enqueue(vec![batch(6)]).await, Ok(()));
    }

    #[tokio::test]
    async fn requests_larger_than_the_whole_queue_are_refused_outright() {
        let (queue, _consumer) = InProcessQueue::new(10, 1024);
        assert!(matches!(
            queue.enqueue(vec![batch(11)]).await,
            Err(QueueError::TooLarge(_))
        ));
        // Ten dead letters fit the event budget but not one KiB.
        assert!(matches!(
            queue.enqueue(vec![batch(10)]).await,
            Err(QueueError::TooLarge(_))
        ));
        assert_eq!(queue.depth(), 0);
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let (queue, mut consumer) = InProcessQueue::new(10, 1 << 20);
        assert_eq!(queue.enqueue(vec![batch(2), batch(3)]).await, Ok(()));
        queue.close();
        assert_eq!(queue.enqueue(vec![batch(1)]).await, Err(QueueError::Closed));
        assert_eq!(
            next(&mut consumer).await.map(|d| d.batch.records.len()),
            Some(2)
        );
        assert_eq!(
            next(&mut consumer).await.map(|d| d.batch.records.len()),
            Some(3)
        );
        assert!(next(&mut consumer).await.is_none());
    }
}

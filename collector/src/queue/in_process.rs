//! `async` mode: a bounded in-process queue. Accepted records live in memory until stored, so a
//! crash loses them; a graceful stop does not (the batcher drains and flushes everything).

use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use eventkit_sinks::Batch;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::{Ack, Consumer, Delivery, Queue, QueueError};

/// Permits count bytes in KiB so a large queue fits the semaphore's `u32` requests.
const BYTES_PER_PERMIT: usize = 1024;

/// Room for "a full request": the most events one request may carry, and a request body's
/// worth of bytes twice over (decoded records take more memory than their JSON).
const FULL_REQUEST_KIB: usize = 2 * crate::ingest::MAX_BODY_BYTES / BYTES_PER_PERMIT;

/// Capacity left, shared by the producing and the consuming side.
#[derive(Clone)]
struct Capacity {
    events: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    event_capacity: usize,
    kib_capacity: usize,
}

impl Capacity {
    fn fits_a_full_request(&self) -> bool {
        self.events.available_permits()
            >= crate::ingest::MAX_EVENTS_PER_REQUEST.min(self.event_capacity)
            && self.bytes.available_permits() >= FULL_REQUEST_KIB.min(self.kib_capacity)
    }
}

pub struct InProcessQueue {
    capacity: Capacity,
    sender: Mutex<Option<mpsc::UnboundedSender<Delivery>>>,
}

pub struct InProcessConsumer {
    receiver: mpsc::UnboundedReceiver<Delivery>,
    capacity: Capacity,
}

impl InProcessQueue {
    /// The channel itself is unbounded only in name: nothing enters it without permits from
    /// both semaphores, and permits return only when the delivery's file is stored.
    pub fn new(event_capacity: usize, byte_capacity: usize) -> (Arc<Self>, InProcessConsumer) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let kib = (byte_capacity / BYTES_PER_PERMIT).max(1);
        let kib = kib.min(Semaphore::MAX_PERMITS);
        let event_capacity = event_capacity.min(Semaphore::MAX_PERMITS);
        let capacity = Capacity {
            events: Arc::new(Semaphore::new(event_capacity)),
            bytes: Arc::new(Semaphore::new(kib)),
            event_capacity,
            kib_capacity: kib,
        };
        let consumer = InProcessConsumer {
            receiver,
            capacity: capacity.clone(),
        };
        let queue = Arc::new(Self {
            capacity,
            sender: Mutex::new(Some(sender)),
        });
        (queue, consumer)
    }

    fn permits(
        semaphore: &Arc<Semaphore>,
        amount: usize,
        what: &str,
    ) -> Result<OwnedSemaphorePermit, QueueError> {
        let amount = u32::try_from(amount).map_err(|_| QueueError::TooLarge(what.to_owned()))?;
        match semaphore.clone().try_acquire_many_owned(amount) {
            Ok(permit) => Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => Err(QueueError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(QueueError::Full),
        }
    }
}

#[async_trait]
impl Queue for InProcessQueue {
    async fn enqueue(&self, batches: Vec<Batch>) -> Result<(), QueueError> {
        let sizes: Vec<(usize, usize)> = batches
            .iter()
            .map(|b| (b.records.len(), b.records.approx_bytes()))
            .collect();
        let total_events: usize = sizes.iter().map(|s| s.0).sum();
        let kib = |bytes: usize| bytes.div_ceil(BYTES_PER_PERMIT);
        let total_kib: usize = sizes.iter().map(|s| kib(s.1)).sum();
        if total_events > self.capacity.event_capacity {
            return Err(QueueError::TooLarge(format!(
                "a request of {total_events} events"
            )));
        }
        // Both reservations are taken before anything is sent, so a request is queued whole or
        // not at all: a client never sees a 503 for a request that was half accepted.
        let mut event_permits = Self::permits(&self.capacity.events, total_events, "request")?;
        let mut byte_permits = Self::permits(&self.capacity.bytes, total_kib, "request")?;
        let guard = self.sender.lock().map_err(|_| QueueError::Closed)?;
        let sender = guard.as_ref().ok_or(QueueError::Closed)?;
        for (batch, (events, approx_bytes)) in batches.into_iter().zip(sizes) {
            let held = (
                event_permits.split(events).ok_or(QueueError::Closed)?,
                byte_permits
                    .split(kib(approx_bytes))
                    .ok_or(QueueError::Closed)?,
            );
            let ack = Ack::new(move || drop(held));
            sender
                .send(Delivery {
                    batch,
                    ack,
                    approx_bytes,
                })
                .map_err(|_| QueueError::Closed)?;
        }
        Ok(())
    }

    fn depth(&self) -> usize {
        self.capacity
            .event_capacity
            .saturating_sub(self.capacity.events.available_permits())
    }

    fn has_room(&self) -> bool {
        // "Room" means a full-size request would fit; near-full is reported as not ready so a
        // load balancer can steer traffic away before clients see 503s.
        self.capacity.fits_a_full_request()
    }

    fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
    }
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize {
        self.receiver.recv_many(into, max).await
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

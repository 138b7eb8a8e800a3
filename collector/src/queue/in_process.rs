//! `async` mode: a bounded in-process queue. Accepted records live in memory until stored, so a
//! crash loses them; a graceful stop does not (the batcher drains and flushes everything).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use eventkit_model::Batch;
use tokio::sync::mpsc;

use super::{Ack, Consumer, Delivery, Queue, QueueError, Settled};

/// Bytes are counted in KiB so both budgets fit one 64-bit word.
const BYTES_PER_KIB: usize = 1024;

/// Room for "a full request": the most events one request may carry, and a request body's
/// worth of bytes twice over (decoded records take more memory than their JSON).
const FULL_REQUEST_KIB: u64 = (2 * crate::ingest::MAX_BODY_BYTES / BYTES_PER_KIB) as u64;

/// Both budgets, events and KiB, in one word: a request takes its share of both in a single
/// compare-and-swap, so it is queued whole or not at all. Aligned to a cache line of its own so
/// nothing the batcher touches (the reference count of the `Arc` it sits in, the close flag)
/// shares the line every request writes.
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

/// Runs once a delivery's file is stored, never on release: how the WAL learns that a
/// segment's records are safe elsewhere.
pub(super) type OnStored = Box<dyn FnOnce() + Send>;

/// A request's batch with its measured size, waiting for the consumer.
struct Queued {
    batch: Batch,
    approx_bytes: usize,
    on_stored: Option<OnStored>,
}

/// The capacity a batch holds: its records, and its size in KiB.
fn held(batch: &Batch, approx_bytes: usize) -> (u64, u64) {
    (batch.records.len() as u64, kib(approx_bytes))
}

/// What the queue and its consumer share.
struct QueueState {
    capacity: Capacity,
    closed: AtomicBool,
}

/// One request's batches travel as one message, so a close refuses a request whole.
type Message = Vec<Queued>;

pub struct InProcessQueue {
    shared: Arc<QueueState>,
    // Unbounded because the capacity word, taken before every send, is the bound.
    sender: mpsc::UnboundedSender<Message>,
}

pub struct InProcessConsumer {
    shared: Arc<QueueState>,
    receiver: mpsc::UnboundedReceiver<Message>,
    collected: VecDeque<Queued>,
    /// The channel is closed and emptied: the queue is drained for good.
    finished: bool,
}

impl InProcessQueue {
    /// Nothing enters the channel without capacity taken first, and capacity returns only when
    /// the delivery's file is stored, so the channel is bounded by the capacity.
    pub fn new(event_capacity: usize, byte_capacity: usize) -> (Arc<Self>, InProcessConsumer) {
        let shared = Arc::new(QueueState {
            capacity: Capacity::new(event_capacity, byte_capacity),
            closed: AtomicBool::new(false),
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        let consumer = InProcessConsumer {
            shared: shared.clone(),
            receiver,
            collected: VecDeque::new(),
            finished: false,
        };
        (Arc::new(Self { shared, sender }), consumer)
    }
}

fn kib(bytes: usize) -> u64 {
    bytes.div_ceil(BYTES_PER_KIB) as u64
}

/// Capacity taken for a request, given back unless its batches are committed to the queue.
pub(super) struct Reservation<'a> {
    queue: &'a InProcessQueue,
    events: u64,
    kibs: u64,
    committed: bool,
}

impl Reservation<'_> {
    /// Queues the batches the reservation was made for, each with what to run once stored.
    pub(super) fn commit(
        mut self,
        batches: impl Iterator<Item = (Batch, Option<OnStored>)>,
    ) -> Result<(), QueueError> {
        let message = batches
            .map(|(batch, on_stored)| Queued {
                approx_bytes: batch.records.approx_bytes(),
                batch,
                on_stored,
            })
            .collect();
        // Fails only once the consumer has closed the channel: the request is refused whole.
        self.queue
            .sender
            .send(message)
            .map_err(|_| QueueError::Closed)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.queue.shared.capacity.give_back(self.events, self.kibs);
        }
    }
}

impl InProcessQueue {
    /// Takes capacity for `batches` all at once, or refuses them.
    pub(super) fn reserve(&self, batches: &[Batch]) -> Result<Reservation<'_>, QueueError> {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        // Sizing a batch is a sum over its records of lengths already known, cheap enough to
        // do twice rather than keep the sizes.
        let (mut events, mut kibs) = (0, 0);
        for batch in batches {
            let (batch_events, batch_kib) = held(batch, batch.records.approx_bytes());
            events += batch_events;
            kibs += batch_kib;
        }
        if events > shared.capacity.events {
            return Err(QueueError::TooLarge(format!(
                "a request of {events} events"
            )));
        }
        if kibs > shared.capacity.kib {
            return Err(QueueError::TooLarge(format!("a request of {kibs} KiB")));
        }
        if !shared.capacity.try_take(events, kibs) {
            return Err(QueueError::Full);
        }
        Ok(Reservation {
            queue: self,
            events,
            kibs,
            committed: false,
        })
    }

    /// Whether a close has been asked for (the WAL checks before it writes anything).
    pub(super) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Queue for InProcessQueue {
    async fn enqueue(&self, batches: Vec<Batch>) -> Result<(), QueueError> {
        self.reserve(&batches)?
            .commit(batches.into_iter().map(|batch| (batch, None)))
    }

    fn depth(&self) -> usize {
        let capacity = &self.shared.capacity;
        let (free_events, _) = capacity.free();
        usize::try_from(capacity.events.saturating_sub(free_events)).unwrap_or(usize::MAX)
    }

    fn has_room(&self) -> bool {
        // "Room" means a full-size request would fit; near-full is reported as not ready so a
        // load balancer can steer traffic away before clients see 503s.
        self.shared.capacity.fits_a_full_request()
    }

    fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            // An empty message wakes a waiting consumer, which then closes the channel: a
            // request sent before that is drained, one sent after it is refused.
            let _ = self.sender.send(Vec::new());
        }
    }
}

/// Collected batches as deliveries, each with the ack that gives its capacity back.
fn deliver(
    shared: &Arc<QueueState>,
    batches: impl Iterator<Item = Queued>,
    into: &mut Vec<Delivery>,
) {
    for Queued {
        batch,
        approx_bytes,
        on_stored,
    } in batches
    {
        let (events, kib) = held(&batch, approx_bytes);
        let shared = shared.clone();
        into.push(Delivery {
            batch,
            // Capacity comes back either way: a released delivery is no longer in memory.
            ack: Ack::settled_by(move |settled| {
                shared.capacity.give_back(events, kib);
                if let (Settled::Stored, Some(on_stored)) = (settled, on_stored) {
                    on_stored();
                }
            }),
            approx_bytes,
        });
    }
}

impl InProcessConsumer {
    /// Moves every message already sent into `collected`, without waiting.
    fn collect_sent(&mut self) {
        while let Ok(message) = self.receiver.try_recv() {
            self.collected.extend(message);
        }
    }
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize {
        let max = max.max(1);
        loop {
            if !self.collected.is_empty() {
                let count = self.collected.len().min(max);
                deliver(&self.shared, self.collected.drain(..count), into);
                return count;
            }
            if self.finished {
                return 0;
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                // Sends after this fail, so everything accepted is in the channel now.
                self.receiver.close();
                self.collect_sent();
                self.finished = true;
                continue;
            }
            match self.receiver.recv().await {
                Some(message) => {
                    self.collected.extend(message);
                    self.collect_sent();
                }
                None => self.finished = true,
            }
        }
    }

    fn is_backlogged(&self) -> bool {
        !self.shared.capacity.fits_a_full_request()
    }
}

impl Drop for InProcessConsumer {
    /// With no consumer, nothing queued would ever be stored: refuse what comes next.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.receiver.close();
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
    async fn a_delivery_dropped_unacknowledged_gives_its_capacity_back() {
        let (queue, mut consumer) = InProcessQueue::new(10, 1 << 20);
        assert_eq!(queue.enqueue(vec![batch(6)]).await, Ok(()));
        drop(next(&mut consumer).await);
        assert_eq!(queue.depth(), 0);
        assert_eq!(queue.enqueue(vec![batch(10)]).await, Ok(()));
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

    /// Requests on several threads racing a close: every request told "accepted" is delivered
    /// exactly once, however the close falls between them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_accepted_batch_is_delivered_when_requests_race_the_close() {
        let (queue, mut consumer) = InProcessQueue::new(1_000_000, 1 << 30);
        let producers: Vec<_> = (0..8)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut accepted = 0;
                    loop {
                        match queue.enqueue(vec![batch(1)]).await {
                            Ok(()) => accepted += 1,
                            Err(QueueError::Closed) => return accepted,
                            Err(other) => panic!("{other}"),
                        }
                        if accepted % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let consumed = tokio::spawn(async move {
            let mut delivered = 0;
            let mut deliveries = Vec::new();
            while consumer.next_many(&mut deliveries, 256).await > 0 {
                for delivery in deliveries.drain(..) {
                    delivered += delivery.batch.records.len();
                    delivery.ack.ack();
                }
            }
            delivered
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        queue.close();
        let mut accepted = 0;
        for producer in producers {
            accepted += producer.await.unwrap_or(0);
        }
        let delivered = consumed.await.unwrap_or(0);
        assert!(accepted > 0);
        assert_eq!(delivered, accepted);
        assert_eq!(queue.depth(), 0);
    }
}

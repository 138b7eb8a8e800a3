//! `pubsub` mode, loader side: a streaming pull from the subscription, each message decoded
//! into a delivery for the batcher. A message is acknowledged only when every event in it is in
//! a stored file; released unstored (a failed or abandoned batch, a crash), it is redelivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use eventkit_model::{Batch, Records};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::MessageStream;
use google_cloud_pubsub::subscriber::handler::Handler;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::message;
use crate::dedup::{DedupWindow, Key, Owner};
use crate::queue::{Ack, Consumer, Delivery};
use crate::telemetry;

const BYTES_PER_KIB: usize = 1024;
/// Decoded deliveries waiting for the batcher: a handful smooths hand-over; the capacity
/// semaphores, not this, bound what the loader holds.
const HANDOVER: usize = 16;
/// A stream that ended is replaced after this long, not in a busy loop.
const RETRY_PULL: Duration = Duration::from_secs(1);
/// Ended streams kept for the leases and acks of what they delivered: a stream ends rarely,
/// and one that failed at once (during an outage) held nothing.
const ENDED_STREAMS_KEPT: usize = 8;

/// Whether the pull stream is working; the loader's `/ready` reports it.
#[derive(Debug, Default)]
pub struct PullHealth(AtomicBool);

impl PullHealth {
    pub fn is_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Redeliveries of a message still held in a batch: their handlers are acknowledged with the
/// first copy, so the message is not acknowledged before its events are stored.
type Held = Arc<Mutex<HashMap<String, Vec<Handler>>>>;

struct Pulling {
    dedup: Arc<Mutex<DedupWindow>>,
    held: Held,
    events: Arc<Semaphore>,
    kib: Arc<Semaphore>,
    capacity: (usize, usize),
    next_owner: AtomicU64,
}

pub struct PubsubConsumer {
    deliveries: mpsc::Receiver<Delivery>,
    pulling: Arc<Pulling>,
}

impl PubsubConsumer {
    /// Pulls from the streams `subscribe` opens until `stop` turns true. `capacity` bounds the
    /// events (and bytes) held unstored; `dedup` is the window of ids already seen.
    pub fn start(
        subscribe: impl Fn() -> MessageStream + Send + 'static,
        dedup: DedupWindow,
        event_capacity: usize,
        byte_capacity: usize,
        stop: watch::Receiver<bool>,
    ) -> (Self, Arc<PullHealth>) {
        let events = event_capacity.clamp(1, Semaphore::MAX_PERMITS);
        let kib = (byte_capacity / BYTES_PER_KIB).clamp(1, Semaphore::MAX_PERMITS);
        let pulling = Arc::new(Pulling {
            dedup: Arc::new(Mutex::new(dedup)),
            held: Arc::default(),
            events: Arc::new(Semaphore::new(events)),
            kib: Arc::new(Semaphore::new(kib)),
            capacity: (events, kib),
            next_owner: AtomicU64::new(0),
        });
        let health = Arc::new(PullHealth::default());
        let (sender, deliveries) = mpsc::channel(HANDOVER);
        tokio::spawn(pull(
            subscribe,
            sender,
            pulling.clone(),
            health.clone(),
            stop,
        ));
        (
            Self {
                deliveries,
                pulling,
            },
            health,
        )
    }
}

#[async_trait]
impl Consumer for PubsubConsumer {
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize {
        let Some(first) = self.deliveries.recv().await else {
            return 0;
        };
        into.push(first);
        let mut taken = 1;
        while taken < max {
            match self.deliveries.try_recv() {
                Ok(delivery) => {
                    into.push(delivery);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        taken
    }

    fn is_backlogged(&self) -> bool {
        // Less than a tenth left: nothing more arrives until the batcher stores what it holds.
        let p = &self.pulling;
        p.events.available_permits() < p.capacity.0 / 10
            || p.kib.available_permits() < p.capacity.1 / 10
    }
}

async fn pull(
    subscribe: impl Fn() -> MessageStream,
    sender: mpsc::Sender<Delivery>,
    pulling: Arc<Pulling>,
    health: Arc<PullHealth>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stream = subscribe();
    // Streams that ended with a permanent error (the subscription deleted and created again,
    // say) are kept, not dropped: each keeps the leases of, and sends the acks for, messages
    // it delivered that are still in a batch.
    let mut ended = Vec::new();
    health.0.store(true, Ordering::Relaxed);
    loop {
        let next = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok((message, handler))) => {
                health.0.store(true, Ordering::Relaxed);
                metrics::counter!(telemetry::PUBSUB_MESSAGES_RECEIVED).increment(1);
                let Some(delivery) = pulling.deliver(message, handler).await else {
                    continue;
                };
                if sender.send(delivery).await.is_err() {
                    break;
                }
            }
            failed => {
                // The client retries passing faults itself: what reaches here is permanent for
                // this stream, so open another after a pause.
                health.0.store(false, Ordering::Relaxed);
                match failed {
                    Some(Err(error)) => {
                        tracing::warn!(%error, "pulling from Pub/Sub failed; subscribing again")
                    }
                    _ => tracing::warn!("the pull stream ended; subscribing again"),
                }
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(RETRY_PULL) => {}
                }
                ended.push(std::mem::replace(&mut stream, subscribe()));
                if ended.len() > ENDED_STREAMS_KEPT {
                    // Dropping one costs at most redeliveries of what it still held, which the
                    // window removes; keeping every one would grow through a long outage.
                    ended.remove(0);
                }
            }
        }
    }
    // The batcher drains what it was handed and acknowledges it as files are stored; each
    // stream keeps those leases alive and sends the acks before its shutdown completes.
    drop(sender);
    let shutdowns: Vec<_> = std::iter::once(&stream)
        .chain(&ended)
        .map(|stream| stream.shutdown_token())
        .collect();
    futures::future::join_all(shutdowns.iter().map(|token| token.shutdown())).await;
}

impl Pulling {
    /// The delivery for a message: its events less those the window has seen, holding their
    /// share of capacity. `None` when nothing in it needs storing (it is acknowledged here or,
    /// for a redelivery of a message still held, together with the first copy).
    async fn deliver(&self, message: Message, handler: Handler) -> Option<Delivery> {
        let Message {
            data,
            attributes,
            message_id,
            ..
        } = message;
        {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(redelivered) = held.get_mut(&message_id) {
                redelivered.push(handler);
                return None;
            }
            held.insert(message_id.clone(), Vec::new());
        }
        let batch = match message::decode(&data, &attributes) {
            Ok(batch) => batch,
            Err(error) => {
                metrics::counter!(telemetry::PUBSUB_MESSAGES_UNREADABLE).increment(1);
                tracing::error!(%error, message_id, "unreadable message kept as a dead letter");
                message::undecodable(&data, &attributes, &error)
            }
        };
        let owner = self.next_owner.fetch_add(1, Ordering::Relaxed);
        let (batch, keys) = self.without_duplicates(batch, owner);
        if batch.records.is_empty() {
            self.release(&message_id, handler, true);
            return None;
        }
        let bytes = batch.records.approx_bytes();
        let permits = |n: usize, cap: usize| u32::try_from(n.min(cap)).unwrap_or(u32::MAX);
        // Waits while the loader holds its capacity's worth: Pub/Sub's flow control then stops
        // sending more, so memory stays bounded however far behind the store is.
        let events = self
            .events
            .clone()
            .acquire_many_owned(permits(batch.records.len(), self.capacity.0))
            .await
            .ok()?;
        let kib = self
            .kib
            .clone()
            .acquire_many_owned(permits(bytes.div_ceil(BYTES_PER_KIB), self.capacity.1))
            .await
            .ok()?;
        let release = Release {
            message_id,
            handler: Some(handler),
            held: self.held.clone(),
            dedup: self.dedup.clone(),
            keys,
            owner,
            _capacity: [events, kib],
        };
        Some(Delivery {
            batch,
            ack: Ack::new(move || release.stored()),
            approx_bytes: bytes,
        })
    }

    fn without_duplicates(&self, batch: Batch, owner: Owner) -> (Batch, Vec<Key>) {
        let Batch { stream, records } = batch;
        let Records::Events(events) = records else {
            // Dead letters carry no messageId of ours; they are kept as they come.
            return (Batch { stream, records }, Vec::new());
        };
        let (kept, keys) = self
            .dedup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain_new(&stream, events, owner);
        let batch = Batch {
            stream,
            records: Records::Events(kept),
        };
        (batch, keys)
    }

    fn release(&self, message_id: &str, handler: Handler, stored: bool) {
        release(&self.held, message_id, handler, stored);
    }
}

/// Acknowledges (stored) or negatively acknowledges (not) a message and every redelivered copy
/// held beside it.
fn release(held: &Held, message_id: &str, handler: Handler, stored: bool) {
    let copies = held
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(message_id)
        .unwrap_or_default();
    for handler in std::iter::once(handler).chain(copies) {
        if stored {
            handler.ack();
        } else {
            handler.nack();
        }
    }
}

/// What a delivery holds until its events are stored: the message's handler, its ids in the
/// window and its share of capacity. Dropped unstored, it nacks the message (Pub/Sub
/// redelivers it) and forgets the ids, so the redelivered events are not taken for duplicates.
struct Release {
    message_id: String,
    handler: Option<Handler>,
    held: Held,
    dedup: Arc<Mutex<DedupWindow>>,
    keys: Vec<Key>,
    owner: Owner,
    _capacity: [OwnedSemaphorePermit; 2],
}

impl Release {
    fn stored(mut self) {
        if let Some(handler) = self.handler.take() {
            release(&self.held, &self.message_id, handler, true);
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(handler) = self.handler.take() {
            self.dedup
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget(&self.keys, self.owner);
            release(&self.held, &self.message_id, handler, false);
        }
    }
}

//! `pubsub` mode, collector side: requests' records are coalesced per stream into messages (a
//! short window and a size bound, like group commit), each message is published, and every
//! request waiting on it is answered when Pub/Sub acknowledges it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use eventkit_model::{Batch, Records};
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::message;
use crate::config::PubsubConfig;
use crate::queue::{Queue, QueueError};
use crate::telemetry;

/// Bytes are counted against capacity in KiB, so a semaphore's permit count cannot overflow.
const BYTES_PER_KIB: usize = 1024;

/// What a publish ends with, for every request whose records it carried.
type Outcome = Result<(), String>;

/// A request's records for one stream, with the capacity they hold until published.
struct Pending {
    batch: Batch,
    bytes: usize,
    waiter: Waiter,
}

/// Told how the publish carrying its records ended; holds their share of capacity until then.
struct Waiter {
    done: oneshot::Sender<Outcome>,
    _held: [OwnedSemaphorePermit; 2],
}

enum Command {
    Publish(Pending),
    /// Publish what is open, wait for every publish, end.
    Close,
}

/// A message being filled for one stream.
struct Open {
    records: Records,
    bytes: usize,
    opened: Instant,
    waiting: Vec<Waiter>,
}

/// Whether publishing works; `/ready` reports it. Set false by a failed or late publish, true by
/// one that succeeds (or by the probe, which keeps looking while no traffic comes to test it).
#[derive(Debug)]
pub struct PublishHealth(AtomicBool);

impl PublishHealth {
    pub fn is_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(super) fn set(&self, healthy: bool) {
        if self.0.swap(healthy, Ordering::Relaxed) != healthy {
            if healthy {
                tracing::info!("Pub/Sub publishing works again");
            } else {
                tracing::warn!("Pub/Sub publishing is failing; answering 503 meanwhile");
            }
        }
    }
}

pub struct PubsubQueue {
    sender: mpsc::UnboundedSender<Command>,
    events: Arc<Semaphore>,
    kib: Arc<Semaphore>,
    capacity: (usize, usize),
    closed: AtomicBool,
    timeout: Duration,
    health: Arc<PublishHealth>,
}

/// Runs until the queue is closed, then publishes what is open and waits for every publish.
pub struct PublishLoop(tokio::task::JoinHandle<()>);

impl PublishLoop {
    pub async fn finished(self) -> Result<(), tokio::task::JoinError> {
        self.0.await
    }
}

impl PubsubQueue {
    /// `capacity` bounds the events (and bytes) accepted and not yet acknowledged by Pub/Sub.
    pub fn new(
        publisher: Publisher,
        config: &PubsubConfig,
        event_capacity: usize,
        byte_capacity: usize,
    ) -> (Arc<Self>, PublishLoop) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let kib = (byte_capacity / BYTES_PER_KIB).clamp(1, Semaphore::MAX_PERMITS);
        let events = event_capacity.clamp(1, Semaphore::MAX_PERMITS);
        let health = Arc::new(PublishHealth(AtomicBool::new(true)));
        let limits = Limits {
            window: Duration::from_millis(config.coalesce_ms),
            max_bytes: config.max_message_bytes,
            max_events: config.max_message_events,
        };
        let task = tokio::spawn(coalesce(receiver, publisher, limits, health.clone()));
        let queue = Self {
            sender,
            events: Arc::new(Semaphore::new(events)),
            kib: Arc::new(Semaphore::new(kib)),
            capacity: (events, kib),
            closed: AtomicBool::new(false),
            timeout: Duration::from_millis(config.publish_timeout_ms),
            health,
        };
        (Arc::new(queue), PublishLoop(task))
    }

    pub fn health(&self) -> Arc<PublishHealth> {
        self.health.clone()
    }

    fn take(&self, events: usize, kib: usize) -> Result<[OwnedSemaphorePermit; 2], QueueError> {
        let as_permits = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let events = self
            .events
            .clone()
            .try_acquire_many_owned(as_permits(events));
        let kib = self.kib.clone().try_acquire_many_owned(as_permits(kib));
        match (events, kib) {
            (Ok(events), Ok(kib)) => Ok([events, kib]),
            _ => Err(QueueError::Full),
        }
    }
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(BYTES_PER_KIB)
}

#[async_trait]
impl Queue for PubsubQueue {
    async fn enqueue(&self, batches: Vec<Batch>) -> Result<(), QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        let mut pending = Vec::with_capacity(batches.len());
        let mut answers = Vec::with_capacity(batches.len());
        let (mut events, mut kibs) = (0, 0);
        for batch in batches {
            let bytes = batch.records.approx_bytes();
            events += batch.records.len();
            kibs += kib(bytes);
            if events > self.capacity.0 || kibs > self.capacity.1 {
                return Err(QueueError::TooLarge(format!(
                    "a request of {events} events and {kibs} KiB"
                )));
            }
            // Every batch's capacity is taken before any is sent, so a request is published
            // whole or refused whole; what was taken returns if a later batch does not fit.
            let held = self.take(batch.records.len(), kib(bytes))?;
            let (done, answer) = oneshot::channel();
            answers.push(answer);
            pending.push(Pending {
                batch,
                bytes,
                waiter: Waiter { done, _held: held },
            });
        }
        for item in pending {
            self.sender
                .send(Command::Publish(item))
                .map_err(|_| QueueError::Closed)?;
        }
        let published =
            tokio::time::timeout(self.timeout, futures::future::join_all(answers)).await;
        let Ok(outcomes) = published else {
            self.health.set(false);
            return Err(QueueError::Unavailable(
                "Pub/Sub did not acknowledge the publish in time",
            ));
        };
        for outcome in outcomes {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(QueueError::Unavailable("publishing to Pub/Sub failed")),
                // The loop ended before publishing it: the queue closed under this request.
                Err(_) => return Err(QueueError::Closed),
            }
        }
        Ok(())
    }

    fn depth(&self) -> usize {
        self.capacity
            .0
            .saturating_sub(self.events.available_permits())
    }

    fn has_room(&self) -> bool {
        let full_request_kib = 2 * kib(crate::ingest::MAX_BODY_BYTES);
        self.health.is_healthy()
            && self.events.available_permits()
                >= crate::ingest::MAX_EVENTS_PER_REQUEST.min(self.capacity.0)
            && self.kib.available_permits() >= full_request_kib.min(self.capacity.1)
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // A request racing the close may still send after this; the loop has ended by then,
            // so its records are refused (503), never accepted and dropped.
            let _ = self.sender.send(Command::Close);
        }
    }
}

struct Limits {
    window: Duration,
    max_bytes: usize,
    max_events: usize,
}

async fn coalesce(
    mut commands: mpsc::UnboundedReceiver<Command>,
    publisher: Publisher,
    limits: Limits,
    health: Arc<PublishHealth>,
) {
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut publishes = JoinSet::new();
    loop {
        let next_due = open.values().map(|o| o.opened + limits.window).min();
        let command = tokio::select! {
            command = commands.recv() => command,
            () = sleep_until(next_due) => {
                let now = Instant::now();
                let due: Vec<String> = open
                    .iter()
                    .filter(|(_, o)| o.opened + limits.window <= now)
                    .map(|(stream, _)| stream.clone())
                    .collect();
                for stream in due {
                    if let Some(message) = open.remove(&stream) {
                        publishes.spawn(publish(publisher.clone(), stream, message, health.clone()));
                    }
                }
                // Reap what has finished, so the set holds only publishes in flight.
                while publishes.try_join_next().is_some() {}
                continue;
            }
        };
        let Some(Command::Publish(Pending {
            batch,
            bytes,
            waiter,
        })) = command
        else {
            break;
        };
        let Batch { stream, records } = batch;
        let message = match open.get_mut(&stream) {
            Some(message) => message,
            None => open.entry(stream.clone()).or_insert(Open {
                records: empty_like(&records),
                bytes: 0,
                opened: Instant::now(),
                waiting: Vec::new(),
            }),
        };
        append(&mut message.records, records);
        message.bytes += bytes;
        message.waiting.push(waiter);
        let full = message.bytes >= limits.max_bytes || message.records.len() >= limits.max_events;
        if full && let Some(message) = open.remove(&stream) {
            publishes.spawn(publish(publisher.clone(), stream, message, health.clone()));
        }
    }
    for (stream, message) in open.drain() {
        publishes.spawn(publish(publisher.clone(), stream, message, health.clone()));
    }
    while let Some(joined) = publishes.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a publish task failed");
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

fn empty_like(records: &Records) -> Records {
    match records {
        Records::Events(_) => Records::Events(Vec::new()),
        Records::Rejected(_) => Records::Rejected(Vec::new()),
    }
}

fn append(into: &mut Records, records: Records) {
    match (into, records) {
        (Records::Events(held), Records::Events(more)) => held.extend(more),
        (Records::Rejected(held), Records::Rejected(more)) => held.extend(more),
        // A stream holds one kind of record; the dead-letter stream is the only one of its kind.
        (into, other) => tracing::error!(
            held = into.len(),
            other = other.len(),
            "mixed record kinds in one stream's message"
        ),
    }
}

async fn publish(publisher: Publisher, stream: String, message: Open, health: Arc<PublishHealth>) {
    let Open {
        records, waiting, ..
    } = message;
    let events = records.len();
    let started = Instant::now();
    // Encoding a message of thousands of events takes milliseconds: off the request threads.
    let encoded =
        tokio::task::spawn_blocking(move || message::encode(Batch { stream, records })).await;
    let outcome = match encoded {
        Ok(Ok(encoded)) => {
            let bytes = encoded.data.len();
            let message = Message::new()
                .set_data(encoded.data)
                .set_attributes(encoded.attributes);
            match publisher.publish(message).await {
                Ok(_) => {
                    metrics::counter!(telemetry::PUBSUB_MESSAGES_PUBLISHED).increment(1);
                    metrics::counter!(telemetry::PUBSUB_BYTES_PUBLISHED).increment(bytes as u64);
                    metrics::histogram!(telemetry::PUBSUB_PUBLISH_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    Ok(())
                }
                Err(error) => {
                    metrics::counter!(telemetry::PUBSUB_PUBLISH_ERRORS).increment(1);
                    tracing::warn!(%error, events, "publish failed");
                    Err(error.to_string())
                }
            }
        }
        Ok(Err(error)) => {
            tracing::error!(%error, events, "records could not be encoded");
            Err(error.to_string())
        }
        Err(error) => {
            tracing::error!(%error, events, "the encoding task failed");
            Err(error.to_string())
        }
    };
    health.set(outcome.is_ok());
    for waiter in waiting {
        // A request that gave up waiting (and answered 503) is gone; the rest are told.
        let _ = waiter.done.send(outcome.clone());
    }
}

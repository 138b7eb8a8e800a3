//! Per-stream batching between the queue and the sink: collect deliveries, flush on size, bytes
//! or age, store the file (retrying until it is stored), then acknowledge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventkit_model::{Batch, ColumnSizes, Table, TableBuilder};
use eventkit_sinks::Sink;
use tokio::task::JoinSet;

use crate::config::BatchConfig;
use crate::health::SinkHealth;
use crate::queue::{Ack, Consumer, Delivery};
use crate::telemetry;

/// Files being written at once. Two keeps both cores busy encoding while a third request's
/// upload would mostly wait on the same store; more only adds memory.
const MAX_CONCURRENT_FLUSHES: usize = 2;
/// Deliveries taken from the queue per wake-up: enough to amortise the wake-up under load,
/// few enough that age and back-pressure checks are never far behind.
const DELIVERIES_PER_WAKE: usize = 256;
/// After taking fewer than that, the batcher lets deliveries gather this long before looking
/// again, rather than being woken by every request. Buffers wait seconds for their limits, so
/// a millisecond more costs nothing and spares tens of thousands of wake-ups a second.
const GATHER: Duration = Duration::from_millis(1);
/// How often buffers are checked for age and the queue for back-pressure: often enough that a
/// full queue is relieved within a fraction of a second, rarely enough to cost nothing.
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_millis(250);
/// Streams whose last full batch's column sizes are kept to size the next one. Stream names
/// come from clients, so this is bounded; streams past it simply grow their columns.
const SIZED_STREAMS: usize = 1024;
/// Retry backoff for a failing store: start fast for blips, cap so a long outage costs a
/// probe every 30 s rather than a busy loop.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);

struct Buffer {
    table: TableBuilder,
    acks: Vec<Ack>,
    bytes: usize,
    opened: Instant,
}

pub struct Batcher {
    sink: Arc<dyn Sink>,
    limits: BatchConfig,
    health: Arc<SinkHealth>,
    buffers: HashMap<String, Buffer>,
    /// Column sizes of each busy stream's last full batch.
    sizes: HashMap<String, ColumnSizes>,
    flushes: JoinSet<()>,
}

impl Batcher {
    pub fn new(sink: Arc<dyn Sink>, limits: BatchConfig, health: Arc<SinkHealth>) -> Self {
        Self {
            sink,
            limits,
            health,
            buffers: HashMap::new(),
            sizes: HashMap::new(),
            flushes: JoinSet::new(),
        }
    }

    /// Runs until the queue is closed and drained, then flushes every buffer and waits for
    /// every file to be stored.
    pub async fn run(mut self, mut consumer: impl Consumer) {
        let max_age = Duration::from_millis(self.limits.max_age_ms);
        let mut tick = tokio::time::interval((max_age / 4).clamp(MIN_TICK, MAX_TICK));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deliveries = Vec::with_capacity(DELIVERIES_PER_WAKE);
        loop {
            tokio::select! {
                received = consumer.next_many(&mut deliveries, DELIVERIES_PER_WAKE) => {
                    if received == 0 {
                        break;
                    }
                    for delivery in deliveries.drain(..) {
                        if let Some(full) = self.add(delivery) {
                            self.flush(&full).await;
                        }
                    }
                    if received < DELIVERIES_PER_WAKE {
                        tokio::time::sleep(GATHER).await;
                    }
                }
                _ = tick.tick() => {
                    // Finished flushes stay in the set until joined; reap them so "nothing in
                    // flight" below is true when it is.
                    while self.flushes.try_join_next().is_some() {}
                    let due: Vec<String> = if consumer.is_backlogged() && self.flushes.is_empty() {
                        // Nothing in flight will free the queue: write everything held now.
                        self.buffers.keys().cloned().collect()
                    } else {
                        self.buffers
                            .iter()
                            .filter(|(_, b)| b.opened.elapsed() >= max_age)
                            .map(|(s, _)| s.clone())
                            .collect()
                    };
                    for stream in due {
                        self.flush(&stream).await;
                    }
                }
            }
        }
        let streams: Vec<String> = self.buffers.keys().cloned().collect();
        for stream in streams {
            self.flush(&stream).await;
        }
        while self.flushes.join_next().await.is_some() {}
    }

    /// Adds a delivery to its stream's buffer; returns the stream when its buffer is full.
    fn add(&mut self, delivery: Delivery) -> Option<String> {
        let Delivery {
            batch: Batch { stream, records },
            ack,
            approx_bytes: bytes,
        } = delivery;
        // The common case, a stream that already has a buffer, costs one lookup and no copies of
        // the stream name: this runs once per accepted request.
        let buffer = match self.buffers.get_mut(&stream) {
            Some(buffer) => buffer,
            None => self.buffers.entry(stream.clone()).or_insert(Buffer {
                table: TableBuilder::sized_for(&records, self.sizes.get(&stream)),
                acks: Vec::new(),
                bytes: 0,
                opened: Instant::now(),
            }),
        };
        match buffer.table.append(records) {
            Ok(()) => {
                buffer.acks.push(ack);
                buffer.bytes += bytes;
                let full = buffer.table.len() >= self.limits.max_events
                    || buffer.bytes >= self.limits.max_bytes;
                full.then_some(stream)
            }
            Err(other_kind) => {
                // One stream never mixes record kinds; if it ever did, keep both rather than drop.
                tracing::error!(
                    stream,
                    "mixed record kinds in one stream; writing separately"
                );
                self.spawn_flush(stream, TableBuilder::from_records(other_kind), vec![ack]);
                None
            }
        }
    }

    async fn flush(&mut self, stream: &str) {
        let Some((stream, buffer)) = self.buffers.remove_entry(stream) else {
            return;
        };
        while self.flushes.len() >= MAX_CONCURRENT_FLUSHES {
            self.flushes.join_next().await;
        }
        // A stream that filled its batch will likely fill the next one: start that one at this
        // size. One flushed by age has slowed down, and keeps no reservation.
        let full =
            buffer.table.len() >= self.limits.max_events || buffer.bytes >= self.limits.max_bytes;
        let keep = full && (self.sizes.len() < SIZED_STREAMS || self.sizes.contains_key(&stream));
        match buffer.table.column_sizes().filter(|_| keep) {
            Some(sizes) => self.sizes.insert(stream.clone(), sizes),
            None => self.sizes.remove(&stream),
        };
        self.spawn_flush(stream, buffer.table, buffer.acks);
    }

    fn spawn_flush(&mut self, stream: String, table: TableBuilder, acks: Vec<Ack>) {
        let rows = table.len();
        // Kept for the error path only: `finish` takes the name into the table.
        let label = stream.clone();
        let table = match table.finish(stream) {
            Ok(table) => Arc::new(table),
            Err(error) => {
                // Only a schema bug can get here; retrying would fail the same way. The acks are
                // dropped unacknowledged, which the queue treats as a crash.
                tracing::error!(%error, stream = label, rows, "records could not be put into columns");
                metrics::counter!(telemetry::WRITE_ERRORS, "stream" => label).increment(1);
                return;
            }
        };
        let sink = self.sink.clone();
        let health = self.health.clone();
        self.flushes.spawn(async move {
            store_until_written(sink.as_ref(), table, &health).await;
            acks.into_iter().for_each(Ack::ack);
        });
    }
}

/// Accepted records are never dropped: a failing store is retried with backoff for as long as
/// it takes, while the capacity it holds keeps the queue (and so memory) bounded and `/ready` false.
async fn store_until_written(sink: &dyn Sink, table: Arc<Table>, health: &SinkHealth) {
    let mut delay = RETRY_FIRST;
    let stream = table.stream.clone();
    loop {
        let started = Instant::now();
        match sink.write(table.clone()).await {
            Ok(files) => {
                health.set(true);
                metrics::histogram!(telemetry::FLUSH_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(telemetry::BATCHES_WRITTEN, "stream" => stream.clone())
                    .increment(1);
                for file in files {
                    metrics::counter!(telemetry::FILES_WRITTEN, "stream" => stream.clone())
                        .increment(1);
                    metrics::counter!(telemetry::ROWS_WRITTEN, "stream" => stream.clone())
                        .increment(file.rows as u64);
                    metrics::counter!(telemetry::BYTES_WRITTEN, "stream" => stream.clone())
                        .increment(file.bytes);
                    tracing::debug!(
                        path = file.path,
                        rows = file.rows,
                        bytes = file.bytes,
                        "file stored"
                    );
                }
                return;
            }
            Err(error) => {
                health.set(false);
                metrics::counter!(telemetry::WRITE_ERRORS, "stream" => stream.clone()).increment(1);
                tracing::warn!(%error, stream, rows = table.num_rows(), retry_in = ?delay, "write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use eventkit_sinks::{SinkError, WrittenFile};

    use super::*;
    use crate::queue::{InProcessQueue, Queue};

    /// Fails its first `failures` writes, then records the stream and row count it is given.
    struct FlakySink {
        failures: AtomicUsize,
        stored: Mutex<Vec<(String, usize)>>,
    }

    #[async_trait]
    impl Sink for FlakySink {
        async fn write(&self, table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError> {
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(SinkError::Io(std::io::Error::other("store unreachable")));
            }
            self.stored
                .lock()
                .map_err(|e| SinkError::Task(e.to_string()))?
                .push((table.stream.clone(), table.num_rows()));
            Ok(vec![])
        }
    }

    fn batch(stream: &str, n: usize) -> Batch {
        crate::queue::test_batch(stream, n)
    }

    #[tokio::test(start_paused = true)]
    async fn failing_store_is_retried_until_stored_and_capacity_held_meanwhile() {
        let sink = Arc::new(FlakySink {
            failures: AtomicUsize::new(3),
            stored: Mutex::new(vec![]),
        });
        let health = Arc::new(SinkHealth::default());
        let limits = BatchConfig {
            max_events: 5,
            max_bytes: usize::MAX,
            max_age_ms: 60_000,
        };
        let (queue, consumer) = InProcessQueue::new(10, 1 << 20);
        let batcher =
            tokio::spawn(Batcher::new(sink.clone(), limits, health.clone()).run(consumer));

        assert!(
            queue
                .enqueue(vec![batch("a", 3), batch("b", 2)])
                .await
                .is_ok()
        );
        assert!(queue.enqueue(vec![batch("a", 2)]).await.is_ok());
        // "a" reached max_events; its writes fail and are retried, and its capacity stays held.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!health.is_healthy());
        assert_eq!(queue.depth(), 7);
        assert_eq!(
            queue.enqueue(vec![batch("c", 4)]).await,
            Err(crate::queue::QueueError::Full)
        );

        // "a" is stored after its failures; "b" never reaches a limit, but a queue that cannot
        // take a full request gets it written too (a capacity of 10 is always that).
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(health.is_healthy());
        assert_eq!(queue.depth(), 0);

        queue.close();
        assert!(batcher.await.is_ok());
        assert_eq!(queue.depth(), 0);
        let stored = sink.stored.lock().map(|s| s.clone()).unwrap_or_default();
        // How deliveries are grouped into files depends on timing; what was stored does not.
        let mut stored_per_stream = std::collections::BTreeMap::new();
        for (stream, rows) in &stored {
            *stored_per_stream.entry(stream.as_str()).or_insert(0) += rows;
        }
        assert_eq!(
            stored_per_stream,
            [("a", 5), ("b", 2)].into_iter().collect()
        );
    }
}

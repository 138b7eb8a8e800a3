//! Per-stream batching between the queue and the sinks: collect deliveries, flush on size, bytes
//! or age, store the table in every sink its stream goes to (each retried until it is stored),
//! then acknowledge.

mod fan_out;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventkit_model::{Batch, ColumnSizes, TableBuilder};
use eventkit_sinks::Sink;
use tokio::task::{JoinError, JoinSet};

use crate::config::BatchConfig;
use crate::health::SinkHealth;
use crate::queue::{Ack, Consumer, Delivery};
use crate::routes::Routes;
use crate::telemetry;

/// Files being written at once: one per core keeps every core encoding (and a drain writes that
/// many streams' files side by side), at least two so an upload's wait overlaps an encode. Capped
/// because each flush holds a file's encoder buffers on top of its records.
const MIN_CONCURRENT_FLUSHES: usize = 2;
const MAX_CONCURRENT_FLUSHES: usize = 8;

fn concurrent_flushes() -> usize {
    std::thread::available_parallelism()
        .map_or(MIN_CONCURRENT_FLUSHES, |cores| cores.get())
        .clamp(MIN_CONCURRENT_FLUSHES, MAX_CONCURRENT_FLUSHES)
}
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

/// How a batcher's run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Whether the run was given up before everything was stored. What was not stored was
    /// released to the queue, which keeps it for redelivery if it is durable (the WAL replays
    /// it at the next start): the deliveries still in buffers, and those of cancelled flushes.
    pub abandoned: bool,
    pub buffered_released: usize,
    pub flushes_cancelled: usize,
    /// Flush tasks that ended abnormally (each was logged and counted as it happened).
    pub task_failures: usize,
}

struct Buffer {
    table: TableBuilder,
    acks: Vec<Ack>,
    bytes: usize,
    opened: Instant,
}

pub struct Batcher {
    routes: Arc<Routes>,
    limits: BatchConfig,
    health: Arc<SinkHealth>,
    buffers: HashMap<String, Buffer>,
    /// Column sizes of each busy stream's last full batch.
    sizes: HashMap<String, ColumnSizes>,
    flushes: JoinSet<()>,
    max_flushes: usize,
    task_failures: usize,
}

impl Batcher {
    /// One sink taking every stream, reporting to `health`'s first sink.
    pub fn new(sink: Arc<dyn Sink>, limits: BatchConfig, health: Arc<SinkHealth>) -> Self {
        Self::routed(Arc::new(Routes::single(sink)), limits, health)
    }

    /// Each stream's tables to the sinks `routes` gives it; `health` has the same sinks in the
    /// same order (`SinkHealth::new(routes.names())`).
    pub fn routed(routes: Arc<Routes>, limits: BatchConfig, health: Arc<SinkHealth>) -> Self {
        Self {
            routes,
            limits,
            health,
            buffers: HashMap::new(),
            sizes: HashMap::new(),
            flushes: JoinSet::new(),
            max_flushes: concurrent_flushes(),
            task_failures: 0,
        }
    }

    /// Runs until the queue is closed and drained, then flushes every buffer and waits for
    /// every file to be stored.
    pub async fn run(self, consumer: impl Consumer) {
        self.run_until(consumer, std::future::pending()).await;
    }

    /// [`Batcher::run`], given up when `abandon` resolves (a shutdown's grace period ending):
    /// flushes in flight are cancelled and every delivery not yet stored is released unacked,
    /// so a durable queue (the WAL) keeps it for the next start. With an in-memory queue those
    /// events are lost, so only give up on one when losing them beats not stopping.
    pub async fn run_until(
        mut self,
        mut consumer: impl Consumer,
        abandon: impl Future<Output = ()> + Send,
    ) -> Drained {
        let drained = tokio::select! {
            biased;
            () = self.drain(&mut consumer) => true,
            () = abandon => false,
        };
        if drained {
            return Drained {
                task_failures: self.task_failures,
                ..Drained::default()
            };
        }
        let buffered_released = self.buffers.values().map(|b| b.acks.len()).sum();
        self.buffers.clear();
        // A cancelled flush task drops its acks unacknowledged.
        self.flushes.abort_all();
        let mut flushes_cancelled = 0;
        while let Some(joined) = self.flushes.join_next().await {
            match joined {
                Ok(()) => {}
                Err(error) if error.is_cancelled() => flushes_cancelled += 1,
                Err(error) => self.note_task_failure(&error),
            }
        }
        tracing::warn!(
            buffered_released,
            flushes_cancelled,
            "stopped before every event was stored: the rest stays queued for redelivery"
        );
        Drained {
            abandoned: true,
            buffered_released,
            flushes_cancelled,
            task_failures: self.task_failures,
        }
    }

    async fn drain(&mut self, consumer: &mut impl Consumer) {
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
                    while let Some(joined) = self.flushes.try_join_next() {
                        self.reaped(joined);
                    }
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
        while let Some(joined) = self.flushes.join_next().await {
            self.reaped(joined);
        }
    }

    /// A finished flush task. One that failed had its acks dropped, so its deliveries went back
    /// to the queue; it is logged and counted here rather than vanishing with the join.
    fn reaped(&mut self, joined: Result<(), JoinError>) {
        if let Err(error) = joined {
            self.note_task_failure(&error);
        }
    }

    fn note_task_failure(&mut self, error: &JoinError) {
        self.task_failures += 1;
        metrics::counter!(telemetry::FLUSH_TASK_FAILURES).increment(1);
        tracing::error!(%error, "a flush task failed; its deliveries were released unacknowledged");
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
        if !self.buffers.contains_key(stream) {
            return;
        }
        // The buffer stays in place while this waits, so a run abandoned here still counts it.
        while self.flushes.len() >= self.max_flushes {
            if let Some(joined) = self.flushes.join_next().await {
                self.reaped(joined);
            }
        }
        let Some((stream, buffer)) = self.buffers.remove_entry(stream) else {
            return;
        };
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
        // Kept for the error paths only: `finish` takes the name into the table.
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
        let targets = self.routes.targets(&table.stream);
        if targets.is_empty() {
            // Validation requires a catch-all, so only routes built in code get here. Released,
            // not acknowledged: a durable queue keeps the records.
            tracing::error!(
                stream = table.stream,
                rows,
                "no sink takes this stream; released unstored"
            );
            metrics::counter!(telemetry::WRITE_ERRORS, "stream" => label).increment(1);
            return;
        }
        let health = self.health.clone();
        self.flushes.spawn(async move {
            fan_out::store_everywhere(&targets, table, &health).await;
            acks.into_iter().for_each(Ack::ack);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use eventkit_model::Table;
    use eventkit_sinks::{SinkError, WrittenFile};

    use super::*;
    use crate::queue::wal::WalOptions;
    use crate::queue::{InProcessQueue, Queue, WalQueue};

    /// Panics in its first `panics` writes, fails the next `failures`, then records the stream
    /// and row count it is given.
    #[derive(Default)]
    struct FlakySink {
        panics: AtomicUsize,
        failures: AtomicUsize,
        stored: Mutex<Vec<(String, usize)>>,
    }

    #[async_trait]
    impl Sink for FlakySink {
        async fn write(&self, table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError> {
            if self.panics.load(Ordering::SeqCst) > 0 {
                self.panics.fetch_sub(1, Ordering::SeqCst);
                panic!("an encoder bug");
            }
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

    fn limits(max_events: usize) -> BatchConfig {
        BatchConfig {
            max_events,
            max_bytes: usize::MAX,
            max_age_ms: 60_000,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_write_is_retried_not_lost() {
        let sink = Arc::new(FlakySink {
            panics: AtomicUsize::new(1),
            ..FlakySink::default()
        });
        let health = Arc::new(SinkHealth::default());
        let (queue, consumer) = InProcessQueue::new(100, 1 << 20);
        let batcher = tokio::spawn(Batcher::new(sink.clone(), limits(5), health).run(consumer));
        assert_eq!(queue.enqueue(vec![batch("a", 5)]).await, Ok(()));
        queue.close();
        assert!(batcher.await.is_ok());
        assert_eq!(sink.panics.load(Ordering::SeqCst), 0);
        let stored = sink.stored.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(stored, [("a".to_owned(), 5)]);
        assert_eq!(queue.depth(), 0);
    }

    /// Hands out a fixed list of deliveries, then reports the queue drained.
    struct Scripted(Vec<Delivery>);

    #[async_trait]
    impl Consumer for Scripted {
        async fn next_many(&mut self, into: &mut Vec<Delivery>, _max: usize) -> usize {
            let n = self.0.len();
            into.append(&mut self.0);
            n
        }
    }

    fn delivery(stream: &str, ack: Ack) -> Delivery {
        let batch = batch(stream, 1);
        Delivery {
            approx_bytes: batch.records.approx_bytes(),
            batch,
            ack,
        }
    }

    #[tokio::test]
    async fn a_failed_flush_task_is_counted_and_its_deliveries_released() {
        let sink = Arc::new(FlakySink::default());
        let (settled, outcome) = tokio::sync::oneshot::channel();
        let deliveries = vec![
            delivery("a", Ack::new(|| panic!("an ack that fails"))),
            delivery(
                "a",
                Ack::settled_by(move |how| {
                    let _ = settled.send(how);
                }),
            ),
        ];
        let batcher = Batcher::new(sink, limits(2), Arc::new(SinkHealth::default()));
        let drained = batcher
            .run_until(Scripted(deliveries), std::future::pending())
            .await;
        assert_eq!(drained.task_failures, 1);
        assert!(!drained.abandoned);
        assert_eq!(outcome.await.ok(), Some(crate::queue::Settled::Released));
    }

    /// Counts its writes and never finishes one: a store that hangs.
    struct Hangs(tokio::sync::Semaphore);

    #[async_trait]
    impl Sink for Hangs {
        async fn write(&self, _table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError> {
            self.0.add_permits(1);
            std::future::pending().await
        }
    }

    /// A stop past its deadline gives up on writes in flight and on buffers, and the WAL still
    /// has every acknowledged event for the next start.
    #[tokio::test]
    async fn an_abandoned_run_leaves_every_acknowledged_event_in_the_wal() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = WalOptions {
            dir: dir.path().to_owned(),
            max_bytes: 1 << 30,
            segment_bytes: 1 << 20,
        };
        let sink = Arc::new(Hangs(tokio::sync::Semaphore::new(0)));
        let max_flushes = concurrent_flushes();
        {
            let Ok((queue, consumer, _replay)) = WalQueue::open(&options, 1000, 1 << 20) else {
                panic!("open");
            };
            let batcher = Batcher::new(sink.clone(), limits(3), Arc::new(SinkHealth::default()));
            let (give_up, abandon) = tokio::sync::oneshot::channel::<()>();
            let run = tokio::spawn(batcher.run_until(consumer, async {
                let _ = abandon.await;
            }));
            // First, so it is in its buffer by the time the writes below have started.
            assert_eq!(queue.enqueue(vec![batch("buffered", 1)]).await, Ok(()));
            for stream in (0..max_flushes).map(|i| format!("full{i}")) {
                assert_eq!(queue.enqueue(vec![batch(&stream, 3)]).await, Ok(()));
            }
            // Every flush slot holds a write that will never finish.
            let writing = sink.0.acquire_many(max_flushes as u32).await;
            assert!(writing.is_ok());
            queue.close();
            let _ = give_up.send(());
            let drained = run.await.unwrap_or_default();
            assert_eq!(
                drained,
                Drained {
                    abandoned: true,
                    buffered_released: 1,
                    flushes_cancelled: max_flushes,
                    task_failures: 0
                }
            );
        }
        let Ok((queue, mut consumer, replay)) = WalQueue::open(&options, 1000, 1 << 20) else {
            panic!("reopen");
        };
        let replayed = replay.run().await.map(|r| r.events).ok();
        assert_eq!(replayed, Some(3 * max_flushes + 1));
        queue.close();
        let mut deliveries = Vec::new();
        while consumer.next_many(&mut deliveries, 64).await > 0 {}
        let events: usize = deliveries.iter().map(|d| d.batch.records.len()).sum();
        assert_eq!(events, 3 * max_flushes + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_store_is_retried_until_stored_and_capacity_held_meanwhile() {
        let sink = Arc::new(FlakySink {
            failures: AtomicUsize::new(3),
            ..FlakySink::default()
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

    fn stored(sink: &FlakySink) -> Vec<(String, usize)> {
        sink.stored.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn two_sinks(
        first: (&str, &str, Arc<FlakySink>),
        second: (&str, &str, Arc<FlakySink>),
    ) -> (Arc<Routes>, Arc<SinkHealth>) {
        let route = |(name, pattern, sink): (&str, &str, Arc<FlakySink>)| {
            let pattern =
                crate::config::StreamPattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
            let sink: Arc<dyn Sink> = sink;
            (name.to_owned(), vec![pattern], sink)
        };
        let routes = Routes::new(vec![route(first), route(second)]);
        let health = Arc::new(SinkHealth::new(routes.names()));
        (Arc::new(routes), health)
    }

    #[tokio::test(start_paused = true)]
    async fn each_stream_is_stored_in_exactly_the_sinks_its_patterns_name() {
        let web = Arc::new(FlakySink::default());
        let lake = Arc::new(FlakySink::default());
        let (routes, health) = two_sinks(("web", "web*", web.clone()), ("lake", "*", lake.clone()));
        let (queue, consumer) = InProcessQueue::new(100, 1 << 20);
        let batcher = tokio::spawn(Batcher::routed(routes, limits(5), health).run(consumer));
        assert_eq!(
            queue
                .enqueue(vec![batch("web-eu", 5), batch("app", 5)])
                .await,
            Ok(())
        );
        queue.close();
        assert!(batcher.await.is_ok());
        assert_eq!(stored(&web), [("web-eu".to_owned(), 5)]);
        let mut in_lake = stored(&lake);
        in_lake.sort();
        assert_eq!(in_lake, [("app".to_owned(), 5), ("web-eu".to_owned(), 5)]);
        assert_eq!(queue.depth(), 0);
    }

    /// The rule at-least-once across sinks rests on: deliveries are acknowledged only once every
    /// sink has the table, and a sink that has it is not written it again meanwhile.
    #[tokio::test(start_paused = true)]
    async fn a_failing_sink_holds_the_acks_and_the_healthy_sink_stores_once() {
        let lake = Arc::new(FlakySink::default());
        let pg = Arc::new(FlakySink {
            failures: AtomicUsize::new(4),
            ..FlakySink::default()
        });
        let (routes, health) = two_sinks(("lake", "*", lake.clone()), ("pg", "*", pg.clone()));
        let (queue, consumer) = InProcessQueue::new(100, 1 << 20);
        let batcher =
            tokio::spawn(Batcher::routed(routes, limits(5), health.clone()).run(consumer));
        assert_eq!(queue.enqueue(vec![batch("a", 5)]).await, Ok(()));

        // Tries at 0, 100, 300 and 700 ms have failed by now; the next, at 1.5 s, succeeds.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        // Only pg's loop retries: lake has its one copy.
        assert_eq!(stored(&lake), [("a".to_owned(), 5)]);
        assert!(stored(&pg).is_empty());
        assert_eq!(health.failing(), ["pg"]);
        assert_eq!(
            queue.depth(),
            5,
            "unacknowledged while pg has not stored it"
        );

        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(health.is_healthy());
        assert_eq!(queue.depth(), 0);
        assert_eq!(stored(&lake), [("a".to_owned(), 5)], "never written twice");
        assert_eq!(stored(&pg), [("a".to_owned(), 5)]);
        queue.close();
        assert!(batcher.await.is_ok());
    }
}

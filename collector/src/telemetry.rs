//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.

mod labels;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};

use eventkit_model::EventType;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use labels::BoundedStreamLabels;
pub use labels::{LABELLED_STREAMS, OTHER_STREAMS, label_streams, stream_label};

pub const EVENTS_ACCEPTED: &str = "eventkit_events_accepted_total";
pub const EVENTS_REJECTED: &str = "eventkit_events_rejected_total";
pub const REQUESTS_REFUSED: &str = "eventkit_requests_refused_total";
pub const REQUESTS_UNAUTHORIZED: &str = "eventkit_requests_unauthorized_total";
pub const QUEUE_DEPTH: &str = "eventkit_queue_depth";
pub const BATCHES_WRITTEN: &str = "eventkit_batches_written_total";
pub const FILES_WRITTEN: &str = "eventkit_files_written_total";
pub const ROWS_WRITTEN: &str = "eventkit_rows_written_total";
pub const BYTES_WRITTEN: &str = "eventkit_bytes_written_total";
pub const WRITE_ERRORS: &str = "eventkit_write_errors_total";
/// Per sink (`sink` label: configured names, at most `config::MAX_SINKS`): tables stored,
/// rows stored, failed writes. The `stream`-labelled counters above add up every sink's writes.
pub const SINK_BATCHES_WRITTEN: &str = "eventkit_sink_batches_written_total";
pub const SINK_ROWS_WRITTEN: &str = "eventkit_sink_rows_written_total";
pub const SINK_WRITE_ERRORS: &str = "eventkit_sink_write_errors_total";
pub const FLUSH_SECONDS: &str = "eventkit_flush_seconds";
pub const PUBSUB_MESSAGES_PUBLISHED: &str = "eventkit_pubsub_messages_published_total";
pub const PUBSUB_BYTES_PUBLISHED: &str = "eventkit_pubsub_bytes_published_total";
pub const PUBSUB_PUBLISH_ERRORS: &str = "eventkit_pubsub_publish_errors_total";
pub const PUBSUB_PUBLISH_SECONDS: &str = "eventkit_pubsub_publish_seconds";
pub const PUBSUB_MESSAGES_RECEIVED: &str = "eventkit_pubsub_messages_received_total";
pub const PUBSUB_MESSAGES_UNREADABLE: &str = "eventkit_pubsub_messages_unreadable_total";
pub const DUPLICATES_REMOVED: &str = "eventkit_duplicates_removed_total";
/// Deliveries dropped unacknowledged: their capacity came back, their records were not stored.
pub const DELIVERIES_RELEASED: &str = "eventkit_deliveries_released_total";
/// Flush tasks that ended abnormally (a panic outside the retried write, or an abort).
pub const FLUSH_TASK_FAILURES: &str = "eventkit_flush_task_failures_total";
/// Sink writes that panicked; each is retried like a failed write.
pub const WRITE_PANICS: &str = "eventkit_write_panics_total";
pub const WAL_FSYNCS: &str = "eventkit_wal_fsyncs_total";
pub const WAL_BYTES: &str = "eventkit_wal_bytes";
pub const CONNECTIONS_REFUSED: &str = "eventkit_connections_refused_total";
pub const REQUESTS_OVER_CAPACITY: &str = "eventkit_requests_over_capacity_total";
pub const STREAMS_REFUSED: &str = "eventkit_requests_stream_limit_total";

/// Flushes range from milliseconds (a small local file) to tens of seconds (a large upload
/// over a slow link, with retries).
const FLUSH_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder. Installed once: every server in a process (tests start several)
/// reports into the same registry, as metrics are process-global by nature.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(FLUSH_SECONDS.to_owned()), &FLUSH_BUCKETS);
            match builder {
                Ok(builder) => {
                    let recorder = builder.build_recorder();
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(BoundedStreamLabels(recorder)).is_err() {
                        tracing::warn!(
                            "a metrics recorder was already installed; /metrics will be empty"
                        );
                    }
                    handle
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics buckets rejected; using defaults");
                    let recorder = PrometheusBuilder::new().build_recorder();
                    let handle = recorder.handle();
                    let _ = metrics::set_global_recorder(BoundedStreamLabels(recorder));
                    handle
                }
            }
        })
        .clone()
}

/// The metrics in Prometheus text, as `/metrics` serves them: the ingest counts as of now.
pub fn render(prometheus: &PrometheusHandle) -> String {
    IngestCounters.publish();
    prometheus.render()
}

/// Streams each thread keeps counts of its own for. Stream names come from clients, so this is
/// bounded; a thread's streams past it share one set of counts per stream, behind a lock.
const COUNTED_STREAMS: usize = 1024;

/// One thread's counts for one stream. Requests count into their own thread's counts, so the
/// cache line they write stays with that core: counters shared by every core (as the metrics
/// registry's are) moved their line between the cores on every request, which showed in
/// profiles at tens of thousands of requests a second. `/metrics` adds every thread's up.
#[repr(align(64))]
pub struct StreamCounts {
    stream: String,
    accepted: [AtomicU64; EventType::ALL.len()],
    rejected: AtomicU64,
    refused: AtomicU64,
}

impl StreamCounts {
    fn new(stream: &str) -> Arc<Self> {
        Arc::new(Self {
            stream: stream.to_owned(),
            accepted: Default::default(),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn accepted(&self, event_type: EventType, count: u64) {
        // `ALL` lists the variants in declaration order.
        self.accepted[event_type as usize].fetch_add(count, Ordering::Relaxed);
    }

    pub fn rejected(&self, count: u64) {
        self.rejected.fetch_add(count, Ordering::Relaxed);
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every set of counts ever handed out, for `/metrics` to add up by stream.
#[derive(Default)]
struct AllCounts {
    per_thread: Vec<Arc<StreamCounts>>,
    /// Streams past a thread's own [`COUNTED_STREAMS`], shared by all threads.
    shared: HashMap<String, Arc<StreamCounts>>,
}

static ALL_COUNTS: LazyLock<Mutex<AllCounts>> = LazyLock::new(Mutex::default);

#[derive(Default)]
struct ThreadCounts {
    /// The stream counted last, looked at before the map: most requests on a thread go to the
    /// stream the one before went to, and comparing names is cheaper than hashing one.
    last: Option<Arc<StreamCounts>>,
    streams: HashMap<String, Arc<StreamCounts>>,
}

thread_local! {
    static THREAD_COUNTS: RefCell<ThreadCounts> = RefCell::default();
}

/// Per-stream ingest counters: accepted events by type, rejected events, refused requests.
pub struct IngestCounters;

impl IngestCounters {
    /// This thread's counts for `stream`.
    pub fn for_stream(&self, stream: &str) -> Arc<StreamCounts> {
        THREAD_COUNTS.with(|cell| {
            // Only a re-entrant call could find it borrowed; it then counts in the shared set.
            let Ok(mut counts) = cell.try_borrow_mut() else {
                return shared_counts(stream);
            };
            if let Some(last) = counts.last.as_ref().filter(|last| last.stream == stream) {
                return last.clone();
            }
            let found = match counts.streams.get(stream) {
                Some(found) => found.clone(),
                None if counts.streams.len() < COUNTED_STREAMS => {
                    let created = StreamCounts::new(stream);
                    all_counts().per_thread.push(created.clone());
                    counts.streams.insert(stream.to_owned(), created.clone());
                    created
                }
                None => return shared_counts(stream),
            };
            counts.last = Some(found.clone());
            found
        })
    }

    /// Hands the counts to the metrics registry; runs before each `/metrics` render.
    pub fn publish(&self) {
        let all = all_counts();
        // Added up by label: streams past the label bound share one set of series.
        let mut totals: HashMap<&str, Totals> = HashMap::new();
        for counts in all.per_thread.iter().chain(all.shared.values()) {
            totals
                .entry(stream_label(&counts.stream))
                .or_default()
                .add(counts);
        }
        for (stream, totals) in totals {
            for (event_type, count) in EventType::ALL.into_iter().zip(totals.accepted) {
                metrics::counter!(EVENTS_ACCEPTED, "stream" => stream.to_owned(), "type" => event_type.as_str())
                    .absolute(count);
            }
            metrics::counter!(EVENTS_REJECTED, "stream" => stream.to_owned())
                .absolute(totals.rejected);
            metrics::counter!(REQUESTS_REFUSED, "stream" => stream.to_owned())
                .absolute(totals.refused);
        }
    }
}

/// The counts are plain numbers, whole at every step: a panic elsewhere while the lock was held
/// leaves nothing half-done, so a poisoned lock is used as it is.
fn all_counts() -> MutexGuard<'static, AllCounts> {
    ALL_COUNTS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shared_counts(stream: &str) -> Arc<StreamCounts> {
    all_counts()
        .shared
        .entry(stream.to_owned())
        .or_insert_with(|| StreamCounts::new(stream))
        .clone()
}

#[derive(Default)]
struct Totals {
    accepted: [u64; EventType::ALL.len()],
    rejected: u64,
    refused: u64,
}

impl Totals {
    fn add(&mut self, counts: &StreamCounts) {
        for (total, count) in self.accepted.iter_mut().zip(&counts.accepted) {
            *total += count.load(Ordering::Relaxed);
        }
        self.rejected += counts.rejected.load(Ordering::Relaxed);
        self.refused += counts.refused.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_indexes_its_own_counter() {
        for (index, event_type) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(event_type as usize, index, "{event_type:?}");
        }
    }
}

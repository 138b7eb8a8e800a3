//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.

mod labels;

use std::sync::OnceLock;

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

/// The metrics in Prometheus text, as `/metrics` serves them.
pub fn render(prometheus: &PrometheusHandle) -> String {
    prometheus.render()
}

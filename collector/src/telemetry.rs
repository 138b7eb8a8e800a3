//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use eventkit_sinks::EventType;
use metrics::Counter;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
pub const FLUSH_SECONDS: &str = "eventkit_flush_seconds";

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
                    if metrics::set_global_recorder(recorder).is_err() {
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
                    let _ = metrics::set_global_recorder(recorder);
                    handle
                }
            }
        })
        .clone()
}

/// Streams whose counter handles are kept. Stream names come from clients, so the cache is
/// bounded; requests to streams past it are still counted, only without the shortcut.
const CACHED_STREAMS: usize = 1024;

/// Per-stream counter handles, so a request neither builds label sets nor looks them up in the
/// metrics registry: at tens of thousands of requests a second that lookup shows in profiles.
/// The handles are cached per thread: a shared cache behind a lock would have every request on
/// every core write the lock's word, and that contention costs more than the lookup it saves.
pub struct IngestCounters;

thread_local! {
    static STREAMS: RefCell<HashMap<String, StreamCounters>> = RefCell::new(HashMap::new());
}

pub struct StreamCounters {
    accepted: [Counter; EventType::ALL.len()],
    pub rejected: Counter,
    pub refused: Counter,
}

impl StreamCounters {
    fn new(stream: &str) -> Self {
        Self {
            accepted: EventType::ALL.map(|event_type| {
                metrics::counter!(EVENTS_ACCEPTED, "stream" => stream.to_owned(), "type" => event_type.as_str())
            }),
            rejected: metrics::counter!(EVENTS_REJECTED, "stream" => stream.to_owned()),
            refused: metrics::counter!(REQUESTS_REFUSED, "stream" => stream.to_owned()),
        }
    }

    pub fn accepted(&self, event_type: EventType) -> &Counter {
        // `ALL` lists the variants in declaration order.
        &self.accepted[event_type as usize]
    }
}

impl IngestCounters {
    pub fn for_stream<R>(&self, stream: &str, count: impl FnOnce(&StreamCounters) -> R) -> R {
        STREAMS.with(|streams| {
            // Only a re-entrant call could find the cache borrowed; it then counts uncached.
            let Ok(mut streams) = streams.try_borrow_mut() else {
                return count(&StreamCounters::new(stream));
            };
            if let Some(counters) = streams.get(stream) {
                return count(counters);
            }
            let counters = StreamCounters::new(stream);
            let counted = count(&counters);
            if streams.len() < CACHED_STREAMS {
                streams.insert(stream.to_owned(), counters);
            }
            counted
        })
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

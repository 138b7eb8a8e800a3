//! One flushed table to every sink its stream goes to: each sink retried on its own until it
//! has stored the table, so a sink that has stored it is never written it again while another
//! keeps failing. The flush is acknowledged only when all have.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventkit_model::Table;
use eventkit_sinks::{Sink, SinkError};
use futures::FutureExt;

use crate::health::SinkHealth;
use crate::routes::Target;
use crate::telemetry;

/// Retry backoff for a failing store: start fast for blips, cap so a long outage costs a
/// probe every 30 s rather than a busy loop.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Resolves once every target has stored `table`. The targets are written side by side: a slow
/// sink delays the acknowledgement, not the other sinks' writes.
pub(super) async fn store_everywhere(targets: &[Target], table: Arc<Table>, health: &SinkHealth) {
    futures::future::join_all(
        targets
            .iter()
            .map(|target| store_until_written(target, table.clone(), health)),
    )
    .await;
}

/// Accepted records are never dropped: a failing store is retried with backoff for as long as
/// it takes, while the capacity it holds keeps the queue (and so memory) bounded and `/ready` false.
async fn store_until_written(target: &Target, table: Arc<Table>, health: &SinkHealth) {
    let mut delay = RETRY_FIRST;
    let stream = table.stream.clone();
    let sink_label = target.name.to_string();
    loop {
        let started = Instant::now();
        match write_once(target.sink.as_ref(), table.clone()).await {
            Ok(files) => {
                health.set(target.index, true);
                metrics::histogram!(telemetry::FLUSH_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(telemetry::BATCHES_WRITTEN, "stream" => stream.clone())
                    .increment(1);
                metrics::counter!(telemetry::SINK_BATCHES_WRITTEN, "sink" => sink_label.clone())
                    .increment(1);
                metrics::counter!(telemetry::SINK_ROWS_WRITTEN, "sink" => sink_label)
                    .increment(table.num_rows() as u64);
                for file in files {
                    metrics::counter!(telemetry::FILES_WRITTEN, "stream" => stream.clone())
                        .increment(1);
                    metrics::counter!(telemetry::ROWS_WRITTEN, "stream" => stream.clone())
                        .increment(file.rows as u64);
                    metrics::counter!(telemetry::BYTES_WRITTEN, "stream" => stream.clone())
                        .increment(file.bytes);
                    tracing::debug!(
                        sink = %target.name,
                        path = file.path,
                        rows = file.rows,
                        bytes = file.bytes,
                        "file stored"
                    );
                }
                return;
            }
            Err(error) => {
                health.set(target.index, false);
                metrics::counter!(telemetry::WRITE_ERRORS, "stream" => stream.clone()).increment(1);
                metrics::counter!(telemetry::SINK_WRITE_ERRORS, "sink" => sink_label.clone())
                    .increment(1);
                tracing::warn!(%error, sink = %target.name, stream, rows = table.num_rows(), retry_in = ?delay, "write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// A panicking write is a failed write: the table is immutable and a sink leaves nothing
/// visible from a failed call, so the same table is simply tried again.
async fn write_once(
    sink: &dyn Sink,
    table: Arc<Table>,
) -> Result<Vec<eventkit_sinks::WrittenFile>, SinkError> {
    match AssertUnwindSafe(sink.write(table)).catch_unwind().await {
        Ok(written) => written,
        Err(panic) => {
            metrics::counter!(telemetry::WRITE_PANICS).increment(1);
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(SinkError::Task(format!("the write panicked: {message}")))
        }
    }
}

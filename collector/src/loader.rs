//! `eventkit loader`: pulls what collectors in `pubsub` mode published and writes it through
//! the same batcher and sinks as `async` mode. Any number of loaders share one subscription.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::dedup::DedupWindow;
use crate::health::{SinkHealth, readiness};
use crate::queue::pubsub::{PubsubConsumer, PullHealth, connect};
use crate::server::{ServerError, open_batcher};
use crate::telemetry;

#[derive(Clone)]
struct Probes {
    pull: Arc<PullHealth>,
    sink: Arc<SinkHealth>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
}

/// Serves probes and loads until `shutdown` resolves; then stops pulling, stores and
/// acknowledges everything it holds, and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (batcher, sink_health) = open_batcher(&config).await?;
    let names = connect::names(&config.pubsub);
    connect::ensure_subscription(&config.pubsub, &names).await?;
    let subscriber = connect::subscriber(&config.pubsub).await?;
    // A message waits in a batch up to `batch.max_age_ms` and then for its file; the subscriber
    // extends its lease meanwhile, for up to this long (a store down for longer than this gets
    // its messages redelivered, which the window removes again).
    let max_lease = Duration::from_millis(config.batch.max_age_ms) + Duration::from_secs(3600);
    let subscription = names.subscription.clone();
    let ack_deadline = Duration::from_secs(config.loader.ack_deadline_secs);
    let max_outstanding = config.loader.max_outstanding_messages;
    let subscribe = move || {
        subscriber
            .subscribe(subscription.clone())
            .set_max_outstanding_messages(max_outstanding)
            .set_max_lease(max_lease)
            .set_max_lease_extension(ack_deadline)
            .set_shutdown_behavior(ShutdownBehavior::WaitForProcessing)
            .build()
    };
    let dedup = DedupWindow::new(
        config.loader.dedup_window_ids,
        Duration::from_secs(config.loader.dedup_window_secs),
    );
    let (stop, stopped) = watch::channel(false);
    let (consumer, pull) = PubsubConsumer::start(
        subscribe,
        dedup,
        config.queue.capacity,
        config.queue.capacity_bytes,
        stopped,
    );
    let writer = tokio::spawn(batcher.run(consumer));

    let probes = Probes {
        pull,
        sink: sink_health,
        prometheus: telemetry::prometheus(),
    };
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(probes);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, subscription = names.subscription, sinks = %crate::routes::describe(&config), "eventkit loader listening");
    }
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let probes_served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await
    });

    shutdown.await;
    tracing::info!("stopping: no more pulls; storing and acknowledging what is held");
    let _ = stop.send(true);
    let drained = writer.await;
    tracing::info!("everything pulled is stored and acknowledged");
    let _ = http_stop.send(());
    let served = probes_served
        .await
        .map_err(|e| ServerError::Batcher(e.to_string()))?;
    served?;
    drained.map_err(|e| ServerError::Batcher(e.to_string()))
}

async fn health() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// Ready: the subscription is being pulled and the last write to every sink succeeded.
async fn ready(State(probes): State<Probes>) -> Response {
    let pull = ("pull", probes.pull.is_healthy(), "failing");
    let (ready, body) = readiness(&probes.sink, &[pull]);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(probes): State<Probes>) -> Response {
    let text = telemetry::render(&probes.prometheus);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

//! HTTP surface. Handlers are thin: read, call the shared ingest path, map the result.

mod body;
mod collect;
mod error;
mod probes;
mod submit;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::batcher::SinkHealth;
use crate::queue::Queue;

pub use collect::valid_stream_name;
pub use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub queue: Arc<dyn Queue>,
    pub sink_health: Arc<SinkHealth>,
    pub prometheus: PrometheusHandle,
    pub trust_forwarded_for: bool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/collect/{stream}", post(collect::collect))
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .with_state(state)
}

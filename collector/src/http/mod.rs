//! HTTP surface. Handlers are thin: read, call the shared ingest path, map the result.

mod auth;
mod body;
mod collect;
mod cors;
mod error;
mod peer;
mod probes;
mod segment;
mod serve;
mod submit;
mod timed_body;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::CorsConfig;
use crate::health::SinkHealth;
use crate::queue::Queue;
use crate::streams::StreamRegistry;

pub use auth::{Auth, AuthError};
pub use error::ApiError;
pub use serve::{HttpServer, ServeLimits};

/// What every handler shares, one per server.
#[derive(Clone)]
pub struct AppState(Arc<ServerState>);

pub struct ServerState {
    pub queue: Arc<dyn Queue>,
    pub sink_health: Arc<SinkHealth>,
    pub prometheus: PrometheusHandle,
    pub trust_forwarded_for: bool,
    pub ip_policy: crate::ingest::IpPolicy,
    /// Write keys → streams, and the rules for requests without one.
    pub auth: Auth,
    pub cors: CorsConfig,
    /// `server.public_url`, for the analytics.js settings document.
    pub public_url: Option<String>,
    /// `server.max_streams`: which streams requests may write to.
    pub streams: StreamRegistry,
    /// Set when the stop begins: `/ready` says 503 and ingest is refused.
    pub draining: AtomicBool,
}

impl AppState {
    pub fn new(state: ServerState) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = ServerState;

    fn deref(&self) -> &ServerState {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    let ingest = Router::new()
        .route("/collect/{stream}", post(collect::collect))
        .merge(segment::routes());
    // Only the ingest routes answer browsers; probes are for the operator's tools.
    let ingest = match cors::layer(&state.cors) {
        Some(cors) => ingest.layer(cors),
        None => ingest,
    };
    ingest
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .with_state(state)
}

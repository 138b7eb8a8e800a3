//! Liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::health::readiness;
use crate::telemetry;

pub async fn health() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

/// Ready means a request sent now would be accepted and stored: the collector is not stopping,
/// the queue has room and the last write to every sink succeeded (a failing one is named).
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        let body = json!({ "ready": false, "draining": true, "queue_depth": state.queue.depth() });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let queue = ("queue", state.queue.has_room(), "full");
    let (ready, mut body) = readiness(&state.sink_health, &[queue]);
    body.insert("queue_depth".to_owned(), state.queue.depth().into());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!(telemetry::QUEUE_DEPTH).set(state.queue.depth() as f64);
    let text = telemetry::render(&state.prometheus);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

//! The Segment HTTP Tracking API (`/v1/*`), so Segment SDKs work by changing only their host.
//! Events go through the same `submit` path as `/collect`; only keys, paths and the response
//! shape differ.
//!
//! Responses follow what the SDKs act on: 200 is delivered; 400, 401 and 413 are dropped by
//! analytics-node, analytics-python and analytics.js without retrying; 503 (with
//! `Retry-After`) is retried.

mod settings;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use eventkit_model::EventType;
use serde_json::{Value, json};

use super::AppState;
use super::auth::header_key;
use super::body::read_body;
use super::error::ApiError;
use super::submit::{Destination, Submitted, submit};

/// `/v1/batch` and `/v1/import` take any mix of types; the single-event paths, and the one-letter
/// forms analytics.js posts to, imply the type when an event leaves it out.
const PATHS: [(&str, Option<EventType>); 14] = [
    ("/v1/batch", None),
    ("/v1/import", None),
    ("/v1/track", Some(EventType::Track)),
    ("/v1/t", Some(EventType::Track)),
    ("/v1/identify", Some(EventType::Identify)),
    ("/v1/i", Some(EventType::Identify)),
    ("/v1/page", Some(EventType::Page)),
    ("/v1/p", Some(EventType::Page)),
    ("/v1/screen", Some(EventType::Screen)),
    ("/v1/s", Some(EventType::Screen)),
    ("/v1/group", Some(EventType::Group)),
    ("/v1/g", Some(EventType::Group)),
    ("/v1/alias", Some(EventType::Alias)),
    ("/v1/a", Some(EventType::Alias)),
];

pub fn routes() -> Router<AppState> {
    // This path holds a write key: request logging must never record URIs verbatim.
    let mut router =
        Router::new().route("/v1/projects/{write_key}/settings", get(settings::settings));
    for (path, implied) in PATHS {
        router = router.route(
            path,
            post(move |State(state): State<AppState>, request: Request| {
                receive(state, request, implied)
            }),
        );
    }
    router
}

async fn receive(state: AppState, request: Request, implied: Option<EventType>) -> Response {
    match accept(&state, request, implied).await {
        Ok(Submitted { rejected, .. }) => {
            let body = if rejected.is_empty() {
                json!({ "success": true })
            } else {
                json!({ "success": true, "rejected": rejected })
            };
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(error) => failure(&error),
    }
}

async fn accept(
    state: &AppState,
    request: Request,
    implied: Option<EventType>,
) -> Result<Submitted, ApiError> {
    let (parts, body) = request.into_parts();
    // A key in the header settles the stream before the body is even read.
    let destination = match header_key(&parts.headers)? {
        Some(key) => Destination::Stream(state.auth.stream_for(Some(&key))?),
        None => Destination::BodyKey,
    };
    let body = read_body(&parts.headers, body).await?;
    submit(state, &parts, &body, destination, implied).await
}

/// The shared error body with Segment's `"success": false`.
pub(super) fn failure(error: &ApiError) -> Response {
    let mut body = error.body();
    body.insert("success".to_owned(), Value::Bool(false));
    error.respond_with(body)
}

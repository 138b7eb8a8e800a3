//! The one mapping from failures to HTTP answers. Clients get a status and a message they can
//! act on; internal detail goes to the log only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::{IngestError, MAX_BODY_BYTES, RejectedEvent};
use crate::queue::QueueError;

/// Seconds a client should wait after a 503. One second lets a batch flush free the queue
/// while keeping SDK retry loops (which also back off) from hammering.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "stream name {0:?} is invalid: use 1-64 characters from a-z, 0-9, _ and -, not starting with _"
    )]
    BadStream(String),
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("could not read the request body: {0}")]
    BadBody(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("no valid events in request")]
    NoValidEvents(Vec<RejectedEvent>),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadStream(_)
            | ApiError::BadBody(_)
            | ApiError::Ingest(_)
            | ApiError::NoValidEvents(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Queue(QueueError::Full | QueueError::Closed) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Queue(QueueError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Queue(QueueError::Backend(detail)) => {
                tracing::error!(detail, "queue backend failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let body = match &self {
            ApiError::NoValidEvents(rejected) => {
                json!({ "error": self.to_string(), "accepted": 0, "rejected": rejected })
            }
            ApiError::Queue(QueueError::Backend(_)) => {
                json!({ "error": "the queue is unavailable; retry later" })
            }
            _ => json!({ "error": self.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

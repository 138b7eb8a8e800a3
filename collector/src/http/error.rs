//! The one mapping from failures to HTTP answers. Clients get a status and a message they can
//! act on; internal detail goes to the log only.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventkit_model::InvalidStreamName;
use serde_json::json;

use super::auth::AuthError;
use crate::ingest::{GzipError, IngestError, MAX_BODY_BYTES, Rejection};
use crate::queue::QueueError;

/// Seconds a client should wait after a 503. One second lets a batch flush free the queue
/// while keeping SDK retry loops (which also back off) from hammering.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    BadStream(#[from] InvalidStreamName),
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("could not read the request body: {0}")]
    BadBody(String),
    #[error("request body is not a valid gzip stream: {0}")]
    BadGzip(#[source] std::io::Error),
    #[error("Content-Encoding {0:?} is not supported; send gzip or an uncompressed body")]
    UnsupportedEncoding(String),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("no valid events in request")]
    NoValidEvents(Vec<Rejection>),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the request body did not arrive within {} ms (server.body_timeout_ms)", .0.as_millis())]
    BodyTimeout(std::time::Duration),
    #[error("more than {0} requests at once (server.max_requests); retry shortly")]
    TooManyRequests(usize),
    #[error("the collector is shutting down; retry shortly")]
    ShuttingDown,
    #[error(transparent)]
    TooManyStreams(#[from] crate::streams::StreamLimit),
}

impl From<GzipError> for ApiError {
    fn from(error: GzipError) -> Self {
        match error {
            GzipError::TooLarge => ApiError::TooLarge,
            GzipError::Corrupt(source) => ApiError::BadGzip(source),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadStream(_)
            | ApiError::BadBody(_)
            | ApiError::BadGzip(_)
            | ApiError::Ingest(_)
            | ApiError::NoValidEvents(_)
            | ApiError::TooManyStreams(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests(_) | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Queue(QueueError::Full | QueueError::Closed | QueueError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Queue(QueueError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Queue(QueueError::Backend(_)) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON object sent to the client; endpoints may add fields of their own.
    pub fn body(&self) -> serde_json::Map<String, serde_json::Value> {
        let body = match self {
            ApiError::NoValidEvents(rejected) => {
                json!({ "error": self.to_string(), "accepted": 0, "rejected": rejected })
            }
            ApiError::Queue(QueueError::Backend(_)) => {
                json!({ "error": "the queue is unavailable; retry later" })
            }
            _ => json!({ "error": self.to_string() }),
        };
        match body {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The one place an error answered to a client is logged or counted.
    fn record(&self) {
        match self {
            // Not labelled by key or stream: an unknown key must not become a metric label.
            ApiError::Unauthorized(_) => {
                metrics::counter!(crate::telemetry::REQUESTS_UNAUTHORIZED).increment(1);
            }
            // The client sees a generic 503; the detail is for the operator.
            ApiError::Queue(QueueError::Backend(detail)) => {
                tracing::error!(detail, "queue backend failed");
            }
            _ => {}
        }
    }

    /// A response with `body` (normally [`ApiError::body`]), the status and any retry header.
    pub fn respond_with(&self, body: serde_json::Map<String, serde_json::Value>) -> Response {
        let status = self.status();
        self.record();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if matches!(
            self,
            ApiError::TooLarge
                | ApiError::BadBody(_)
                | ApiError::BodyTimeout(_)
                | ApiError::TooManyRequests(_)
                | ApiError::ShuttingDown
        ) {
            // The rest of the body may still be in flight and unread: the connection cannot
            // carry another request, so say so instead of letting the client find out.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond_with(self.body())
    }
}

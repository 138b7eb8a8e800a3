//! `POST /collect/<stream>`: the native endpoint. Decode, hand to the shared ingest path, map
//! the result; nothing else lives here.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventkit_model::StreamName;

use super::AppState;
use super::auth::header_key;
use super::body::read_body;
use super::error::ApiError;
use super::submit::{Destination, Submitted, submit};

pub async fn collect(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let stream = String::from(StreamName::parse(stream)?);
    let (parts, body) = request.into_parts();
    let destination = if state.auth.collect_requires_key() {
        match header_key(&parts.headers)? {
            Some(key) => {
                state.auth.check_stream(Some(&key), &stream)?;
                Destination::Stream(stream)
            }
            None => Destination::BodyKeyFor(stream),
        }
    } else {
        Destination::Stream(stream)
    };
    let body = read_body(&parts.headers, body).await?;
    let outcome = submit(&state, &parts, &body, destination, None).await?;
    Ok(answer(outcome))
}

const ONE_ACCEPTED: &str = r#"{"accepted":1,"rejected":[]}"#;

/// `202 {"accepted": N, "rejected": [...]}`. Nearly every answer rejects nothing; that one is
/// written directly, sparing a serializer run per request.
fn answer(outcome: Submitted) -> Response {
    if outcome.rejected.is_empty() {
        let body = match outcome.accepted {
            1 => Body::from(ONE_ACCEPTED),
            n => Body::from(format!(r#"{{"accepted":{n},"rejected":[]}}"#)),
        };
        let json = [(header::CONTENT_TYPE, "application/json")];
        (StatusCode::ACCEPTED, json, body).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(outcome)).into_response()
    }
}

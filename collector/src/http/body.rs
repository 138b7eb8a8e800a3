//! Reading a request body within the size limit.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;

use super::error::ApiError;
use crate::ingest::MAX_BODY_BYTES;

pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(ApiError::TooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            // `to_bytes` reports the limit as an error in the chain; anything else is a broken body.
            let over_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if over_limit {
                ApiError::TooLarge
            } else {
                ApiError::BadBody(error.to_string())
            }
        })
}

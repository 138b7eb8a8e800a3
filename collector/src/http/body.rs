//! Reading a request body within the size limit; gzip bodies are inflated under the same limit.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;

use super::error::ApiError;
use super::timed_body::BodyTimedOut;
use crate::ingest::{MAX_BODY_BYTES, gunzip};

pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let gzip = match headers.get(header::CONTENT_ENCODING) {
        None => false,
        Some(value) => match value.to_str().map(str::trim) {
            Ok(v) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => true,
            Ok(v) if v.is_empty() || v.eq_ignore_ascii_case("identity") => false,
            Ok(v) => return Err(ApiError::UnsupportedEncoding(v.to_owned())),
            Err(_) => return Err(ApiError::UnsupportedEncoding("<not text>".to_owned())),
        },
    };
    let raw = read_limited(headers, body).await?;
    if gzip {
        Ok(Bytes::from(gunzip(&raw)?))
    } else {
        Ok(raw)
    }
}

async fn read_limited(headers: &HeaderMap, mut body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(ApiError::TooLarge);
    }
    // A body that came in one piece is used as it is. Any other is copied, piece by piece, into
    // one buffer of the declared size: keeping the pieces would pin hyper's read buffers, each
    // mostly empty, which roughly doubled what a half-sent body held.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(piece) = frame.map_err(body_error)?.into_data() else {
            continue; // trailers
        };
        let so_far = first.as_ref().map_or(joined.len(), Bytes::len);
        if so_far + piece.len() > MAX_BODY_BYTES {
            return Err(ApiError::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(piece),
            held => {
                if let Some(held) = held {
                    joined.reserve_exact(declared.unwrap_or(0).max(held.len() + piece.len()));
                    joined.extend_from_slice(&held);
                }
                joined.extend_from_slice(&piece);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

fn body_error(error: axum::Error) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(error) = cause {
        if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
            return ApiError::BodyTimeout(timed_out.0);
        }
        cause = error.source();
    }
    ApiError::BadBody(error.to_string())
}

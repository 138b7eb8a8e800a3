//! Reading a request body within the size limit, inflating gzip bodies (which Segment SDKs
//! send) under the same limit so a small compressed body cannot become a large one in memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http_body_util::BodyExt;

use super::error::ApiError;
use super::timed_body::BodyTimedOut;
use crate::ingest::MAX_BODY_BYTES;

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
    if gzip { gunzip(&raw) } else { Ok(raw) }
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

/// Inflates at most one byte past the limit: enough to know the body is too large without
/// ever holding more than the limit. Multi-member streams are allowed, as gzip permits them.
pub fn gunzip(compressed: &[u8]) -> Result<Bytes, ApiError> {
    // A gzip stream ends with its inflated size (mod 2^32). It is only a hint from the client,
    // so it is capped by the limit; it spares the regrowth copies of guessing.
    let hint = compressed
        .last_chunk::<4>()
        .map_or(0, |size| u32::from_le_bytes(*size) as usize);
    let mut inflated = Vec::with_capacity(hint.min(MAX_BODY_BYTES + 1));
    MultiGzDecoder::new(compressed)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| ApiError::BadGzip(error.to_string()))?;
    if inflated.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge);
    }
    Ok(Bytes::from(inflated))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        let _ = encoder.write_all(data);
        encoder.finish().unwrap_or_default()
    }

    #[test]
    fn inflates_up_to_the_limit_and_no_further() {
        let exact = vec![b' '; MAX_BODY_BYTES];
        assert_eq!(
            gunzip(&gzip(&exact)).map(|b| b.len()).ok(),
            Some(MAX_BODY_BYTES)
        );
        let bomb = vec![b' '; 4 * MAX_BODY_BYTES];
        let compressed = gzip(&bomb);
        assert!(compressed.len() < MAX_BODY_BYTES / 100);
        assert!(matches!(gunzip(&compressed), Err(ApiError::TooLarge)));
    }

    #[test]
    fn corrupt_or_truncated_streams_are_bad_gzip() {
        assert!(matches!(
            gunzip(b"not gzip at all"),
            Err(ApiError::BadGzip(_))
        ));
        let whole = gzip(br#"{"type":"track"}"#);
        let truncated = &whole[..whole.len() - 6];
        assert!(matches!(gunzip(truncated), Err(ApiError::BadGzip(_))));
    }
}

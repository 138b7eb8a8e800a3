//! Reading a request body within the size limit, inflating gzip bodies (which Segment SDKs
//! send) under the same limit so a small compressed body cannot become a large one in memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use super::error::ApiError;
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

async fn read_limited(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
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

/// Inflates at most one byte past the limit: enough to know the body is too large without
/// ever holding more than the limit. Multi-member streams are allowed, as gzip permits them.
fn gunzip(compressed: &[u8]) -> Result<Bytes, ApiError> {
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

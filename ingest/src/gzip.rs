//! Inflating gzip request bodies (which Segment SDKs send) under the body limit, so a small
//! compressed body cannot become a large one in memory.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::MAX_BODY_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    #[error("inflated body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("request body is not a valid gzip stream: {0}")]
    Corrupt(#[source] std::io::Error),
}

/// Inflates at most one byte past the limit: enough to know the body is too large without
/// ever holding more than the limit. Multi-member streams are allowed, as gzip permits them.
pub fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, GzipError> {
    // A gzip stream ends with its inflated size (mod 2^32). It is only a hint from the client,
    // so it is capped by the limit; it spares the regrowth copies of guessing.
    let hint = compressed
        .last_chunk::<4>()
        .map_or(0, |size| u32::from_le_bytes(*size) as usize);
    let mut inflated = Vec::with_capacity(hint.min(MAX_BODY_BYTES + 1));
    MultiGzDecoder::new(compressed)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(GzipError::Corrupt)?;
    if inflated.len() > MAX_BODY_BYTES {
        return Err(GzipError::TooLarge);
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn inflates_up_to_the_limit_and_no_further() {
        let exact = vec![b' '; MAX_BODY_BYTES];
        assert_eq!(gunzip(&gzip(&exact)).unwrap().len(), MAX_BODY_BYTES);
        let bomb = vec![b' '; 4 * MAX_BODY_BYTES];
        let compressed = gzip(&bomb);
        assert!(compressed.len() < MAX_BODY_BYTES / 100);
        assert!(matches!(gunzip(&compressed), Err(GzipError::TooLarge)));
    }

    #[test]
    fn corrupt_or_truncated_streams_are_refused() {
        assert!(matches!(
            gunzip(b"not gzip at all"),
            Err(GzipError::Corrupt(_))
        ));
        let whole = gzip(br#"{"type":"track"}"#);
        let truncated = &whole[..whole.len() - 6];
        assert!(matches!(gunzip(truncated), Err(GzipError::Corrupt(_))));
    }
}

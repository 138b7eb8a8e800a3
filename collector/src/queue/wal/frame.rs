//! One WAL record on disk: `[payload length: u32 LE][crc32c: u32 LE][payload]`, where the
//! checksum covers the length bytes and the payload, and the payload is a request's batches in
//! postcard. See specs/wal.md.

use eventkit_model::{Batch, Event, Records, Rejected};
use serde::{Deserialize, Serialize};

pub(super) const HEADER_BYTES: usize = 8;
/// Larger than any request could encode to (bodies are at most 500 KiB): a length past it is
/// corruption, not a record, and is never allocated for.
pub(super) const MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The WAL's own shape of a batch, independent of how the model serialises elsewhere (JSON,
/// Pub/Sub): a plain enum, which postcard encodes as a one-byte variant index.
#[derive(Serialize)]
enum RecordsOut<'a> {
    Events(&'a [Event]),
    Rejected(&'a [Rejected]),
}

#[derive(Deserialize)]
enum RecordsIn {
    Events(Vec<Event>),
    Rejected(Vec<Rejected>),
}

struct BatchesOut<'a>(&'a [Batch]);

impl Serialize for BatchesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|batch| {
            let records = match &batch.records {
                Records::Events(events) => RecordsOut::Events(events),
                Records::Rejected(rejected) => RecordsOut::Rejected(rejected),
            };
            (batch.stream.as_str(), records)
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("encoding a WAL record: {0}")]
    Encode(#[from] postcard::Error),
    #[error("a WAL record of {0} bytes is larger than the format allows")]
    TooLarge(usize),
}

/// A request's batches as one framed record, ready to append.
pub(super) fn encode(batches: &[Batch]) -> Result<Vec<u8>, FrameError> {
    let framed = postcard::to_extend(&BatchesOut(batches), vec![0; HEADER_BYTES])?;
    let len = framed.len() - HEADER_BYTES;
    if len > MAX_PAYLOAD_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut framed = framed;
    framed[..4].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&framed[..4]), &framed[HEADER_BYTES..]);
    framed[4..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    Ok(framed)
}

/// The batches of a payload whose checksum held.
pub(super) fn decode(payload: &[u8]) -> Result<Vec<Batch>, postcard::Error> {
    let batches: Vec<(String, RecordsIn)> = postcard::from_bytes(payload)?;
    Ok(batches
        .into_iter()
        .map(|(stream, records)| Batch {
            stream,
            records: match records {
                RecordsIn::Events(events) => Records::Events(events),
                RecordsIn::Rejected(rejected) => Records::Rejected(rejected),
            },
        })
        .collect())
}

/// The payloads of `bytes` (a segment after its header) up to the first frame that is cut off
/// or fails its checksum, and how many bytes that valid prefix takes.
pub(super) fn valid_prefix(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut payloads = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER_BYTES) {
        let len_bytes = [header[0], header[1], header[2], header[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // A zero length is never written (a payload holds at least its batch count): zeroes are
        // what a file extended by a crash but never written reads as.
        if len == 0 || len > MAX_PAYLOAD_BYTES {
            break;
        }
        let start = at + HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload) != crc {
            break;
        }
        payloads.push(payload);
        at = start + len;
    }
    (payloads, at)
}

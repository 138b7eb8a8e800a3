//! The part every ingest endpoint shares after reading its body: run the ingest path, settle
//! which stream the request may write to, enqueue accepted events and dead letters together,
//! count them. Nothing is enqueued for a request that fails authentication.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use chrono::Utc;
use eventkit_sinks::{Batch, EventType, REJECTED_STREAM, Records};

use super::AppState;
use super::error::ApiError;
use crate::ingest::{RejectedEvent, RequestInfo, ingest};

/// Where a request's events go, as far as is known before its body is parsed.
pub enum Destination {
    /// Settled already: by the path, or by a write key in the `Authorization` header.
    Stream(String),
    /// Settled by the `writeKey` in the body (`/v1/*` without a header key).
    BodyKey,
    /// `/collect/<stream>` when keys are required and none came in a header: the body's
    /// `writeKey` must belong to this stream.
    BodyKeyFor(String),
}

/// What a write key in the body decides, given the destination.
enum BodyKey {
    Ignored,
    /// It must belong to the stream already chosen.
    MustMatch,
    /// It names the stream.
    ChoosesStream,
}

/// Serializes as `/collect`'s answer: `{"accepted": N, "rejected": [...]}`.
#[derive(serde::Serialize)]
pub struct Submitted {
    pub accepted: usize,
    pub rejected: Vec<RejectedEvent>,
}

pub async fn submit(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
    destination: Destination,
    implied_type: Option<EventType>,
) -> Result<Submitted, ApiError> {
    let (stream, body_key) = match destination {
        Destination::Stream(stream) => (stream, BodyKey::Ignored),
        Destination::BodyKeyFor(stream) => (stream, BodyKey::MustMatch),
        Destination::BodyKey => (String::new(), BodyKey::ChoosesStream),
    };
    let peer = PeerText::of(parts);
    let mut info = RequestInfo {
        stream,
        received_at: Utc::now(),
        client_ip: client_ip(parts, state.trust_forwarded_for, &peer),
        implied_type,
    };
    let mut outcome = ingest(body, &info)?;
    match body_key {
        BodyKey::Ignored => {}
        BodyKey::MustMatch => {
            state
                .auth
                .check_stream(outcome.write_key.as_deref(), &info.stream)?;
        }
        BodyKey::ChoosesStream => {
            info.stream = state.auth.stream_for(outcome.write_key.as_deref())?;
            // Dead letters were stamped before the stream was known.
            for rejected in &mut outcome.rejected {
                rejected.stream.clone_from(&info.stream);
            }
        }
    }
    let rejected = outcome.rejections();
    let accepted = outcome.events.len();

    // Looked up before the stream's name moves into the batch, so the name is not copied.
    let counts = state.counters.for_stream(&info.stream);
    let mut batches = Vec::with_capacity(2);
    let mut per_type = [0u64; EventType::ALL.len()];
    if !outcome.events.is_empty() {
        for event in &outcome.events {
            per_type[event.event_type as usize] += 1;
        }
        batches.push(Batch {
            stream: info.stream,
            records: Records::Events(outcome.events),
        });
    }
    if !outcome.rejected.is_empty() {
        batches.push(Batch {
            stream: REJECTED_STREAM.to_owned(),
            records: Records::Rejected(outcome.rejected),
        });
    }
    let enqueued = state.queue.enqueue(batches).await;
    if enqueued.is_err() {
        counts.refused();
    } else {
        for (event_type, count) in EventType::ALL.into_iter().zip(per_type) {
            if count > 0 {
                counts.accepted(event_type, count);
            }
        }
        if !rejected.is_empty() {
            counts.rejected(rejected.len() as u64);
        }
    }
    enqueued?;
    if accepted == 0 {
        // Every event was refused: a client error, though the dead letters are already kept.
        return Err(ApiError::NoValidEvents(rejected));
    }
    Ok(Submitted { accepted, rejected })
}

/// The first `X-Forwarded-For` hop when configured to trust the proxy, else the peer address.
fn client_ip<'a>(
    parts: &'a Parts,
    trust_forwarded_for: bool,
    peer: &'a PeerText,
) -> Option<&'a str> {
    if trust_forwarded_for
        && let Some(first) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return Some(first);
    }
    peer.as_str()
}

/// The longest text of an address: an IPv4-mapped IPv6 one.
const ADDRESS_TEXT_BYTES: usize = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".len();

/// The peer's address as text, kept on the stack: every request needs it, and it is copied into
/// the event anyway.
struct PeerText {
    bytes: [u8; ADDRESS_TEXT_BYTES],
    len: usize,
}

impl PeerText {
    fn of(parts: &Parts) -> Self {
        let mut text = Self {
            bytes: [0; ADDRESS_TEXT_BYTES],
            len: 0,
        };
        if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            text.write(addr.ip());
        }
        text
    }

    fn as_str(&self) -> Option<&str> {
        let text = std::str::from_utf8(self.bytes.get(..self.len)?).ok()?;
        (!text.is_empty()).then_some(text)
    }

    /// IPv4, nearly every peer, is written digit by digit: the general formatter costs as much
    /// as the rest of the enrichment put together.
    fn write(&mut self, ip: IpAddr) {
        let IpAddr::V4(v4) = ip else {
            let mut rest = &mut self.bytes[..];
            if write!(rest, "{ip}").is_ok() {
                self.len = ADDRESS_TEXT_BYTES - rest.len();
            }
            return;
        };
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            if octet >= 100 {
                self.push(b'0' + octet / 100);
            }
            if octet >= 10 {
                self.push(b'0' + octet / 10 % 10);
            }
            self.push(b'0' + octet % 10);
        }
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_the_standard_formatter_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.9.255",
            "192.168.100.20",
            "::1",
            "2001:db8::7",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let Ok(parsed) = ip.parse::<IpAddr>() else {
                panic!("{ip}")
            };
            let mut text = PeerText {
                bytes: [0; ADDRESS_TEXT_BYTES],
                len: 0,
            };
            text.write(parsed);
            assert_eq!(text.as_str(), Some(parsed.to_string().as_str()));
        }
    }
}

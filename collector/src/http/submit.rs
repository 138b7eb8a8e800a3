//! The part every ingest endpoint shares after reading its body: run the ingest path, settle
//! which stream the request may write to, enqueue accepted events and dead letters together,
//! count them. Nothing is enqueued for a request that fails authentication.

use axum::http::request::Parts;
use chrono::Utc;
use eventkit_model::{Batch, EventType, REJECTED_STREAM, Records};

use super::AppState;
use super::error::ApiError;
use super::peer::{PeerText, client_ip};
use crate::ingest::{Rejection, RequestInfo, ingest};

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
    pub rejected: Vec<Rejection>,
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
        ip_policy: state.ip_policy,
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
    let counts = state.streams.admit(&info.stream)?;
    let rejected = outcome.rejections();
    let accepted = outcome.events.len();

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

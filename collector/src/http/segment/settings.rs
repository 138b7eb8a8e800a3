//! `GET /v1/projects/<writeKey>/settings`: what analytics.js (`@segment/analytics-next`) loads
//! from its `cdnURL` before sending anything. The document enables only the Segment.io
//! destination and points it back at this collector; everything else is present but empty so
//! the SDK loads no extra code and contacts no other host.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::failure;
use crate::http::AppState;
use crate::http::auth::AuthError;
use crate::http::error::ApiError;

/// Browsers may reuse the document for a minute: keys rarely change, and page loads are many.
const CACHE_CONTROL: &str = "public, max-age=60";

pub async fn settings(
    State(state): State<AppState>,
    Path(write_key): Path<String>,
    parts: Parts,
) -> Response {
    if !state.auth.is_known(&write_key) && !state.auth.allows_anonymous() {
        return failure(&ApiError::Unauthorized(AuthError::Unknown));
    }
    let Some((protocol, api_host)) = api_host(&state, &parts) else {
        return failure(&ApiError::BadBody(
            "the request has no Host header to build apiHost from; set server.public_url"
                .to_owned(),
        ));
    };
    let mut response = Json(document(&write_key, &protocol, &api_host)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}

/// `("https", "collect.example.com/v1")` from `server.public_url`, else from the request.
fn api_host(state: &AppState, parts: &Parts) -> Option<(String, String)> {
    if let Some(url) = state.public_url.as_deref() {
        let (protocol, rest) = url.split_once("://")?;
        return Some((
            protocol.to_owned(),
            format!("{}/v1", rest.trim_end_matches('/')),
        ));
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))?;
    let forwarded_proto = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| state.trust_forwarded_for && (*p == "http" || *p == "https"));
    let protocol = forwarded_proto.unwrap_or("http").to_owned();
    Some((protocol, format!("{host}/v1")))
}

fn document(write_key: &str, protocol: &str, api_host: &str) -> Value {
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": true,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": { "__default": { "enabled": true, "integrations": {} } },
            "identify": { "__default": { "enabled": true } },
            "group": { "__default": { "enabled": true } },
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        // The SDK's own telemetry would otherwise go to Segment's servers.
        "metrics": { "sampleRate": 0 },
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}

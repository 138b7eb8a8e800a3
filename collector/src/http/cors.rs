//! Cross-origin access for browser SDKs. analytics.js posts `text/plain` to skip the preflight
//! but adds `Authorization` (and `X-Retry-Count` on retries), so preflights happen anyway and
//! must succeed for every header an SDK may add.

use std::time::Duration;

use axum::http::{HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// Browsers cap this (Chromium at 2 h); a day asks for the cap, sparing a preflight per event.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// `None` when no origin is allowed: responses then carry no CORS headers at all.
pub fn layer(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origin = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Config validation has checked every origin is a valid header value.
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            // The origin list is the access control; headers are whatever the SDK needs.
            .allow_headers(AllowHeaders::mirror_request())
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

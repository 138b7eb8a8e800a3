//! Write keys → streams. A key arrives as HTTP Basic auth (`base64(writeKey + ":")`), which is
//! checked before the body is read, or as `writeKey` in the body, checked after parsing and
//! before anything is enqueued. Keys never appear in logs or error texts.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Config;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "a write key is required: send it as HTTP Basic auth (the key as user name) or as writeKey in the body"
    )]
    Missing,
    #[error("the write key is not valid")]
    Unknown,
    #[error("the write key is not valid for stream {0:?}")]
    WrongStream(String),
    #[error("the Authorization header must be Basic base64(writeKey + \":\")")]
    BadHeader,
}

/// Built once from config; read on every request.
#[derive(Clone, Default)]
pub struct Auth {
    streams: HashMap<String, String>,
    allow_anonymous: bool,
    anonymous_stream: String,
    collect_requires_key: bool,
}

impl Auth {
    pub fn from_config(config: &Config) -> Self {
        Self {
            streams: config
                .sources
                .iter()
                .map(|s| (s.write_key.as_str().to_owned(), s.stream.clone()))
                .collect(),
            allow_anonymous: config.auth.allow_anonymous,
            anonymous_stream: config.auth.anonymous_stream.clone(),
            collect_requires_key: config.auth.collect_requires_key,
        }
    }

    pub fn collect_requires_key(&self) -> bool {
        self.collect_requires_key
    }

    pub fn is_known(&self, key: &str) -> bool {
        self.streams.contains_key(key)
    }

    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// The stream a `/v1/*` request writes to.
    pub fn stream_for(&self, key: Option<&str>) -> Result<String, AuthError> {
        match key.filter(|k| !k.is_empty()).map(|k| self.streams.get(k)) {
            Some(Some(stream)) => Ok(stream.clone()),
            // Development mode treats a wrong key like a missing one, so an SDK configured with
            // any placeholder key works out of the box.
            _ if self.allow_anonymous => Ok(self.anonymous_stream.clone()),
            Some(None) => Err(AuthError::Unknown),
            None => Err(AuthError::Missing),
        }
    }

    /// For `/collect/<stream>` when keys are required: the key must belong to that stream.
    pub fn check_stream(&self, key: Option<&str>, stream: &str) -> Result<(), AuthError> {
        match key.filter(|k| !k.is_empty()).map(|k| self.streams.get(k)) {
            Some(Some(own)) if own == stream => Ok(()),
            Some(Some(_)) => Err(AuthError::WrongStream(stream.to_owned())),
            Some(None) => Err(AuthError::Unknown),
            None => Err(AuthError::Missing),
        }
    }
}

/// The write key from `Authorization: Basic …`, if the header is there.
pub fn header_key(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::BadHeader)?.trim();
    let (scheme, encoded) = value.split_once(' ').ok_or(AuthError::BadHeader)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::BadHeader);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| AuthError::BadHeader)?;
    let text = String::from_utf8(decoded).map_err(|_| AuthError::BadHeader)?;
    // The key is the user name; SDKs send an empty password, but some send none at all.
    let key = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_pairs;
    use axum::http::HeaderValue;

    fn auth(anonymous: bool) -> Auth {
        let mut config = Config {
            sources: parse_pairs("k-web=web,k-app=app").unwrap_or_default(),
            ..Config::default()
        };
        config.auth.allow_anonymous = anonymous;
        Auth::from_config(&config)
    }

    fn basic(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(raw));
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    #[test]
    fn keys_map_to_their_streams() {
        let auth = auth(false);
        assert_eq!(auth.stream_for(Some("k-app")), Ok("app".to_owned()));
        assert_eq!(auth.stream_for(Some("nope")), Err(AuthError::Unknown));
        assert_eq!(auth.stream_for(Some("")), Err(AuthError::Missing));
        assert_eq!(auth.stream_for(None), Err(AuthError::Missing));
        assert_eq!(auth.check_stream(Some("k-web"), "web"), Ok(()));
        assert_eq!(
            auth.check_stream(Some("k-web"), "app"),
            Err(AuthError::WrongStream("app".to_owned()))
        );
    }

    #[test]
    fn anonymous_mode_sends_keyless_requests_to_one_stream() {
        let auth = auth(true);
        assert_eq!(auth.stream_for(None), Ok("default".to_owned()));
        assert_eq!(auth.stream_for(Some("typo")), Ok("default".to_owned()));
        assert_eq!(auth.stream_for(Some("k-web")), Ok("web".to_owned()));
    }

    #[test]
    fn basic_auth_carries_the_key_as_user_name() {
        assert_eq!(header_key(&basic("k-web:")), Ok(Some("k-web".to_owned())));
        assert_eq!(header_key(&basic("k-web")), Ok(Some("k-web".to_owned())));
        assert_eq!(header_key(&HeaderMap::new()), Ok(None));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(header_key(&bearer), Err(AuthError::BadHeader));
        let mut garbage = HeaderMap::new();
        garbage.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic %%%"));
        assert_eq!(header_key(&garbage), Err(AuthError::BadHeader));
    }
}

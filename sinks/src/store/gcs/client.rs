//! The HTTP side of the GCS store: one authenticated request with bounded retries, the JSON
//! object resource, checksums, and the mapping of GCS answers onto `object_store::Error`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use md5::{Digest as _, Md5};
use object_store::ObjectMeta;
use object_store::path::Path;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

pub(super) const STORE: &str = "GCS";

/// Attempts per call, first one included. Short on purpose: the batch writer above retries whole
/// files for as long as the store is down, so a long loop here would only hide the outage from
/// `/ready` and the failure metrics.
const MAX_ATTEMPTS: u32 = 3;
/// First backoff; each retry waits four times longer (100 ms, 400 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// A dead endpoint should fail a call in seconds, not minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Metadata calls are small; anything slower than this is a stuck connection.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Body transfers of up to one upload chunk (8 MiB by default) or one media read.
pub(super) const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of an error body ends up in an error message.
const MAX_ERROR_BODY: usize = 512;

/// Everything in an object name except RFC 3986 unreserved characters is escaped, `/` included,
/// because the JSON API takes the whole name as a single path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum GcsError {
    #[error("building Application Default Credentials: {0}")]
    Credentials(#[source] google_cloud_auth::build_errors::Error),
    #[error("fetching auth headers: {0}")]
    Auth(#[source] google_cloud_auth::errors::CredentialsError),
    #[error("auth headers unavailable (credentials answered not-modified without a cached copy)")]
    AuthNotCached,
    #[error("invalid GCS endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("invalid GCS option: {0}")]
    Option(String),
    #[error("request to GCS failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("GCS answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    #[error("unexpected GCS response: {0}")]
    Protocol(String),
    #[error("{what} of {name:?} differs: sent {sent}, GCS stored {stored}")]
    Checksum {
        name: String,
        what: &'static str,
        sent: String,
        stored: String,
    },
}

impl GcsError {
    pub(super) fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Maps onto the variants callers of `ObjectStore` match on (NotFound above all).
    pub(super) fn into_store(self, path: &str) -> object_store::Error {
        let path = path.to_owned();
        match self.status() {
            Some(StatusCode::NOT_FOUND) => object_store::Error::NotFound {
                path,
                source: Box::new(self),
            },
            Some(StatusCode::PRECONDITION_FAILED) => object_store::Error::Precondition {
                path,
                source: Box::new(self),
            },
            Some(StatusCode::NOT_MODIFIED) => object_store::Error::NotModified {
                path,
                source: Box::new(self),
            },
            _ => object_store::Error::Generic {
                store: STORE,
                source: Box::new(self),
            },
        }
    }
}

/// Which failures a call may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Reads, deletes, overwrites: repeating them is harmless, so connect errors, timeouts,
    /// 429 and 5xx are retried.
    Idempotent,
    /// Resumable chunks and create-only writes: only a request that never reached the server is
    /// repeated. A chunk that may have landed is never re-sent, because the server's handling of
    /// a duplicate chunk is the one thing emulator and production disagree on; the upload fails
    /// instead and the caller rewrites the file.
    ConnectOnly,
}

/// The JSON API's object resource, the fields the store uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ObjectResource {
    pub name: String,
    pub size: String,
    pub generation: String,
    pub etag: Option<String>,
    pub updated: Option<DateTime<Utc>>,
    pub time_created: Option<DateTime<Utc>>,
    pub crc32c: Option<String>,
    pub md5_hash: Option<String>,
    pub content_type: Option<String>,
}

impl ObjectResource {
    pub fn size(&self) -> Result<u64, GcsError> {
        self.size
            .parse()
            .map_err(|_| GcsError::Protocol(format!("object size {:?}", self.size)))
    }

    pub fn meta(&self) -> object_store::Result<ObjectMeta> {
        let size = self.size().map_err(|e| e.into_store(&self.name))?;
        Ok(ObjectMeta {
            location: Path::parse(&self.name)?,
            last_modified: self.updated.or(self.time_created).unwrap_or_default(),
            size,
            e_tag: self.etag.clone(),
            version: Some(self.generation.clone()),
        })
    }

    /// Compares what GCS stored with what was sent. md5 is absent for composite objects, so only
    /// its presence with a different value fails.
    pub fn verify(&self, sent: &Checksums) -> Result<(), GcsError> {
        let mismatch = |what, sent: String, stored: String| GcsError::Checksum {
            name: self.name.clone(),
            what,
            sent,
            stored,
        };
        let size = self.size()?;
        if size != sent.len {
            return Err(mismatch("size", sent.len.to_string(), size.to_string()));
        }
        match &self.crc32c {
            Some(stored) if *stored == sent.crc32c_b64() => {}
            stored => {
                return Err(mismatch(
                    "crc32c",
                    sent.crc32c_b64(),
                    stored.clone().unwrap_or_default(),
                ));
            }
        }
        match &self.md5_hash {
            Some(stored) if *stored != sent.md5_b64() => {
                Err(mismatch("md5", sent.md5_b64(), stored.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// Running crc32c and md5 of the bytes sent, so every write is checked against what GCS stored.
#[derive(Clone, Default)]
pub(super) struct Checksums {
    crc32c: u32,
    md5: Md5,
    len: u64,
}

impl Checksums {
    pub fn update(&mut self, data: &[u8]) {
        self.crc32c = crc32c::crc32c_append(self.crc32c, data);
        self.md5.update(data);
        self.len += data.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// GCS spells crc32c as the base64 of the big-endian u32.
    pub fn crc32c_b64(&self) -> String {
        B64.encode(self.crc32c.to_be_bytes())
    }

    pub fn md5_b64(&self) -> String {
        B64.encode(self.md5.clone().finalize())
    }

    /// The `X-Goog-Hash` value: production GCS refuses to finalise an object that doesn't match.
    pub fn goog_hash(&self) -> String {
        format!("crc32c={},md5={}", self.crc32c_b64(), self.md5_b64())
    }
}

#[derive(Debug)]
pub(super) struct Client {
    http: reqwest::Client,
    credentials: Credentials,
    endpoint: String,
    bucket: String,
}

impl Client {
    pub fn new(
        endpoint: String,
        bucket: String,
        credentials: Credentials,
    ) -> Result<Self, GcsError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(GcsError::Http)?;
        Ok(Self {
            http,
            credentials,
            endpoint,
            bucket,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn object_url(&self, name: &str) -> String {
        format!("{}/o/{}", self.bucket_url(), encode(name))
    }

    pub fn bucket_url(&self) -> String {
        format!("{}/storage/v1/b/{}", self.endpoint, encode(&self.bucket))
    }

    pub fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.endpoint,
            encode(&self.bucket)
        )
    }

    /// A request with a timeout suited to metadata calls; callers that move bodies override it.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url).timeout(METADATA_TIMEOUT)
    }

    /// Sends a request built afresh for every attempt, with auth headers, and returns the first
    /// response that is neither a retryable failure nor past the attempt budget. Non-success
    /// statuses are turned into `GcsError::Status`, except those in `accept`.
    pub async fn send(
        &self,
        retry: Retry,
        accept: &[StatusCode],
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, GcsError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let headers = self.auth_headers().await?;
            let outcome = build().headers(headers).send().await;
            let last = attempt >= MAX_ATTEMPTS;
            match outcome {
                Ok(resp) if resp.status().is_success() || accept.contains(&resp.status()) => {
                    return Ok(resp);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if last || retry != Retry::Idempotent || !retryable {
                        return Err(status_error(resp).await);
                    }
                    tracing::debug!(%status, attempt, "GCS call failed, retrying");
                }
                Err(err) => {
                    let retryable =
                        err.is_connect() || (retry == Retry::Idempotent && err.is_timeout());
                    if last || !retryable {
                        return Err(GcsError::Http(err));
                    }
                    tracing::debug!(error = %err, attempt, "GCS call failed, retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff *= 4;
            attempt += 1;
        }
    }

    async fn auth_headers(&self) -> Result<http::HeaderMap, GcsError> {
        match self
            .credentials
            .headers(http::Extensions::new())
            .await
            .map_err(GcsError::Auth)?
        {
            CacheableResource::New { data, .. } => Ok(data),
            CacheableResource::NotModified => Err(GcsError::AuthNotCached),
        }
    }

    pub async fn object(
        &self,
        name: &str,
        generation: Option<&str>,
    ) -> Result<ObjectResource, GcsError> {
        let url = self.object_url(name);
        let resp = self
            .send(Retry::Idempotent, &[], || {
                let req = self.request(Method::GET, &url);
                match generation {
                    Some(g) => req.query(&[("generation", g)]),
                    None => req,
                }
            })
            .await?;
        json(resp).await
    }

    /// Deletes one generation (or the live one). Used to take back an object whose checksum
    /// did not match, so a corrupt file is never left for readers.
    pub async fn delete(&self, name: &str, generation: Option<&str>) -> Result<(), GcsError> {
        let url = self.object_url(name);
        self.send(Retry::Idempotent, &[], || {
            let req = self.request(Method::DELETE, &url);
            match generation {
                Some(g) => req.query(&[("ifGenerationMatch", g)]),
                None => req,
            }
        })
        .await?;
        Ok(())
    }

    /// Removes an object GCS finalised with content other than what was sent, then reports it.
    pub async fn reject(&self, stored: &ObjectResource, err: GcsError) -> GcsError {
        if let Err(delete_err) = self.delete(&stored.name, Some(&stored.generation)).await {
            tracing::error!(object = %stored.name, error = %delete_err, "could not delete corrupt object");
        }
        err
    }
}

pub(super) fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

pub(super) async fn json<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T, GcsError> {
    let body: Bytes = resp.bytes().await.map_err(GcsError::Http)?;
    serde_json::from_slice(&body)
        .map_err(|e| GcsError::Protocol(format!("{e} in {}", snippet(&body))))
}

pub(super) async fn status_error(resp: Response) -> GcsError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    GcsError::Status {
        status,
        message: snippet(&body),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(MAX_ERROR_BODY).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(encode("a/b c+d%.parquet"), "a%2Fb%20c%2Bd%25.parquet");
    }

    #[test]
    fn checksums_match_gcs_spelling() {
        let mut sums = Checksums::default();
        sums.update(b"hello ");
        sums.update(b"world");
        // Values GCS (and the emulator) report for "hello world".
        assert_eq!(sums.crc32c_b64(), "yZRlqg==");
        assert_eq!(sums.md5_b64(), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(sums.len(), 11);
    }
}

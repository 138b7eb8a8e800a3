//! Google Cloud Storage behind `object_store::ObjectStore`, spoken over the JSON API.
//!
//! `object_store`'s own GCS backend writes through the XML API, which the GCS emulator rejects,
//! so production and tests would run different write paths. This store uses only JSON API calls
//! that behave the same on GCS and on the emulator (specs/gcs.md has the measurements):
//! small files as one `uploadType=multipart` request, large ones as resumable uploads in 8 MiB
//! chunks. Every write is checked against the crc32c and md5 GCS reports for the stored object;
//! a mismatch deletes that object generation and fails the write.
//!
//! Only the endpoint and the credentials differ between production (Application Default
//! Credentials against storage.googleapis.com) and the emulator (anonymous).

mod client;
mod upload;

use std::fmt;
use std::sync::Arc;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, CopyMode, CopyOptions, GetOptions, GetResult,
    GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;

pub use client::GcsError;
use client::{
    Checksums, Client, ObjectResource, Retry, STORE, TRANSFER_TIMEOUT, json, status_error,
};
use upload::{CHUNK_ALIGN, ResumableUpload};

/// The variable Google's own client libraries read to find a storage emulator.
pub const EMULATOR_HOST_VAR: &str = "STORAGE_EMULATOR_HOST";
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// GCS's recommended minimum for resumable chunks. Each upload holds at most one chunk plus
/// one `BufWriter` part in memory, whatever the file size.
pub const DEFAULT_UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Objects deleted at once by `delete_stream`.
const DELETE_CONCURRENCY: usize = 8;
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Where requests get their identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcsCredentials {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user
    /// credentials, or the metadata server on GCE/GKE/Cloud Run.
    ApplicationDefault,
    /// No credentials, for emulators.
    Anonymous,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsOptions {
    pub bucket: String,
    /// `None` is production GCS. Accepts `http://host:port` or a bare `host:port` (taken as
    /// http), as `STORAGE_EMULATOR_HOST` does in Google's clients.
    pub endpoint: Option<String>,
    pub credentials: GcsCredentials,
    /// Resumable upload chunk; a multiple of 256 KiB.
    pub upload_chunk_size: usize,
}

impl GcsOptions {
    /// Production settings for `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            endpoint: None,
            credentials: GcsCredentials::ApplicationDefault,
            upload_chunk_size: DEFAULT_UPLOAD_CHUNK,
        }
    }

    /// Points at an emulator without credentials.
    pub fn emulator(bucket: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            credentials: GcsCredentials::Anonymous,
            ..Self::new(bucket)
        }
    }

    /// Honours `STORAGE_EMULATOR_HOST` like Google's clients do. Meant for the one place that
    /// builds configuration at start-up.
    pub fn from_env(bucket: impl Into<String>) -> Self {
        match std::env::var(EMULATOR_HOST_VAR) {
            Ok(host) if !host.trim().is_empty() => Self::emulator(bucket, host.trim()),
            _ => Self::new(bucket),
        }
    }
}

/// Builds the store. Needs a Tokio runtime: ADC refreshes tokens in the background.
pub fn build(options: &GcsOptions) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    Ok(Arc::new(
        GcsStore::new(options).map_err(|e| e.into_store(""))?,
    ))
}

#[derive(Debug)]
pub struct GcsStore {
    client: Arc<Client>,
    chunk_size: usize,
}

impl GcsStore {
    pub fn new(options: &GcsOptions) -> Result<Self, GcsError> {
        if options.bucket.is_empty() {
            return Err(GcsError::Option("bucket name is empty".into()));
        }
        let chunk = options.upload_chunk_size;
        if chunk == 0 || !chunk.is_multiple_of(CHUNK_ALIGN) {
            return Err(GcsError::Option(format!(
                "upload chunk size {chunk} is not a multiple of 256 KiB"
            )));
        }
        let endpoint = normalise_endpoint(options.endpoint.as_deref())?;
        let credentials = match options.credentials {
            GcsCredentials::Anonymous => {
                google_cloud_auth::credentials::anonymous::Builder::new().build()
            }
            GcsCredentials::ApplicationDefault => {
                google_cloud_auth::credentials::Builder::default()
                    .build()
                    .map_err(GcsError::Credentials)?
            }
        };
        let client = Client::new(endpoint, options.bucket.clone(), credentials)?;
        Ok(Self {
            client: Arc::new(client),
            chunk_size: chunk,
        })
    }
}

fn normalise_endpoint(endpoint: Option<&str>) -> Result<String, GcsError> {
    let raw = endpoint
        .unwrap_or(DEFAULT_ENDPOINT)
        .trim()
        .trim_end_matches('/');
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| GcsError::Endpoint {
        endpoint: raw.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(GcsError::Endpoint {
            endpoint: raw.to_owned(),
            reason: "expected http(s)://host[:port]".into(),
        });
    }
    Ok(with_scheme)
}

impl fmt::Display for GcsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GCS(gs://{})", self.client.bucket())
    }
}

/// The only attribute stored is the content type; silently dropping others would lose data.
fn content_type(attributes: &Attributes, name: &str) -> object_store::Result<String> {
    for (key, _) in attributes.iter() {
        if *key != Attribute::ContentType {
            return Err(object_store::Error::NotImplemented {
                operation: format!("attribute {key:?} on {name}"),
                implementer: STORE.into(),
            });
        }
    }
    Ok(attributes
        .get(&Attribute::ContentType)
        .map(|v| v.as_ref().to_owned())
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()))
}

/// A `multipart/related` body: object metadata (with the checksums GCS validates) then media.
fn multipart_body(
    boundary: &str,
    metadata: &serde_json::Value,
    payload: &PutPayload,
    content_type: &str,
) -> Bytes {
    let mut body = BytesMut::with_capacity(payload.content_length() + 512);
    body.put_slice(
        format!("--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
    );
    body.put_slice(metadata.to_string().as_bytes());
    body.put_slice(format!("\r\n--{boundary}\r\ncontent-type: {content_type}\r\n\r\n").as_bytes());
    for part in payload.iter() {
        body.put_slice(part);
    }
    body.put_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body.freeze()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ListPage {
    items: Vec<ObjectResource>,
    prefixes: Vec<String>,
    next_page_token: Option<String>,
}

/// `object_store` prefixes are whole path segments: `a/b` lists `a/b/x`, never `a/bc`.
fn dir_prefix(prefix: Option<&Path>) -> Option<String> {
    prefix
        .map(|p| p.as_ref())
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}/"))
}

async fn list_page(
    client: &Client,
    prefix: Option<&str>,
    delimiter: bool,
    token: Option<&str>,
) -> object_store::Result<ListPage> {
    let url = format!("{}/o", client.bucket_url());
    let resp = client
        .send(Retry::Idempotent, &[], || {
            let mut req = client.request(Method::GET, &url);
            if let Some(p) = prefix {
                req = req.query(&[("prefix", p)]);
            }
            if delimiter {
                req = req.query(&[("delimiter", "/")]);
            }
            if let Some(t) = token {
                req = req.query(&[("pageToken", t)]);
            }
            req
        })
        .await
        .map_err(|e| e.into_store(prefix.unwrap_or("")))?;
    json(resp)
        .await
        .map_err(|e| e.into_store(prefix.unwrap_or("")))
}

/// Directory placeholders (names ending in `/`, made by some GCS tools) are not objects to
/// `object_store` and would not parse as paths.
fn is_placeholder(item: &ObjectResource) -> bool {
    item.name.ends_with('/')
}

#[async_trait::async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let name = location.as_ref();
        let content_type = content_type(&opts.attributes, name)?;
        let if_generation = match &opts.mode {
            PutMode::Overwrite => None,
            PutMode::Create => Some("0".to_owned()),
            PutMode::Update(version) => Some(version.version.clone().ok_or_else(|| {
                object_store::Error::Generic {
                    store: STORE,
                    source: "conditional update needs the object's generation (PutResult::version)"
                        .into(),
                }
            })?),
        };
        let mut sums = Checksums::default();
        for part in payload.iter() {
            sums.update(part);
        }
        let metadata = serde_json::json!({
            "name": name,
            "contentType": content_type,
            "crc32c": sums.crc32c_b64(),
            "md5Hash": sums.md5_b64(),
        });
        let boundary = uuid::Uuid::new_v4().simple().to_string();
        let body = multipart_body(&boundary, &metadata, &payload, &content_type);
        let url = self.client.upload_url();
        // A conditional write that may have landed must not be repeated: the repeat would fail
        // its own precondition and report a write that succeeded as failed.
        let retry = if if_generation.is_some() {
            Retry::ConnectOnly
        } else {
            Retry::Idempotent
        };
        let resp = self
            .client
            .send(retry, &[], || {
                let mut req = self
                    .client
                    .request(Method::POST, &url)
                    .timeout(TRANSFER_TIMEOUT)
                    .query(&[("uploadType", "multipart")])
                    .header(
                        header::CONTENT_TYPE,
                        format!("multipart/related; boundary={boundary}"),
                    )
                    .body(body.clone());
                if let Some(generation) = &if_generation {
                    req = req.query(&[("ifGenerationMatch", generation)]);
                }
                req
            })
            .await
            .map_err(|e| {
                if e.status() == Some(StatusCode::PRECONDITION_FAILED)
                    && opts.mode == PutMode::Create
                {
                    object_store::Error::AlreadyExists {
                        path: name.to_owned(),
                        source: Box::new(e),
                    }
                } else {
                    e.into_store(name)
                }
            })?;
        let stored: ObjectResource = json(resp).await.map_err(|e| e.into_store(name))?;
        if let Err(err) = stored.verify(&sums) {
            return Err(self.client.reject(&stored, err).await.into_store(name));
        }
        Ok(PutResult {
            e_tag: stored.etag,
            version: Some(stored.generation),
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let name = location.as_ref().to_owned();
        let content_type = content_type(&opts.attributes, &name)?;
        let upload =
            ResumableUpload::start(self.client.clone(), name, content_type, self.chunk_size)
                .await?;
        Ok(Box::new(upload))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let name = location.as_ref();
        // Metadata first, then the media of exactly that generation: preconditions are checked
        // on the metadata, and an overwrite in between turns into NotFound, never mixed bytes.
        let stored = self
            .client
            .object(name, options.version.as_deref())
            .await
            .map_err(|e| e.into_store(name))?;
        let meta = stored.meta()?;
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r
                .as_range(meta.size)
                .map_err(|e| object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(e),
                })?,
            None => 0..meta.size,
        };
        let mut attributes = Attributes::new();
        if let Some(ct) = &stored.content_type {
            attributes.insert(Attribute::ContentType, AttributeValue::from(ct.clone()));
        }
        let payload = if options.head || range.is_empty() {
            stream::empty().boxed()
        } else {
            self.media(name, &stored.generation, &range, meta.size)
                .await?
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let client = self.client.clone();
        locations
            .map(move |location| {
                let client = client.clone();
                async move {
                    let location = location?;
                    client
                        .delete(location.as_ref(), None)
                        .await
                        .map_err(|e| e.into_store(location.as_ref()))?;
                    Ok(location)
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let client = self.client.clone();
        let prefix = dir_prefix(prefix);
        // State: the next page token, `Some(None)` for the first page, `None` when done.
        stream::try_unfold(Some(None::<String>), move |state| {
            let client = client.clone();
            let prefix = prefix.clone();
            async move {
                let Some(token) = state else {
                    return Ok::<_, object_store::Error>(None);
                };
                let page = list_page(&client, prefix.as_deref(), false, token.as_deref()).await?;
                let metas: Vec<_> = page
                    .items
                    .iter()
                    .filter(|i| !is_placeholder(i))
                    .map(|i| i.meta())
                    .collect();
                Ok(Some((stream::iter(metas), page.next_page_token.map(Some))))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let prefix = dir_prefix(prefix);
        let mut result = ListResult {
            common_prefixes: vec![],
            objects: vec![],
            extensions: Default::default(),
        };
        let mut token = None;
        loop {
            let page = list_page(&self.client, prefix.as_deref(), true, token.as_deref()).await?;
            for item in page.items.iter().filter(|i| !is_placeholder(i)) {
                result.objects.push(item.meta()?);
            }
            for p in &page.prefixes {
                result
                    .common_prefixes
                    .push(Path::parse(p.trim_end_matches('/'))?);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return Ok(result),
            }
        }
    }

    /// Overwriting copies (and so `rename`) only: the emulator ignores `ifGenerationMatch` on
    /// rewrites, so a create-only copy could not be tested, and the sink never needs one.
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        if options.mode == CopyMode::Create {
            return Err(object_store::Error::NotImplemented {
                operation: "copy_opts with CopyMode::Create".into(),
                implementer: STORE.into(),
            });
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Rewrite {
            done: bool,
            rewrite_token: Option<String>,
        }
        let url = format!(
            "{}/rewriteTo/b/{}/o/{}",
            self.client.object_url(from.as_ref()),
            client::encode(self.client.bucket()),
            client::encode(to.as_ref())
        );
        // Large cross-location rewrites take several calls, each returning a token.
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .send(Retry::Idempotent, &[], || {
                    let req = self
                        .client
                        .request(Method::POST, &url)
                        .timeout(TRANSFER_TIMEOUT);
                    match &token {
                        Some(t) => req.query(&[("rewriteToken", t)]),
                        None => req,
                    }
                })
                .await
                .map_err(|e| e.into_store(from.as_ref()))?;
            let step: Rewrite = json(resp).await.map_err(|e| e.into_store(from.as_ref()))?;
            if step.done {
                return Ok(());
            }
            token = step.rewrite_token;
        }
    }
}

impl GcsStore {
    async fn media(
        &self,
        name: &str,
        generation: &str,
        range: &std::ops::Range<u64>,
        size: u64,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        let url = self.client.object_url(name);
        let partial = *range != (0..size);
        let resp = self
            .client
            .send(Retry::Idempotent, &[], || {
                let req = self
                    .client
                    .request(Method::GET, &url)
                    .timeout(TRANSFER_TIMEOUT)
                    .query(&[("alt", "media"), ("generation", generation)]);
                if partial {
                    req.header(
                        header::RANGE,
                        format!("bytes={}-{}", range.start, range.end - 1),
                    )
                } else {
                    req
                }
            })
            .await
            .map_err(|e| e.into_store(name))?;
        let expected = if partial {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        if resp.status() != expected {
            let err = status_error(resp).await;
            return Err(GcsError::Protocol(format!("media read answered {err}")).into_store(name));
        }
        let name = name.to_owned();
        Ok(resp
            .bytes_stream()
            .map_err(move |e| GcsError::Http(e).into_store(&name))
            .boxed())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_what_storage_emulator_host_holds() {
        let n = |e: &str| normalise_endpoint(Some(e)).unwrap();
        assert_eq!(n("127.0.0.1:4443"), "http://127.0.0.1:4443");
        assert_eq!(n("http://localhost:4443/"), "http://localhost:4443");
        assert_eq!(normalise_endpoint(None).unwrap(), DEFAULT_ENDPOINT);
        assert!(normalise_endpoint(Some("ftp://x")).is_err());
    }

    #[test]
    fn options_are_validated() {
        let mut options = GcsOptions::emulator("b", "127.0.0.1:1");
        options.upload_chunk_size = 1000;
        assert!(GcsStore::new(&options).is_err());
        assert!(GcsStore::new(&GcsOptions::emulator("", "127.0.0.1:1")).is_err());
        assert!(GcsStore::new(&GcsOptions::emulator("b", "127.0.0.1:1")).is_ok());
    }

    #[test]
    fn a_stored_object_that_differs_is_caught() {
        let mut sent = client::Checksums::default();
        sent.update(b"hello world");
        let stored = |size: &str, crc: &str, md5: Option<&str>| ObjectResource {
            name: "x".into(),
            size: size.into(),
            generation: "1".into(),
            etag: None,
            updated: None,
            time_created: None,
            crc32c: Some(crc.into()),
            md5_hash: md5.map(Into::into),
            content_type: None,
        };
        assert!(
            stored("11", "yZRlqg==", Some("XrY7u+Ae7tCTyyK7j1rNww=="))
                .verify(&sent)
                .is_ok()
        );
        // Composite objects have no md5; crc32c alone must then match.
        assert!(stored("11", "yZRlqg==", None).verify(&sent).is_ok());
        assert!(stored("12", "yZRlqg==", None).verify(&sent).is_err());
        assert!(stored("11", "AAAAAA==", None).verify(&sent).is_err());
        assert!(
            stored("11", "yZRlqg==", Some("AAAAAAAAAAAAAAAAAAAAAA=="))
                .verify(&sent)
                .is_err()
        );
    }
}

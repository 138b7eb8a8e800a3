//! Object stores selected by URL. Every backend is an `object_store::ObjectStore`, so the
//! Parquet sink writes to local disk, memory and cloud storage through one code path.

pub mod azure;
pub mod gcs;
mod local;
mod memory;
pub mod s3;

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid sink url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid store option: {0}")]
    Option(String),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}

/// Opens the store a sink URL names: `file:///abs/dir`, `memory://`, `gs://bucket/prefix`,
/// `s3://bucket/prefix`, `az://container/prefix` (or `azure://`), or a plain directory path
/// (relative to the working directory), which is what the default uses.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    open_store_with(url, None)
}

/// [`open_store`], with `endpoint` replacing the scheme's service host: for `gs://` an
/// emulator (e.g. from `STORAGE_EMULATOR_HOST`; requests carry no credentials), for `s3://`
/// an S3-compatible server (path-style), for `az://` an account's blob URL (e.g. Azurite's
/// `http://127.0.0.1:10000/devstoreaccount1`). Credentials: specs/object-stores.md.
pub fn open_store_with(
    url: &str,
    endpoint: Option<&str>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !url.contains("://") {
        return local::open_dir(std::path::Path::new(url)).map_err(|reason| invalid(&reason));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let scheme = parsed.scheme();
    let host = || {
        parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid(&format!("{scheme}:// needs a bucket or container")))
    };
    let store: Arc<dyn ObjectStore> = match scheme {
        "file" => return local::open(&parsed).map_err(|reason| invalid(&reason)),
        "memory" => return Ok(memory::open()),
        "gs" => {
            let options = match endpoint {
                Some(endpoint) => gcs::GcsOptions::emulator(host()?, endpoint),
                None => gcs::GcsOptions::new(host()?),
            };
            gcs::build(&options)?
        }
        "s3" => Arc::new(s3::from_env(host()?, endpoint)?),
        "az" | "azure" => Arc::new(azure::from_env(host()?, endpoint)?),
        other => {
            return Err(invalid(&format!(
                "unsupported scheme {other:?}; use file:///absolute/dir, memory://, \
                 gs://bucket/prefix, s3://bucket/prefix or az://container/prefix"
            )));
        }
    };
    Ok(with_prefix(store, parsed.path()))
}

/// Endpoints may be given as a bare `host:port`, as `STORAGE_EMULATOR_HOST` is; that means
/// plain http. A trailing slash would add an empty path segment to every request.
fn http_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// Scopes a store to a key prefix, so one bucket can hold several deployments.
fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, Path::from(prefix)))
    }
}

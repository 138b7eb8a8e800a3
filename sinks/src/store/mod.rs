//! Object stores selected by URL. Every backend is an `object_store::ObjectStore`, so the
//! Parquet sink writes to local disk, memory and cloud storage through one code path.

pub mod gcs;
mod local;
mod memory;

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid sink url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}

/// Opens the store a sink URL names: `file:///abs/dir`, `memory://`, `gs://bucket/prefix`, or a
/// plain directory path (relative to the working directory), which is what the default uses.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    open_store_with(url, None)
}

/// [`open_store`], with `gcs_endpoint` replacing storage.googleapis.com for `gs://` (an
/// emulator, e.g. from `STORAGE_EMULATOR_HOST`); requests to it carry no credentials.
pub fn open_store_with(
    url: &str,
    gcs_endpoint: Option<&str>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !url.contains("://") {
        return local::open_dir(std::path::Path::new(url)).map_err(|reason| invalid(&reason));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    match parsed.scheme() {
        "file" => local::open(&parsed).map_err(|reason| invalid(&reason)),
        "memory" => Ok(memory::open()),
        "gs" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("gs:// needs a bucket"))?;
            let options = match gcs_endpoint {
                Some(endpoint) => gcs::GcsOptions::emulator(bucket, endpoint),
                None => gcs::GcsOptions::new(bucket),
            };
            Ok(with_prefix(gcs::build(&options)?, parsed.path()))
        }
        other => Err(invalid(&format!(
            "unsupported scheme {other:?}; use file:///absolute/dir, memory:// or gs://bucket/prefix"
        ))),
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

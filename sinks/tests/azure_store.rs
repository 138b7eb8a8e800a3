//! The Azure Blob store (object_store's own backend) against Azurite, through the same builder
//! the collector uses; only the endpoint and the account key differ from Azure.

use std::sync::Arc;

use eventkit_sinks::store::{azure, open_store_with};
use object_store::{ObjectStore, integration};

use crate::azure_support::Azurite;
use crate::conformance;
use crate::parquet_sink::{assert_written_like_local, prefixed, sorted_keys};

/// object_store's own conformance suite, the parts its Azure backend runs against Azurite.
#[tokio::test]
async fn conformance_suite() {
    let azurite = Azurite::start();
    let s = azure::build(&azurite.options(&azurite.fresh_container())).unwrap();
    conformance::cloud_store(&s, false, true).await;
    integration::copy_if_not_exists(&s).await;
}

/// `az://container/prefix` with Azurite's account URL as the endpoint and no configured key:
/// the sink's files land under the prefix, byte-identical to a local directory's.
#[tokio::test]
async fn parquet_sink_through_az_url_matches_local() {
    let azurite = Azurite::start();
    let container = azurite.fresh_container();
    for (scheme, prefix) in [("az", "events"), ("azure", "other/events")] {
        let url = format!("{scheme}://{container}/{prefix}");
        let store = open_store_with(&url, Some(&azurite.account_url())).unwrap();
        let files = assert_written_like_local(store.clone(), store).await;

        let raw: Arc<dyn ObjectStore> =
            Arc::new(azure::build(&azurite.options(&container)).unwrap());
        assert_eq!(
            sorted_keys(&raw, Some(prefix)).await,
            prefixed(prefix, &files)
        );
    }
}

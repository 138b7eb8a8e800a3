//! The Azure Blob store (object_store's own backend) against Azurite, through the same builder
//! the collector uses; only the endpoint and the account key differ from Azure.

use std::sync::Arc;

use eventkit_sinks::store::azure::{EMULATOR_ACCESS_KEY, EMULATOR_ACCOUNT};
use eventkit_sinks::store::{azure, open_store_with};
use object_store::{ObjectStore, ObjectStoreExt as _, integration};

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

/// What the Azure portal hands out, here for Azurite: account, key and blob endpoint all come
/// from the connection string, with no endpoint in the config. A wrong key is refused, so the
/// string's key is the one that signs.
#[tokio::test]
async fn parquet_sink_through_a_connection_string_matches_local() {
    let azurite = Azurite::start();
    let container = azurite.fresh_container();
    let with_key = |key: &str| {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={key};BlobEndpoint={}/;",
            azurite.account_url()
        )
    };
    let text = with_key(EMULATOR_ACCESS_KEY);
    let store: Arc<dyn ObjectStore> =
        Arc::new(azure::from_connection_string(&container, None, &text).unwrap());
    assert_written_like_local(store.clone(), store).await;

    let wrong = with_key("d3Jvbmcga2V5IGZvciB0aGUgZW11bGF0b3I=");
    let refused = azure::from_connection_string(&container, None, &wrong).unwrap();
    let put = refused.put(&"probe".into(), "x".into()).await;
    assert!(put.is_err(), "a wrong key must not sign");
}

//! The Azure Blob store (object_store's own backend) against Azurite, through the same builder
//! the collector uses; only the endpoint and the account key differ from Azure.

use std::sync::Arc;

use eventkit_sinks::store::{azure, open_store_with};
use futures::TryStreamExt as _;
use object_store::{ObjectStore, integration};

use crate::azure_support::Azurite;
use crate::parquet_sink::assert_written_like_local;

/// object_store's own conformance suite, the parts its Azure backend runs against Azurite.
#[tokio::test]
async fn conformance_suite() {
    let azurite = Azurite::start();
    let s = azure::build(&azurite.options(&azurite.fresh_container())).unwrap();
    integration::put_get_delete_list(&s).await;
    integration::list_with_offset_exclusivity(&s).await;
    integration::get_opts(&s).await;
    integration::put_opts(&s, true).await;
    integration::list_uses_directories_correctly(&s).await;
    integration::list_with_delimiter(&s).await;
    integration::rename_and_copy(&s).await;
    integration::copy_if_not_exists(&s).await;
    integration::stream_get(&s).await;
    integration::multipart(&s, &s).await;
    integration::multipart_put_part_out_of_order(&s, &s).await;
    integration::multipart_race_condition(&s, false).await;
    integration::multipart_out_of_order(&s).await;
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
        let mut keys: Vec<String> = raw
            .list(Some(&prefix.into()))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        let expected: Vec<String> = files.iter().map(|f| format!("{prefix}/{f}")).collect();
        assert_eq!(keys, expected);
    }
}

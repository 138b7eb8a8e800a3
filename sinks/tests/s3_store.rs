//! The S3 store (object_store's own backend) against moto, through the same builder the
//! collector uses; only the endpoint and the credentials differ from AWS.

use std::sync::Arc;

use eventkit_sinks::store::{open_store_with, s3};
use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, integration};

use crate::parquet_sink::assert_written_like_local;
use crate::s3_support::Moto;

/// object_store's own conformance suite, the parts an S3 bucket without versioning supports.
#[tokio::test]
async fn conformance_suite() {
    let moto = Moto::start();
    let s = s3::build(&moto.options(&moto.fresh_bucket())).unwrap();
    integration::put_get_delete_list(&s).await;
    integration::list_with_offset_exclusivity(&s).await;
    integration::get_opts(&s).await;
    integration::put_opts(&s, true).await;
    integration::list_uses_directories_correctly(&s).await;
    integration::list_with_delimiter(&s).await;
    integration::rename_and_copy(&s).await;
    integration::stream_get(&s).await;
    integration::multipart(&s, &s).await;
    integration::multipart_put_part_out_of_order(&s, &s).await;
    integration::multipart_race_condition(&s, true).await;
    integration::multipart_out_of_order(&s).await;
}

/// `s3://bucket/prefix` with an http endpoint and no configured credentials (unsigned, as the
/// collector sends to an emulator): the sink's files land under the prefix in the Hive layout,
/// byte-identical to a local directory's. moto refuses unsigned reads, so they are signed.
#[tokio::test]
async fn parquet_sink_through_s3_url_matches_local() {
    let moto = Moto::start();
    let bucket = moto.fresh_bucket();
    let url = format!("s3://{bucket}/events");
    let store = open_store_with(&url, Some(&moto.endpoint())).unwrap();
    let raw: Arc<dyn ObjectStore> = Arc::new(s3::build(&moto.options(&bucket)).unwrap());
    let reader = Arc::new(PrefixStore::new(raw.clone(), "events"));
    let files = assert_written_like_local(store, reader).await;

    let mut keys: Vec<String> = raw
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    let expected: Vec<String> = files.iter().map(|f| format!("events/{f}")).collect();
    assert_eq!(keys, expected);
    assert!(
        raw.list(Some(&Path::from("stream=web")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .is_empty()
    );
}

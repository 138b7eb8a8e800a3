//! The S3 store (object_store's own backend) against moto, through the same builder the
//! collector uses; only the endpoint and the credentials differ from AWS.

use std::sync::Arc;

use eventkit_sinks::store::{open_store_with, s3};
use futures::TryStreamExt as _;
use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;

use crate::conformance;
use crate::parquet_sink::{assert_written_like_local, prefixed, sorted_keys};
use crate::s3_support::Moto;

/// object_store's own conformance suite, the parts an S3 bucket without versioning supports.
#[tokio::test]
async fn conformance_suite() {
    let moto = Moto::start();
    let s = s3::build(&moto.options(&moto.fresh_bucket())).unwrap();
    conformance::cloud_store(&s, true, false).await;
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
    assert_eq!(sorted_keys(&raw, None).await, prefixed("events", &files));
    assert!(
        raw.list(Some(&Path::from("stream=web")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .is_empty()
    );
}

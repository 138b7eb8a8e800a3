//! Which sink URLs open which store, without contacting any service (building connects nowhere).

use eventkit_sinks::StoreError;
use eventkit_sinks::store::open_store_with;

fn reason(url: &str, endpoint: Option<&str>) -> String {
    match open_store_with(url, endpoint) {
        Err(StoreError::InvalidUrl { reason, .. }) => reason,
        Err(other) => panic!("{url}: expected an invalid URL, got {other}"),
        Ok(_) => panic!("{url}: expected an invalid URL"),
    }
}

#[test]
fn cloud_urls_need_a_bucket_or_container() {
    for url in [
        "s3:///events",
        "az:///events",
        "azure:///events",
        "gs:///events",
    ] {
        assert!(reason(url, None).contains("needs a bucket"), "{url}");
    }
}

#[test]
fn other_spellings_are_refused() {
    for url in ["s3a://b/p", "abfss://c/p", "a3://b/p"] {
        assert!(reason(url, None).contains("unsupported scheme"), "{url}");
    }
}

// A runtime because the GCS store's constructor may spawn its token refresher.
#[tokio::test]
async fn emulator_endpoints_build_for_every_cloud_scheme() {
    let cases = [
        ("s3://eventkit-dev/events", "http://127.0.0.1:9000"),
        ("s3://eventkit-dev", "127.0.0.1:9000"),
        (
            "az://eventkit-dev/events",
            "http://127.0.0.1:10000/devstoreaccount1",
        ),
        (
            "azure://eventkit-dev/a/b",
            "127.0.0.1:10000/devstoreaccount1/",
        ),
        ("gs://eventkit-dev/events", "http://127.0.0.1:4443"),
    ];
    for (url, endpoint) in cases {
        let built = open_store_with(url, Some(endpoint));
        assert!(built.is_ok(), "{url} at {endpoint}: {:?}", built.err());
    }
}

//! The shell commands specs/object-stores.md shows, run as written against this test's own
//! emulators (the variables emulators/.env would set point at them).

use std::process::Command;

use bytes::Bytes;
use eventkit_sinks::store::{azure, s3};
use futures::TryStreamExt as _;
use object_store::ObjectStore as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;

use crate::azure_support::Azurite;
use crate::docs::code_block;
use crate::s3_support::Moto;

#[tokio::test]
async fn look_inside_commands_run_as_documented() {
    let moto = Moto::start();
    let azurite = Azurite::start();
    // The names emulators/start creates, which the documented commands use.
    moto.create_bucket("eventkit-dev");
    let s3 = s3::build(&moto.options("eventkit-dev")).unwrap();
    let key = "events/stream=web/date=2026-01-01/hour=09/f.parquet";
    s3.put(&Path::from(key), Bytes::from_static(b"PAR1").into())
        .await
        .unwrap();

    let script = code_block(
        "specs/object-stores.md",
        "### Look inside the emulators",
        "sh",
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("AWS_ENDPOINT_URL_S3", moto.endpoint())
        .env("AZURITE_BLOB_STORAGE_URL", azurite.endpoint())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("<Key>{key}</Key>")), "{stdout}");

    let scratch = azure::build(&azurite.options("eventkit-scratch")).unwrap();
    let listed: Vec<_> = scratch.list(None).try_collect().await.unwrap();
    assert!(listed.is_empty());
}

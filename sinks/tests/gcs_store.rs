//! The GCS store against a real GCS emulator (fake-gcs-server), through the same code the
//! collector runs in production; only the endpoint and credentials differ.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use eventkit_sinks::store::gcs::{GcsOptions, GcsStore};
use futures::TryStreamExt as _;
use md5::Digest as _;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, integration};
use tokio::io::AsyncWriteExt as _;

use crate::gcs_support::FakeGcs;

const MIB: usize = 1024 * 1024;

fn store(gcs: &FakeGcs, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(GcsStore::new(&GcsOptions::emulator(bucket, gcs.endpoint())).unwrap())
}

fn small_chunk_store(gcs: &FakeGcs, bucket: &str) -> Arc<dyn ObjectStore> {
    let mut options = GcsOptions::emulator(bucket, gcs.endpoint());
    options.upload_chunk_size = 256 * 1024;
    Arc::new(GcsStore::new(&options).unwrap())
}

/// Deterministic, incompressible-looking bytes, generated piece by piece so a test never has
/// to hold a whole large file.
fn pattern(seed: u64, offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| {
            let mut x = (i as u64 / 8)
                .wrapping_add(seed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 29;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            (x >> ((i % 8) * 8)) as u8
        })
        .collect()
}

#[derive(Default)]
struct Sums {
    crc: u32,
    md5: md5::Md5,
}

impl Sums {
    fn update(&mut self, data: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, data);
        self.md5.update(data);
    }
    fn b64(self) -> (String, String) {
        let b64 = base64::engine::general_purpose::STANDARD;
        (
            b64.encode(self.crc.to_be_bytes()),
            b64.encode(self.md5.finalize()),
        )
    }
}

/// The emulator's own record of an object, fetched with plain HTTP, not through the store.
async fn emulator_metadata(gcs: &FakeGcs, bucket: &str, name: &str) -> serde_json::Value {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let url = format!("{}/storage/v1/b/{bucket}/o/{name}", gcs.endpoint());
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn emulator_object_names(gcs: &FakeGcs, bucket: &str) -> Vec<String> {
    let url = format!("{}/storage/v1/b/{bucket}/o", gcs.endpoint());
    let listing: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    listing["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// object_store's own conformance suite, the one its built-in backends pass.
#[tokio::test]
async fn conformance_suite() {
    let gcs = FakeGcs::start_in_memory();
    // get_opts reads an overwritten object's previous generation, which needs versioning.
    let s = store(&gcs, &gcs.fresh_versioned_bucket());
    integration::put_get_delete_list(&*s).await;
    integration::get_opts(&*s).await;
    integration::put_opts(&*s, true).await;
    integration::list_uses_directories_correctly(&*s).await;
    integration::list_with_delimiter(&*s).await;
    integration::rename_and_copy(&*s).await;
    integration::stream_get(&*s).await;
    integration::multipart_race_condition(&*s, true).await;
    integration::multipart_out_of_order(&*s).await;
    integration::list_with_offset_exclusivity(&*s).await;
    let s = small_chunk_store(&gcs, &gcs.fresh_bucket());
    integration::stream_get(&*s).await;
    integration::multipart_out_of_order(&*s).await;
}

#[tokio::test]
async fn put_get_list_head_delete_byte_exact() {
    let gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let s = store(&gcs, &bucket);
    let path = Path::from("events/dt=2026-01-01/part-0.parquet");
    let data = Bytes::from(pattern(1, 0, 300_000));

    let put = s.put(&path, data.clone().into()).await.unwrap();
    assert!(put.version.is_some());

    let mut sums = Sums::default();
    sums.update(&data);
    let (crc, md5) = sums.b64();
    let meta = emulator_metadata(&gcs, &bucket, path.as_ref()).await;
    assert_eq!(meta["crc32c"], crc.as_str());
    assert_eq!(meta["md5Hash"], md5.as_str());
    assert_eq!(meta["size"], data.len().to_string());

    assert_eq!(s.get(&path).await.unwrap().bytes().await.unwrap(), data);
    let head = s.head(&path).await.unwrap();
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.version, put.version);

    let listed: Vec<_> = s
        .list(Some(&Path::from("events")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, path);
    let dirs = s
        .list_with_delimiter(Some(&Path::from("events")))
        .await
        .unwrap();
    assert_eq!(
        dirs.common_prefixes,
        vec![Path::from("events/dt=2026-01-01")]
    );

    s.delete(&path).await.unwrap();
    assert!(matches!(
        s.head(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert!(emulator_object_names(&gcs, &bucket).await.is_empty());
}

#[tokio::test]
async fn ranged_reads_match_source() {
    let gcs = FakeGcs::start();
    let s = store(&gcs, &gcs.fresh_bucket());
    let path = Path::from("ranged.bin");
    let data = Bytes::from(pattern(2, 0, 2 * MIB + 17));
    s.put(&path, data.clone().into()).await.unwrap();
    for range in [
        0..1,
        5..100_000,
        MIB - 3..MIB + 3,
        data.len() - 10..data.len(),
    ] {
        let got = s
            .get_range(&path, range.start as u64..range.end as u64)
            .await
            .unwrap();
        assert_eq!(got, data.slice(range));
    }
    let ranges = [0u64..10, 1_000..2_000, 2_000_000..2_000_500];
    let got = s.get_ranges(&path, &ranges).await.unwrap();
    for (r, g) in ranges.iter().zip(got) {
        assert_eq!(g, data.slice(r.start as usize..r.end as usize));
    }
}

/// A 72 MiB file written through `BufWriter` (the batch writer's path) takes the resumable
/// multipart route, is never held whole by the writer, and reads back byte-exact.
#[tokio::test]
async fn large_file_streams_through_resumable_upload() {
    const SIZE: usize = 72 * MIB;
    const WRITE: usize = MIB;
    let gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let s = store(&gcs, &bucket);
    let path = Path::from("big/file.parquet");

    let mut writer =
        BufWriter::with_capacity(s.clone(), path.clone(), 5 * MIB).with_max_concurrency(2);
    let mut sums = Sums::default();
    for offset in (0..SIZE).step_by(WRITE) {
        let piece = pattern(3, offset, WRITE);
        sums.update(&piece);
        writer.write_all(&piece).await.unwrap();
    }
    writer.shutdown().await.unwrap();

    let (crc, md5) = sums.b64();
    let meta = emulator_metadata(&gcs, &bucket, path.as_ref()).await;
    assert_eq!(meta["size"], SIZE.to_string());
    assert_eq!(meta["crc32c"], crc.as_str());
    assert_eq!(meta["md5Hash"], md5.as_str());

    // Read back as a stream and compare piece by piece, again without holding the file.
    let mut stream = s.get(&path).await.unwrap().into_stream();
    let mut offset = 0;
    let mut pending = Vec::new();
    while let Some(chunk) = stream.try_next().await.unwrap() {
        pending.extend_from_slice(&chunk);
        while pending.len() >= WRITE {
            let rest = pending.split_off(WRITE);
            assert!(
                pending == pattern(3, offset, WRITE),
                "mismatch at offset {offset}"
            );
            pending = rest;
            offset += WRITE;
        }
    }
    assert_eq!(offset, SIZE);
    assert!(pending.is_empty());
}

/// The emulator dies half-way through a resumable upload and comes back: the upload fails
/// (its session is gone) and no object, partial or otherwise, becomes visible. Writing the file
/// again then succeeds, as the batch writer's whole-file retry would.
#[tokio::test]
async fn emulator_restart_mid_upload_leaves_no_partial_object() {
    let mut gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let s = small_chunk_store(&gcs, &bucket);
    let path = Path::from("outage/file.parquet");

    let mut upload = s.put_multipart(&path).await.unwrap();
    upload.put_part(pattern(4, 0, MIB).into()).await.unwrap();
    gcs.stop();
    let during = upload.put_part(pattern(4, MIB, MIB).into()).await;
    assert!(
        during.is_err(),
        "a chunk sent to a stopped emulator must fail"
    );
    gcs.restart();
    let after = upload.complete().await;
    assert!(
        after.is_err(),
        "an upload with a lost chunk must never complete"
    );
    assert!(emulator_object_names(&gcs, &bucket).await.is_empty());

    let data = Bytes::from(pattern(4, 0, 3 * MIB));
    let mut writer = BufWriter::with_capacity(s.clone(), path.clone(), MIB);
    writer.write_all(&data).await.unwrap();
    writer.shutdown().await.unwrap();
    assert_eq!(s.get(&path).await.unwrap().bytes().await.unwrap(), data);
}

/// Plain puts while the emulator is down fail within seconds (short retries), so the batch
/// writer above can report the outage; after the restart they work and data is intact.
#[tokio::test]
async fn puts_fail_fast_while_down_and_resume_after() {
    let mut gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let s = store(&gcs, &bucket);
    let before = Bytes::from_static(b"written before the outage");
    s.put(&Path::from("a"), before.clone().into())
        .await
        .unwrap();

    gcs.stop();
    let started = std::time::Instant::now();
    let err = s
        .put(&Path::from("b"), Bytes::from_static(b"x").into())
        .await;
    assert!(err.is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(s.head(&Path::from("a")).await.is_err());

    gcs.restart();
    s.put(&Path::from("b"), Bytes::from_static(b"x").into())
        .await
        .unwrap();
    assert_eq!(
        s.get(&Path::from("a"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        before
    );
    let mut names = emulator_object_names(&gcs, &bucket).await;
    names.sort();
    assert_eq!(names, ["a", "b"]);
}

/// Aborted or abandoned uploads never finalise an object.
#[tokio::test]
async fn aborted_and_dropped_uploads_leave_nothing() {
    let gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let s = small_chunk_store(&gcs, &bucket);

    let mut aborted = s.put_multipart(&Path::from("aborted")).await.unwrap();
    aborted.put_part(pattern(5, 0, MIB).into()).await.unwrap();
    aborted.abort().await.unwrap();

    let mut dropped = s.put_multipart(&Path::from("dropped")).await.unwrap();
    dropped.put_part(pattern(5, 0, MIB).into()).await.unwrap();
    drop(dropped);

    let mut writer = BufWriter::with_capacity(s.clone(), Path::from("writer-aborted"), 256 * 1024);
    writer.write_all(&pattern(5, 0, MIB)).await.unwrap();
    writer.abort().await.unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(emulator_object_names(&gcs, &bucket).await.is_empty());
}

/// Empty objects and objects whose size is an exact multiple of the chunk take the edge paths
/// of the resumable protocol.
#[tokio::test]
async fn chunk_boundaries_and_empty_objects() {
    let gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let s = small_chunk_store(&gcs, &bucket);
    for (name, len) in [
        ("empty", 0),
        ("one-chunk", 256 * 1024),
        ("two-chunks", 512 * 1024),
        ("odd", 700_001),
    ] {
        let path = Path::from(name);
        let data = Bytes::from(pattern(6, 0, len));
        let mut upload = s.put_multipart(&path).await.unwrap();
        if len > 0 {
            upload.put_part(data.clone().into()).await.unwrap();
        }
        upload.complete().await.unwrap();
        assert_eq!(
            s.get(&path).await.unwrap().bytes().await.unwrap(),
            data,
            "{name}"
        );
        let mut sums = Sums::default();
        sums.update(&data);
        let (crc, md5) = sums.b64();
        let meta = emulator_metadata(&gcs, &bucket, name).await;
        assert_eq!(
            (meta["crc32c"].as_str(), meta["md5Hash"].as_str()),
            (Some(crc.as_str()), Some(md5.as_str()))
        );
    }
}

//! Events → collector (async mode) → Parquet in a GCS emulator → downloaded through the
//! emulator's own JSON API → exact rows, checked by our reader, pyarrow and DuckDB; and a 30 s
//! storage outage in the middle of a run, after which every accepted event is there exactly once.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::common::{self, TestServer, python, read_rows};
use crate::gcs_support::FakeGcs;

const PREFIX: &str = "events";

async fn gcs_server(gcs: &FakeGcs, bucket: &str, max_age_ms: u64) -> TestServer {
    let url = format!("gs://{bucket}/{PREFIX}");
    let endpoint = gcs.endpoint();
    TestServer::start(move |config| {
        config.sink.url = url;
        config.sink.gcs_endpoint = Some(endpoint);
        config.batch.max_age_ms = max_age_ms;
    })
    .await
}

fn track(id: &str, n: usize) -> Value {
    json!({"type": "track", "event": "Item Viewed", "userId": format!("u-{}", n % 97),
           "messageId": id, "timestamp": "2026-05-01T12:00:00Z",
           "properties": {"n": n, "sku": format!("sku-{n}"), "price": n as f64 / 4.0}})
}

/// Downloads every object under the prefix into `dir` (same relative layout) through the
/// emulator's JSON API, and returns each file's md5Hash as the emulator reports it.
async fn download_all(gcs: &FakeGcs, bucket: &str, dir: &Path) -> HashMap<String, String> {
    let client = reqwest::Client::new();
    let mut md5s = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{}/storage/v1/b/{bucket}/o", gcs.endpoint()))
            .query(&[("prefix", format!("{PREFIX}/"))]);
        if let Some(t) = &token {
            req = req.query(&[("pageToken", t)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            let name = item["name"].as_str().unwrap();
            let relative = name.strip_prefix(&format!("{PREFIX}/")).unwrap();
            let encoded = encode(name);
            let bytes = client
                .get(format!(
                    "{}/storage/v1/b/{bucket}/o/{encoded}?alt=media",
                    gcs.endpoint()
                ))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(
                bytes.len().to_string(),
                item["size"].as_str().unwrap(),
                "{name}"
            );
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            md5s.insert(
                relative.to_owned(),
                item["md5Hash"].as_str().unwrap().to_owned(),
            );
        }
        match page["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return md5s,
        }
    }
}

/// An object name as one URL path segment.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// pyarrow's row count and DuckDB's distinct message ids over the downloaded files, plus the md5
/// of each file as Python computes it (compared with what the emulator stored).
const PY_CHECK: &str = r#"
import base64, duckdb, hashlib, json, pathlib, sys
import pyarrow.dataset as ds
root = pathlib.Path(sys.argv[1])
md5 = {str(p.relative_to(root)): base64.b64encode(hashlib.md5(p.read_bytes()).digest()).decode()
       for p in root.rglob("*.parquet")}
rows = ds.dataset(str(root / "stream=web"), format="parquet").to_table().num_rows
ids = duckdb.sql(f"select count(distinct message_id) from read_parquet('{root}/stream=web/**/*.parquet')").fetchall()[0][0]
print(json.dumps({"md5": md5, "pyarrow_rows": rows, "duckdb_ids": ids}))
"#;

fn check_with_python(dir: &Path, emulator_md5: &HashMap<String, String>, rows: usize) {
    let out = python::run_json(PY_CHECK, &[dir.to_str().unwrap()]);
    let local: HashMap<String, String> = serde_json::from_value(out["md5"].clone()).unwrap();
    assert_eq!(
        &local, emulator_md5,
        "downloaded bytes differ from what the emulator stored"
    );
    assert_eq!(out["pyarrow_rows"], rows);
    assert_eq!(out["duckdb_ids"], rows);
}

#[tokio::test]
async fn events_land_in_gcs_as_exact_rows() {
    let gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let mut server = gcs_server(&gcs, &bucket, 200).await;
    let events: Vec<Value> = (0..3_000).map(|n| track(&format!("m-{n}"), n)).collect();
    for chunk in events.chunks(1_000) {
        let (status, response) = server
            .post("/collect/web", json!({ "batch": chunk }).to_string())
            .await;
        assert_eq!(status, 202, "{response}");
    }
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let md5s = download_all(&gcs, &bucket, dir.path()).await;
    assert!(!md5s.is_empty());
    let rows = read_rows(&dir.path().join("stream=web"));
    assert_eq!(rows.len(), events.len());
    let by_id: HashMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["message_id"].as_str().unwrap(), r))
        .collect();
    for (n, event) in events.iter().enumerate() {
        let row = by_id[event["messageId"].as_str().unwrap()];
        assert_eq!(row["type"], "track");
        assert_eq!(row["event"], "Item Viewed");
        assert_eq!(row["user_id"], format!("u-{}", n % 97));
        let properties: Value = serde_json::from_str(row["properties"].as_str().unwrap()).unwrap();
        assert_eq!(properties, event["properties"]);
    }
    check_with_python(dir.path(), &md5s, events.len());
}

/// The storage emulator is down for 30 s in the middle of a run. The collector keeps accepting
/// while its queue has room, reports not-ready, retries the failed files, and after the restart
/// every accepted event is stored exactly once; nothing refused is stored.
#[tokio::test]
async fn storage_outage_of_30s_loses_and_duplicates_nothing() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let mut gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    let mut server = gcs_server(&gcs, &bucket, 100).await;
    let mut accepted: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut send = async |server: &TestServer, accepted: &mut Vec<String>, count: usize| {
        let batch: Vec<Value> = (next..next + count)
            .map(|n| track(&format!("o-{n}"), n))
            .collect();
        next += count;
        let (status, response) = server
            .post("/collect/web", json!({ "batch": batch }).to_string())
            .await;
        if status == 202 {
            assert_eq!(response["rejected"], json!([]), "{response}");
            accepted.extend(
                batch
                    .iter()
                    .map(|e| e["messageId"].as_str().unwrap().to_owned()),
            );
        }
        status
    };

    for _ in 0..5 {
        assert_eq!(send(&server, &mut accepted, 200).await, 202);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gcs.stop();
    let down = Instant::now();
    let mut saw_not_ready = false;
    while down.elapsed() < OUTAGE {
        // 202 while the queue has room, 503 once it is full: both are fine, only 202s count.
        send(&server, &mut accepted, 200).await;
        let ready = server.get("/ready").await.status();
        saw_not_ready |= ready == 503;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        saw_not_ready,
        "/ready stayed 200 through a 30 s storage outage"
    );
    gcs.restart();
    for _ in 0..5 {
        send(&server, &mut accepted, 200).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let md5s = download_all(&gcs, &bucket, dir.path()).await;
    let rows = read_rows(&dir.path().join("stream=web"));
    let mut stored: Vec<String> = rows
        .iter()
        .map(|r| r["message_id"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    accepted.sort();
    let unique = {
        let mut u = stored.clone();
        u.dedup();
        u.len()
    };
    assert_eq!(unique, stored.len(), "duplicated events after the outage");
    assert_eq!(stored, accepted, "stored events differ from accepted ones");
    check_with_python(dir.path(), &md5s, accepted.len());
}

/// The figures in specs/gcs.md: end-to-end events/s into the GCS emulator and into the local
/// filesystem with the same batch settings, and Parquet vs JSON bytes per event. Slow and only
/// meaningful in release builds, so run on demand:
/// `cargo test --release -p eventkit --test integration gcs_e2e::figures -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn figures() {
    const EVENTS: usize = 200_000;
    // Realistic events are ~700 B of JSON; 500 stay under the 500 KiB body limit.
    const PER_REQUEST: usize = 500;
    const CONCURRENCY: usize = 4;
    let bodies: Vec<String> = (0..EVENTS / PER_REQUEST)
        .map(|r| {
            let batch: Vec<Value> = (r * PER_REQUEST..(r + 1) * PER_REQUEST)
                .map(realistic)
                .collect();
            json!({ "batch": batch }).to_string()
        })
        .collect();
    let json_bytes: usize = bodies.iter().map(String::len).sum();

    let gcs = FakeGcs::start();
    let bucket = gcs.fresh_bucket();
    for target in ["local", "gcs"] {
        let mut server = match target {
            "gcs" => gcs_server(&gcs, &bucket, 1_000).await,
            _ => TestServer::start(|config| config.batch.max_age_ms = 1_000).await,
        };
        let started = Instant::now();
        let server_ref = &server;
        futures::stream::iter(bodies.iter())
            .for_each_concurrent(CONCURRENCY, |body| async move {
                let (status, _) = server_ref.post("/collect/web", body.clone()).await;
                assert_eq!(status, 202);
            })
            .await;
        server.stop().await;
        let elapsed = started.elapsed();
        let parquet_bytes: u64 = if target == "gcs" {
            let dir = tempfile::tempdir().unwrap();
            download_all(&gcs, &bucket, dir.path()).await;
            common::parquet_files(dir.path())
                .iter()
                .map(|f| f.metadata().unwrap().len())
                .sum()
        } else {
            common::parquet_files(&server.dir())
                .iter()
                .map(|f| f.metadata().unwrap().len())
                .sum()
        };
        println!(
            "{target}: {EVENTS} events in {elapsed:.2?} = {:.0} events/s; parquet {:.1} B/event, json {:.1} B/event",
            EVENTS as f64 / elapsed.as_secs_f64(),
            parquet_bytes as f64 / EVENTS as f64,
            json_bytes as f64 / EVENTS as f64,
        );
    }
}

/// An event shaped like real browser traffic: unique ids, a few hundred users, varied
/// properties and a full context, so bytes per event are not flattered by repetition.
fn realistic(n: usize) -> Value {
    let h = |salt: u64| (n as u64 ^ (salt << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    let events = [
        "Product Viewed",
        "Product Added",
        "Checkout Started",
        "Order Completed",
    ];
    let product = h(9) % 5_000;
    let category = ["shoes", "shirts", "hats", "bags"][(h(12) % 4) as usize];
    json!({
        "type": "track",
        "event": events[(h(1) % 4) as usize],
        "messageId": format!("f-{n}-{:016x}", h(2)),
        "userId": format!("user-{}", h(3) % 500),
        "anonymousId": format!("{:016x}-{:08x}", h(4), h(5) as u32),
        "timestamp": format!("2026-05-01T12:{:02}:{:02}.{:03}Z", h(6) % 60, h(7) % 60, h(8) % 1000),
        "properties": {
            "product_id": format!("sku-{product}"),
            "price": (h(10) % 100_000) as f64 / 100.0,
            "quantity": h(11) % 5 + 1,
            "currency": "USD",
            "category": category,
        },
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.1"},
            "page": {"path": format!("/p/{product}"), "url": format!("https://shop.example/p/{product}"),
                     "referrer": "https://search.example/", "title": "Product"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
            "locale": "en-US",
            "ip": format!("203.0.113.{}", h(14) % 255),
        },
    })
}

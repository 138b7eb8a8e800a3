//! Streams routed to several sinks (`[[sinks]]`): each stream's files land in exactly the sinks
//! its patterns name, and a failing sink holds the deliveries (at least once across sinks)
//! without the healthy sink being written the same table again.

use std::path::Path;
use std::time::{Duration, Instant};

use eventkit::config::{
    Config, ParquetSinkSettings, SinkConfig, SinkEntry, SinkSettings, StreamPattern,
};
use serde_json::{Value, json};

use crate::common::docs::code_block;
use crate::common::{TestServer, metric, parquet_files, read_rows};

fn parquet_sink(name: &str, streams: &[&str], dir: &Path) -> SinkEntry {
    SinkEntry {
        name: name.to_owned(),
        streams: streams
            .iter()
            .map(|s| StreamPattern::parse(s).unwrap())
            .collect(),
        settings: SinkSettings::Parquet(ParquetSinkSettings {
            url: format!("file://{}", dir.display()),
            endpoint: None,
        }),
    }
}

/// `sinks` instead of the test server's one `[sink]` directory.
fn route_to(sinks: Vec<SinkEntry>) -> impl FnOnce(&mut Config) {
    move |config| {
        config.sink = SinkConfig::default();
        config.sinks = sinks;
    }
}

fn events(prefix: &str, n: usize) -> String {
    let batch: Vec<Value> = (0..n)
        .map(|i| json!({"type": "track", "event": "E", "userId": "u", "messageId": format!("{prefix}-{i}")}))
        .collect();
    json!({ "batch": batch }).to_string()
}

fn message_ids(dir: &Path, stream: &str) -> Vec<String> {
    let mut ids: Vec<String> = read_rows(&dir.join(format!("stream={stream}")))
        .iter()
        .map(|row| row["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

fn expected_ids(prefix: &str, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    ids.sort();
    ids
}

fn streams_in(dir: &Path) -> Vec<String> {
    let mut streams: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    streams.sort();
    streams
}

#[tokio::test]
async fn streams_split_by_pattern_land_in_exactly_their_sinks() {
    let web = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(route_to(vec![
        parquet_sink("split_web", &["web*"], web.path()),
        parquet_sink("split_lake", &["*"], lake.path()),
    ]))
    .await;
    for (stream, n) in [("web", 2), ("webshop", 1), ("app", 3)] {
        let (status, body) = server
            .post(&format!("/collect/{stream}"), events(stream, n))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    // A dead letter (stored though the request is answered 400): `_rejected` is routed like
    // any other name, here by the catch-all alone.
    let (status, body) = server
        .post(
            "/collect/app",
            json!({"type": "track", "userId": "u"}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;

    assert_eq!(streams_in(web.path()), ["stream=web", "stream=webshop"]);
    assert_eq!(message_ids(web.path(), "web"), expected_ids("web", 2));
    assert_eq!(
        message_ids(web.path(), "webshop"),
        expected_ids("webshop", 1)
    );
    assert_eq!(
        streams_in(lake.path()),
        [
            "stream=_rejected",
            "stream=app",
            "stream=web",
            "stream=webshop"
        ]
    );
    for (stream, n) in [("web", 2), ("webshop", 1), ("app", 3)] {
        assert_eq!(message_ids(lake.path(), stream), expected_ids(stream, n));
    }
    assert_eq!(read_rows(&lake.path().join("stream=_rejected")).len(), 1);
    // Nothing went to the shorthand's directory.
    assert!(parquet_files(&server.dir()).is_empty());
}

async fn ready(server: &TestServer) -> (u16, Value) {
    let response = server.get("/ready").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/ready` until `done` holds for its answer, for at most `limit`.
async fn ready_until(
    server: &TestServer,
    limit: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let (status, body) = ready(server).await;
        if done(status, &body) || started.elapsed() > limit {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failing_sink_holds_deliveries_and_the_healthy_sink_is_written_once() {
    let lake = tempfile::tempdir().unwrap();
    let broken = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(|config| {
        route_to(vec![
            parquet_sink("hold_lake", &["*"], lake.path()),
            parquet_sink("hold_broken", &["orders"], broken.path()),
        ])(config);
        config.batch.max_age_ms = 200;
    })
    .await;
    // Once serving (stores are opened at start-up), break one: a plain file where its directory
    // was makes every write to it fail.
    assert_eq!(server.get("/health").await.status(), 200);
    std::fs::remove_dir_all(broken.path()).unwrap();
    std::fs::write(broken.path(), b"").unwrap();

    let (status, body) = server.post("/collect/orders", events("order", 3)).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = ready_until(&server, Duration::from_secs(10), |_, body| {
        body["failing_sinks"] == json!(["hold_broken"])
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["sinks"],
        json!({"hold_lake": "ok", "hold_broken": "failing"})
    );
    assert_eq!(body["sink"], "failing", "the one-sink field still says so");
    assert_eq!(body["queue_depth"], 3, "not acknowledged: {body}");

    // Retries of the broken sink (at 0.1, 0.3, 0.7 and 1.5 s) never rewrite the healthy one.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(parquet_files(lake.path()).len(), 1);
    assert_eq!(message_ids(lake.path(), "orders"), expected_ids("order", 3));
    let (_, body) = ready(&server).await;
    assert_eq!(body["queue_depth"], 3, "{body}");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let errors = metric(
        &metrics,
        "eventkit_sink_write_errors_total{sink=\"hold_broken\"}",
    );
    assert!(errors >= 3.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "eventkit_sink_write_errors_total{sink=\"hold_lake\"}"
        ),
        0.0
    );
    assert_eq!(
        metric(
            &metrics,
            "eventkit_sink_batches_written_total{sink=\"hold_lake\"}"
        ),
        1.0
    );

    // The sink comes back: its retry stores the table and the deliveries are acknowledged.
    std::fs::remove_file(broken.path()).unwrap();
    std::fs::create_dir(broken.path()).unwrap();
    let (status, body) = ready_until(&server, Duration::from_secs(40), |status, body| {
        status == 200 && body["queue_depth"] == 0
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["failing_sinks"], json!([]));
    server.stop().await;
    assert_eq!(parquet_files(lake.path()).len(), 1, "still one file set");
    assert_eq!(message_ids(lake.path(), "orders"), expected_ids("order", 3));
    assert_eq!(parquet_files(broken.path()).len(), 1);
    assert_eq!(
        message_ids(broken.path(), "orders"),
        expected_ids("order", 3)
    );
}

/// A TOML block of a document, loaded as a config file is.
fn load_documented(document: &str, heading: &str) -> Config {
    let block = code_block(document, heading, "toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("eventkit.toml");
    std::fs::write(&file, block).unwrap();
    match Config::load(Some(&file)) {
        Ok(config) => config,
        Err(error) => panic!("{document}, {heading}: {error}"),
    }
}

#[test]
fn the_documented_sinks_blocks_are_valid_configs() {
    let names = |config: &Config| -> Vec<String> {
        config.sink_entries().into_iter().map(|e| e.name).collect()
    };
    let readme = load_documented("README.md", "### Several sinks");
    assert_eq!(names(&readme), ["lake", "web", "warehouse"]);
    let spec = load_documented("specs/sinks.md", "## Configuration");
    assert_eq!(names(&spec), ["lake", "web", "warehouse"]);
    let isolated = load_documented("specs/sinks.md", "## Isolating a slow sink");
    assert_eq!(names(&isolated), ["warehouse"]);
}

/// One query's rows through `psql`, tab-separated.
fn psql(url: &str, query: &str) -> String {
    let output = std::process::Command::new("/usr/lib/postgresql/15/bin/psql")
        .args(["-X", "-A", "-t", "-d", url, "-c", query])
        .output()
        .unwrap();
    assert!(output.status.success(), "psql: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

// Two threads: the PostgreSQL server starts (blocking) while nothing else needs the runtime, and
// the sink's pool talks to it while the test waits on HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_postgres_each_take_their_streams() {
    let postgres = tokio::task::spawn_blocking(crate::postgres_support::shared)
        .await
        .unwrap();
    let lake = tempfile::tempdir().unwrap();
    let mut warehouse = eventkit_sinks::PostgresSinkConfig::new(postgres.url());
    warehouse.schema = "routing_fan_out".to_owned();
    let mut server = TestServer::start(route_to(vec![
        parquet_sink("pg_lake", &["*"], lake.path()),
        SinkEntry {
            name: "pg_warehouse".to_owned(),
            streams: vec![StreamPattern::Exact("orders".to_owned())],
            settings: SinkSettings::Postgres(warehouse),
        },
    ]))
    .await;
    for (stream, n) in [("orders", 3), ("web", 2)] {
        let (status, body) = server
            .post(&format!("/collect/{stream}"), events(stream, n))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    server.stop().await;

    assert_eq!(
        message_ids(lake.path(), "orders"),
        expected_ids("orders", 3)
    );
    assert_eq!(message_ids(lake.path(), "web"), expected_ids("web", 2));
    let url = postgres.url();
    let stored = psql(
        &url,
        "SELECT string_agg(message_id, ',' ORDER BY message_id) FROM routing_fan_out.orders",
    );
    assert_eq!(stored, expected_ids("orders", 3).join(","));
    // `web` is not routed to the warehouse: no table was ever made for it.
    assert_eq!(
        psql(&url, "SELECT to_regclass('routing_fan_out.web') IS NULL"),
        "t"
    );
}

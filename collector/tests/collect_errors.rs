//! Rejections, dead letters, limits and back-pressure on `POST /collect`.

use serde_json::json;

use crate::common::{TestServer, metric};

#[tokio::test]
async fn mixed_request_accepts_good_events_and_dead_letters_bad_ones() {
    let mut server = TestServer::start(|_| {}).await;
    let body = r#"[{"type":"track","event":"A","userId":"u"},{"type":"track","userId":"u"},{"type":"group","userId":"u"}]"#;
    let (status, response) = server.post("/collect/web", body).await;
    assert_eq!(status, 202);
    assert_eq!(
        response,
        json!({"accepted": 1, "rejected": [
            {"index": 1, "error": "event is required for track"},
            {"index": 2, "error": "groupId is required for group"}
        ]})
    );
    server.stop().await;
    assert_eq!(server.rows("web").len(), 1);
    let mut dead = server.rows("_rejected");
    dead.sort_by_key(|r| r["index"].as_u64());
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["stream"], "web");
    assert_eq!(dead[0]["index"], 1);
    assert_eq!(dead[0]["error"], "event is required for track");
    assert_eq!(dead[0]["raw"], r#"{"type":"track","userId":"u"}"#);
    assert_eq!(dead[0]["context_ip"], "127.0.0.1");
    assert_eq!(dead[1]["raw"], r#"{"type":"group","userId":"u"}"#);
}

#[tokio::test]
async fn request_with_no_valid_event_is_400_and_still_dead_lettered() {
    let mut server = TestServer::start(|_| {}).await;
    let (status, response) = server.post("/collect/web", r#"{"type":"identify"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        response,
        json!({"error": "no valid events in request", "accepted": 0,
               "rejected": [{"index": 0, "error": "userId or anonymousId is required"}]})
    );
    server.stop().await;
    assert_eq!(server.rows("_rejected").len(), 1);
    assert!(server.rows("web").is_empty());
}

#[tokio::test]
async fn bad_requests_get_clear_4xx() {
    let mut server = TestServer::start(|_| {}).await;
    let (status, response) = server.post("/collect/web", "{\"type\": \"track\",").await;
    assert_eq!(status, 400);
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .starts_with("request body is not valid JSON"),
        "{response}"
    );

    let (status, response) = server.post("/collect/web", "\"hello\"").await;
    assert_eq!(status, 400);
    assert_eq!(
        response["error"],
        "request body must be an event object, an array of events, or {\"batch\": [...]}"
    );

    let (status, response) = server.post("/collect/Web!", "{}").await;
    assert_eq!(status, 400);
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .contains("stream name \"Web!\" is invalid"),
        "{response}"
    );
    let (status, _) = server
        .post("/collect/_rejected", r#"{"type":"identify","userId":"u"}"#)
        .await;
    assert_eq!(
        status, 400,
        "client may not write to the dead-letter stream"
    );

    let too_big = format!(
        r#"{{"type":"identify","userId":"u","traits":{{"x":"{}"}}}}"#,
        "a".repeat(500 * 1024)
    );
    let response = server
        .client
        .post(server.url("/collect/web"))
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["connection"],
        "close",
        "the unread body ends the connection"
    );
    let response: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        response["error"],
        "request body is larger than 512000 bytes"
    );

    let many = format!(
        "[{}]",
        vec![r#"{"type":"identify","userId":"u"}"#; 2501].join(",")
    );
    let (status, response) = server.post("/collect/web", many).await;
    assert_eq!(status, 400);
    assert_eq!(
        response["error"],
        "a request may carry at most 2500 events; this one has 2501"
    );
    server.stop().await;
    assert!(server.rows("web").is_empty());
    assert!(server.rows("_rejected").is_empty());
}

/// Retries `body` like an SDK honouring `Retry-After` (sooner, to keep the test short) until it
/// is accepted or `attempts` run out; returns the final status.
async fn post_until_accepted(server: &TestServer, body: &str, attempts: usize) -> u16 {
    let mut status = 0;
    for _ in 0..attempts {
        status = server.post("/collect/web", body.to_owned()).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    status
}

/// The smallest queue allowed, and batch limits that never trigger by themselves.
fn only_back_pressure_flushes(config: &mut eventkit::config::Config) {
    config.queue.capacity = 2_500;
    config.batch.max_age_ms = 3_600_000;
    config.batch.max_events = 1_000_000;
}

fn identify_batch(n: usize) -> String {
    format!(
        "[{}]",
        vec![r#"{"type":"identify","userId":"u"}"#; n].join(",")
    )
}

#[tokio::test]
async fn full_queue_answers_503_with_retry_after_while_the_store_is_down_then_recovers() {
    let mut server = TestServer::start(only_back_pressure_flushes).await;
    // Once serving (the store is opened at start-up), break the store: a plain file where the
    // data directory was makes every write fail.
    let health = server.get("/health").await;
    assert_eq!(health.status(), 200);
    let dir = server.dir();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"").unwrap();

    let refused_before = refused_web(&server).await;
    let (status, _) = server.post("/collect/web", identify_batch(2_000)).await;
    assert_eq!(status, 202);
    let response = server
        .client
        .post(server.url("/collect/web"))
        .body(identify_batch(2_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "the queue is full");

    let ready = server.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("eventkit_queue_depth 2000"), "{metrics}");
    assert!(refused_web(&server).await > refused_before, "{metrics}");
    // Back-pressure makes the batcher write what it holds; that write fails and is retried.
    let mut failing = String::new();
    for _ in 0..50 {
        let ready = server.get("/ready").await;
        failing = ready.text().await.unwrap();
        if failing.contains("\"sink\":\"failing\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(failing.contains("\"sink\":\"failing\""), "{failing}");

    // The store comes back: the held batch is written, capacity returns, the retry succeeds.
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(
        post_until_accepted(&server, &identify_batch(2_000), 100).await,
        202
    );
    server.stop().await;
    assert_eq!(
        server.rows("web").len(),
        4_000,
        "both accepted requests stored, once each"
    );
}

async fn refused_web(server: &TestServer) -> f64 {
    let metrics = server.get("/metrics").await.text().await.unwrap();
    metric(&metrics, "eventkit_requests_refused_total{stream=\"web\"}")
}

#[tokio::test]
async fn a_queue_smaller_than_a_batch_is_flushed_under_pressure_not_after_max_age() {
    // max_events and max_age can never trigger here; only back-pressure can free the queue.
    let mut server = TestServer::start(only_back_pressure_flushes).await;
    for _ in 0..3 {
        assert_eq!(
            post_until_accepted(&server, &identify_batch(2_000), 50).await,
            202
        );
    }
    server.stop().await;
    assert_eq!(server.rows("web").len(), 6_000);
}

#[tokio::test]
async fn graceful_stop_flushes_every_accepted_event() {
    let mut server = TestServer::start(|c| {
        c.batch.max_age_ms = 3_600_000;
        c.batch.max_events = 700;
    })
    .await;
    let mut sent = 0;
    for request in 0..20 {
        let events: Vec<_> = (0..250)
            .map(|i| json!({"type": "track", "event": "E", "userId": format!("u{request}-{i}"), "messageId": format!("{request}-{i}")}))
            .collect();
        let (status, _) = server
            .post(
                &format!("/collect/s{}", request % 3),
                json!(events).to_string(),
            )
            .await;
        assert_eq!(status, 202);
        sent += events.len();
    }
    server.stop().await;
    let mut ids: Vec<String> = (0..3)
        .flat_map(|s| server.rows(&format!("s{s}")))
        .map(|r| r["message_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent);
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let mut server = TestServer::start(|_| {}).await;
    let health = server.get("/health").await;
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = server.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["ready"], true);
    let (status, _) = server
        .post(
            "/collect/metered",
            r#"[{"type":"identify","userId":"u"},{"type":"page","userId":"u"},{"type":"x"}]"#,
        )
        .await;
    assert_eq!(status, 202);
    server.stop().await;
    // Metrics are process-wide; this stream name is used by this test only.
    let text = eventkit::telemetry::render(&eventkit::telemetry::prometheus());
    for line in [
        "eventkit_events_accepted_total{stream=\"metered\",type=\"identify\"} 1",
        "eventkit_events_accepted_total{stream=\"metered\",type=\"page\"} 1",
        "eventkit_events_rejected_total{stream=\"metered\"} 1",
        "eventkit_files_written_total{stream=\"metered\"} 1",
        "eventkit_rows_written_total{stream=\"metered\"} 2",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains("eventkit_bytes_written_total{stream=\"metered\"}"));
    assert!(text.contains("eventkit_flush_seconds_bucket"));
}

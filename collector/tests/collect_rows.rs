//! Events in through `POST /collect`, exact rows out of the Parquet files.

use serde_json::{Value, json};

use crate::common::TestServer;

fn by_message_id(rows: Vec<Value>, id: &str) -> Value {
    rows.into_iter()
        .find(|r| r["message_id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"))
}

#[tokio::test]
async fn track_identify_and_page_become_exact_rows() {
    let mut server = TestServer::start(|_| {}).await;
    let body = json!({"batch": [
        {"type": "track", "event": "Order Completed", "userId": "u-1", "anonymousId": null, "messageId": "m-track",
         "timestamp": "2026-05-01T12:00:00.000Z", "sentAt": "2026-05-01T12:00:02.000Z",
         "properties": {"total": 42.5, "items": ["a", "b"]},
         "context": {"library": {"name": "analytics-node", "version": "2.1.0"}, "userAgent": "node/20"},
         "integrations": {"All": true}},
        {"type": "identify", "userId": "u-1", "messageId": "m-identify",
         "originalTimestamp": "2026-05-01T11:59:00Z", "traits": {"email": "a@example.com", "plan": "pro"}},
        {"type": "page", "anonymousId": "anon-9", "messageId": "m-page", "name": "Pricing",
         "properties": {"path": "/pricing", "url": "https://example.com/pricing", "referrer": "https://search.example/", "title": "Pricing"},
         "context": {"ip": "198.51.100.23"}}
    ]});
    // serde_json writes object keys sorted, so the JSON columns below are in that order: they
    // hold exactly the text the client sent.
    let (status, response) = server.post("/collect/web", body.to_string()).await;
    assert_eq!(status, 202, "{response}");
    assert_eq!(response, json!({"accepted": 3, "rejected": []}));
    server.stop().await;

    let rows = server.rows("web");
    assert_eq!(rows.len(), 3);
    let received_at = rows[0]["received_at"].as_str().unwrap().to_owned();
    let received = chrono::DateTime::parse_from_rfc3339(&received_at).unwrap();
    let fmt = |t: chrono::DateTime<chrono::FixedOffset>| {
        t.to_utc().format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
    };

    // The client said it sent the event 2 s after it happened: timestamp = receivedAt - 2 s.
    let track = by_message_id(rows.clone(), "m-track");
    assert_eq!(
        track,
        json!({
            "message_id": "m-track", "stream": "web", "type": "track", "event": "Order Completed",
            "user_id": "u-1",
            "timestamp": fmt(received - chrono::TimeDelta::seconds(2)),
            "original_timestamp": "2026-05-01T12:00:00Z", "sent_at": "2026-05-01T12:00:02Z",
            "received_at": received_at,
            "context_user_agent": "node/20",
            "context_library_name": "analytics-node", "context_library_version": "2.1.0",
            "properties": "{\"items\":[\"a\",\"b\"],\"total\":42.5}",
            // No context_ip: a server-side library's peer is its backend host (server.capture_ip).
            "context": "{\"library\":{\"name\":\"analytics-node\",\"version\":\"2.1.0\"},\"userAgent\":\"node/20\"}",
            "integrations": "{\"All\":true}"
        })
    );
    let identify = by_message_id(rows.clone(), "m-identify");
    assert_eq!(
        identify,
        json!({
            "message_id": "m-identify", "stream": "web", "type": "identify", "user_id": "u-1",
            "timestamp": "2026-05-01T11:59:00Z", "original_timestamp": "2026-05-01T11:59:00Z",
            "received_at": received_at, "context_ip": "127.0.0.1",
            "traits": "{\"email\":\"a@example.com\",\"plan\":\"pro\"}",
            "context": "{\"ip\":\"127.0.0.1\"}"
        })
    );
    let page = by_message_id(rows, "m-page");
    assert_eq!(
        page,
        json!({
            "message_id": "m-page", "stream": "web", "type": "page", "name": "Pricing", "anonymous_id": "anon-9",
            "timestamp": received_at, "received_at": received_at,
            "context_ip": "198.51.100.23",
            "page_path": "/pricing", "page_url": "https://example.com/pricing",
            "page_referrer": "https://search.example/", "page_title": "Pricing",
            "properties": "{\"path\":\"/pricing\",\"referrer\":\"https://search.example/\",\"title\":\"Pricing\",\"url\":\"https://example.com/pricing\"}",
            "context": "{\"ip\":\"198.51.100.23\"}"
        })
    );
}

#[tokio::test]
async fn single_object_and_array_bodies_are_accepted() {
    let mut server = TestServer::start(|_| {}).await;
    let (status, _) = server
        .post("/collect/app", r#"{"type":"identify","userId":"one"}"#)
        .await;
    assert_eq!(status, 202);
    let (status, _) =
        server.post("/collect/app", r#"[{"type":"identify","userId":"two"},{"type":"alias","userId":"two","previousId":"one"}]"#).await;
    assert_eq!(status, 202);
    server.stop().await;
    let mut users: Vec<String> = server
        .rows("app")
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["type"].as_str().unwrap(),
                r["user_id"].as_str().unwrap()
            )
        })
        .collect();
    users.sort();
    assert_eq!(users, ["alias:two", "identify:one", "identify:two"]);
    let alias = server
        .rows("app")
        .into_iter()
        .find(|r| r["type"] == "alias")
        .unwrap();
    assert_eq!(alias["previous_id"], "one");
}

#[tokio::test]
async fn forwarded_for_is_used_only_when_trusted() {
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "203.0.113.50")] {
        let mut server = TestServer::start(|c| c.server.trust_forwarded_for = trusted).await;
        let response = server
            .client
            .post(server.url("/collect/web"))
            .header("x-forwarded-for", "203.0.113.50, 10.0.0.1")
            .body(r#"{"type":"identify","userId":"u"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        server.stop().await;
        assert_eq!(server.rows("web")[0]["context_ip"], expected);
    }
}

//! `async` mode's `messageId` window: a Segment SDK retrying a batch it got no answer for sends
//! the same body again, with the same ids; each event is stored once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eventkit::config::parse_pairs;
use serde_json::{Value, json};

use crate::common::TestServer;

const KEY: &str = "wk-dedup";

async fn post_batch(server: &TestServer, body: &Value) -> u16 {
    let response = server
        .client
        .post(server.url("/v1/batch"))
        .header("content-type", "application/json")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{KEY}:"))),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

fn batch(ids: &[&str]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "track", "event": "Retried", "userId": "u-1", "messageId": id}))
        .collect();
    json!({"batch": events, "sentAt": "2026-05-01T12:00:00Z"})
}

fn stored_ids(server: &TestServer) -> Vec<String> {
    let mut ids: Vec<String> = server
        .rows("web")
        .iter()
        .map(|row| row["message_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_sdk_retry_of_the_same_batch_is_stored_once() {
    let mut server = TestServer::start(|config| {
        config.sources = parse_pairs(&format!("{KEY}=web")).unwrap();
    })
    .await;
    let first = batch(&["m-1", "m-2", "m-3"]);
    assert_eq!(post_batch(&server, &first).await, 200);
    // The SDK saw no answer (a timeout, a dropped connection) and sends the batch again, then
    // a next batch that starts with an event the retry queue still held.
    assert_eq!(post_batch(&server, &first).await, 200);
    assert_eq!(post_batch(&server, &batch(&["m-3", "m-4"])).await, 200);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    server.stop().await;

    assert_eq!(stored_ids(&server), ["m-1", "m-2", "m-3", "m-4"]);
    let removed = metrics
        .lines()
        .find(|line| line.starts_with("eventkit_duplicates_removed_total"))
        .and_then(|line| line.split_whitespace().last());
    // The counter is the process's: other tests in this binary may have added to it.
    assert!(
        removed.and_then(|n| n.parse::<u64>().ok()) >= Some(4),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_the_window_off_every_copy_is_stored() {
    let mut server = TestServer::start(|config| {
        config.sources = parse_pairs(&format!("{KEY}=web")).unwrap();
        config.queue.dedup_window_ids = 0;
    })
    .await;
    let first = batch(&["m-1", "m-2"]);
    assert_eq!(post_batch(&server, &first).await, 200);
    assert_eq!(post_batch(&server, &first).await, 200);
    server.stop().await;
    assert_eq!(stored_ids(&server), ["m-1", "m-1", "m-2", "m-2"]);
}

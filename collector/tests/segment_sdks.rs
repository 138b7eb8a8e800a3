//! Real Segment SDKs — analytics-python, analytics-node, and analytics.js in headless
//! Chromium — sending to a collector started here, with only their host changed.

use std::process::Stdio;

use eventkit::config::parse_pairs;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{self, TestServer};
use crate::sdk;

const KEY: &str = "sdk-test-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_python_events_become_rows() {
    let python = common::python::python();
    let mut server =
        TestServer::start(|c| c.sources = parse_pairs(&format!("{KEY}=server")).unwrap()).await;
    let mut client = tokio::process::Command::new(python);
    client
        .arg(sdk_script("python_client.py"))
        .args([&server.url(""), KEY, "py", &sdk::PER_TYPE.to_string()])
        .stdin(Stdio::null());
    let result = sdk::run_client(client).await;
    assert_eq!(result["errors"], serde_json::json!([]), "{result}");
    server.stop().await;

    let version = result["library_version"].as_str().unwrap();
    sdk::assert_scenario_rows(&server.rows("server"), "py", ("analytics-python", version));
    assert!(server.rows("_rejected").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_node_events_become_rows() {
    let node_dir = sdk::node_dir();
    let mut server =
        TestServer::start(|c| c.sources = parse_pairs(&format!("{KEY}=server")).unwrap()).await;
    let mut client = tokio::process::Command::new("node");
    client
        .arg(node_dir.join("node_client.mjs"))
        .args([&server.url(""), KEY, "node", &sdk::PER_TYPE.to_string()])
        .stdin(Stdio::null());
    let result = sdk::run_client(client).await;
    assert_eq!(result["errors"], serde_json::json!([]), "{result}");
    server.stop().await;

    let version = result["library_version"].as_str().unwrap();
    sdk::assert_scenario_rows(
        &server.rows("server"),
        "node",
        ("@segment/analytics-node", version),
    );
    assert!(server.rows("_rejected").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_js_in_chromium_sends_page_and_track() {
    let node_dir = sdk::node_dir();
    let chromium = sdk::chromium();
    let mut browser = tokio::process::Command::new("node")
        .arg(node_dir.join("browser_client.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(browser.stdout.take().unwrap()).lines();
    let hello: Value = serde_json::from_str(&stdout.next_line().await.unwrap().unwrap()).unwrap();
    let origin = hello["origin"].as_str().unwrap().to_owned();

    // The page is on another origin: the browser checks CORS on every call.
    let mut server = TestServer::start(|c| {
        c.sources = parse_pairs(&format!("{KEY}=browser")).unwrap();
        c.cors.allowed_origins = vec![origin.clone()];
    })
    .await;
    let request =
        serde_json::json!({"eventkit": server.url(""), "writeKey": KEY, "chromium": chromium});
    let mut stdin = browser.stdin.take().unwrap();
    stdin
        .write_all(format!("{request}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let line = tokio::time::timeout(std::time::Duration::from_secs(90), stdout.next_line())
        .await
        .expect("browser finished in time")
        .unwrap();
    let output = browser.wait_with_output().await.unwrap();
    let result: Value = match line.as_deref().map(serde_json::from_str) {
        Some(Ok(result)) => result,
        _ => panic!(
            "browser client failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    };
    assert_eq!(result["page"]["failed"], Value::Null, "{result}");
    assert_eq!(result["track"]["failed"], Value::Null, "{result}");
    assert_eq!(result["errors"], serde_json::json!([]), "{result}");
    server.stop().await;

    let rows = server.rows("browser");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |kind: &str| rows.iter().find(|r| r["type"] == kind).unwrap().clone();
    let (page, track) = (row("page"), row("track"));
    assert_eq!(page["message_id"], result["page"]["messageId"]);
    assert_eq!(page["name"], "Pricing");
    assert_eq!(page["page_path"], "/pricing");
    assert_eq!(
        page["page_url"],
        format!("{origin}/pricing?utm_source=test")
    );
    assert_eq!(track["message_id"], result["track"]["messageId"]);
    assert_eq!(track["event"], "Browser Clicked");
    let properties: Value = serde_json::from_str(track["properties"].as_str().unwrap()).unwrap();
    assert_eq!(
        properties,
        serde_json::json!({"button": "buy", "price": 12.5})
    );
    for row in [&page, &track] {
        assert_eq!(row["anonymous_id"], result["page"]["anonymousId"]);
        assert_eq!(row["context_library_name"], "analytics.js");
        assert!(
            row["context_library_version"]
                .as_str()
                .unwrap()
                .starts_with("next-")
        );
        assert_eq!(row["context_user_agent"], result["userAgent"]);
        assert_eq!(row["context_ip"], "127.0.0.1");
    }
}

fn sdk_script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(name)
}

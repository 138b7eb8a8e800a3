//! The Segment HTTP Tracking API on the wire: keys, encodings, limits, response shapes, CORS
//! and the analytics.js settings document.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eventkit::config::{Config, parse_pairs};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::common::{TestServer, metric};

const WEB_KEY: &str = "wk-web-123";
const APP_KEY: &str = "wk-app-456";

fn with_sources(config: &mut Config) {
    config.sources = parse_pairs(&format!("{WEB_KEY}=web,{APP_KEY}=app")).unwrap();
}

fn basic(key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{key}:")))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn send(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = server.client.post(server.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn track(user: &str) -> Value {
    json!({"type": "track", "event": "Signed Up", "userId": user, "anonymousId": null})
}

#[tokio::test]
async fn basic_auth_and_body_write_key_pick_the_stream_and_bad_keys_get_401() {
    let mut server = TestServer::start(with_sources).await;
    let json_type = ("content-type", "application/json");

    let header_auth = basic(WEB_KEY);
    let body = json!({"batch": [track("by-header")]}).to_string();
    let (status, response) = send(
        &server,
        "/v1/batch",
        &[json_type, ("authorization", &header_auth)],
        body,
    )
    .await;
    assert_eq!((status, response), (200, json!({"success": true})));

    let body = json!({"batch": [track("by-body")], "writeKey": APP_KEY}).to_string();
    let (status, _) = send(&server, "/v1/batch", &[json_type], body).await;
    assert_eq!(status, 200);

    // A single-event path with the key inside the event body, as analytics.js sends it.
    let mut event = track("single");
    event["writeKey"] = json!(APP_KEY);
    let (status, _) = send(&server, "/v1/track", &[json_type], event.to_string()).await;
    assert_eq!(status, 200);

    let refused = [
        (
            Some(basic("wrong")),
            json!({"batch": [track("x")]}),
            "the write key is not valid",
        ),
        (
            None,
            json!({"batch": [track("x")], "writeKey": "wrong"}),
            "the write key is not valid",
        ),
        (
            None,
            json!({"batch": [track("x")]}),
            "a write key is required",
        ),
        (
            Some("Bearer abc".to_owned()),
            json!({"batch": [track("x")]}),
            "the Authorization header must be Basic",
        ),
    ];
    let before = server.get("/metrics").await.text().await.unwrap();
    let refused_count = refused.len();
    for (authorization, body, error) in refused {
        let mut headers = vec![json_type];
        if let Some(value) = &authorization {
            headers.push(("authorization", value));
        }
        let (status, response) = send(&server, "/v1/batch", &headers, body.to_string()).await;
        assert_eq!(status, 401, "{response}");
        assert_eq!(response["success"], false);
        let text = response["error"].as_str().unwrap();
        assert!(text.starts_with(error), "{text}");
        assert!(!text.contains("wrong"), "keys never echo back: {text}");
    }
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let counted = metric(&metrics, "eventkit_requests_unauthorized_total")
        - metric(&before, "eventkit_requests_unauthorized_total");
    assert!(
        counted >= refused_count as f64,
        "{counted} counted\n{metrics}"
    );
    assert!(
        !metrics.contains("wrong"),
        "keys never become metric labels"
    );
    server.stop().await;

    let users = |stream: &str| {
        let mut users: Vec<String> = server
            .rows(stream)
            .iter()
            .map(|r| r["user_id"].as_str().unwrap().to_owned())
            .collect();
        users.sort();
        users
    };
    assert_eq!(users("web"), ["by-header"]);
    assert_eq!(users("app"), ["by-body", "single"]);
    // Refused requests leave nothing behind, not even dead letters.
    assert!(server.rows("_rejected").is_empty());
}

#[tokio::test]
async fn gzip_text_plain_and_short_paths_are_accepted() {
    let mut server = TestServer::start(with_sources).await;
    let auth = basic(WEB_KEY);
    let body = json!({"batch": [track("gzipped")]}).to_string();
    let (status, _) = send(
        &server,
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("authorization", &auth),
        ],
        gzip(body.as_bytes()),
    )
    .await;
    assert_eq!(status, 200);

    // analytics.js: text/plain, one event per request, one-letter paths, key in the body.
    let short = [
        ("/v1/t", json!({"event": "Clicked", "anonymousId": "a-1"})),
        (
            "/v1/p",
            json!({"name": "Home", "anonymousId": "a-1", "properties": {"path": "/"}}),
        ),
        ("/v1/i", json!({"userId": "u-1", "traits": {"plan": "pro"}})),
        ("/v1/s", json!({"name": "Main", "userId": "u-1"})),
        ("/v1/g", json!({"groupId": "g-1", "userId": "u-1"})),
        ("/v1/a", json!({"previousId": "a-1", "userId": "u-1"})),
    ];
    for (path, mut event) in short {
        event["writeKey"] = json!(WEB_KEY);
        let (status, response) = send(
            &server,
            path,
            &[("content-type", "text/plain;charset=UTF-8")],
            event.to_string(),
        )
        .await;
        assert_eq!(
            (status, response),
            (200, json!({"success": true})),
            "{path}"
        );
    }
    server.stop().await;
    let mut types: Vec<String> = server
        .rows("web")
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "alias", "group", "identify", "page", "screen", "track", "track"
        ]
    );
}

#[tokio::test]
async fn corrupt_gzip_is_400_and_oversize_is_413_even_when_compressed() {
    let mut server = TestServer::start(with_sources).await;
    let auth = basic(WEB_KEY);
    let gzip_headers = [
        ("content-encoding", "gzip"),
        ("authorization", auth.as_str()),
    ];

    let (status, response) = send(&server, "/v1/batch", &gzip_headers, "plainly not gzip").await;
    assert_eq!(status, 400);
    assert_eq!(response["success"], false);
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .starts_with("request body is not a valid gzip stream"),
        "{response}"
    );

    let mut truncated = gzip(json!({"batch": [track("t")]}).to_string().as_bytes());
    truncated.truncate(truncated.len() - 8);
    let (status, _) = send(&server, "/v1/batch", &gzip_headers, truncated).await;
    assert_eq!(status, 400);

    // Valid JSON that inflates past 500 KB from a few hundred bytes.
    let padding = " ".repeat(600 * 1024);
    let bomb = gzip(format!("{{\"batch\": [{}]{padding}}}", track("big")).as_bytes());
    assert!(bomb.len() < 5 * 1024);
    let (status, response) = send(&server, "/v1/batch", &gzip_headers, bomb).await;
    assert_eq!(status, 413, "{response}");
    assert_eq!(response["success"], false);

    let plain = format!("{{\"batch\": [{}]{padding}}}", track("big"));
    let (status, _) = send(&server, "/v1/batch", &[("authorization", &auth)], plain).await;
    assert_eq!(status, 413);

    let (status, _) = send(
        &server,
        "/v1/batch",
        &[("content-encoding", "br"), ("authorization", &auth)],
        "x",
    )
    .await;
    assert_eq!(status, 415);
    server.stop().await;
    assert!(server.rows("web").is_empty());
}

#[tokio::test]
async fn rejected_events_are_listed_in_a_200_and_dead_lettered() {
    let mut server = TestServer::start(with_sources).await;
    let auth = basic(WEB_KEY);
    let body = json!({"batch": [track("ok"), {"type": "track", "userId": "no-event"}]});
    let (status, response) = send(
        &server,
        "/v1/batch",
        &[("authorization", &auth)],
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        response,
        json!({"success": true, "rejected": [{"index": 1, "error": "event is required for track"}]})
    );

    // Nothing valid at all: 400, which the SDKs drop rather than retry.
    let body = json!({"batch": [{"type": "group", "userId": "u"}], "writeKey": APP_KEY});
    let (status, response) = send(&server, "/v1/batch", &[], body.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(response["success"], false);
    assert_eq!(
        response["rejected"][0]["error"],
        "groupId is required for group"
    );
    server.stop().await;

    assert_eq!(server.rows("web").len(), 1);
    let mut dead: Vec<String> = server
        .rows("_rejected")
        .iter()
        .map(|r| r["stream"].as_str().unwrap().to_owned())
        .collect();
    dead.sort();
    // The body-key request's dead letter names the stream its key maps to.
    assert_eq!(dead, ["app", "web"]);
}

#[tokio::test]
async fn anonymous_mode_stores_keyless_requests_in_the_configured_stream() {
    let mut server = TestServer::start(|c| {
        c.auth.allow_anonymous = true;
        c.auth.anonymous_stream = "dev".to_owned();
    })
    .await;
    let body = json!({"batch": [track("anon")]}).to_string();
    let (status, _) = send(&server, "/v1/batch", &[], body).await;
    assert_eq!(status, 200);
    server.stop().await;
    assert_eq!(server.rows("dev").len(), 1);
}

#[tokio::test]
async fn collect_can_require_a_key_for_its_stream() {
    let mut server = TestServer::start(|c| {
        with_sources(c);
        c.auth.collect_requires_key = true;
    })
    .await;
    let event = track("c").to_string();
    let web_auth = basic(WEB_KEY);
    let app_auth = basic(APP_KEY);
    let (status, _) = send(&server, "/collect/web", &[], event.clone()).await;
    assert_eq!(status, 401);
    let (status, response) = send(
        &server,
        "/collect/web",
        &[("authorization", &app_auth)],
        event.clone(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        response["error"],
        "the write key is not valid for stream \"web\""
    );
    let (status, _) = send(
        &server,
        "/collect/web",
        &[("authorization", &web_auth)],
        event.clone(),
    )
    .await;
    assert_eq!(status, 202);
    let mut with_key = track("c2");
    with_key["writeKey"] = json!(WEB_KEY);
    let (status, _) = send(&server, "/collect/web", &[], with_key.to_string()).await;
    assert_eq!(status, 202);
    server.stop().await;
    assert_eq!(server.rows("web").len(), 2);
}

#[tokio::test]
async fn settings_document_points_analytics_js_back_here() {
    let mut server = TestServer::start(with_sources).await;
    let response = server
        .client
        .get(server.url(&format!("/v1/projects/{WEB_KEY}/settings")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let settings: Value = response.json().await.unwrap();
    let segment = &settings["integrations"]["Segment.io"];
    assert_eq!(segment["apiKey"], WEB_KEY);
    assert_eq!(segment["apiHost"], format!("{}/v1", server.addr));
    assert_eq!(segment["protocol"], "http");
    assert_eq!(settings["metrics"]["sampleRate"], 0);

    let response = server.get("/v1/projects/unknown/settings").await;
    assert_eq!(response.status(), 401);
    server.stop().await;

    let mut behind_proxy = TestServer::start(|c| {
        with_sources(c);
        c.server.public_url = Some("https://collect.example.com/".to_owned());
    })
    .await;
    let settings: Value = behind_proxy
        .client
        .get(behind_proxy.url(&format!("/v1/projects/{APP_KEY}/settings")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        settings["integrations"]["Segment.io"]["apiHost"],
        "collect.example.com/v1"
    );
    assert_eq!(settings["integrations"]["Segment.io"]["protocol"], "https");
    behind_proxy.stop().await;
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let mut server = TestServer::start(|c| {
        with_sources(c);
        c.cors.allowed_origins = vec!["http://shop.example".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/v1/t"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-retry-count",
            )
            .send()
    };
    let allowed = preflight("http://shop.example").await.unwrap();
    assert!(allowed.status().is_success());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://shop.example"
    );
    let allow_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allow_headers.contains("authorization") && allow_headers.contains("x-retry-count"));

    let other = preflight("http://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let response = server
        .client
        .post(server.url("/v1/t"))
        .header("origin", "http://shop.example")
        .header("content-type", "text/plain")
        .body(json!({"event": "E", "anonymousId": "a", "writeKey": WEB_KEY}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://shop.example"
    );
    server.stop().await;
}

//! The HTTP side: one keep-alive client per run, response decoding, Retry-After handling.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Deserialize;

use crate::error::Result;
use crate::workload::{Request, Route};

/// Generous against a loopback server: a request this slow is a stall worth reporting as a
/// transport error rather than waiting on forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// When a 503 carries no usable Retry-After, wait this long, like most Segment SDKs do.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// A server asking for longer than this would stall the scenario; cap what we honour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Attempts per request before a throttled request counts as failed.
const MAX_ATTEMPTS: u32 = 30;

#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub index: u32,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 2xx. Events not named in `rejected` are accepted.
    Accepted {
        status: u16,
        rejected: Vec<Rejection>,
    },
    Throttled {
        retry_after: Option<Duration>,
    },
    Status(u16),
    /// Timeout, reset, refused: whether the server kept the events is unknown.
    Transport(String),
}

impl Outcome {
    pub fn status_label(&self) -> String {
        match self {
            Outcome::Accepted { status, .. } | Outcome::Status(status) => status.to_string(),
            Outcome::Throttled { .. } => "503".into(),
            Outcome::Transport(_) => "transport_error".into(),
        }
    }
}

/// A request after retries: the final outcome, how many 503s it took to get there and how
/// long it waited between them (honouring Retry-After).
#[derive(Clone, Debug)]
pub struct Sent {
    pub outcome: Outcome,
    pub throttled: u32,
    pub waited: Duration,
}

#[derive(Deserialize)]
struct AcceptedBody {
    #[serde(default)]
    rejected: Vec<RejectedEntry>,
}

#[derive(Deserialize)]
struct RejectedEntry {
    index: u32,
    #[serde(default)]
    error: String,
}

#[derive(Clone, Debug)]
pub struct Target {
    client: reqwest::Client,
    base: String,
    stream: String,
    /// `Some` once `/v1/batch` answered something other than 404 to a probe.
    segment_auth: Option<HeaderValue>,
}

pub fn http_client(pool: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        // Loopback only: an HTTP(S)_PROXY in the environment must not reroute the load.
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

pub fn basic_auth(write_key: &str) -> Option<HeaderValue> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"));
    HeaderValue::from_str(&format!("Basic {token}")).ok()
}

impl Target {
    pub fn new(client: reqwest::Client, base: &str, stream: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            stream: stream.to_owned(),
            segment_auth: None,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn collect_url(&self) -> String {
        format!("{}/collect/{}", self.base, self.stream)
    }

    /// Decides where `Route::Segment` requests go and says so, for the scenario's notes.
    pub async fn enable_segment(&mut self, write_key: &str) -> String {
        let Some(auth) = basic_auth(write_key) else {
            return "write key is not a valid header value; /v1/batch sends go to /collect".into();
        };
        let probe = self
            .client
            .post(format!("{}/v1/batch", self.base))
            .header(AUTHORIZATION, auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"batch":[]}"#)
            .send()
            .await;
        match probe.map(|r| r.status().as_u16()) {
            Ok(404 | 405) => "/v1/batch is not served (404): batch sends fell back to /collect/<stream> with the same {\"batch\":[…]} body".into(),
            Ok(401 | 403) => format!("/v1/batch refused write key {write_key:?} (check EVENTKIT_SOURCES): batch sends fell back to /collect/<stream>"),
            Ok(_) => {
                self.segment_auth = Some(auth);
                "batch sends used /v1/batch with HTTP Basic auth".into()
            }
            Err(e) => format!("probing /v1/batch failed ({e}): batch sends fell back to /collect/<stream>"),
        }
    }

    pub async fn post_raw(&self, body: bytes::Bytes) -> Outcome {
        let req = self
            .client
            .post(self.collect_url())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        decode(req.send().await).await
    }

    pub async fn send_once(&self, req: &Request) -> Outcome {
        let builder = match (&req.route, &self.segment_auth) {
            (Route::Segment, Some(auth)) => self
                .client
                .post(format!("{}/v1/batch", self.base))
                .header(AUTHORIZATION, auth.clone()),
            _ => self.client.post(self.collect_url()),
        };
        let builder = builder
            .header(CONTENT_TYPE, "application/json")
            .body(req.body.clone());
        decode(builder.send().await).await
    }

    /// Sends until the server takes the request, honouring Retry-After on 503, and gives up
    /// at `give_up` so a saturated server cannot keep a scenario running forever.
    pub async fn send(&self, req: &Request, give_up: Instant) -> Sent {
        let mut throttled = 0;
        let mut waited = Duration::ZERO;
        loop {
            let outcome = self.send_once(req).await;
            let Outcome::Throttled { retry_after } = &outcome else {
                return Sent {
                    outcome,
                    throttled,
                    waited,
                };
            };
            throttled += 1;
            let wait = retry_after
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .min(MAX_RETRY_AFTER);
            if throttled >= MAX_ATTEMPTS || Instant::now() + wait > give_up {
                return Sent {
                    outcome,
                    throttled,
                    waited,
                };
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }
}

/// reqwest's own message is "error sending request"; the cause is further down the chain.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn decode(resp: reqwest::Result<reqwest::Response>) -> Outcome {
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Outcome::Transport(describe(&e)),
    };
    let status = resp.status().as_u16();
    if status == 503 {
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Drain the body so the connection goes back to the pool.
        let _ = resp.bytes().await;
        return Outcome::Throttled { retry_after };
    }
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Transport(describe(&e)),
    };
    if (200..300).contains(&status) {
        let rejected = serde_json::from_slice::<AcceptedBody>(&body)
            .map(|b| {
                b.rejected
                    .into_iter()
                    .map(|r| Rejection {
                        index: r.index,
                        error: r.error,
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Outcome::Accepted { status, rejected };
    }
    Outcome::Status(status)
}

/// Only the delta-seconds form: an HTTP-date from a server on the same host adds nothing.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_only() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    /// A server that answers 503 + Retry-After to the first `throttle` requests, then 202
    /// with one rejection.
    async fn throttling_server(throttle: usize, retry_after: &'static str) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/collect/{stream}",
            axum::routing::post(move || {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < throttle {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", retry_after)],
                            "{}".to_owned(),
                        )
                    } else {
                        let body =
                            r#"{"accepted":1,"rejected":[{"index":1,"error":"type is required"}]}"#;
                        (
                            axum::http::StatusCode::ACCEPTED,
                            [("retry-after", "0")],
                            body.to_owned(),
                        )
                    }
                }
            }),
        );
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("bind")
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("addr")
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn request() -> Request {
        Request {
            route: Route::Collect,
            body: bytes::Bytes::from_static(b"[]"),
            first_seq: 0,
            events: 2,
            invalid: Vec::new(),
        }
    }

    #[tokio::test]
    async fn honours_retry_after_then_decodes_rejections() {
        let base = throttling_server(2, "0.2").await;
        let Ok(client) = http_client(2) else {
            panic!("client")
        };
        let target = Target::new(client, &base, "s");
        let start = Instant::now();
        let sent = target
            .send(&request(), Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!(sent.throttled, 2);
        assert_eq!(sent.waited, Duration::from_millis(400));
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "waited {:?}",
            start.elapsed()
        );
        let rejected = vec![Rejection {
            index: 1,
            error: "type is required".into(),
        }];
        assert_eq!(
            sent.outcome,
            Outcome::Accepted {
                status: 202,
                rejected
            }
        );
    }

    #[tokio::test]
    async fn gives_up_when_the_wait_would_pass_the_deadline() {
        let base = throttling_server(usize::MAX, "5").await;
        let Ok(client) = http_client(2) else {
            panic!("client")
        };
        let target = Target::new(client, &base, "s");
        let start = Instant::now();
        let sent = target
            .send(&request(), Instant::now() + Duration::from_secs(1))
            .await;
        assert_eq!(sent.throttled, 1);
        assert!(
            matches!(sent.outcome, Outcome::Throttled { retry_after: Some(d) } if d == Duration::from_secs(5))
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn basic_auth_is_key_and_empty_password() {
        let h = basic_auth("abc").and_then(|h| h.to_str().ok().map(str::to_owned));
        assert_eq!(h.as_deref(), Some("Basic YWJjOg=="));
    }
}

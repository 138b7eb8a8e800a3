//! The accept loop. axum's `serve` sets no header timeout, read-buffer bound or connection cap,
//! so connections are served with hyper's HTTP/1 builder directly, under [`ServeLimits`], and
//! stopped in two steps: [`HttpServer::drain`] within a deadline, then [`HttpServer::stop`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::ServiceExt;

use super::AppState;
use super::error::ApiError;
use super::timed_body::TimedBody;
use crate::telemetry;

/// The HTTP side's bounds, from `[server]` (see `config.rs` for each one's meaning).
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub max_requests: usize,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Connections finish the request in hand and close; new ones get one answer each (probes
    /// say 503, ingest says 503 with `Retry-After`).
    Draining,
    /// The grace period is over: connections still open are dropped.
    Cut,
    Stopped,
}

pub struct HttpServer {
    state: AppState,
    phase: watch::Sender<Phase>,
    /// Yields `None` once every connection accepted before the drain has closed.
    serving_connections: mpsc::Receiver<()>,
    accept_loop: JoinHandle<()>,
}

impl HttpServer {
    pub fn start(
        listener: TcpListener,
        router: Router,
        state: AppState,
        limits: ServeLimits,
    ) -> Self {
        let (phase, phase_rx) = watch::channel(Phase::Serving);
        let (serving, serving_connections) = mpsc::channel(1);
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            router,
            state.clone(),
            limits,
            phase_rx,
            serving,
        ));
        Self {
            state,
            phase,
            serving_connections,
            accept_loop,
        }
    }

    /// Stops taking requests and waits, until `deadline` at the latest, for the connections
    /// that were open to finish theirs; those still open then are cut off. Returns whether
    /// every one finished in time.
    pub async fn drain(&mut self, deadline: Instant) -> bool {
        self.state.draining.store(true, Ordering::Relaxed);
        self.phase.send_replace(Phase::Draining);
        let finished = tokio::time::timeout_at(deadline, self.serving_connections.recv())
            .await
            .is_ok();
        if !finished {
            self.phase.send_replace(Phase::Cut);
        }
        finished
    }

    /// Closes the listener and every connection still open (probes during the drain).
    pub async fn stop(self) {
        self.phase.send_replace(Phase::Stopped);
        if let Err(error) = self.accept_loop.await {
            tracing::error!(%error, "the accept loop ended abnormally");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: AppState,
    limits: ServeLimits,
    mut phase: watch::Receiver<Phase>,
    serving: mpsc::Sender<()>,
) {
    let connection_slots = Arc::new(Semaphore::new(limits.max_connections));
    let request_slots = Arc::new(Semaphore::new(limits.max_requests));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    let mut serving = Some(serving);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors or memory: waiting a moment lets connections close
                        // instead of spinning on the same error.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
                    metrics::counter!(telemetry::CONNECTIONS_REFUSED).increment(1);
                    drop(stream);
                    continue;
                };
                let router = router.clone();
                let state = state.clone();
                let request_slots = request_slots.clone();
                let service = hyper::service::service_fn(move |request| {
                    handle(router.clone(), state.clone(), request_slots.clone(), limits, peer, request)
                });
                let mut builder = http.clone();
                // During the drain a connection carries one exchange (a probe, or a 503).
                builder.keep_alive(serving.is_some());
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let in_drain = serving.clone();
                let phase = phase.clone();
                connections.spawn(async move {
                    serve_connection(connection, phase).await;
                    drop((slot, in_drain));
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            changed = phase.changed() => {
                let now = *phase.borrow_and_update();
                if changed.is_err() || now == Phase::Stopped {
                    break;
                }
                if now != Phase::Serving {
                    serving = None;
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection<S>(
    connection: http1::Connection<TokioIo<tokio::net::TcpStream>, S>,
    mut phase: watch::Receiver<Phase>,
) where
    S: hyper::service::HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    // Header timeouts, resets and malformed requests: the client's doing.
                    tracing::debug!(%error, "connection closed with an error");
                }
                return;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Serving => {}
                    Phase::Draining => connection.as_mut().graceful_shutdown(),
                    Phase::Cut | Phase::Stopped => return,
                }
            }
        }
    }
}

/// Probes are cheap and must answer while ingest is refused, so they take no request slot.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

async fn handle(
    router: Router,
    state: AppState,
    request_slots: Arc<Semaphore>,
    limits: ServeLimits,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let _slot = if is_probe(request.uri().path()) {
        None
    } else if state.draining.load(Ordering::Relaxed) {
        return Ok(ApiError::ShuttingDown.into_response());
    } else {
        match request_slots.try_acquire() {
            Ok(slot) => Some(slot),
            Err(_) => {
                metrics::counter!(telemetry::REQUESTS_OVER_CAPACITY).increment(1);
                return Ok(ApiError::TooManyRequests(limits.max_requests).into_response());
            }
        }
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let request = Request::from_parts(parts, Body::new(TimedBody::new(body, limits.body_timeout)));
    router.oneshot(request).await
}

//! Wiring: config → store → sink → queue → batcher → HTTP, and the orderly stop.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::batcher::{self, Batcher};
use crate::config::{Config, Durability, QueueMode};
use crate::dedup::DedupWindow;
use crate::health::SinkHealth;
use crate::http::{AppState, Auth, HttpServer, ServeLimits, ServerState, router};
use crate::queue::pubsub::{PublishLoop, PubsubQueue, connect};
use crate::queue::wal::{WalError, WalOptions};
use crate::queue::{Deduplicated, InProcessQueue, Queue, WalQueue};
use crate::routes::{self, OpenError};
use crate::streams::StreamRegistry;
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("opening sinks")]
    Sinks(#[from] OpenError),
    #[error("pubsub")]
    Pubsub(#[from] crate::queue::pubsub::connect::ConnectError),
    #[error("write-ahead log")]
    Wal(#[from] WalError),
    #[error("serving HTTP")]
    Serve(#[from] std::io::Error),
    #[error("the batch writer stopped abnormally: {0}")]
    Batcher(String),
}

/// Serves until `shutdown` resolves, then stops taking requests (for `server.shutdown_grace_ms`
/// at most; requests still arriving then are cut off), drains the queue, flushes every batch and
/// returns once all accepted events are stored.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (queue, drained, sink_health) = match config.queue.mode {
        QueueMode::Async => {
            let (batcher, sink_health) = open_batcher(&config).await?;
            let (queue, drained) = start_async(&config, batcher).await?;
            (queue, drained, sink_health)
        }
        QueueMode::Pubsub => {
            let pubsub = &config.pubsub;
            let names = connect::names(pubsub);
            connect::ensure_topic(pubsub, &names.topic).await?;
            let publisher = connect::publisher(pubsub, &names.topic).await?;
            let (queue, published) = PubsubQueue::new(
                publisher,
                pubsub,
                config.queue.capacity,
                config.queue.capacity_bytes,
            );
            tokio::spawn(connect::probe_while_failing(
                pubsub.clone(),
                names.topic,
                queue.health(),
            ));
            let queue: Arc<dyn Queue> = queue;
            // The loaders write; this collector has no sink to report on.
            let no_sinks = Arc::new(SinkHealth::new(std::iter::empty::<String>()));
            (queue, Drained::Publisher(published), no_sinks)
        }
    };

    // Always taken and labelled: the dead-letter stream and every stream the config names.
    let known_streams: Vec<String> = config
        .sources
        .iter()
        .map(|s| s.stream.clone())
        .chain([
            config.auth.anonymous_stream.clone(),
            eventkit_model::REJECTED_STREAM.to_owned(),
        ])
        .collect();
    telemetry::label_streams(known_streams.iter().cloned());
    let state = AppState::new(ServerState {
        queue: queue.clone(),
        sink_health,
        prometheus: telemetry::prometheus(),
        trust_forwarded_for: config.server.trust_forwarded_for,
        ip_policy: crate::ingest::IpPolicy {
            capture: config.server.capture_ip,
            anonymize: config.server.anonymize_ip,
        },
        auth: Auth::from_config(&config),
        cors: config.cors.clone(),
        public_url: config.server.public_url.clone(),
        streams: StreamRegistry::new(config.server.max_streams, known_streams),
        draining: AtomicBool::new(false),
    });
    if config.sources.is_empty() && !config.auth.allow_anonymous {
        tracing::warn!(
            "no [[sources]] configured and auth.allow_anonymous is off: /v1/* will answer 401"
        );
    }
    let server = &config.server;
    let limits = ServeLimits {
        max_connections: crate::fd_limit::connection_cap(server.max_connections, server.fd_reserve),
        max_requests: server.max_requests,
        max_header_bytes: server.max_header_bytes,
        header_timeout: Duration::from_millis(server.header_timeout_ms),
        body_timeout: Duration::from_millis(server.body_timeout_ms),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, sinks = %routes::describe(&config), mode = ?config.queue.mode, max_connections = limits.max_connections, "eventkit listening");
    }
    let mut http = HttpServer::start(listener, router(state.clone()), state, limits);
    shutdown.await;

    let deadline = Instant::now() + Duration::from_millis(server.shutdown_grace_ms);
    // Closed first, so the last batches are written while slow requests drain, both within the
    // grace period; a request that reaches the queue after this is answered 503 and retried.
    queue.close();
    tracing::info!(pending = queue.depth(), "draining the queue");
    let (requests_drained, written) =
        tokio::join!(http.drain(deadline), finish_writes(drained, deadline));
    if !requests_drained {
        tracing::warn!("shutdown grace period over: requests still arriving were cut off");
    }
    // The listener answered probes (503) until now.
    http.stop().await;
    written
}

/// Waits for what the queue holds to be stored (`async`) or acknowledged by Pub/Sub. With the
/// write-ahead log the stop ends at `deadline`: what is not stored by then stays in the log for
/// the next start. The in-memory queue has nowhere to leave it, so it waits for every write; so
/// does the publisher, whose publishes each give up after `pubsub.publish_timeout_ms`.
async fn finish_writes(drained: Drained, deadline: Instant) -> Result<(), ServerError> {
    let joined = match drained {
        Drained::Batcher {
            mut writer,
            give_up,
        } => {
            let finished = match give_up {
                Some(give_up) => {
                    tokio::select! {
                        finished = &mut writer => finished,
                        () = tokio::time::sleep_until(deadline) => {
                            let _ = give_up.send(());
                            writer.await
                        }
                    }
                }
                None => writer.await,
            };
            finished.map(|drained| {
                if drained.abandoned {
                    tracing::warn!(
                        ?drained,
                        "shutdown grace period over: unstored events stay in the write-ahead log for the next start"
                    );
                } else {
                    tracing::info!("all accepted events stored");
                }
            })
        }
        Drained::Publisher(published) => published.finished().await,
    };
    joined.map_err(|e| ServerError::Batcher(e.to_string()))
}

/// What the orderly stop waits for once requests have finished: every accepted event stored
/// (`async`; with the log, `give_up` ends the wait and leaves the rest in it), or published and
/// acknowledged by Pub/Sub (`pubsub`).
enum Drained {
    Batcher {
        writer: JoinHandle<batcher::Drained>,
        give_up: Option<oneshot::Sender<()>>,
    },
    Publisher(PublishLoop),
}

/// `async` mode's queue, in memory or behind the write-ahead log, with its batcher running. With
/// the log, what the last run left is queued before this returns, so before any new request.
async fn start_async(
    config: &Config,
    batcher: Batcher,
) -> Result<(Arc<dyn Queue>, Drained), ServerError> {
    let (capacity, capacity_bytes) = (config.queue.capacity, config.queue.capacity_bytes);
    match config.queue.durability {
        Durability::Memory => {
            let (queue, consumer) = InProcessQueue::new(capacity, capacity_bytes);
            let consumer = Deduplicated::new(consumer, dedup_window(config));
            let writer = tokio::spawn(batcher.run_until(consumer, std::future::pending()));
            Ok((
                queue,
                Drained::Batcher {
                    writer,
                    give_up: None,
                },
            ))
        }
        Durability::Wal => {
            let options = WalOptions {
                dir: config.queue.wal_dir.clone(),
                max_bytes: config.queue.wal_max_bytes,
                segment_bytes: config.queue.wal_segment_bytes,
            };
            let (queue, consumer, replay) = WalQueue::open(&options, capacity, capacity_bytes)?;
            let consumer = Deduplicated::new(consumer, dedup_window(config));
            let (give_up, given_up) = oneshot::channel::<()>();
            let writer = tokio::spawn(batcher.run_until(consumer, async {
                let _ = given_up.await;
            }));
            let replayed = replay.run().await?;
            if replayed.records > 0 {
                tracing::info!(?replayed, "replayed the write-ahead log");
            }
            let give_up = Some(give_up);
            Ok((queue, Drained::Batcher { writer, give_up }))
        }
    }
}

fn dedup_window(config: &Config) -> DedupWindow {
    DedupWindow::new(
        config.queue.dedup_window_ids,
        Duration::from_secs(config.queue.dedup_window_secs),
    )
}

/// The batcher of `async` mode and of the loader, writing to every configured sink, and the
/// health it reports each sink's writes to.
pub(crate) async fn open_batcher(
    config: &Config,
) -> Result<(Batcher, Arc<SinkHealth>), ServerError> {
    let routes = routes::open(config).await?;
    let health = Arc::new(SinkHealth::new(routes.names()));
    let batcher = Batcher::routed(Arc::new(routes), config.batch.clone(), health.clone());
    Ok((batcher, health))
}

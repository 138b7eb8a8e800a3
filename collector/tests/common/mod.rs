//! Test support: a collector on port 0 that stops on demand, and readers for what it wrote.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod child;
pub mod docs;
pub mod loader;
pub mod parquet_rows;
pub mod pubsub_emulator;
pub mod python;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use eventkit::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use parquet_rows::read_rows;

pub struct TestServer {
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
    /// The write-ahead log's directory, apart from the data like the default `./wal`.
    pub wal: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), eventkit::server::ServerError>>>,
    pub client: reqwest::Client,
}

impl TestServer {
    /// A collector writing to a fresh temporary directory. `tune` adjusts the config.
    pub async fn start(tune: impl FnOnce(&mut Config)) -> TestServer {
        let data = tempfile::tempdir().expect("tempdir");
        let wal = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.sink.url = format!("file://{}", data.path().display());
        config.queue.wal_dir = wal.path().to_owned();
        tune(&mut config);
        config.validate().expect("valid config");
        let (addr, stop, task) =
            on_port_0(|listener, stopped| eventkit::server::run(config, listener, stopped)).await;
        TestServer {
            addr,
            data,
            wal,
            stop: Some(stop),
            task: Some(task),
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Graceful stop: returns once every accepted event is stored.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.data.path().to_path_buf()
    }

    pub fn rows(&self, stream: &str) -> Vec<serde_json::Value> {
        read_rows(&self.data.path().join(format!("stream={stream}")))
    }
}

/// A server task (collector or loader) on a fresh port-0 listener, running until the returned
/// sender fires or is dropped.
pub async fn on_port_0<Run, Served>(
    run: Run,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<Result<(), eventkit::server::ServerError>>,
)
where
    Run: FnOnce(tokio::net::TcpListener, futures::future::BoxFuture<'static, ()>) -> Served,
    Served:
        std::future::Future<Output = Result<(), eventkit::server::ServerError>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped: futures::future::BoxFuture<'static, ()> = Box::pin(async {
        let _ = stopped.await;
    });
    (addr, stop, tokio::spawn(run(listener, stopped)))
}

/// Every `.parquet` file under `dir`, recursively.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The value of one series in a Prometheus text exposition (0 when it has not appeared yet).
/// Metrics are process-wide and tests run in parallel, so a test compares the value before and
/// after its own requests rather than trusting that a series exists.
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

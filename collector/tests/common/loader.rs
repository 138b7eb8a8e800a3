//! Loaders for tests: in-process on port 0 (stopped on demand), or the real binary as a child
//! process, for what only a process can show (kill -9).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use eventkit::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestLoader {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), eventkit::server::ServerError>>>,
}

impl TestLoader {
    pub async fn start(config: Config) -> TestLoader {
        config.validate().expect("valid config");
        let (addr, stop, task) =
            super::on_port_0(|listener, stopped| eventkit::loader::run(config, listener, stopped))
                .await;
        TestLoader {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful stop: returns once everything it pulled is stored and acknowledged.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("loader task").expect("loader result");
        }
    }
}

/// `eventkit loader` as a child process, configured by environment variables.
pub struct LoaderProcess {
    child: Child,
    pub port: u16,
}

impl LoaderProcess {
    pub fn spawn(env: &[(String, String)]) -> LoaderProcess {
        let port = crate::gcs_support::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_eventkit"))
            .arg("loader")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("EVENTKIT_LOADER__LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn eventkit loader");
        LoaderProcess { child, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to a minute) until the loader has pulled at least `messages` messages.
    pub async fn wait_until_received(&self, messages: u64) {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let received = match reqwest::get(&url).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
            .lines()
            .find_map(|line| line.strip_prefix("eventkit_pubsub_messages_received_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
            if received >= messages {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the loader pulled {received} messages in a minute"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no flush, no acks; Pub/Sub redelivers what it held.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the orderly stop (store, acknowledge, exit 0).
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait for the loader");
        assert!(status.success(), "loader exited with {status}");
    }
}

impl Drop for LoaderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

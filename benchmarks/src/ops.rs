//! Small helpers `run.sh` needs and a shell does badly: a free port, and waiting for a
//! process to become ready while noticing if it died instead.

use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// Binds port 0 on loopback and returns what the kernel picked. Another process could take
/// it before the collector binds; on a benchmark box that race is theoretical.
pub fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::io("127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::io("127.0.0.1:0", e))?;
    Ok(addr.port())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The process exited before answering: for pubsub mode, that is the collector refusing.
    Exited,
    TimedOut,
}

fn alive(pid: u32) -> bool {
    // /proc/<pid> disappears once the process is reaped; a zombie still has it but reports
    // state Z, which counts as dead here.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

pub async fn wait_ready(url: &str, pid: Option<u32>, timeout: Duration) -> Readiness {
    let Ok(client) = crate::client::http_client(1) else {
        return Readiness::TimedOut;
    };
    let start = Instant::now();
    while start.elapsed() < timeout {
        if pid.is_some_and(|p| !alive(p)) {
            return Readiness::Exited;
        }
        if let Ok(resp) = client.get(url).timeout(Duration::from_secs(1)).send().await
            && resp.status().is_success()
        {
            return Readiness::Ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Readiness::TimedOut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_process_is_reported_as_exited() {
        let Ok(mut child) = std::process::Command::new("true").spawn() else {
            return;
        };
        let pid = child.id();
        let _ = child.wait();
        let port = free_port().unwrap_or(1);
        let r = wait_ready(
            &format!("http://127.0.0.1:{port}/ready"),
            Some(pid),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(r, Readiness::Exited);
    }

    #[tokio::test]
    async fn nothing_listening_times_out() {
        let port = free_port().unwrap_or(1);
        let r = wait_ready(
            &format!("http://127.0.0.1:{port}/ready"),
            None,
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(r, Readiness::TimedOut);
    }
}

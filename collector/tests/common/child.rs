//! The collector binary as a child process, for what only a separate process shows: its
//! resident memory, its file descriptors, and how it exits on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct ChildCollector {
    child: Child,
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
}

impl ChildCollector {
    /// Starts `eventkit serve` on a free loopback port, writing under a fresh directory, with
    /// `env` (`EVENTKIT_*` settings) added; returns once it listens.
    pub fn start(env: &[(&str, &str)]) -> ChildCollector {
        raise_own_fd_limit();
        let data = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_eventkit"));
        command
            .arg("serve")
            .env("EVENTKIT_SERVER__LISTEN", "127.0.0.1:0")
            .env(
                "EVENTKIT_SINK__URL",
                format!("file://{}", data.path().display()),
            )
            // Each collector its own write-ahead log, beside its output.
            .env("EVENTKIT_QUEUE__WAL_DIR", data.path().join("_wal"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start eventkit");
        let stdout = child.stdout.take().expect("stdout");
        let (found, address) = mpsc::channel();
        // Reads the log to its end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("eventkit listening") {
                    let _ = found.send(listen_address(&line));
                }
            }
        });
        let addr = address
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("eventkit did not log its address within 30 s");
        ChildCollector { child, addr, data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, from `/proc/<pid>/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line");
        kib * 1024
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// The exit status, if the process ends within `limit`.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildCollector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `addr=127.0.0.1:PORT` in the log line.
fn listen_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("addr=")? + "addr=".len()..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The tests open a thousand sockets or more; the usual soft limit is 1024.
pub fn raise_own_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

//! What every emulator a test starts has in common: installing it once per machine through
//! `emulators/bootstrap`, a free loopback port, its own data directory, a readiness wait, and
//! killing it on drop. The GCS, S3 and Azure supports differ only in command line and probe.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time a fresh emulator gets to answer; moto and Azurite take a second or two on a busy box.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at finding a port, for the rare case another process takes the one we probed.
const PORT_ATTEMPTS: usize = 5;

/// Builds the emulator's command line for a port and a data directory.
pub type CommandFor = Box<dyn Fn(u16, &Path) -> Command + Send + Sync>;
/// True once the emulator on the port answers.
pub type Probe = fn(u16) -> bool;

pub struct Emulator {
    name: &'static str,
    command: CommandFor,
    ready: Probe,
    child: Option<Child>,
    port: u16,
    data: tempfile::TempDir,
}

impl Emulator {
    /// Starts `command` on a free port, retrying on another port if it does not come up.
    pub fn start(name: &'static str, command: CommandFor, ready: Probe) -> Self {
        let data = tempfile::tempdir().expect("emulator data dir");
        let mut emulator = Emulator {
            name,
            command,
            ready,
            child: None,
            port: 0,
            data,
        };
        for _ in 0..PORT_ATTEMPTS {
            emulator.port = free_port();
            if emulator.spawn() {
                return emulator;
            }
        }
        panic!(
            "{name} did not start; see {}",
            emulator.log_path().display()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the emulator; requests now fail to connect.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "{} did not restart on port {}",
            self.name,
            self.port
        );
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join(format!("{}.log", self.name))
    }

    fn spawn(&mut self) -> bool {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let root = self.data.path().join("root");
        std::fs::create_dir_all(&root).expect("emulator root");
        let child = (self.command)(self.port, &root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if (self.ready)(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn emulators_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../emulators")
}

/// Runs `emulators/bootstrap <component>` unless `binary` (relative to emulators/) is there.
/// Test binaries run in parallel processes, so the first one to get the lock installs and the
/// others wait for it.
pub fn ensure_installed(component: &str, binary: &str) -> PathBuf {
    let dir = emulators_dir();
    let binary = dir.join(binary);
    if binary.exists() {
        return binary;
    }
    let run = dir.join(".run");
    std::fs::create_dir_all(&run).expect("emulators/.run");
    let lock = File::create(run.join("bootstrap.lock")).expect("lock file");
    // File::lock is newer than the workspace's declared MSRV; tests only run on current Rust.
    #[allow(clippy::incompatible_msrv)]
    lock.lock().expect("lock emulators/.run/bootstrap.lock");
    if !binary.exists() {
        let status = Command::new("bash")
            .arg(dir.join("bootstrap"))
            .arg(component)
            .status()
            .expect("run emulators/bootstrap");
        assert!(status.success(), "emulators/bootstrap {component} failed");
    }
    binary
}

/// A unique bucket or container name, so tests sharing an emulator never see each other's
/// objects.
pub fn unique_name() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// A one-shot HTTP/1.0 request, enough for readiness probes and creating buckets and topics
/// without needing an async runtime in a sync constructor. Returns the status code.
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    // Only the status line is read: some servers keep an HTTP/1.0 connection open after the
    // response, so reading to the end would wait for the read timeout.
    let mut response = Vec::new();
    let mut chunk = [0u8; 512];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..read]);
    }
    let status_line = String::from_utf8_lossy(&response);
    status_line.split_whitespace().nth(1)?.parse().ok()
}

/// Every object in `store` with its bytes, by path: what a sink left there, read back whole.
pub async fn stored_files(store: &dyn object_store::ObjectStore) -> Vec<(String, bytes::Bytes)> {
    use futures::TryStreamExt as _;
    use object_store::ObjectStoreExt as _;
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
    let mut files = Vec::new();
    for meta in listed {
        let bytes = store
            .get(&meta.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("read");
        assert_eq!(bytes.len() as u64, meta.size, "{}", meta.location);
        files.push((meta.location.to_string(), bytes));
    }
    files.sort();
    files
}

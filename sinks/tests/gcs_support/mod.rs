//! A GCS emulator per test: fake-gcs-server from `emulators/.venv` (bootstrapped on first use),
//! on a free port, with its own data directory, killed on drop. Shared by the sinks tests and
//! the collector's end-to-end tests (`#[path]`-included), so neither needs fixed ports or a
//! running `emulators/start`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time a fresh emulator gets to answer; it usually takes well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at finding a port, for the rare case another process takes the one we probed.
const PORT_ATTEMPTS: usize = 5;

pub struct FakeGcs {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    data: tempfile::TempDir,
    backend: &'static str,
}

impl FakeGcs {
    /// Starts an emulator on a free port. Its data survives `stop`/`restart`, as a real
    /// bucket survives an outage.
    pub fn start() -> Self {
        Self::start_with("filesystem")
    }

    /// Keeps objects in memory, which loses them on restart but supports bucket versioning
    /// (the filesystem backend answers 500 to a versioned bucket).
    pub fn start_in_memory() -> Self {
        Self::start_with("memory")
    }

    fn start_with(backend: &'static str) -> Self {
        let binary = ensure_binary();
        let data = tempfile::tempdir().expect("emulator data dir");
        let mut gcs = FakeGcs {
            child: None,
            port: 0,
            binary,
            data,
            backend,
        };
        for _ in 0..PORT_ATTEMPTS {
            gcs.port = free_port();
            if gcs.spawn() {
                return gcs;
            }
        }
        panic!(
            "fake-gcs-server did not start; see {}",
            gcs.log_path().display()
        );
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

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "fake-gcs-server did not restart on port {}",
            self.port
        );
    }

    /// Creates a bucket with a unique name, so tests sharing an emulator never see each
    /// other's objects.
    pub fn fresh_bucket(&self) -> String {
        self.create_bucket(false)
    }

    /// A bucket that keeps old generations, for tests that read an object's earlier versions.
    pub fn fresh_versioned_bucket(&self) -> String {
        self.create_bucket(true)
    }

    fn create_bucket(&self, versioned: bool) -> String {
        let name = format!("t-{}", uuid::Uuid::new_v4().simple());
        let body = format!(r#"{{"name":"{name}","versioning":{{"enabled":{versioned}}}}}"#);
        let status = http(self.port, "POST", "/storage/v1/b", Some(&body)).expect("create bucket");
        assert!(
            status == 200 || status == 201,
            "create bucket answered {status}"
        );
        name
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("fake-gcs-server.log")
    }

    fn spawn(&mut self) -> bool {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let root = self.data.path().join("root");
        let child = Command::new(&self.binary)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-log-level",
                "warn",
            ])
            .args(["-backend", self.backend])
            .arg("-port")
            .arg(self.port.to_string())
            .arg("-filesystem-root")
            .arg(&root)
            // Resumable session URLs are built from this, so they point back at this port.
            .arg("-external-url")
            .arg(self.endpoint())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn fake-gcs-server");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if http(self.port, "GET", "/storage/v1/b", None) == Some(200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.stop();
    }
}

fn emulators_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../emulators")
}

/// Runs `emulators/bootstrap` once per machine. Test binaries run in parallel processes, so
/// the first one to get the lock installs and the others wait for it.
fn ensure_binary() -> PathBuf {
    let dir = emulators_dir();
    let binary = dir.join(".venv/bin/fake-gcs-server");
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
            .status()
            .expect("run emulators/bootstrap");
        assert!(status.success(), "emulators/bootstrap failed");
    }
    binary
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

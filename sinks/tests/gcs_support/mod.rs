//! A GCS emulator per test: fake-gcs-server from `emulators/.venv` (bootstrapped on first use),
//! on a free port, with its own data directory, killed on drop. Shared by the sinks tests and
//! the collector's end-to-end tests (`#[path]`-included), so neither needs fixed ports or a
//! running `emulators/start`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use crate::emulator_support::{Emulator, ensure_installed, unique_name};
pub use crate::emulator_support::{free_port, http};

pub struct FakeGcs {
    emulator: Emulator,
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
        let binary = ensure_installed("gcs", ".venv/bin/fake-gcs-server");
        let command = move |port: u16, root: &std::path::Path| {
            let mut command = Command::new(&binary);
            command
                .args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-log-level",
                    "warn",
                ])
                .args(["-backend", backend])
                .arg("-port")
                .arg(port.to_string())
                .arg("-filesystem-root")
                .arg(root)
                // Resumable session URLs are built from this, so they point back at this port.
                .arg("-external-url")
                .arg(format!("http://127.0.0.1:{port}"));
            command
        };
        let ready = |port| http(port, "GET", "/storage/v1/b", None) == Some(200);
        FakeGcs {
            emulator: Emulator::start("fake-gcs-server", Box::new(command), ready),
        }
    }

    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    /// Kills the emulator; requests now fail to connect.
    pub fn stop(&mut self) {
        self.emulator.stop();
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.emulator.restart();
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
        let name = unique_name();
        let body = format!(r#"{{"name":"{name}","versioning":{{"enabled":{versioned}}}}}"#);
        let status = http(self.emulator.port(), "POST", "/storage/v1/b", Some(&body))
            .expect("create bucket");
        assert!(
            status == 200 || status == 201,
            "create bucket answered {status}"
        );
        name
    }
}

//! gcloud's Pub/Sub emulator for tests, on a free port with its own data directory. Its JVM takes
//! tens of seconds to start on a busy machine, so tests share one ([`shared`]) and create topics
//! of their own; a test that stops the emulator starts its own. An emulator is stopped on drop,
//! and by its supervisor as soon as the test process is gone, however that ended.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::gcs_support::{free_port, http};

/// The emulator is a JVM: a cold start on a busy 2-core machine can take minutes.
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// Tries at a request the emulator did not answer in time.
const ATTEMPTS: usize = 5;

static SHARED: OnceLock<PubsubEmulator> = OnceLock::new();

/// The emulator every test in this process shares (never stopped by a test).
pub fn shared() -> &'static PubsubEmulator {
    SHARED.get_or_init(PubsubEmulator::start)
}

pub struct PubsubEmulator {
    child: Option<Child>,
    port: u16,
    /// The emulator serves any project; tests use this one.
    pub project: String,
    /// Its log, kept for a failing test to point at.
    data: tempfile::TempDir,
}

impl PubsubEmulator {
    pub fn start() -> Self {
        let mut emulator = PubsubEmulator {
            child: None,
            port: free_port(),
            project: "eventkit-test".to_owned(),
            data: tempfile::tempdir().expect("emulator data dir"),
        };
        emulator.spawn();
        emulator
    }

    /// `host:port`, as `PUBSUB_EMULATOR_HOST` takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the emulator (and its JVM): clients now fail to connect.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // gcloud starts the JVM as a child; both are in the group this process leads.
            let group = child.id();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port. The emulator keeps nothing across a restart: topics,
    /// subscriptions and messages are gone, unlike Pub/Sub through an outage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A topic with a subscription, both named after `name` (the same name gives the same
    /// pair, as after a restart) with a suffix no other test uses.
    pub fn topic_with_subscription(&self, name: &str) -> (String, String) {
        let topic = format!("{name}-topic");
        let subscription = format!("{name}-sub");
        self.create(&topic, &subscription);
        (topic, subscription)
    }

    /// A fresh topic and subscription whose names start with `name`.
    pub fn fresh_topic(&self, name: &str) -> (String, String) {
        let unique = format!(
            "{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        self.topic_with_subscription(&unique)
    }

    fn create(&self, topic: &str, subscription: &str) {
        let put = |path: &str, body: &str| {
            // A JVM just started answers its first requests slowly: a timed-out one is retried.
            let status = (0..ATTEMPTS)
                .find_map(|_| {
                    http(self.port, "PUT", path, Some(body)).or_else(|| {
                        std::thread::sleep(Duration::from_secs(1));
                        None
                    })
                })
                .unwrap_or(0);
            assert!(
                status == 200 || status == 409,
                "PUT {path} answered {status}"
            );
        };
        put(
            &format!("/v1/projects/{}/topics/{topic}", self.project),
            "{}",
        );
        put(
            &format!("/v1/projects/{}/subscriptions/{subscription}", self.project),
            &format!(
                r#"{{"topic":"projects/{}/topics/{topic}","ackDeadlineSeconds":10}}"#,
                self.project
            ),
        );
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("pubsub-emulator.log")
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        // The emulator's own launcher, not `gcloud beta emulators pubsub start`: gcloud puts
        // itself in a process group of its own, out of reach of the supervisor's. The supervisor
        // shell leads a group with the JVM: while this test process lives it waits, then it ends
        // the whole group.
        let supervised = format!(
            "{launcher} --host=127.0.0.1 --port={port} &\n\
             while kill -0 {test} 2>/dev/null; do sleep 1; done\n\
             kill -KILL 0",
            launcher = launcher().display(),
            port = self.port,
            test = std::process::id(),
        );
        let child = Command::new("bash")
            .arg("-c")
            .arg(supervised)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn the Pub/Sub emulator (gcloud beta emulators pubsub start)");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "the Pub/Sub emulator exited ({status}); see {}",
                    self.log_path().display()
                );
            }
            if http(self.port, "GET", "/", None) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.stop();
        panic!(
            "the Pub/Sub emulator did not answer within {READY_TIMEOUT:?}; see {}",
            self.log_path().display()
        );
    }
}

impl Drop for PubsubEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cloud-pubsub-emulator` from the Google Cloud SDK that `gcloud` on the PATH belongs to.
fn launcher() -> PathBuf {
    let gcloud = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("gcloud"))
        .find(|path| path.exists())
        .expect("gcloud on the PATH (with the pubsub-emulator component)");
    let sdk = std::fs::canonicalize(&gcloud)
        .expect("resolve gcloud")
        .ancestors()
        .nth(2)
        .expect("the SDK holds bin/gcloud")
        .to_path_buf();
    let launcher = sdk.join("platform/pubsub-emulator/bin/cloud-pubsub-emulator");
    assert!(
        launcher.exists(),
        "{} is missing: gcloud components install pubsub-emulator",
        launcher.display()
    );
    launcher
}

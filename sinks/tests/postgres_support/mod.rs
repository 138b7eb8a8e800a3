//! A real PostgreSQL 15 for tests: its own data directory and socket directory in a temp dir, on
//! a free port. Tests share one ([`shared`]); a test that stops the server starts its own. A
//! server is stopped on drop, and by its supervisor as soon as the test process is gone.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::gcs_support::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// initdb plus start-up on a busy 2-core machine takes seconds; allow for a slow one.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

static SHARED: OnceLock<Postgres> = OnceLock::new();

pub fn shared() -> &'static Postgres {
    SHARED.get_or_init(Postgres::start)
}

pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// initdb refuses to run as root: then the server runs as `postgres`.
fn as_server_user(program: &str) -> Command {
    let path = Path::new(BIN).join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the server's directory");
        }
        let output = as_server_user("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(output.status.success(), "initdb: {output:?}");
        let mut server = Postgres {
            child: None,
            port: free_port(),
            dir,
        };
        server.spawn();
        server
    }

    /// A libpq connection string over the server's unix socket.
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let binary = Path::new(BIN).join("postgres");
        let server = if is_root() {
            format!("runuser -u postgres -- {}", binary.display())
        } else {
            binary.display().to_string()
        };
        // fsync off: a test server's data need not survive a crash of the machine.
        let supervised = format!(
            "{server} -D {dir}/data -k {dir} -p {port} -c listen_addresses= -c fsync=off \
             -c max_connections=50 &\n\
             while kill -0 {test} 2>/dev/null; do sleep 1; done\n\
             pkill -KILL -P \"$(head -1 {dir}/data/postmaster.pid)\"\n\
             kill -KILL 0",
            dir = self.dir.path().display(),
            port = self.port,
            test = std::process::id(),
        );
        let child = Command::new("bash")
            .arg("-c")
            .arg(supervised)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let socket = self.dir.path().join(format!(".s.PGSQL.{}", self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            let ready = socket.exists()
                && Command::new(Path::new(BIN).join("pg_isready"))
                    .arg("-h")
                    .arg(self.dir.path())
                    .args(["-p", &self.port.to_string(), "-q"])
                    .status()
                    .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        panic!(
            "PostgreSQL did not start within {READY_TIMEOUT:?}; see {}",
            self.log_path().display()
        );
    }

    /// The postmaster and its children. Backends leave the postmaster's process group (each
    /// starts a session of its own), so they are found by parent.
    fn server_processes(&self) -> Vec<String> {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned))
        else {
            return Vec::new();
        };
        let children = Command::new("ps")
            .args(["-o", "pid=", "--ppid", &postmaster])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut pids: Vec<String> = children.split_whitespace().map(str::to_owned).collect();
        pids.push(postmaster);
        pids
    }

    /// Freezes the server and its backends (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        let _ = Command::new("kill")
            .arg("-STOP")
            .args(self.server_processes())
            .status();
    }

    /// Kills the server and its backends: connections now fail.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let backends = self.server_processes();
            let group = child.id();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .args(backends)
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

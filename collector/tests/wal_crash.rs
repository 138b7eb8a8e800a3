//! The write-ahead log against the real binary: SIGKILL under sustained load, a restart on the
//! same directories, and every event that got a 2xx found in the Parquet files by message id.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::read_rows;

/// The load stops at whichever comes first: this many events acknowledged, or this long.
const ACKED_BEFORE_KILL: usize = 20_000;
const LONGEST_LOAD: Duration = Duration::from_secs(30);
const SENDERS: usize = 16;
const EVENTS_PER_REQUEST: usize = 10;
/// Bound on every wait for the child: start-up (with its replay) and a graceful stop.
const CHILD_WAIT: Duration = Duration::from_secs(120);

struct Collector {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn start(data: &Path, wal: &Path) -> Collector {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventkit"))
            .arg("serve")
            .env("EVENTKIT_SERVER__LISTEN", "127.0.0.1:0")
            .env("EVENTKIT_SINK__URL", data)
            .env("EVENTKIT_QUEUE__DURABILITY", "wal")
            .env("EVENTKIT_QUEUE__WAL_DIR", wal)
            // Small segments and files: the kill finds some segments already deleted, files
            // stored whose segments are not, and most events in the log alone.
            .env("EVENTKIT_QUEUE__WAL_SEGMENT_BYTES", "262144")
            .env("EVENTKIT_BATCH__MAX_EVENTS", "3000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            // The log goes to stdout; errors (a bad setting) to stderr, shown with the test's.
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start eventkit");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (listening, addr) = std::sync::mpsc::channel();
        let lines = log.clone();
        // Read to the end, or a full pipe would stall the child.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("eventkit listening")
                    && let Some(addr) = listening_addr(&line)
                {
                    let _ = listening.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = addr
            .recv_timeout(CHILD_WAIT)
            .unwrap_or_else(|_| panic!("eventkit did not start: {:?}", log.lock().unwrap()));
        Collector { child, addr, log }
    }

    fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }

    /// SIGTERM, then the exit status of the graceful stop.
    fn stop(mut self) -> Self {
        // A served request means the server is polling its shutdown signal: a SIGTERM before
        // that would end the process as the default action does.
        served_one_request(self.addr);
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + CHILD_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "eventkit exited with {status}");
                return self;
            }
            assert!(Instant::now() < deadline, "eventkit did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn served_one_request(addr: SocketAddr) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CHILD_WAIT)).expect("timeout");
    stream
        .write_all(b"GET /health HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let after = &line[line.find("addr=")? + "addr=".len()..];
    after.split_whitespace().next()?.parse().ok()
}

/// Senders post batches of uniquely numbered events until the child dies; returns the ids of
/// every event whose request got a 2xx.
async fn load_then_kill(collector: &mut Collector) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let url = format!("http://{}/collect/web", collector.addr);
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (acked, stop, client, url) = (acked.clone(), stop.clone(), client.clone(), url.clone());
            tokio::spawn(async move {
                for request in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let ids: Vec<String> = (0..EVENTS_PER_REQUEST)
                        .map(|i| format!("s{sender}-r{request}-e{i}"))
                        .collect();
                    let body: Vec<_> = ids
                        .iter()
                        .map(|id| serde_json::json!({"type": "track", "event": "Load", "userId": "u", "messageId": id}))
                        .collect();
                    match client.post(&url).json(&body).send().await {
                        Ok(response) if response.status().is_success() => {
                            acked.lock().unwrap().extend(ids);
                        }
                        // Refused (503 under back-pressure): not acknowledged, so not counted.
                        Ok(_) => {}
                        // The child is gone.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL && started.elapsed() < LONGEST_LOAD {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // SIGKILL while the senders are still sending.
    collector.child.kill().expect("kill -9");
    let _ = collector.child.wait();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        let _ = sender.await;
    }
    acked.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let wal = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(data.path(), wal.path());
    let acked = load_then_kill(&mut collector).await;
    assert!(!acked.is_empty(), "no request was acknowledged");

    let restarted = Collector::start(data.path(), wal.path()).stop();

    let mut stored: HashMap<String, usize> = HashMap::new();
    for row in read_rows(data.path()) {
        if let Some(id) = row["message_id"].as_str() {
            *stored.entry(id.to_owned()).or_default() += 1;
        }
    }
    let acked_ids: HashSet<&str> = acked.iter().map(String::as_str).collect();
    let missing: Vec<&str> = acked_ids
        .iter()
        .copied()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    let duplicates: usize = stored.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9: {} events acknowledged, {} missing, {} stored twice or more ({} extra rows), {} stored that were not acknowledged",
        acked_ids.len(),
        missing.len(),
        stored.values().filter(|&&n| n > 1).count(),
        duplicates,
        stored
            .keys()
            .filter(|id| !acked_ids.contains(id.as_str()))
            .count(),
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        restarted.logged("replayed the write-ahead log"),
        "the kill left nothing to replay, so this test showed nothing"
    );
    // A graceful stop stores everything, so it leaves no segment behind.
    let segments: Vec<_> = std::fs::read_dir(wal.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .collect();
    assert!(
        segments.is_empty(),
        "{segments:?} left after a graceful stop"
    );
}

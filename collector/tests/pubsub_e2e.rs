//! Both queue modes end to end against the real Pub/Sub emulator: the same body in `async` and
//! `pubsub` mode (only the config differs), two collectors and two loaders sharing the work, a
//! loader killed with SIGKILL and restarted, and a 30 s Pub/Sub outage in the middle of a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use eventkit::config::{Config, QueueMode};
use serde_json::{Value, json};

use crate::common::loader::{LoaderProcess, TestLoader};
use crate::common::pubsub_emulator::{self, PubsubEmulator};
use crate::common::{TestServer, read_rows};

/// Files land within this after their events are accepted (a loader's batches are young).
const MAX_AGE_MS: u64 = 300;
/// Pub/Sub's shortest: a killed loader's messages are redelivered within this.
const ACK_DEADLINE_SECS: u64 = 10;
/// How long a test waits for every accepted event to land before it fails: generous, since a
/// killed loader's messages come back only after their deadline, on a machine busy with other tests.
const LANDING_TIMEOUT: Duration = Duration::from_secs(180);

/// A topic and subscription of one test, and the settings that reach them.
struct Pubsub {
    host: String,
    project: String,
    topic: String,
    subscription: String,
}

impl Pubsub {
    /// Fresh names on the emulator the tests share.
    fn shared(name: &str) -> Pubsub {
        Self::on(pubsub_emulator::shared(), name)
    }

    fn on(emulator: &PubsubEmulator, name: &str) -> Pubsub {
        let (topic, subscription) = emulator.fresh_topic(name);
        Pubsub {
            host: emulator.host(),
            project: emulator.project.clone(),
            topic,
            subscription,
        }
    }

    fn configure(&self, config: &mut Config, data: &Path) {
        config.queue.mode = QueueMode::Pubsub;
        config.pubsub.project = self.project.clone();
        config.pubsub.topic = self.topic.clone();
        config.pubsub.subscription = self.subscription.clone();
        config.pubsub.emulator_host = Some(self.host.clone());
        config.sink.url = format!("file://{}", data.display());
        config.batch.max_age_ms = MAX_AGE_MS;
        config.loader.ack_deadline_secs = ACK_DEADLINE_SECS;
    }

    /// The same settings as environment variables, for a loader process.
    fn env(&self, data: &Path) -> Vec<(String, String)> {
        [
            ("EVENTKIT_QUEUE__MODE", "pubsub".to_owned()),
            ("EVENTKIT_PUBSUB__PROJECT", self.project.clone()),
            ("EVENTKIT_PUBSUB__TOPIC", self.topic.clone()),
            ("EVENTKIT_PUBSUB__SUBSCRIPTION", self.subscription.clone()),
            ("PUBSUB_EMULATOR_HOST", self.host.clone()),
            ("EVENTKIT_SINK__URL", format!("file://{}", data.display())),
            ("EVENTKIT_BATCH__MAX_AGE_MS", MAX_AGE_MS.to_string()),
            (
                "EVENTKIT_LOADER__ACK_DEADLINE_SECS",
                ACK_DEADLINE_SECS.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn track(id: &str, n: usize) -> Value {
    json!({"type": "track", "event": "Item Viewed", "userId": format!("u-{}", n % 97),
           "messageId": id, "properties": {"n": n, "sku": format!("sku-{n}")}})
}

/// Posts `ids` as one batch to `/collect/web`; the status.
async fn send(server: &TestServer, ids: &[String]) -> u16 {
    let batch: Vec<Value> = ids.iter().enumerate().map(|(n, id)| track(id, n)).collect();
    let (status, _) = server
        .post("/collect/web", json!({ "batch": batch }).to_string())
        .await;
    status
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{prefix}-{n:06}")).collect()
}

/// `message_id` → how many rows hold it, over every file of the stream.
fn landed(data: &Path, stream: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in read_rows(&data.join(format!("stream={stream}"))) {
        let id = row["message_id"].as_str().unwrap_or_default().to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Waits until every id in `expected` has landed; the counts then.
async fn wait_for_landing(data: &Path, expected: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let started = Instant::now();
    loop {
        let counts = landed(data, "web");
        let missing = expected
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count();
        if missing == 0 {
            return counts;
        }
        assert!(
            started.elapsed() < LANDING_TIMEOUT,
            "{missing} of {} accepted events did not land within {LANDING_TIMEOUT:?}",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body both modes run: two collectors take events (and one invalid event each, which
/// becomes a dead letter); every accepted event lands exactly once, the dead letters too.
async fn two_collectors_end_to_end(mode: QueueMode) {
    let data = tempfile::tempdir().unwrap();
    let pubsub = (mode == QueueMode::Pubsub).then(|| Pubsub::shared("e2e"));
    let configure = |config: &mut Config| match &pubsub {
        Some(pubsub) => pubsub.configure(config, data.path()),
        None => {
            config.sink.url = format!("file://{}", data.path().display());
            config.batch.max_age_ms = MAX_AGE_MS;
        }
    };
    let mut loaders = Vec::new();
    if pubsub.is_some() {
        for _ in 0..2 {
            let mut config = Config::default();
            configure(&mut config);
            loaders.push(TestLoader::start(config).await);
        }
    }
    let mut collectors = Vec::new();
    for _ in 0..2 {
        collectors.push(TestServer::start(configure).await);
    }

    let mut expected = BTreeSet::new();
    for round in 0..20 {
        let collector = &collectors[round % 2];
        let batch = ids(&format!("r{round}"), 0..250);
        assert_eq!(send(collector, &batch).await, 202, "round {round}");
        expected.extend(batch);
    }
    for (n, collector) in collectors.iter().enumerate() {
        let (status, body) = collector
            .post(
                "/collect/web",
                json!({"batch": [track(&format!("ok-{n}"), n), {"type": "track", "userId": "u"}]})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["rejected"][0]["error"], "event is required for track");
        expected.insert(format!("ok-{n}"));
    }
    for collector in &mut collectors {
        collector.stop().await;
    }

    let counts = wait_for_landing(data.path(), &expected).await;
    for loader in &mut loaders {
        loader.stop().await;
    }
    let counts_after_stop = landed(data.path(), "web");
    assert_eq!(
        counts, counts_after_stop,
        "rows landed after the last check"
    );
    let ids: BTreeSet<String> = counts.keys().cloned().collect();
    assert_eq!(ids, expected, "exactly the accepted events");
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicates: {duplicated:?}");
    let rejected = read_rows(&data.path().join("stream=_rejected"));
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected
            .iter()
            .all(|r| r["error"] == "event is required for track")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_async_mode() {
    two_collectors_end_to_end(QueueMode::Async).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_and_two_loaders_pubsub_mode() {
    two_collectors_end_to_end(QueueMode::Pubsub).await;
}

/// A loader killed with SIGKILL mid-run loses nothing: Pub/Sub redelivers what it had not
/// acknowledged to the loader started after it. The first loader is made to hold everything it
/// pulls (its batches never come of age), so the kill finds it holding events it has not stored;
/// a loader that acknowledged on receipt would lose them here. An SDK's retry of events the new
/// loader already stored is removed inside its window.
/// The loader routes through the same batcher as `async` mode: `[[sinks]]` split by pattern,
/// each stream's events in exactly its sinks, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loader_writes_each_stream_to_the_sinks_its_patterns_name() {
    use eventkit::config::{
        ParquetSinkSettings, SinkConfig, SinkEntry, SinkSettings, StreamPattern,
    };
    let pubsub = Pubsub::shared("routed");
    let (web_dir, lake_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sink = |name: &str, pattern: &str, dir: &Path| SinkEntry {
        name: name.to_owned(),
        streams: vec![StreamPattern::parse(pattern).unwrap()],
        settings: SinkSettings::Parquet(ParquetSinkSettings {
            url: format!("file://{}", dir.display()),
            endpoint: None,
        }),
    };
    let mut config = Config::default();
    pubsub.configure(&mut config, lake_dir.path());
    config.sink = SinkConfig::default();
    config.sinks = vec![
        sink("loader_web", "web*", web_dir.path()),
        sink("loader_lake", "*", lake_dir.path()),
    ];
    let mut loader = TestLoader::start(config).await;
    let mut collector = TestServer::start(|c| pubsub.configure(c, lake_dir.path())).await;
    let web = ids("routed-web", 0..20);
    assert_eq!(send(&collector, &web).await, 202);
    let app: Vec<Value> = (0..5)
        .map(|n| track(&format!("routed-app-{n}"), n))
        .collect();
    let (status, _) = collector
        .post("/collect/app", json!({ "batch": app }).to_string())
        .await;
    assert_eq!(status, 202);
    collector.stop().await;

    let once = |prefix: &str, n: usize| -> BTreeMap<String, usize> {
        (0..n).map(|i| (format!("{prefix}-{i}"), 1)).collect()
    };
    let expected_web: BTreeMap<String, usize> = web.iter().map(|id| (id.clone(), 1)).collect();
    let started = Instant::now();
    while landed(lake_dir.path(), "app").len() < 5
        || landed(lake_dir.path(), "web").len() < web.len()
        || landed(web_dir.path(), "web").len() < web.len()
    {
        assert!(
            started.elapsed() < LANDING_TIMEOUT,
            "the events did not land"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loader.stop().await;
    assert_eq!(landed(web_dir.path(), "web"), expected_web);
    assert_eq!(landed(lake_dir.path(), "web"), expected_web);
    assert_eq!(landed(lake_dir.path(), "app"), once("routed-app", 5));
    assert!(landed(web_dir.path(), "app").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loader_killed_mid_run_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let pubsub = Pubsub::shared("kill");
    let collector = TestServer::start(|config| pubsub.configure(config, data.path())).await;
    let mut holding = pubsub.env(data.path());
    holding.push(("EVENTKIT_BATCH__MAX_AGE_MS".into(), "3600000".into()));
    let first = LoaderProcess::spawn(&holding);

    let mut expected = BTreeSet::new();
    for round in 0..10 {
        let batch = ids(&format!("k{round}"), 0..200);
        assert_eq!(send(&collector, &batch).await, 202, "round {round}");
        expected.extend(batch);
    }
    first.wait_until_received(1).await;
    assert!(
        landed(data.path(), "web").is_empty(),
        "the first loader stored files"
    );
    first.kill_9();

    let second = LoaderProcess::spawn(&pubsub.env(data.path()));
    for round in 10..30 {
        let batch = ids(&format!("k{round}"), 0..200);
        assert_eq!(send(&collector, &batch).await, 202, "round {round}");
        expected.extend(batch);
    }
    let counts = wait_for_landing(data.path(), &expected).await;

    // Inside the new loader's window: a client retrying a batch it already sent.
    let retried = ids("k29", 0..200);
    assert_eq!(send(&collector, &retried).await, 202);
    let fresh = ids("after", 0..50);
    assert_eq!(send(&collector, &fresh).await, 202);
    expected.extend(fresh.iter().cloned());
    let after_retry = wait_for_landing(data.path(), &expected).await;
    second.terminate();
    let final_counts = landed(data.path(), "web");
    assert_eq!(after_retry, final_counts);

    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "kill -9: {} events accepted, all landed; {duplicates} duplicate rows from redelivery after the kill",
        expected.len()
    );
    for id in &retried {
        assert_eq!(
            final_counts[id], counts[id],
            "{id}: the retried event was stored again inside the window"
        );
    }
}

/// Pub/Sub down for 30 s in the middle of a run: collectors answer 503 with Retry-After and
/// `/ready` false meanwhile, then recover; every event that got a 2xx lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pubsub_outage_is_answered_with_503_and_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    // Its own emulator, since this test stops it.
    let mut emulator = PubsubEmulator::start();
    let pubsub = Pubsub::on(&emulator, "outage");
    let collector = TestServer::start(|config| {
        pubsub.configure(config, data.path());
        config.pubsub.publish_timeout_ms = 2_000;
    })
    .await;
    let mut loader_config = Config::default();
    pubsub.configure(&mut loader_config, data.path());
    let mut loader = TestLoader::start(loader_config).await;

    let mut accepted = BTreeSet::new();
    for round in 0..5 {
        let batch = ids(&format!("before{round}"), 0..100);
        assert_eq!(send(&collector, &batch).await, 202);
        accepted.extend(batch);
    }
    // The emulator keeps its messages in memory only: let the loader take them first, so the
    // restart below tests eventkit and not the emulator's lack of durability.
    wait_for_landing(data.path(), &accepted).await;

    emulator.stop();
    let outage = Instant::now();
    let mut refused = 0;
    let mut round = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        let batch = ids(&format!("during{round}"), 0..20);
        let batch_body: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(n, id)| track(id, n))
            .collect();
        let response = collector
            .client
            .post(collector.url("/collect/web"))
            .header("content-type", "application/json")
            .body(json!({ "batch": batch_body }).to_string())
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => accepted.extend(batch),
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("during the outage: {other}"),
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused > 0, "no request was refused during a 30 s outage");
    let ready = collector.get("/ready").await;
    assert_eq!(ready.status().as_u16(), 503, "/ready during the outage");

    // Pub/Sub keeps topics and subscriptions through an outage; the emulator forgets them.
    emulator.restart();
    let (topic, subscription) = pubsub
        .topic
        .rsplit_once("-topic")
        .map(|(name, _)| emulator.topic_with_subscription(name))
        .unwrap();
    assert_eq!(
        (topic, subscription),
        (pubsub.topic.clone(), pubsub.subscription.clone())
    );
    let recovered = Instant::now();
    let mut after = 0;
    while after < 5 {
        assert!(
            recovered.elapsed() < Duration::from_secs(60),
            "the collector did not recover within 60 s of Pub/Sub's return"
        );
        let batch = ids(&format!("after{round}"), 0..100);
        round += 1;
        if send(&collector, &batch).await == 202 {
            accepted.extend(batch);
            after += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(collector.get("/ready").await.status().as_u16(), 200);
    // Accepted before the outage (landed already) or after it: all of it lands.
    wait_for_landing(data.path(), &accepted).await;
    loader.stop().await;
    println!(
        "outage: {refused} requests refused with 503 during 30 s; {} accepted events all landed",
        accepted.len()
    );
}

/// The Python reader in specs/pubsub.md reads what collectors publish, with nothing from
/// eventkit: one line per message, its stream, row count and message ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_python_reader_reads_the_topic() {
    let data = tempfile::tempdir().unwrap();
    let pubsub = Pubsub::shared("reader");
    let mut collector = TestServer::start(|config| pubsub.configure(config, data.path())).await;
    let sent = ids("py", 0..3);
    let mut batch: Vec<Value> = sent
        .iter()
        .enumerate()
        .map(|(n, id)| track(id, n))
        .collect();
    batch.push(json!({"type": "track", "userId": "u"}));
    let (status, _) = collector
        .post("/collect/web", json!({ "batch": batch }).to_string())
        .await;
    assert_eq!(status, 202);
    collector.stop().await;

    let script = crate::common::docs::code_block(
        "specs/pubsub.md",
        "### Reading the topic without eventkit",
        "python",
    );
    let output = std::process::Command::new(crate::common::python::python())
        .arg("-c")
        .arg(&script)
        .env("PUBSUB_EMULATOR_HOST", &pubsub.host)
        .env("PROJECT", &pubsub.project)
        .env("SUBSCRIPTION", &pubsub.subscription)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "_rejected 1 [None]",
            "web 3 ['py-000000', 'py-000001', 'py-000002']"
        ]
    );
}

/// A missing topic stops a collector's start-up with a message naming it, unless creating it
/// was asked for (development); a missing subscription likewise stops a loader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_are_created_only_when_asked() {
    let emulator = pubsub_emulator::shared();
    let data = tempfile::tempdir().unwrap();
    let absent = format!(
        "absent-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut config = Config::default();
    Pubsub::on(emulator, "unused").configure(&mut config, data.path());
    config.pubsub.topic = format!("{absent}-topic");
    config.pubsub.subscription = format!("{absent}-sub");
    let listener = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let describe = |error: &dyn std::error::Error| {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    };

    let refused = eventkit::server::run(config.clone(), listener().await, async {}).await;
    let error = describe(&refused.unwrap_err());
    assert!(
        error.contains(&format!(
            "topic projects/{}/topics/{absent}-topic does not exist",
            emulator.project
        )),
        "{error}"
    );
    let refused = eventkit::loader::run(config.clone(), listener().await, async {}).await;
    let error = describe(&refused.unwrap_err());
    assert!(
        error.contains("subscription") && error.contains("does not exist"),
        "{error}"
    );

    config.pubsub.create_missing = true;
    eventkit::loader::run(config.clone(), listener().await, async {})
        .await
        .expect("the loader creates its subscription and topic");
    eventkit::server::run(config, listener().await, async {})
        .await
        .expect("the collector finds its topic");
}

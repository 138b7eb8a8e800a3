//! Runs the scenarios of one mode in order and writes each result as soon as it exists, so an
//! interrupted run still leaves everything measured so far.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::http_client;
use crate::cpu::{self, Watched};
use crate::error::{BenchError, Result};
use crate::ids::new_run_id;
use crate::landing::Sink;
use crate::report::write_scenario;
use crate::result::ScenarioResult;
use crate::scenario::{self, Ctx, Durations};

pub const ALL_SCENARIOS: [&str; 6] = [
    "ceiling",
    "baseline",
    "payload-size",
    "realistic",
    "burst",
    "error-rate",
];

/// How long the collector may take to store everything after a scenario's load stops: several
/// batch ages plus a slow object store.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SuiteOpts {
    pub mode: String,
    pub collector_url: String,
    pub sink: Sink,
    pub collector_pid: Option<u32>,
    pub out_dir: PathBuf,
    pub quick: bool,
    pub scenarios: Vec<String>,
    /// `None`: start our own ceiling server; `Some("off")`: skip; else its URL.
    pub ceiling: Option<String>,
    pub write_key: String,
    pub users: usize,
    /// Shared by the invocations of one `run.sh` run, so a later invocation (burst, against a
    /// collector with a smaller queue) can use the ceiling and baseline figures of an earlier one.
    pub run_id: Option<String>,
    /// pubsub mode: the loader's probe address and process.
    pub loader_url: Option<String>,
    pub loader_pid: Option<u32>,
    /// Emulator processes (each with its children), for CPU time.
    pub emulator_pids: Vec<u32>,
    pub wrk_write_key: String,
    /// The collector's queue bounds (events, MiB), when known.
    pub queue_bound: (Option<u64>, Option<f64>),
}

pub async fn run(opts: SuiteOpts) -> Result<Vec<ScenarioResult>> {
    for s in &opts.scenarios {
        if !ALL_SCENARIOS.contains(&s.as_str()) {
            return Err(BenchError::Invalid(format!(
                "unknown scenario {s:?}; known: {}",
                ALL_SCENARIOS.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| BenchError::io(&opts.out_dir, e))?;
    let wants_ceiling = opts.scenarios.iter().any(|s| s == "ceiling");
    let mut ceiling_child = None;
    let (ceiling_url, ceiling_pid) = match opts.ceiling.as_deref() {
        _ if !wants_ceiling => (None, None),
        Some("off") => (None, None),
        Some(url) => (Some(url.to_owned()), None),
        None => {
            let (child, url) = spawn_ceiling().await?;
            let pid = child.id();
            ceiling_child = Some(child);
            (Some(url), pid)
        }
    };
    let progress = MultiProgress::new();
    let mut ctx = Ctx {
        mode: opts.mode.clone(),
        collector_url: opts.collector_url.trim_end_matches('/').to_owned(),
        ceiling_url,
        sink: opts.sink,
        // Idle connections kept up to the most a scenario opens (burst's in-flight cap), so no
        // scenario pays for reconnecting.
        load_client: http_client((opts.users * 4).max(scenario::MAX_IN_FLIGHT as usize))?,
        admin_client: http_client(4)?,
        collector_pid: opts.collector_pid,
        ceiling_pid,
        loader_url: opts.loader_url.clone(),
        also_watched: watched_besides(opts.loader_pid, &opts.emulator_pids),
        wrk_write_key: opts.wrk_write_key.clone(),
        queue_bound: opts.queue_bound,
        run_id: opts.run_id.clone().unwrap_or_else(new_run_id),
        write_key: opts.write_key,
        users: opts.users,
        durations: if opts.quick {
            Durations::quick()
        } else {
            Durations::full()
        },
        bucket: Duration::from_secs(1),
        sample_every: Duration::from_millis(if opts.quick { 250 } else { 500 }),
        flush_timeout: FLUSH_TIMEOUT,
        progress: progress.clone(),
        ceiling_rps: None,
        baseline_rps: None,
        batched_per_core_eps: None,
    };
    if !wants_ceiling {
        ctx.ceiling_rps = prior(&opts.out_dir, "ceiling", &ctx.run_id).map(|r| r.requests_per_sec);
    }
    if !opts.scenarios.iter().any(|s| s == "baseline") {
        ctx.baseline_rps =
            prior(&opts.out_dir, "baseline", &ctx.run_id).map(|r| r.requests_per_sec);
    }
    if !opts.scenarios.iter().any(|s| s == "error-rate") {
        ctx.batched_per_core_eps = prior(&opts.out_dir, "error-rate", &ctx.run_id)
            .and_then(|r| scenario::per_core_eps(&r));
    }
    let overall = progress.add(ProgressBar::new(opts.scenarios.len() as u64));
    if let Ok(style) = ProgressStyle::with_template("{prefix:>8} {pos}/{len} {msg}") {
        overall.set_style(style);
    }
    overall.set_prefix(opts.mode.clone());

    let mut results = Vec::new();
    for name in ALL_SCENARIOS
        .iter()
        .filter(|n| opts.scenarios.iter().any(|s| s == *n))
    {
        overall.set_message(format!("running {name}"));
        let result = match *name {
            "ceiling" => scenario::ceiling(&mut ctx).await,
            "baseline" => Some(scenario::baseline(&mut ctx).await),
            "payload-size" => Some(scenario::payload_size(&mut ctx).await),
            "realistic" => Some(scenario::realistic(&mut ctx).await),
            "burst" => Some(scenario::burst(&mut ctx).await),
            _ => Some(scenario::error_rate(&mut ctx).await),
        };
        overall.inc(1);
        let Some(result) = result else {
            progress.suspend(|| eprintln!("{name}: skipped (no ceiling server)"));
            continue;
        };
        write_scenario(&opts.out_dir, &result)?;
        progress.suspend(|| eprintln!("{}", one_line(&result)));
        results.push(result);
    }
    overall.finish_and_clear();
    if let Some(mut child) = ceiling_child {
        let _ = child.kill().await;
    }
    Ok(results)
}

fn watched_besides(loader: Option<u32>, emulators: &[u32]) -> Vec<Watched> {
    let mut out = Vec::new();
    if let Some(pid) = loader {
        out.push(Watched {
            role: cpu::LOADER.into(),
            pids: vec![pid],
            tree: false,
        });
    }
    if !emulators.is_empty() {
        out.push(Watched {
            role: cpu::EMULATORS.into(),
            pids: emulators.to_vec(),
            tree: true,
        });
    }
    out
}

/// A scenario written earlier in the same run, if there is one.
fn prior(dir: &std::path::Path, scenario: &str, run_id: &str) -> Option<ScenarioResult> {
    let bytes = std::fs::read(dir.join(format!("{scenario}.json"))).ok()?;
    let r: ScenarioResult = serde_json::from_slice(&bytes).ok()?;
    (r.run_id == run_id).then_some(r)
}

pub fn one_line(r: &ScenarioResult) -> String {
    let ratio = r
        .ceiling_ratio
        .map_or_else(String::new, |c| format!(", {:.0}% of ceiling", c * 100.0));
    let loss = if r.loss_checked {
        format!(
            ", {} landed, {} lost, {} dup",
            r.events_landed, r.events_lost, r.duplicates
        )
    } else {
        String::new()
    };
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    let verdict = if failed.is_empty() {
        "ok".to_owned()
    } else {
        format!("FAILED: {}", failed.join("; "))
    };
    format!(
        "{:>8} {:<13} {:>9.0} req/s {:>9.0} events/s  p50 {:.2} ms  p99 {:.2} ms{ratio}{loss}  [{verdict}]",
        r.mode,
        r.scenario,
        r.requests_per_sec,
        r.events_per_sec,
        r.latency_ms.p50,
        r.latency_ms.p99
    )
}

/// Starts `eventkit-bench ceiling-server` as a separate process, like the collector, so the
/// two are measured the same way; the child dies with us (`kill_on_drop`).
async fn spawn_ceiling() -> Result<(Child, String)> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Ceiling(e.to_string()))?;
    let mut child = Command::new(exe)
        .args(["ceiling-server", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Ceiling(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Ceiling("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| BenchError::Ceiling("did not report its address within 10 s".into()))?
        .map_err(|e| BenchError::Ceiling(e.to_string()))?
        .ok_or_else(|| BenchError::Ceiling("exited before reporting its address".into()))?;
    let addr = line
        .strip_prefix("listening on ")
        .ok_or_else(|| BenchError::Ceiling(format!("unexpected output {line:?}")))?;
    Ok((child, format!("http://{}", addr.trim())))
}

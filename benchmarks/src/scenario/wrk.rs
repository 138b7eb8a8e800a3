//! The realistic bodies sent by `wrk`, a load tool that does nothing per request but send: how
//! close this generator comes to it says whether realistic measures the collector or us.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::client::basic_auth;
use crate::cpu::{self, CpuFigures, CpuSnapshot, Watched};
use crate::ids::Ids;
use crate::workload::{Prepared, Route};

/// Stream wrk's events go to, so they never mix with the realistic scenario's ledger.
pub const WRK_STREAM: &str = "bench_realistic_wrk";

/// Cycles through the prepared requests (one per line: route, tab, body), built once in
/// `init`, so each request costs wrk only the send.
const SCRIPT: &str = r#"
local requests = {}
local i = 0
init = function(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local route, body = line:match("^(%S+)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json" }
    local path = "/collect/" .. args[2]
    if route == "segment" and args[3] ~= nil then
      path = "/v1/batch"
      headers["Authorization"] = args[3]
    end
    requests[#requests + 1] = wrk.format("POST", path, headers, body)
  end
  file:close()
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"#;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WrkFigures {
    pub connections: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Requests/s × the mean events per prepared request (wrk cycles through all of them).
    pub events_per_sec: f64,
    pub non_2xx: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub cpu: Option<CpuFigures>,
}

/// Runs wrk against the collector with `prepared`'s bodies (stamped once with `ids`) for
/// `duration` with `connections`, one thread like this generator.
pub async fn compare(
    ctx: &Ctx,
    prepared: &Prepared,
    ids: &Ids,
    connections: usize,
    duration: Duration,
) -> Result<WrkFigures, String> {
    let wrk = find_on_path("wrk").ok_or("wrk is not installed (apt-get install wrk)")?;
    let dir = std::env::temp_dir().join(format!("eventkit-bench-wrk-{}", ids.prefix()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let written = write_inputs(&dir, prepared, ids);
    let result = match written {
        Ok((script, bodies)) => {
            run(ctx, &wrk, &script, &bodies, prepared, connections, duration).await
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn write_inputs(
    dir: &std::path::Path,
    prepared: &Prepared,
    ids: &Ids,
) -> Result<(PathBuf, PathBuf), String> {
    let script = dir.join("realistic.lua");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for (route, body) in prepared.bodies(ids) {
        lines.extend_from_slice(match route {
            Route::Segment => b"segment\t",
            Route::Collect => b"collect\t",
        });
        lines.extend_from_slice(&body);
        lines.push(b'\n');
    }
    let bodies = dir.join("bodies.txt");
    std::fs::write(&bodies, lines).map_err(|e| e.to_string())?;
    Ok((script, bodies))
}

async fn run(
    ctx: &Ctx,
    wrk: &std::path::Path,
    script: &std::path::Path,
    bodies: &std::path::Path,
    prepared: &Prepared,
    connections: usize,
    duration: Duration,
) -> Result<WrkFigures, String> {
    let secs = duration.as_secs().max(1);
    let mut args = vec![
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{secs}s"),
        "--latency".to_owned(),
        "-s".to_owned(),
        script.display().to_string(),
        ctx.collector_url.clone(),
        "--".to_owned(),
        bodies.display().to_string(),
        WRK_STREAM.to_owned(),
    ];
    if let Some(auth) =
        basic_auth(&ctx.wrk_write_key).and_then(|h| h.to_str().ok().map(str::to_owned))
    {
        args.push(auth);
    }
    let mut child = tokio::process::Command::new(wrk)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting wrk: {e}"))?;
    let mut watched: Vec<Watched> = ctx
        .collector_pid
        .map(|p| Watched {
            role: cpu::COLLECTOR.into(),
            pids: vec![p],
            tree: false,
        })
        .into_iter()
        .collect();
    if let Some(pid) = child.id() {
        watched.push(Watched {
            role: cpu::GENERATOR.into(),
            pids: vec![pid],
            tree: false,
        });
    }
    let before = CpuSnapshot::take(&watched);
    let started = std::time::Instant::now();
    // wrk exits after its duration; the snapshot must come before it does, or its CPU
    // time is gone with it.
    tokio::time::sleep(duration.saturating_sub(Duration::from_millis(200))).await;
    let near_end = CpuSnapshot::take(&watched);
    let elapsed = started.elapsed().as_secs_f64();
    let stdout = tokio::time::timeout(duration + Duration::from_secs(30), async {
        let mut out = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            use tokio::io::AsyncReadExt as _;
            let _ = pipe.read_to_string(&mut out).await;
        }
        let _ = child.wait().await;
        out
    })
    .await
    .map_err(|_| "wrk did not finish".to_owned())?;
    let mut figures =
        parse_output(&stdout).ok_or_else(|| format!("unreadable wrk output: {stdout}"))?;
    figures.connections = connections;
    figures.duration_s = secs as f64;
    figures.events_per_sec = figures.requests_per_sec * prepared.mean_events();
    let used = near_end.since(&before);
    let events = (figures.events_per_sec * elapsed) as u64;
    figures.cpu = Some(CpuFigures::new(used.clone(), used, elapsed, events));
    if figures.non_2xx * 100 > figures.requests.max(1) {
        return Err(format!(
            "{} of {} wrk requests were not answered 2xx (is write key {:?} mapped to {WRK_STREAM}?)",
            figures.non_2xx, figures.requests, ctx.wrk_write_key
        ));
    }
    Ok(figures)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The figures of wrk's text output that matter here.
pub fn parse_output(text: &str) -> Option<WrkFigures> {
    let mut f = WrkFigures::default();
    let mut saw_rate = false;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                f.requests_per_sec = v.parse().ok()?;
                saw_rate = true;
            }
            (Some("50%"), Some(v)) => f.p50_ms = duration_ms(v),
            (Some("99%"), Some(v)) => f.p99_ms = duration_ms(v),
            (Some(n), Some("requests")) => f.requests = n.parse().unwrap_or(0),
            _ => {}
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            f.non_2xx = n.trim().parse().unwrap_or(0);
        }
    }
    saw_rate.then_some(f)
}

/// wrk prints durations as `850.00us`, `1.23ms`, `2.01s` or `1.50m`.
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    match unit {
        "us" => Some(n / 1000.0),
        "ms" => Some(n),
        "s" => Some(n * 1000.0),
        "m" => Some(n * 60_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 3s test @ http://127.0.0.1:8080
  1 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.10ms    1.20ms  20.00ms   80.00%
    Req/Sec     4.90k   200.00     5.10k    70.00%
  Latency Distribution
     50%    3.90ms
     75%    4.50ms
     90%    5.20ms
     99%  850.00us
  14700 requests in 3.00s, 2.10MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   4899.50
Transfer/sec:    700.00KB
";

    #[test]
    fn reads_rate_requests_latency_and_refusals() {
        let f = parse_output(OUTPUT);
        assert_eq!(f.as_ref().map(|f| f.requests), Some(14_700));
        assert_eq!(f.as_ref().map(|f| f.requests_per_sec), Some(4_899.5));
        assert_eq!(f.as_ref().map(|f| f.non_2xx), Some(12));
        assert_eq!(f.as_ref().and_then(|f| f.p50_ms), Some(3.9));
        assert_eq!(f.as_ref().and_then(|f| f.p99_ms), Some(0.85));
        assert!(parse_output("wrk: connection refused").is_none());
        assert_eq!(duration_ms("2.5s"), Some(2_500.0));
    }
}

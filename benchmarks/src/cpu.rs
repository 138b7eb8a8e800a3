//! CPU time of the processes a scenario involves, from `/proc/<pid>/stat`. On a shared
//! machine throughput moves with whatever else runs; CPU time per event moves far less, and
//! comparing the generator's CPU with the collector's says which of the two was the limit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Linux reports `utime` and `stime` in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports (it is part of the user-space ABI, unlike the kernel's `HZ`).
const TICKS_PER_SEC: f64 = 100.0;

/// The generator counts as the limit when it used this many cores more than the collector.
pub const GENERATOR_BOUND_MARGIN_CORES: f64 = 0.5;

/// The processes watched in one role; `tree` also counts every descendant (the Pub/Sub
/// emulator is a `gcloud` wrapper whose JVM does the work).
#[derive(Clone, Debug)]
pub struct Watched {
    pub role: String,
    pub pids: Vec<u32>,
    pub tree: bool,
}

/// CPU seconds per role at one instant.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot(BTreeMap<String, f64>);

impl CpuSnapshot {
    pub fn take(watched: &[Watched]) -> Self {
        let table = if watched.iter().any(|w| w.tree) {
            process_table()
        } else {
            Vec::new()
        };
        let mut out = BTreeMap::new();
        for w in watched {
            let pids = if w.tree {
                with_descendants(&w.pids, &table)
            } else {
                w.pids.clone()
            };
            let secs: f64 = pids.iter().filter_map(|p| process_cpu_secs(*p)).sum();
            *out.entry(w.role.clone()).or_default() += secs;
        }
        Self(out)
    }

    /// CPU seconds each role used from `earlier` to `self`.
    pub fn since(&self, earlier: &CpuSnapshot) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .map(|(role, now)| {
                let before = earlier.0.get(role).copied().unwrap_or(0.0);
                (role.clone(), (now - before).max(0.0))
            })
            .collect()
    }
}

/// What a scenario's processes spent, and what that means per event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuFigures {
    /// CPU seconds per role while the load ran.
    pub during_load_s: BTreeMap<String, f64>,
    /// CPU seconds per role from the start of the load until every accepted event was
    /// stored (the collector's or loader's flushing included); the generator's reading of
    /// the output afterwards is not in it.
    pub until_stored_s: BTreeMap<String, f64>,
    /// Cores used on average while the load ran (CPU seconds / wall seconds).
    pub cores_during_load: BTreeMap<String, f64>,
    /// Collector CPU until stored, per accepted event, in microseconds.
    pub collector_us_per_event: Option<f64>,
    /// Accepted events per collector CPU-second.
    pub events_per_collector_cpu_s: Option<f64>,
    /// Loader CPU per accepted event (pubsub mode).
    pub loader_us_per_event: Option<f64>,
    /// Every watched process together per accepted event: what one event costs the machine.
    pub total_us_per_event: Option<f64>,
    /// The generator used more than `GENERATOR_BOUND_MARGIN_CORES` more than the collector.
    pub generator_bound: bool,
}

pub const COLLECTOR: &str = "collector";
pub const LOADER: &str = "loader";
pub const GENERATOR: &str = "generator";
pub const EMULATORS: &str = "emulators";

impl CpuFigures {
    pub fn new(
        during_load_s: BTreeMap<String, f64>,
        until_stored_s: BTreeMap<String, f64>,
        load_secs: f64,
        events: u64,
    ) -> Self {
        let load_secs = load_secs.max(1e-3);
        let cores_during_load: BTreeMap<String, f64> = during_load_s
            .iter()
            .map(|(role, s)| (role.clone(), s / load_secs))
            .collect();
        let per_event =
            |secs: Option<f64>| secs.filter(|_| events > 0).map(|s| s * 1e6 / events as f64);
        let collector = until_stored_s.get(COLLECTOR).copied();
        let cores = |role: &str| cores_during_load.get(role).copied();
        let generator_bound = match (cores(GENERATOR), cores(COLLECTOR)) {
            (Some(g), Some(c)) => g > c + GENERATOR_BOUND_MARGIN_CORES,
            _ => false,
        };
        Self {
            collector_us_per_event: per_event(collector),
            events_per_collector_cpu_s: collector.filter(|s| *s > 0.0).map(|s| events as f64 / s),
            loader_us_per_event: per_event(until_stored_s.get(LOADER).copied()),
            total_us_per_event: per_event(Some(
                until_stored_s
                    .iter()
                    .filter(|(role, _)| role.as_str() != GENERATOR)
                    .map(|(_, s)| s)
                    .sum(),
            )),
            generator_bound,
            during_load_s,
            until_stored_s,
            cores_during_load,
        }
    }
}

/// utime + stime of one process, in seconds; `None` once it is gone.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|s| s.cpu_secs)
}

struct Stat {
    ppid: u32,
    cpu_secs: f64,
}

/// Fields after the command name, which is in parentheses and may itself hold spaces or
/// parentheses: state is field 3, ppid 4, utime 14, stime 15 (proc(5)).
fn parse_stat(stat: &str) -> Option<Stat> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_secs: (field(14)? + field(15)?) as f64 / TICKS_PER_SEC,
    })
}

/// (pid, ppid) of every process.
fn process_table() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&stat)?.ppid))
        })
        .collect()
}

fn with_descendants(roots: &[u32], table: &[(u32, u32)]) -> Vec<u32> {
    let mut out = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            table
                .iter()
                .filter(|(pid, ppid)| *ppid == parent && !out.contains(pid))
                .map(|(pid, _)| *pid)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_command_name_with_spaces() {
        let stat = "4242 (my (odd) cmd) S 17 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 4 0 1000 0 0";
        let s = parse_stat(stat);
        assert_eq!(s.as_ref().map(|s| s.ppid), Some(17));
        assert_eq!(s.map(|s| s.cpu_secs), Some(3.25));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn descendants_are_followed_through_generations() {
        let table = [(10, 1), (11, 10), (12, 11), (13, 1), (14, 12)];
        let mut got = with_descendants(&[10], &table);
        got.sort_unstable();
        assert_eq!(got, vec![10, 11, 12, 14]);
    }

    #[test]
    fn a_busy_process_shows_cpu_time() {
        // Spin until a tenth of a second of CPU shows (bounded, on a machine busy enough
        // that this thread gets a small share of a core).
        let me = std::process::id();
        let before = process_cpu_secs(me).unwrap_or(0.0);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.1 && start.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = process_cpu_secs(me).unwrap_or(0.0);
        }
        assert!(after - before >= 0.1, "{before} → {after}");
        assert!(process_cpu_secs(u32::MAX).is_none(), "no such process");
    }

    #[test]
    fn figures_per_event_and_the_generator_bound_verdict() {
        let secs =
            |c: f64, g: f64| BTreeMap::from([(COLLECTOR.to_owned(), c), (GENERATOR.to_owned(), g)]);
        let f = CpuFigures::new(secs(4.0, 9.5), secs(5.0, 9.5), 10.0, 1_000_000);
        assert_eq!(f.collector_us_per_event, Some(5.0));
        assert_eq!(f.events_per_collector_cpu_s, Some(200_000.0));
        assert_eq!(f.total_us_per_event, Some(5.0));
        assert!(f.generator_bound, "0.95 cores vs 0.4");
        let f = CpuFigures::new(secs(4.0, 8.5), secs(4.0, 8.5), 10.0, 1_000);
        assert!(!f.generator_bound, "0.85 cores vs 0.4");
    }
}

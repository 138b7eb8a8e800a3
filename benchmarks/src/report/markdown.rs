//! `README.md` of a results directory: the scenario × mode table and the seed comparison.

use std::fmt::Write as _;

use super::{ModeResults, RunInfo, SEED_P99_MS, SEED_RPS, SEED_USERS};
use crate::result::ScenarioResult;

pub fn markdown_summary(modes: &[(String, ModeResults)], info: &RunInfo) -> String {
    let mut s = String::from("# eventkit benchmark results\n\n");
    let _ = writeln!(
        s,
        "{} run of `benchmarks/run.sh`, {} on {}. The load generator, the collector and the \
         ceiling server share this machine's cores, so every figure is also given as a ratio to \
         the ceiling (a bare HTTP handler answering 202) measured in the same run. Method: \
         [specs/benchmarks.md](../../specs/benchmarks.md). Charts: [report.html](report.html).\n",
        if info.quick { "Quick (CI)" } else { "Full" },
        info.generated_at,
        info.machine
    );

    let loads: Vec<f64> = modes
        .iter()
        .filter_map(|(_, m)| {
            if let ModeResults::Ran(rs) = m {
                Some(rs)
            } else {
                None
            }
        })
        .flatten()
        .filter_map(|r| r.load_avg_1m)
        .collect();
    if let (Some(lo), Some(hi)) = (
        loads.iter().copied().reduce(f64::min),
        loads.iter().copied().reduce(f64::max),
    ) {
        let _ = writeln!(
            s,
            "Machine load (1-minute average, sampled after each scenario) ranged {lo:.1}-{hi:.1}; above the \
             core count it means other work was competing for the CPU.\n"
        );
    }
    for (mode, env) in &info.configs {
        let _ = writeln!(
            s,
            "Collector settings, {mode} mode (defaults otherwise):\n\n```\n{env}\n```\n"
        );
    }
    s.push_str("## Scenario × mode\n\n");
    s.push_str("| scenario | mode | events/s | req/s | p50 ms | p99 ms | ratio to ceiling | accepted | lost | duplicates | checks |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (mode, results) in modes {
        match results {
            ModeResults::Ran(rs) => {
                for r in rs {
                    row(&mut s, &r.scenario, mode, r);
                    for v in &r.variants {
                        let _ = writeln!(
                            s,
                            "| ↳ {} | {mode} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | | | |",
                            v.name,
                            v.events_per_sec,
                            v.requests_per_sec,
                            v.latency_ms.p50,
                            v.latency_ms.p99,
                            ratio(v.ceiling_ratio),
                            v.events_accepted
                        );
                    }
                }
            }
            ModeResults::Unavailable(_) => {
                let _ = writeln!(
                    s,
                    "| all | {mode} | unavailable in this build (see below) | | | | | | | | |"
                );
            }
            ModeResults::Missing => {
                let _ = writeln!(s, "| all | {mode} | not run | | | | | | | | |");
            }
        }
    }

    for (mode, results) in modes {
        if let ModeResults::Unavailable(why) = results {
            let _ = writeln!(
                s,
                "\n**{mode} mode is unavailable; no figures were produced for it:**\n\n```\n{why}\n```"
            );
        }
    }
    seed_section(&mut s, modes);
    freshness_section(&mut s, modes);
    for (mode, results) in modes {
        let ModeResults::Ran(rs) = results else {
            continue;
        };
        for r in rs {
            detail_section(&mut s, mode, r);
        }
    }
    s
}

fn row(s: &mut String, name: &str, mode: &str, r: &ScenarioResult) {
    let (lost, dup) = if r.loss_checked {
        (r.events_lost.to_string(), r.duplicates.to_string())
    } else {
        ("n/a".into(), "n/a".into())
    };
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    let checks = if failed == 0 {
        format!("{} ok", r.checks.len())
    } else {
        format!("**{failed} failed**")
    };
    let _ = writeln!(
        s,
        "| **{name}** | {mode} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {lost} | {dup} | {checks} |",
        r.events_per_sec,
        r.requests_per_sec,
        r.latency_ms.p50,
        r.latency_ms.p99,
        ratio(r.ceiling_ratio),
        r.events_accepted
    );
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}"))
}

fn seed_section(s: &mut String, modes: &[(String, ModeResults)]) {
    s.push_str("\n## Seed reference: 10 closed-loop users, baseline\n\n");
    s.push_str("| implementation | req/s | p99 ms | vs seed |\n|---|---:|---:|---:|\n");
    let _ = writeln!(
        s,
        "| original Python EventKit (as reported by its authors) | {SEED_RPS:.0} | {SEED_P99_MS:.1} | 1.00× |"
    );
    let shape = format!("closed loop, {SEED_USERS} users,");
    for (mode, results) in modes {
        let ModeResults::Ran(rs) = results else {
            continue;
        };
        let Some(b) = rs.iter().find(|r| r.scenario == "baseline") else {
            continue;
        };
        let note = if b.load.starts_with(&shape) {
            String::new()
        } else {
            format!(" (shape differs: {})", b.load)
        };
        let _ = writeln!(
            s,
            "| eventkit, {mode} mode, this run{note} | {:.0} | {:.2} | {:.1}× |",
            b.requests_per_sec,
            b.latency_ms.p99,
            b.requests_per_sec / SEED_RPS
        );
    }
    s.push_str(
        "\nThe seed figure was measured on other hardware; the ratio says how the two compare, \
         not how much faster the code is on equal hardware.\n",
    );
}

fn freshness_section(s: &mut String, modes: &[(String, ModeResults)]) {
    s.push_str("\n## Time to land (freshness)\n\n");
    s.push_str(
        "Send time of each event to the time its Parquet file appeared (file mtime, or the \
         object's `updated` time on GCS). Measured per file, so it includes the batching delay \
         and the time to write the file.\n\n",
    );
    s.push_str("| scenario | mode | p50 ms | p90 ms | p99 ms | max ms | files | flush wait s |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (mode, results) in modes {
        let ModeResults::Ran(rs) = results else {
            continue;
        };
        for r in rs {
            let Some(f) = &r.freshness_ms else { continue };
            let _ = writeln!(
                s,
                "| {} | {mode} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.1} |",
                r.scenario, f.p50, f.p90, f.p99, f.max, r.output_files, r.flush_wait_s
            );
        }
    }
}

fn detail_section(s: &mut String, mode: &str, r: &ScenarioResult) {
    let _ = writeln!(
        s,
        "\n## {} ({mode})\n\n{}\n\nLoad: {}.",
        r.scenario, r.description, r.load
    );
    let _ = writeln!(
        s,
        "\nLatency ms: p50 {:.2}, p90 {:.2}, p95 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}. Statuses: {}.{}{}",
        r.latency_ms.p50,
        r.latency_ms.p90,
        r.latency_ms.p95,
        r.latency_ms.p99,
        r.latency_ms.p999,
        r.latency_ms.max,
        r.status_counts
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.queue_depth_max
            .map_or_else(String::new, |d| format!(" Max queue depth {d:.0}.")),
        r.rss_max_mb.map_or_else(String::new, |m| format!(
            " Max RSS of the server under test {m:.0} MB."
        )),
    );
    if !r.phases.is_empty() {
        s.push_str("\n| phase | scheduled req/s | requests | 503s | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for p in &r.phases {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} |",
                p.name,
                p.rate_per_sec,
                p.requests,
                p.throttled,
                p.latency_ms.p50,
                p.latency_ms.p99,
                p.latency_ms.max
            );
        }
        let _ = writeln!(
            s,
            "\nDrain time after the spike: {}.",
            r.drain_time_s.map_or_else(
                || "did not return to steady state within the run".into(),
                |t| format!("{t:.1} s")
            )
        );
    }
    if let Some(rules) = &r.rules {
        s.push_str("\n| rule | sent | rejected | reason given |\n|---|---:|---:|---|\n");
        for (rule, st) in &rules.per_rule {
            let _ = writeln!(
                s,
                "| {rule:?} | {} | {} | {} |",
                st.sent,
                st.rejected,
                st.sample_reason.as_deref().unwrap_or("").replace('|', "/")
            );
        }
    }
    if !r.probes.is_empty() {
        s.push_str("\n| request-level probe | expected | got |\n|---|---:|---:|\n");
        for p in &r.probes {
            let _ = writeln!(s, "| {} | {} | {} |", p.name, p.expected_status, p.status);
        }
    }
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.ok).collect();
    for c in &failed {
        let _ = writeln!(s, "\n- **check failed: {}** — {}", c.name, c.detail);
    }
    for n in &r.notes {
        let _ = writeln!(s, "\n- {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Check;

    #[test]
    fn table_has_a_row_per_scenario_the_seed_and_unavailable_modes() {
        let baseline = ScenarioResult {
            scenario: "baseline".into(),
            mode: "async".into(),
            load: "closed loop, 10 users, 5 s".into(),
            requests_per_sec: 1_590.0,
            events_per_sec: 1_590.0,
            loss_checked: true,
            checks: vec![Check::new("no accepted event lost", true, "")],
            ..ScenarioResult::default()
        };
        let modes = vec![
            ("async".to_owned(), ModeResults::Ran(vec![baseline])),
            (
                "pubsub".to_owned(),
                ModeResults::Unavailable("collector refuses queue mode pubsub".into()),
            ),
        ];
        let md = markdown_summary(&modes, &RunInfo::default());
        assert!(
            md.contains("| **baseline** | async | 1590 | 1590 |"),
            "{md}"
        );
        assert!(md.contains("| 795 | 3.0 | 1.00× |"));
        assert!(md.contains("| eventkit, async mode, this run | 1590 |"));
        assert!(md.contains("2.0×"));
        assert!(md.contains("| all | pubsub | unavailable in this build (see below) |"));
        assert!(md.contains("```\ncollector refuses queue mode pubsub\n```"));
    }
}

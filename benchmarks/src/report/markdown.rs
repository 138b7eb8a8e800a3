//! `README.md` of a results directory: the scenario × mode table and the seed comparison.

use std::fmt::Write as _;

use super::{ModeResults, RunInfo, SEED_P99_MS, SEED_RPS, SEED_USERS};
use crate::cpu;
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
    s.push_str(
        "Collector CPU time per event comes first: on a shared machine it moves far less than \
         events/s (see [reading the figures](../../specs/benchmarks.md#reading-the-figures-on-a-shared-machine)). \
         *generator-bound*: the load generator used more than half a core more than the \
         collector, so events/s is the generator's limit, not the collector's. End-to-end \
         events/s counts events found in the Parquet output over the time from the start of \
         the load until the last of them was stored.\n\n",
    );
    s.push_str("| scenario | mode | collector CPU-µs/event | events per collector CPU-s | events/s | end-to-end events/s | req/s | p50 ms | p99 ms | limit | accepted | lost | duplicates | checks |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n");
    for r in super::by_scenario(modes) {
        row(&mut s, r);
        for v in &r.variants {
            let _ = writeln!(
                s,
                "| ↳ {} | {} | | | {:.0} | | {:.0} | {:.2} | {:.2} | | {} | | | |",
                v.name,
                r.mode,
                v.events_per_sec,
                v.requests_per_sec,
                v.latency_ms.p50,
                v.latency_ms.p99,
                v.events_accepted
            );
        }
    }
    for (mode, results) in modes {
        match results {
            ModeResults::Unavailable(_) => {
                let _ = writeln!(
                    s,
                    "| all | {mode} | unavailable in this build (see below) | | | | | | | | | | | |"
                );
            }
            ModeResults::Missing => {
                let _ = writeln!(s, "| all | {mode} | not run | | | | | | | | | | | |");
            }
            ModeResults::Ran(_) => {}
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
    cpu_section(&mut s, modes);
    pubsub_section(&mut s, modes);
    wrk_section(&mut s, modes);
    burst_section(&mut s, modes);
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

fn row(s: &mut String, r: &ScenarioResult) {
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
    let cpu = r.cpu.as_ref();
    let limit = if cpu.is_some_and(|c| c.generator_bound) {
        "generator-bound"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "| **{}** | {} | {} | {} | {:.0} | {} | {:.0} | {:.2} | {:.2} | {limit} | {} | {lost} | {dup} | {checks} |",
        r.scenario,
        r.mode,
        opt(cpu.and_then(|c| c.collector_us_per_event), 1),
        opt(cpu.and_then(|c| c.events_per_collector_cpu_s), 0),
        r.events_per_sec,
        opt(r.end_to_end_events_per_sec, 0),
        r.requests_per_sec,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.events_accepted
    );
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

/// The results, scenario by scenario, that a section is about.
fn rows_where(
    modes: &[(String, ModeResults)],
    wanted: impl Fn(&ScenarioResult) -> bool,
) -> Vec<&ScenarioResult> {
    super::by_scenario(modes)
        .into_iter()
        .filter(|r| wanted(r))
        .collect()
}

fn cpu_section(s: &mut String, modes: &[(String, ModeResults)]) {
    let rows = rows_where(modes, |r| r.cpu.is_some());
    if rows.is_empty() {
        return;
    }
    s.push_str("\n## CPU time\n\n");
    s.push_str(
        "CPU seconds from `/proc/<pid>/stat` (user + system) of each process, from the start of \
         the load until every accepted event was stored; cores = CPU seconds while the load ran \
         ÷ its wall time. *all* is collector, loader and emulators together per event: what one \
         event costs the machine, the generator not counted.\n\n",
    );
    s.push_str("| scenario | mode | collector cores | generator cores | loader cores | emulators cores | collector CPU-s | loader CPU-s | emulators CPU-s | generator CPU-s | loader CPU-µs/event | all CPU-µs/event |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let Some(c) = &r.cpu else { continue };
        let cores = |role: &str| opt(c.cores_during_load.get(role).copied(), 2);
        let secs = |role: &str| opt(c.until_stored_s.get(role).copied(), 1);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.mode,
            cores(cpu::COLLECTOR),
            cores(cpu::GENERATOR),
            cores(cpu::LOADER),
            cores(cpu::EMULATORS),
            secs(cpu::COLLECTOR),
            secs(cpu::LOADER),
            secs(cpu::EMULATORS),
            secs(cpu::GENERATOR),
            opt(c.loader_us_per_event, 1),
            opt(c.total_us_per_event, 1),
        );
    }
}

fn pubsub_section(s: &mut String, modes: &[(String, ModeResults)]) {
    let rows = rows_where(modes, |r| r.mode == "pubsub" && r.loss_checked);
    if rows.is_empty() {
        return;
    }
    s.push_str("\n## Pub/Sub mode: end to end, publish acknowledgement, time to land\n\n");
    s.push_str(
        "In pubsub mode a 2xx is sent only after Pub/Sub acknowledged the message holding the \
         request's events, so the HTTP latency the client sees *is* the publish-ack latency. \
         Events travel collector → Pub/Sub emulator → loader → Parquet on the GCS emulator; \
         end-to-end events/s and time to land are measured on the files.\n\n",
    );
    s.push_str("| scenario | events/s accepted | end-to-end events/s | publish-ack p50 ms | publish-ack p99 ms | time to land p50 ms | p99 ms | max ms | loader CPU-µs/event | events per message | message bytes per event |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let f = r.freshness_ms.as_ref();
        let events = (r.events_accepted > 0).then_some(r.events_accepted as f64);
        let per = |v: Option<f64>, by: Option<f64>| match (v, by) {
            (Some(v), Some(by)) if by > 0.0 => Some(v / by),
            _ => None,
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.events_per_sec,
            opt(r.end_to_end_events_per_sec, 0),
            r.latency_ms.p50,
            r.latency_ms.p99,
            opt(f.map(|f| f.p50), 0),
            opt(f.map(|f| f.p99), 0),
            opt(f.map(|f| f.max), 0),
            opt(r.cpu.as_ref().and_then(|c| c.loader_us_per_event), 1),
            opt(per(events, r.published_messages), 0),
            opt(per(r.published_bytes, events), 0),
        );
    }
}

fn wrk_section(s: &mut String, modes: &[(String, ModeResults)]) {
    let rows = rows_where(modes, |r| r.scenario == "realistic");
    if rows.is_empty() {
        return;
    }
    s.push_str("\n## Realistic: this generator vs wrk with the same bodies\n\n");
    s.push_str(
        "Right after realistic, `wrk` (one thread, as many connections as realistic's users) \
         sends the very same prepared bodies to the same collector. wrk does nothing per \
         request but send, so the ratio says how much of realistic's figure is the generator's \
         own limit (target: at least 60%).\n\n",
    );
    s.push_str("| mode | generator events/s | wrk events/s | generator ÷ wrk | wrk req/s | wrk p50 ms | wrk p99 ms | collector CPU-µs/event (generator) | collector CPU-µs/event (wrk) |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let Some(w) = &r.wrk else {
            let why = r
                .notes
                .iter()
                .find(|n| n.starts_with("no wrk comparison"))
                .cloned()
                .unwrap_or_else(|| "no wrk comparison".into());
            let _ = writeln!(
                s,
                "| {} | {:.0} | {why} | | | | | | |",
                r.mode, r.events_per_sec
            );
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.0}% | {:.0} | {} | {} | {} | {} |",
            r.mode,
            r.events_per_sec,
            w.events_per_sec,
            100.0 * r.events_per_sec / w.events_per_sec.max(f64::MIN_POSITIVE),
            w.requests_per_sec,
            opt(w.p50_ms, 2),
            opt(w.p99_ms, 2),
            opt(r.cpu.as_ref().and_then(|c| c.collector_us_per_event), 1),
            opt(w.cpu.as_ref().and_then(|c| c.collector_us_per_event), 1),
        );
    }
}

fn burst_section(s: &mut String, modes: &[(String, ModeResults)]) {
    let rows = rows_where(modes, |r| r.scenario == "burst");
    if rows.is_empty() {
        return;
    }
    s.push_str("\n## Burst: overload, back-pressure and recovery\n\n");
    s.push_str(
        "The spike offers more than the collector sustains, open loop: its queue fills, it \
         answers 503 with `Retry-After`, and the client waits that long before resending the \
         same body. Memory must stay bounded, the backlog must drain, and no event that got a \
         2xx may be lost.\n\n",
    );
    s.push_str("| mode | 503s | mean wait before resend s | max queue depth | queue bound (events) | peak RSS MB | queue bound MiB | drain + recover s | accepted | lost |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let lost = if r.loss_checked {
            r.events_lost.to_string()
        } else {
            "n/a".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {lost} |",
            r.mode,
            r.retries_after_503,
            opt(
                (r.retries_after_503 > 0).then(|| r.retry_wait_s / r.retries_after_503 as f64),
                2
            ),
            opt(r.queue_depth_max, 0),
            r.queue_bound_events
                .map_or_else(|| "n/a".into(), |b| b.to_string()),
            opt(r.rss_max_mb, 0),
            opt(r.queue_bound_mib, 0),
            opt(r.drain_time_s, 1),
            r.events_accepted,
        );
    }
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
    s.push_str("| scenario | mode | p50 ms | p90 ms | p99 ms | max ms | files | Parquet bytes per event | flush wait s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (mode, results) in modes {
        let ModeResults::Ran(rs) = results else {
            continue;
        };
        for r in rs {
            let Some(f) = &r.freshness_ms else { continue };
            let _ = writeln!(
                s,
                "| {} | {mode} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {:.1} |",
                r.scenario,
                f.p50,
                f.p90,
                f.p99,
                f.max,
                r.output_files,
                opt(r.output_bytes_per_event, 0),
                r.flush_wait_s
            );
        }
    }
}

fn detail_section(s: &mut String, mode: &str, r: &ScenarioResult) {
    let _ = writeln!(
        s,
        "\n## {} ({mode})\n\n{}\n\nLoad: {}. Ratio of req/s to the ceiling's: {}.",
        r.scenario,
        r.description,
        r.load,
        opt(r.ceiling_ratio, 2)
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
            md.contains("| **baseline** | async | n/a | n/a | 1590 | n/a | 1590 |"),
            "{md}"
        );
        assert!(md.contains("| 795 | 3.0 | 1.00× |"));
        assert!(md.contains("| eventkit, async mode, this run | 1590 |"));
        assert!(md.contains("2.0×"));
        assert!(md.contains("| all | pubsub | unavailable in this build (see below) |"));
        assert!(
            !md.contains("## CPU time"),
            "no CPU figures, no CPU section"
        );
        assert!(md.contains("```\ncollector refuses queue mode pubsub\n```"));
    }
}

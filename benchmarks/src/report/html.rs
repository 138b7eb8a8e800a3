//! `report.html`: one file, inline CSS and SVG, no scripts or external resources, so it can be
//! attached to a CI run or opened offline.

use std::fmt::Write as _;

use super::svg::{Series, escape, line_chart};
use super::{ModeResults, RunInfo};
use crate::result::ScenarioResult;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1340px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}\
.charts{display:flex;flex-wrap:wrap;gap:8px}section{border-top:2px solid #eee;margin-top:1.5em}";

pub fn html_report(modes: &[(String, ModeResults)], info: &RunInfo) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>eventkit benchmarks</title><style>{STYLE}</style>\
         <h1>eventkit benchmarks</h1><p>{} run, {} on {}. Generator, collector and ceiling share the machine.</p>",
        if info.quick { "Quick" } else { "Full" },
        escape(&info.generated_at),
        escape(&info.machine)
    );
    s.push_str("<table><tr><th>scenario</th><th>mode</th><th>collector CPU-µs/event</th><th>events per collector CPU-s</th><th>events/s</th><th>end-to-end events/s</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>ceiling ratio</th><th>limit</th><th>lost</th><th>dup</th><th>checks</th></tr>");
    for r in super::by_scenario(modes) {
        summary_row(&mut s, r);
    }
    for (mode, results) in modes {
        match results {
            ModeResults::Ran(_) => {}
            ModeResults::Unavailable(why) => {
                let _ = write!(
                    s,
                    "<tr><td>all</td><td>{}</td><td colspan=\"13\" class=\"bad\">unavailable: {}</td></tr>",
                    escape(mode),
                    escape(why)
                );
            }
            ModeResults::Missing => {}
        }
    }
    s.push_str("</table>");
    for (mode, results) in modes {
        let ModeResults::Ran(rs) = results else {
            continue;
        };
        for r in rs {
            scenario_section(&mut s, mode, r);
        }
    }
    s.push_str("</html>\n");
    s
}

fn summary_row(s: &mut String, r: &ScenarioResult) {
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    let (lost, dup) = if r.loss_checked {
        (r.events_lost.to_string(), r.duplicates.to_string())
    } else {
        ("n/a".into(), "n/a".into())
    };
    let cpu = r.cpu.as_ref();
    let opt = |v: Option<f64>, d: usize| v.map_or_else(|| "n/a".into(), |v| format!("{v:.d$}"));
    let limit = if cpu.is_some_and(|c| c.generator_bound) {
        "generator-bound"
    } else {
        ""
    };
    let _ = write!(
        s,
        "<tr><td><a href=\"#{m}-{n}\">{n}</a></td><td>{m}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{limit}</td><td>{lost}</td><td>{dup}</td><td class=\"{}\">{}</td></tr>",
        opt(cpu.and_then(|c| c.collector_us_per_event), 1),
        opt(cpu.and_then(|c| c.events_per_collector_cpu_s), 0),
        r.events_per_sec,
        opt(r.end_to_end_events_per_sec, 0),
        r.requests_per_sec,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.latency_ms.p999,
        r.ceiling_ratio
            .map_or_else(|| "n/a".into(), |c| format!("{c:.2}")),
        if failed == 0 { "ok" } else { "bad" },
        if failed == 0 {
            "ok".to_owned()
        } else {
            format!("{failed} failed")
        },
        m = escape(&r.mode),
        n = escape(&r.scenario),
    );
}

fn scenario_section(s: &mut String, mode: &str, r: &ScenarioResult) {
    let _ = write!(
        s,
        "<section id=\"{m}-{n}\"><h2>{n} <small>({m})</small></h2><p>{}<br>Load: {}</p>",
        escape(&r.description),
        escape(&r.load),
        m = escape(mode),
        n = escape(&r.scenario)
    );
    let bands: Vec<(f64, f64, String)> = if r.phases.is_empty() {
        variant_bands(r)
    } else {
        r.phases
            .iter()
            .map(|p| (p.start_s, p.end_s, p.name.clone()))
            .collect()
    };
    let pts = |f: &dyn Fn(&crate::timeline::TimelineRow) -> Option<f64>| -> Vec<(f64, f64)> {
        r.timeline
            .iter()
            .filter_map(|row| f(row).map(|v| (row.t_s, v)))
            .collect()
    };
    s.push_str("<div class=\"charts\">");
    s.push_str(&line_chart(
        "Throughput over time",
        "per second",
        &[
            Series {
                name: "requests/s".into(),
                color: "#1f77b4",
                points: pts(&|r| Some(r.requests_per_sec)),
            },
            Series {
                name: "events/s".into(),
                color: "#2ca02c",
                points: pts(&|r| Some(r.events_per_sec)),
            },
        ],
        &bands,
    ));
    s.push_str(&line_chart(
        "Latency percentiles over time (by intended send time)",
        "ms",
        &[
            Series {
                name: "p50".into(),
                color: "#1f77b4",
                points: pts(&|r| (r.requests_per_sec > 0.0).then_some(r.p50_ms)),
            },
            Series {
                name: "p99".into(),
                color: "#d62728",
                points: pts(&|r| (r.requests_per_sec > 0.0).then_some(r.p99_ms)),
            },
        ],
        &bands,
    ));
    let depth: Vec<(f64, f64)> = r
        .samples
        .iter()
        .filter_map(|x| x.queue_depth.map(|d| (x.t_s, d)))
        .collect();
    if !depth.is_empty() {
        s.push_str(&line_chart(
            "Collector queue depth",
            "events",
            &[Series {
                name: "queue depth".into(),
                color: "#9467bd",
                points: depth,
            }],
            &bands,
        ));
    }
    let rss: Vec<(f64, f64)> = r
        .samples
        .iter()
        .filter_map(|x| x.rss_mb.map(|m| (x.t_s, m)))
        .collect();
    if !rss.is_empty() {
        s.push_str(&line_chart(
            "Resident memory",
            "MB",
            &[Series {
                name: "RSS".into(),
                color: "#8c564b",
                points: rss,
            }],
            &bands,
        ));
    }
    s.push_str("</div><ul>");
    for c in &r.checks {
        let _ = write!(
            s,
            "<li class=\"{}\">{} — {}</li>",
            if c.ok { "ok" } else { "bad" },
            escape(&c.name),
            escape(&c.detail)
        );
    }
    for n in &r.notes {
        let _ = write!(s, "<li>{}</li>", escape(n));
    }
    s.push_str("</ul></section>");
}

/// Variants ran one after another; shading them makes the payload sizes readable on one chart.
fn variant_bands(r: &ScenarioResult) -> Vec<(f64, f64, String)> {
    let mut at = 0.0;
    r.variants
        .iter()
        .map(|v| {
            let band = (at, at + v.duration_s, v.name.clone());
            at += v.duration_s;
            band
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Sample;
    use crate::result::PhaseResult;

    #[test]
    fn report_is_self_contained_and_charts_the_burst_queue() {
        let r = ScenarioResult {
            scenario: "burst".into(),
            mode: "async".into(),
            phases: vec![PhaseResult {
                name: "spike".into(),
                start_s: 1.0,
                end_s: 2.0,
                ..PhaseResult::default()
            }],
            samples: vec![Sample {
                t_s: 0.5,
                queue_depth: Some(10.0),
                rss_mb: Some(30.0),
            }],
            ..ScenarioResult::default()
        };
        let html = html_report(
            &[("async".into(), ModeResults::Ran(vec![r]))],
            &RunInfo::default(),
        );
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
        assert!(html.contains("Collector queue depth"));
        assert!(html.contains(">spike<"));
        assert_eq!(html.matches("<svg").count(), 4);
    }
}

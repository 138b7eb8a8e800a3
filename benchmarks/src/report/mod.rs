//! Everything written to `benchmarks/results/`: per-scenario JSON and CSV, the Markdown
//! summary and the self-contained HTML report.

mod files;
mod html;
mod markdown;
mod svg;

use std::path::{Path, PathBuf};

pub use files::{load_mode, write_scenario};
pub use html::html_report;
pub use markdown::markdown_summary;
pub use svg::{Series, line_chart};

use crate::error::{BenchError, Result};
use crate::result::ScenarioResult;

pub const MODES: [&str; 2] = ["async", "pubsub"];
/// A mode directory holding this file ran no scenario; its text says why.
pub const UNAVAILABLE_FILE: &str = "UNAVAILABLE.txt";

/// What one mode directory holds.
#[derive(Clone, Debug)]
pub enum ModeResults {
    Ran(Vec<ScenarioResult>),
    Unavailable(String),
    Missing,
}

/// Context for the summary that the results themselves do not carry.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub generated_at: String,
    pub machine: String,
    pub quick: bool,
    /// (mode, the collector settings run.sh used, from `<mode>/collector.env`).
    pub configs: Vec<(String, String)>,
}

impl RunInfo {
    pub fn detect(quick: bool) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        Self {
            generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: format!("{cores} cores, {cpu}"),
            quick,
            configs: Vec::new(),
        }
    }
}

/// Writes `README.md` and `report.html` into `root` from whatever mode directories exist.
pub fn write_summary(root: &Path, info: &RunInfo) -> Result<(PathBuf, PathBuf)> {
    let mut info = info.clone();
    for m in MODES {
        if let Ok(env) = std::fs::read_to_string(root.join(m).join("collector.env")) {
            info.configs.push((m.to_owned(), env.trim().to_owned()));
        }
    }
    let info = &info;
    let modes: Vec<(String, ModeResults)> = MODES
        .iter()
        .map(|m| ((*m).to_owned(), load_mode(&root.join(m))))
        .collect();
    let md = root.join("README.md");
    let html = root.join("report.html");
    std::fs::write(&md, markdown_summary(&modes, info)).map_err(|e| BenchError::io(&md, e))?;
    std::fs::write(&html, html_report(&modes, info)).map_err(|e| BenchError::io(&html, e))?;
    Ok((md, html))
}

/// Each scenario's result in every mode that ran it, scenario by scenario, so a table shows a
/// scenario's async and pubsub rows side by side.
pub fn by_scenario(modes: &[(String, ModeResults)]) -> Vec<&ScenarioResult> {
    let ran: Vec<&Vec<ScenarioResult>> = modes
        .iter()
        .filter_map(|(_, m)| match m {
            ModeResults::Ran(rs) => Some(rs),
            _ => None,
        })
        .collect();
    crate::suite::ALL_SCENARIOS
        .iter()
        .flat_map(|name| {
            ran.iter()
                .filter_map(move |rs| rs.iter().find(|r| r.scenario == *name))
        })
        .collect()
}

/// The original Python EventKit, measured by its authors: 10 closed-loop users, baseline.
pub const SEED_USERS: usize = 10;
pub const SEED_RPS: f64 = 795.0;
pub const SEED_P99_MS: f64 = 3.0;

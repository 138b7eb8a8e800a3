//! Real Segment SDKs driven against a collector started by the test: the npm packages and
//! Chromium they need (installed on first use, under file locks, as tests run in parallel),
//! and the scenario every server-side SDK sends, with the rows it must produce.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Events of each type per SDK run: 6 types × 50 = 300 events, three or more batches of 100.
pub const PER_TYPE: usize = 50;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

fn locked<T>(name: &str, work: impl FnOnce() -> T) -> T {
    let target = workspace_root().join("target");
    std::fs::create_dir_all(&target).expect("target dir");
    let lock = std::fs::File::create(target.join(name)).expect("lock file");
    lock.lock().expect("lock");
    let result = work();
    lock.unlock().expect("unlock");
    result
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `target/test-node`: the pinned npm packages plus this directory's scripts (ES modules
/// resolve packages from their own location, so the scripts are copied next to them).
pub fn node_dir() -> PathBuf {
    let dir = workspace_root().join("target/test-node");
    locked("test-node.lock", || {
        let files = [
            "package.json",
            "package-lock.json",
            "node_client.mjs",
            "browser_client.mjs",
        ];
        let wanted: String = files
            .iter()
            .map(|f| std::fs::read_to_string(sdk_dir().join(f)).expect("sdk file"))
            .collect();
        let stamp = dir.join(".installed");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            std::fs::create_dir_all(&dir).expect("node dir");
            for file in files {
                std::fs::copy(sdk_dir().join(file), dir.join(file)).expect("copy");
            }
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir));
            std::fs::write(&stamp, wanted).expect("stamp");
        }
    });
    dir
}

/// Debian's Chromium, installed if missing (CI machines start without it).
pub fn chromium() -> PathBuf {
    locked("test-chromium.lock", || {
        if !Path::new(CHROMIUM).exists() {
            // Another apt process (a fresh machine's own updates) may hold the lock: wait for it.
            run(Command::new("apt-get")
                .args(["-o", "DPkg::Lock::Timeout=600", "update"])
                .env("DEBIAN_FRONTEND", "noninteractive"));
            // A failing post-install hook of some optional package must not fail the test
            // when the browser itself is in place, so the binary is checked, not the status.
            let _ = Command::new("apt-get")
                .args(["-o", "DPkg::Lock::Timeout=600", "install", "-y"])
                .args(["--no-install-recommends", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
            assert!(
                Path::new(CHROMIUM).exists(),
                "apt-get install chromium did not provide {CHROMIUM}"
            );
        }
    });
    PathBuf::from(CHROMIUM)
}

/// Runs a client to completion without blocking the runtime the collector serves on.
pub async fn run_client(mut command: tokio::process::Command) -> Value {
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("client finished in time")
        .expect("spawn client");
    assert!(
        output.status.success(),
        "client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| panic!("client printed no JSON:\n{stdout}"))
}

pub fn null_stdin() -> Stdio {
    Stdio::null()
}

fn at(i: usize) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .to_utc()
        + TimeDelta::seconds(i as i64)
}

fn time(row: &Value, column: &str) -> DateTime<Utc> {
    let text = row[column]
        .as_str()
        .unwrap_or_else(|| panic!("{column} missing in {row}"));
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn json_column(row: &Value, column: &str) -> Value {
    serde_json::from_str(
        row[column]
            .as_str()
            .unwrap_or_else(|| panic!("{column} missing in {row}")),
    )
    .unwrap()
}

/// What each SDK script sends (python_client.py, node_client.mjs), as the columns it must land in.
fn expected(prefix: &str, kind: &str, i: usize) -> Value {
    let user = format!("{prefix}-user-{i}");
    match kind {
        "track" => json!({"user_id": user, "event": "Order Completed",
            "properties": {"i": i, "sku": format!("sku-{i}"), "price": 9.5}}),
        "identify" => json!({"user_id": user,
            "traits": {"email": format!("{prefix}-{i}@example.com"), "plan": "pro"}}),
        "page" => json!({"user_id": user, "name": "Pricing", "page_path": "/pricing",
            "properties": {"i": i, "path": "/pricing"}}),
        "screen" => json!({"user_id": user, "name": "Home", "properties": {"i": i}}),
        "group" => json!({"user_id": user, "group_id": format!("{prefix}-team-{}", i % 5),
            "traits": {"name": format!("Team {}", i % 5)}}),
        "alias" => json!({"user_id": user, "previous_id": format!("{prefix}-anon-{i}")}),
        _ => unreachable!(),
    }
}

/// Exactly the scenario's events, each with its fields, library and corrected timestamps.
pub fn assert_scenario_rows(rows: &[Value], prefix: &str, library: (&str, &str)) {
    let kinds = ["track", "identify", "page", "screen", "group", "alias"];
    assert_eq!(rows.len(), kinds.len() * PER_TYPE, "row count");
    let by_id: std::collections::HashMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["message_id"].as_str().unwrap(), r))
        .collect();
    for kind in kinds {
        for i in 0..PER_TYPE {
            let id = format!("{prefix}-{kind}-{i}");
            let row = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("no row {id}"));
            assert_eq!(row["type"], kind, "{id}");
            for (column, value) in expected(prefix, kind, i).as_object().unwrap() {
                let actual = if matches!(column.as_str(), "properties" | "traits") {
                    json_column(row, column)
                } else {
                    row[column].clone()
                };
                assert_eq!(&actual, value, "{id}: {column}");
            }
            assert_eq!(row["context_library_name"], library.0, "{id}");
            assert_eq!(row["context_library_version"], library.1, "{id}");
            assert_eq!(time(row, "original_timestamp"), at(i), "{id}");
            // The stored timestamp is corrected for the client's clock: received - (sent - original).
            let corrected = time(row, "received_at") - (time(row, "sent_at") - at(i));
            let skew = (time(row, "timestamp") - corrected)
                .num_milliseconds()
                .abs();
            assert!(skew <= 1, "{id}: timestamp off by {skew} ms");
        }
    }
}

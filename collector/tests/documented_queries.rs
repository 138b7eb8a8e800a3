//! The commands and queries of README.md and specs/event-schema.md, run as written against real
//! output that holds dead letters too: a `_rejected` file in the same tree is what once broke
//! every `data/**/*.parquet` query.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::docs::code_block;
use crate::common::{TestServer, python};

/// Each statement of `sql`, run by DuckDB 2 (the Python package), rows as text.
const RUN_SQL: &str = r#"
import duckdb, json, sys
results = []
for statement in sys.argv[1].split(";"):
    if statement.strip():
        rows = duckdb.sql(statement).fetchall()
        results.append([[None if v is None else str(v) for v in row] for row in rows])
print(json.dumps(results))
"#;

/// `duckdb -c SQL` for the README's shell command: the Python package's DuckDB 2 behind the
/// CLI's name (the CLI on PyPI lags a major version behind).
const DUCKDB_SHIM: &str = r#"#!/bin/sh
[ "$1" = "-c" ] || { echo "only -c is supported" >&2; exit 2; }
exec "$EVENTKIT_TEST_PYTHON" -c 'import duckdb, sys; print(duckdb.sql(sys.argv[1]).fetchall())' "$2"
"#;

// Two threads: the test blocks on `curl` while the collector answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_query_runs_against_output_with_dead_letters() {
    let mut server = TestServer::start(|_| {}).await;
    let port = server.addr.port().to_string();

    // README "Send events": the curl command as written, aimed at this collector.
    let send = code_block("README.md", "## Send events", "sh");
    let (command, answer) = send
        .rsplit_once("\n# ")
        .expect("the block ends with its answer");
    let command = command.replace("localhost:8080", &format!("127.0.0.1:{port}"));
    let output = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(got, serde_json::from_str::<Value>(answer).unwrap());

    // A page view, so the queries have typed rows of more than one kind.
    let (status, _) = server
        .post(
            "/collect/web",
            json!({"type": "page", "userId": "u-3", "name": "Home",
                   "properties": {"plan": "free", "path": "/"}})
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    server.stop().await;

    let files = crate::common::parquet_files(&server.dir());
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("stream=_rejected")),
        "a dead-letter file is part of the output: {files:?}"
    );
    // The documents query `data/…` from where the collector runs.
    let cwd = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(server.dir(), cwd.path().join("data")).unwrap();

    // README "Query the output": the shell command, with `duckdb` on the PATH.
    let shim_dir = tempfile::tempdir().unwrap();
    let shim = shim_dir.path().join("duckdb");
    std::fs::write(&shim, DUCKDB_SHIM).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let query = code_block("README.md", "## Query the output", "sh");
    let path = format!(
        "{}:{}",
        shim_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .current_dir(cwd.path())
        .env("PATH", path)
        .env("EVENTKIT_TEST_PYTHON", python::python())
        .arg("-c")
        .arg(&query)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{query}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "'Signed Up', 'u-1'",
        "'pro'",
        "'page', None, 'u-3'",
        "'free'",
    ] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }

    // README's dead-letter query.
    let dead_letters = code_block("README.md", "## Query the output", "sql");
    let rows = python::run_json_in(cwd.path(), RUN_SQL, &[&dead_letters]);
    assert_eq!(rows[0].as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0][0][1], "web");
    assert_eq!(rows[0][0][3], "event is required for track");
    assert_eq!(rows[0][0][4], r#"{"type": "track", "userId": "u-2"}"#);

    // specs/event-schema.md's queries, with its date and hours swapped for today's and all day.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let spec = code_block(
        "specs/event-schema.md",
        "## Parquet columns (event streams)",
        "sql",
    );
    assert!(spec.contains("'2026-11-23'") && spec.contains("between 9 and 17"));
    let spec = spec
        .replace("'2026-11-23'", &format!("'{today}'"))
        .replace("between 9 and 17", "between 0 and 23");
    let rows = python::run_json_in(cwd.path(), RUN_SQL, &[&spec]);
    let mut by_type = rows[0].as_array().unwrap().clone();
    by_type.sort_by_key(|row| row.to_string());
    assert_eq!(
        Value::Array(by_type),
        json!([
            ["identify", null, "1"],
            ["page", null, "1"],
            ["track", "Signed Up", "1"]
        ])
    );
    let mut plans = rows[1].as_array().unwrap().clone();
    plans.sort_by_key(|row| row.to_string());
    assert_eq!(Value::Array(plans), json!([["pro", "1"]]));
}

const JSON_TYPES: &str = r#"
import duckdb, json, sys
import pyarrow.parquet as pq
duck = dict((r[0], r[1]) for r in duckdb.sql(
    f"describe select * from read_parquet('{sys.argv[1]}/stream=web/**/*.parquet')").fetchall())
plan = duckdb.sql(
    f"select properties->>'$.plan' from read_parquet('{sys.argv[1]}/stream=web/**/*.parquet')").fetchall()
files = [str(p) for p in __import__('pathlib').Path(sys.argv[1]).glob('stream=web/**/*.parquet')]
table = pq.read_table(files[0])
columns = ["properties", "traits", "context", "integrations", "event"]
print(json.dumps({
    "duckdb": {c: duck[c] for c in columns},
    "pyarrow": {c: str(table.schema.field(c).type) for c in columns},
    "pyarrow_value": table.column("properties")[0].as_py() if hasattr(table.column("properties")[0], "as_py") else None,
    "plan": plan[0][0],
}))
"#;

#[tokio::test]
async fn json_columns_are_json_to_duckdb_and_pyarrow() {
    let mut server = TestServer::start(|_| {}).await;
    let (status, _) = server
        .post(
            "/collect/web",
            r#"{"type":"track","event":"E","userId":"u","properties":{"plan":"pro","n":1e2}}"#,
        )
        .await;
    assert_eq!(status, 202);
    server.stop().await;
    let dir = server.dir();
    let types = python::run_json_in(&dir, JSON_TYPES, &[dir.to_str().unwrap()]);
    assert_eq!(
        types,
        json!({
            "duckdb": {"properties": "JSON", "traits": "JSON", "context": "JSON",
                       "integrations": "JSON", "event": "VARCHAR"},
            "pyarrow": {"properties": "extension<arrow.json>", "traits": "extension<arrow.json>",
                        "context": "extension<arrow.json>", "integrations": "extension<arrow.json>",
                        "event": "string"},
            "pyarrow_value": r#"{"plan":"pro","n":1e2}"#,
            "plan": "pro",
        })
    );
}

//! One conformance suite for every sink. The round-trip suite's generated requests (every call
//! type, odd JSON, batch-level defaults) and a set of dead letters go through one collector that
//! fans them out to a local directory, GCS, S3 and Azure Blob (each on its emulator) and
//! PostgreSQL. Every sink is read back as a user reads it, Parquet with DuckDB and pyarrow,
//! PostgreSQL with psql, and every reading must hold the same rows. A new kind of sink joins the
//! test's `sinks` with a reader of its own.

use std::collections::BTreeMap;
use std::path::Path;

use eventkit::config::{ParquetSinkSettings, SinkConfig, SinkEntry, SinkSettings, StreamPattern};
use std::sync::Arc;

use eventkit_sinks::store::s3;
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use serde_json::json;

use crate::azure_support::Azurite;
use crate::common::{TestServer, python};
use crate::emulator_support::stored_files;
use crate::gcs_support::FakeGcs;
use crate::round_trip;
use crate::s3_support::Moto;

const STREAM: &str = "conformance";

/// Events the collector must refuse: each becomes one row of `_rejected`.
const DEAD_LETTERS: [&str; 4] = [
    r#"{"type":"track","userId":"u"}"#,
    r#"{"type":"track","event":"E","userId":"u","timestamp":"yesterday"}"#,
    r#"{"type":"track","event":"E","userId":"u","properties":{"bad":"\ud800"}}"#,
    r#"{"type":"teleport","userId":"u","note":"ünïcødé \" \\ \u0000"}"#,
];

/// Reads every source given as `name=kind:location` and compares them. `kind` is `parquet` (a
/// directory of `stream=…` partitions, read by DuckDB and by pyarrow) or `postgres` (a URL and
/// schema, read by psql). Parquet readings must agree exactly, text for text; PostgreSQL keeps
/// JSON as `jsonb` (keys reordered, numbers normalised) and swaps NUL for U+FFFD, so it is
/// compared by JSON value, numbers as exact decimals, after that documented swap.
const CHECK: &str = r##"
import datetime, decimal, json, subprocess, sys
import duckdb, pyarrow.dataset as ds

decimal.getcontext().prec = 2000
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
JSON_COLUMNS = {"properties", "traits", "context", "integrations"}
NUMBER = "\u0001number"

def micros(t):
    if isinstance(t, str):
        t = datetime.datetime.fromisoformat(t)
    d = t - EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds

def number(text):
    d = decimal.Decimal(text)
    return {NUMBER: "0" if d == 0 else str(d.normalize())}

def no_nul(v):
    if isinstance(v, str):
        return v.replace("\x00", "\ufffd")
    if isinstance(v, list):
        return [no_nul(x) for x in v]
    if isinstance(v, dict):
        return {no_nul(k): no_nul(x) for k, x in v.items()}
    return v

def by_value(tree):
    return json.dumps(tree, sort_keys=True, ensure_ascii=False)

def parse(text):
    return json.loads(text, parse_float=number, parse_int=number)

def rows_of(records, stream_columns):
    """Each row twice: as stored (exact), and as a JSON value with NUL swapped (by value)."""
    exact, value = [], []
    for r in records:
        e, v = {}, {}
        for k, x in r.items():
            if isinstance(x, datetime.datetime):
                x = micros(x)
            elif k in stream_columns["timestamps"] and x is not None:
                x = micros(x)
            e[k] = x
            if k in JSON_COLUMNS and x is not None:
                tree = parse(x) if isinstance(x, str) else x
                v[k] = by_value(no_nul(tree))
            else:
                v[k] = no_nul(x)
        exact.append(json.dumps(e, sort_keys=True, ensure_ascii=False))
        value.append(json.dumps(v, sort_keys=True, ensure_ascii=False))
    return sorted(exact), sorted(value)

def parquet_readings(root):
    import os
    readings = {"duckdb": {}, "pyarrow": {}}
    for part in sorted(os.listdir(root)):
        stream = part.split("=", 1)[1]
        where = os.path.join(root, part)
        table = ds.dataset(where, format="parquet").to_table()
        readings["pyarrow"][stream] = table.to_pylist()
        relation = duckdb.sql(f"select * from read_parquet('{where}/**/*.parquet', hive_partitioning = false)")
        names = [d[0] for d in relation.description]
        readings["duckdb"][stream] = [dict(zip(names, row)) for row in relation.fetchall()]
    return readings

def psql(url, query):
    out = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-A", "-t", "-d", url, "-c", query],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.split("\n") if line]

def postgres_reading(url, schema):
    reading = {}
    tables = psql(url, f"select table_name from information_schema.tables where table_schema = '{schema}'")
    for table in sorted(tables):
        lines = psql(url, f'select row_to_json(t) from "{schema}"."{table}" t')
        reading[table] = [json.loads(line, parse_float=number, parse_int=number) for line in lines]
        # Only jsonb columns keep numbers as trees; the bigint `index` is a plain number.
        for row in reading[table]:
            for k, x in row.items():
                if k not in JSON_COLUMNS and isinstance(x, dict) and NUMBER in x:
                    row[k] = int(x[NUMBER])
    return reading

columns = {"timestamps": {"timestamp", "original_timestamp", "sent_at", "received_at"}}
readings = {}
for source in sys.argv[1:]:
    name, spec = source.split("=", 1)
    kind, location = spec.split(":", 1)
    if kind == "parquet":
        for reader, streams in parquet_readings(location).items():
            readings[f"{name}/{reader}"] = streams
    else:
        url, schema = location.rsplit("#", 1)
        readings[f"{name}/psql"] = postgres_reading(url, schema)

shaped = {name: {s: rows_of(rows, columns) for s, rows in streams.items()} for name, streams in readings.items()}
reference_name = sorted(n for n in shaped if n.endswith("/pyarrow"))[0]
reference = shaped[reference_name]
disagreements = []
for name, streams in sorted(shaped.items()):
    by_value_only = name.endswith("/psql")
    if sorted(streams) != sorted(reference):
        disagreements.append([name, "streams", sorted(streams)])
        continue
    for s in streams:
        got, want = (streams[s][1], reference[s][1]) if by_value_only else (streams[s][0], reference[s][0])
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            disagreements.append([name, s, len(got), len(want), got[first:first + 1], want[first:first + 1]])
nul_rows = sum("u0000" in row for rows in reference.values() for row in rows[0])
print(json.dumps({
    "readings": sorted(shaped),
    "rows": {s: len(rows[0]) for s, rows in reference.items()},
    "rows_with_nul": nul_rows,
    "disagreements": disagreements[:3],
}))
"##;

/// One cloud sink: its URL and emulator, and a store reading back what it wrote.
struct Cloud {
    name: &'static str,
    url: String,
    endpoint: String,
    reader: Arc<dyn ObjectStore>,
}

impl Cloud {
    /// Reads through the sink's own URL and endpoint, as a second deployment would.
    fn new(name: &'static str, url: String, endpoint: String) -> Self {
        let reader = eventkit_sinks::store::open_store_with(&url, Some(&endpoint)).unwrap();
        Self {
            name,
            url,
            endpoint,
            reader,
        }
    }
}

fn parquet(name: &str, url: String, endpoint: Option<String>) -> SinkEntry {
    SinkEntry {
        name: name.to_owned(),
        streams: vec![StreamPattern::All],
        settings: SinkSettings::Parquet(ParquetSinkSettings { url, endpoint }),
    }
}

/// Copies every object of a sink's store to `dir`, keeping its path; returns path → bytes.
async fn download(cloud: &Cloud, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (location, bytes) in stored_files(cloud.reader.as_ref()).await {
        let path = dir.join(&location);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        files.insert(location, bytes.to_vec());
    }
    files
}

/// The files of a store by partition, with their bytes: file names are fresh ids per sink,
/// everything else must be the same.
fn contents_by_partition(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let mut contents: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(path, bytes)| {
            let partition = path.rsplit_once('/').map_or("", |(dir, _)| dir);
            (partition.to_owned(), bytes.clone())
        })
        .collect();
    contents.sort();
    contents
}

fn local_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    crate::common::parquet_files(dir)
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (relative, std::fs::read(&path).unwrap())
        })
        .collect()
}

// Two threads: emulators and PostgreSQL start (blocking) while the runtime stays free, and the
// sinks' clients talk to them while the test waits on HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_stores_the_same_rows() {
    let (gcs, moto, azurite, postgres) = tokio::task::spawn_blocking(|| {
        (
            FakeGcs::start(),
            Moto::start(),
            Azurite::start(),
            crate::postgres_support::shared(),
        )
    })
    .await
    .unwrap();
    // moto lets an unsigned client write but not read back, so S3 is read with the emulator's
    // keys (the sink writes unsigned: a plain-http endpoint and no credentials).
    let s3_bucket = moto.fresh_bucket();
    let mut s3 = Cloud::new("s3", format!("s3://{s3_bucket}/events"), moto.endpoint());
    s3.reader = Arc::new(PrefixStore::new(
        s3::build(&moto.options(&s3_bucket)).unwrap(),
        "events",
    ));
    let clouds = [
        Cloud::new(
            "gcs",
            format!("gs://{}/events", gcs.fresh_bucket()),
            gcs.endpoint(),
        ),
        s3,
        Cloud::new(
            "azure",
            format!("az://{}/events", azurite.fresh_container()),
            azurite.account_url(),
        ),
    ];
    let local = tempfile::tempdir().unwrap();
    let mut warehouse = eventkit_sinks::PostgresSinkConfig::new(postgres.url());
    warehouse.schema = "sink_conformance".to_owned();
    let mut sinks = vec![parquet(
        "conformance_local",
        format!("file://{}", local.path().display()),
        None,
    )];
    for cloud in &clouds {
        let name = format!("conformance_{}", cloud.name);
        sinks.push(parquet(
            &name,
            cloud.url.clone(),
            Some(cloud.endpoint.clone()),
        ));
    }
    sinks.push(SinkEntry {
        name: "conformance_postgres".to_owned(),
        streams: vec![StreamPattern::All],
        settings: SinkSettings::Postgres(warehouse),
    });
    let mut server = TestServer::start(move |config| {
        config.sink = SinkConfig::default();
        config.sinks = sinks;
    })
    .await;

    let mut events = 0;
    for case in 0..round_trip::CASES {
        let (body, sent) = round_trip::request(case);
        let (status, answer) = server.post(&format!("/collect/{STREAM}"), body).await;
        assert_eq!(status, 202, "case {case}: {answer}");
        events += sent["events"].as_array().map_or(0, Vec::len);
    }
    let dead = format!("[{}]", DEAD_LETTERS.join(","));
    let (status, answer) = server.post(&format!("/collect/{STREAM}"), dead).await;
    assert_eq!(status, 400, "{answer}");
    server.stop().await;

    let mut sources = vec![format!("local=parquet:{}", local.path().display())];
    let local_contents = contents_by_partition(&local_files(local.path()));
    let copies = tempfile::tempdir().unwrap();
    for cloud in &clouds {
        let dir = copies.path().join(cloud.name);
        let files = download(cloud, &dir).await;
        assert!(
            contents_by_partition(&files) == local_contents,
            "{}: the same files, byte for byte, in the same partitions as the local sink",
            cloud.name
        );
        sources.push(format!("{}=parquet:{}", cloud.name, dir.display()));
    }
    sources.push(format!(
        "postgres=postgres:{}#sink_conformance",
        postgres.url()
    ));
    let args: Vec<&str> = sources.iter().map(String::as_str).collect();
    let result = python::run_json(CHECK, &args);
    let mut readings: Vec<String> = ["azure", "gcs", "local", "s3"]
        .iter()
        .flat_map(|cloud| [format!("{cloud}/duckdb"), format!("{cloud}/pyarrow")])
        .chain(["postgres/psql".to_owned()])
        .collect();
    readings.sort();
    assert_eq!(result["disagreements"], json!([]), "{result}");
    assert_eq!(result["readings"], json!(readings));
    assert_eq!(
        result["rows"],
        json!({ "_rejected": DEAD_LETTERS.len(), STREAM: events })
    );
    // The generator writes `\u0000` escapes; without them the NUL swap would go untested.
    assert!(result["rows_with_nul"].as_u64().unwrap() > 0, "{result}");
    assert!(local_contents.len() >= 2, "{local_contents:?}");
}

//! The files are ordinary Parquet: DuckDB and pyarrow, installed from PyPI, read them as a user
//! would, Hive partitions and UTC timestamps included.

use chrono::Timelike;
use serde_json::json;

use crate::common::{TestServer, python};

const DUCKDB_QUERY: &str = r#"
import duckdb, json, sys
rows = duckdb.sql(f"""
    select stream, date, hour, type, event, user_id, anonymous_id,
           strftime(timestamp at time zone 'UTC', '%Y-%m-%dT%H:%M:%S') as ts,
           json_extract_string(properties, '$.plan') as plan
    from read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true,
                      hive_types = {{'date': 'DATE', 'hour': 'INTEGER'}})
    where stream = 'web'
    order by user_id
""").fetchall()
print(json.dumps([[str(v) if v is not None else None for v in row] for row in rows]))
"#;

const PYARROW_SCHEMA: &str = r#"
import pyarrow.dataset as ds, json, sys
dataset = ds.dataset(sys.argv[1] + "/stream=web", format="parquet")
table = dataset.to_table()
print(json.dumps({"rows": table.num_rows,
                  "timestamp": str(table.schema.field("timestamp").type),
                  "received_at": str(table.schema.field("received_at").type),
                  "message_id": str(table.schema.field("message_id").type)}))
"#;

#[tokio::test]
async fn duckdb_and_pyarrow_read_the_output() {
    let mut server = TestServer::start(|_| {}).await;
    let events = json!([
        {"type": "track", "event": "Upgraded", "userId": "alice", "properties": {"plan": "pro"},
         "timestamp": "2026-02-03T04:05:06Z"},
        {"type": "identify", "anonymousId": "anon-b", "userId": "bob", "timestamp": "2026-02-03T04:05:07Z"},
    ]);
    let (status, _) = server.post("/collect/web", events.to_string()).await;
    assert_eq!(status, 202);
    server.stop().await;
    let dir = server.dir();
    let dir = dir.to_str().unwrap();
    let today = chrono::Utc::now();

    let rows = python::run_json(DUCKDB_QUERY, &[dir]);
    let date = today.format("%Y-%m-%d").to_string();
    // The query names the partition types as the README does; left to guess, DuckDB would read
    // `hour=07` as the text "07".
    let hour = today.hour().to_string();
    assert_eq!(
        rows,
        json!([
            [
                "web",
                date,
                hour,
                "track",
                "Upgraded",
                "alice",
                null,
                "2026-02-03T04:05:06",
                "pro"
            ],
            [
                "web",
                date,
                hour,
                "identify",
                null,
                "bob",
                "anon-b",
                "2026-02-03T04:05:07",
                null
            ],
        ])
    );

    let schema = python::run_json(PYARROW_SCHEMA, &[dir]);
    assert_eq!(
        schema,
        json!({"rows": 2, "timestamp": "timestamp[us, tz=UTC]", "received_at": "timestamp[us, tz=UTC]", "message_id": "string"})
    );
}

//! specs/postgres.md's SQL, run: its DDL makes exactly the tables the sink makes, and its
//! queries run against rows the sink wrote.

use std::process::Command;
use std::sync::Arc;

use eventkit_model::{Batch, REJECTED_STREAM, Records, Table};
use eventkit_sinks::{PostgresSink, PostgresSinkConfig, Sink};
use tokio_postgres::NoTls;

use crate::docs::code_block;
use crate::postgres_sink::{events, table};
use crate::postgres_support::{Postgres, shared};

async fn database(server: &Postgres, name: &str) -> (tokio_postgres::Client, String) {
    let (admin, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = server
        .url()
        .replace("dbname=postgres", &format!("dbname={name}"));
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    (client, url)
}

/// The schema as pg_dump prints it, without its per-run session lines.
fn schema_of(url: &str) -> String {
    let dump = Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .args(["--schema-only", "--no-owner", "--schema", "eventkit", url])
        .output()
        .unwrap();
    assert!(dump.status.success(), "{dump:?}");
    String::from_utf8(dump.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('\\') && !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_documented_tables_are_the_ones_the_sink_creates() {
    let server = shared();
    let (documented, documented_url) = database(server, "documented").await;
    documented
        .batch_execute(&code_block("specs/postgres.md", "## Tables", "sql"))
        .await
        .unwrap();

    let (made, made_url) = database(server, "sink_made").await;
    let sink = PostgresSink::connect(&PostgresSinkConfig::new(&made_url))
        .await
        .unwrap();
    sink.write(table("web", events("doc"))).await.unwrap();
    let dead = Batch {
        stream: REJECTED_STREAM.into(),
        records: Records::Rejected(Vec::new()),
    };
    sink.write(Arc::new(Table::from_batch(dead).unwrap()))
        .await
        .unwrap();
    assert_eq!(schema_of(&documented_url), schema_of(&made_url));

    let queries = code_block("specs/postgres.md", "## Reading the tables", "sql");
    for query in queries.split(";\n").filter(|q| !q.trim().is_empty()) {
        let rows = made.query(query, &[]).await.unwrap();
        assert!(!rows.is_empty(), "no rows from {query}");
    }
}

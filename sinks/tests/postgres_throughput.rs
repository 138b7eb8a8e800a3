//! Rows per second into PostgreSQL, for benchmarks/results/postgres.md. Ignored by default: it
//! prints a figure and asserts only that every row arrived.
//! `cargo test -p eventkit-sinks --test integration postgres_throughput -- --ignored --nocapture`

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use eventkit_model::{Batch, Event, EventType, Records, Table, Text, TextFields, Times};
use eventkit_sinks::{PostgresSink, PostgresSinkConfig, Sink};
use tokio_postgres::NoTls;

use crate::postgres_support::shared;

const EVENTS: usize = 100_000;
const TABLE_ROWS: usize = 10_000;

/// A track call of the size the collector's benchmarks send (about 1 KB as JSON).
fn event(n: usize) -> Event {
    let id = format!("{n:08}-5f0c-4c1e-9d7a-{n:012}");
    let user = format!("user-{}", n % 5_000);
    let properties = format!(
        r#"{{"plan":"pro","amount":{},"items":[{{"sku":"a-{n}","qty":2}}],"note":"ünïcødé"}}"#,
        n % 997
    );
    let context = r#"{"library":{"name":"analytics.js","version":"4.1.0"},"locale":"en-GB","page":{"path":"/checkout","url":"https://example.com/checkout"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)","ip":"203.0.113.7"}"#;
    let mut text: TextFields = [None; Text::COUNT];
    text[Text::MessageId as usize] = Some(&id);
    text[Text::Event as usize] = Some("Order Completed");
    text[Text::UserId as usize] = Some(&user);
    text[Text::ContextIp as usize] = Some("203.0.113.7");
    text[Text::ContextUserAgent as usize] = Some("Mozilla/5.0 (X11; Linux x86_64)");
    text[Text::ContextLibraryName as usize] = Some("analytics.js");
    text[Text::ContextLibraryVersion as usize] = Some("4.1.0");
    text[Text::Properties as usize] = Some(&properties);
    text[Text::Context as usize] = Some(context);
    text[Text::Integrations as usize] = Some(r#"{"All":true}"#);
    let at: DateTime<Utc> =
        DateTime::from_timestamp_micros(1_767_225_600_000_000 + n as i64).unwrap_or_default();
    let times = Times {
        timestamp: at,
        original_timestamp: Some(at),
        sent_at: Some(at),
        received_at: at,
    };
    Event::new(EventType::Track, times, &text)
}

/// `EVENTS` events as tables of `TABLE_ROWS` rows of the stream `bench`.
fn bench_tables() -> Vec<Arc<Table>> {
    (0..EVENTS / TABLE_ROWS)
        .map(|t| {
            let events = (t * TABLE_ROWS..(t + 1) * TABLE_ROWS).map(event).collect();
            let batch = Batch {
                stream: "bench".into(),
                records: Records::Events(events),
            };
            Arc::new(Table::from_batch(batch).unwrap())
        })
        .collect()
}

#[tokio::test]
#[ignore = "prints a throughput figure"]
async fn postgres_throughput() {
    let server = shared();
    let config = PostgresSinkConfig {
        schema: "throughput".into(),
        ..PostgresSinkConfig::new(server.url())
    };
    let sink = PostgresSink::connect(&config).await.unwrap();
    let tables = bench_tables();
    let started = Instant::now();
    for table in &tables {
        sink.write(table.clone()).await.unwrap();
    }
    let first = started.elapsed();
    let again = Instant::now();
    for table in &tables {
        sink.write(table.clone()).await.unwrap();
    }
    let redelivered = again.elapsed();

    let (client, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), pg_total_relation_size('throughput.bench') FROM throughput.bench",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), EVENTS as i64);
    let bytes: i64 = row.get(1);
    println!(
        "{EVENTS} events in tables of {TABLE_ROWS}: {:.2?} = {:.0} rows/s new, \
         {:.2?} = {:.0} rows/s redelivered (all conflicts); table + index {} MB",
        first,
        EVENTS as f64 / first.as_secs_f64(),
        redelivered,
        EVENTS as f64 / redelivered.as_secs_f64(),
        bytes / 1_000_000
    );
}

/// A row of `table` in COPY's text format (what the sink would send without binary COPY).
fn text_row(table: &Table, row: usize, out: &mut String) {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimestampMicrosecondType};
    for (i, column) in table.rows.columns().iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        if column.is_null(row) {
            out.push_str("\\N");
            continue;
        }
        match column.data_type() {
            DataType::Timestamp(_, _) => {
                let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
                let at = DateTime::from_timestamp_micros(micros).unwrap_or_default();
                out.push_str(&at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string());
            }
            _ => {
                for c in column.as_string::<i32>().value(row).chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
}

/// The sink's load with text COPY in place of binary: same staging table and insert.
#[tokio::test]
#[ignore = "prints a throughput figure"]
async fn postgres_text_copy_throughput() {
    use futures::SinkExt;
    let server = shared();
    let config = PostgresSinkConfig {
        schema: "text_copy".into(),
        ..PostgresSinkConfig::new(server.url())
    };
    let sink = PostgresSink::connect(&config).await.unwrap();
    let tables = bench_tables();
    // Creates the table; its rows are then removed so the text load starts empty.
    sink.write(tables[0].clone()).await.unwrap();
    let (mut client, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("TRUNCATE text_copy.bench")
        .await
        .unwrap();
    let started = Instant::now();
    for table in &tables {
        let transaction = client.transaction().await.unwrap();
        transaction
            .batch_execute("CREATE TEMP TABLE stage (LIKE text_copy.bench) ON COMMIT DROP")
            .await
            .unwrap();
        let mut text = String::new();
        for row in 0..table.num_rows() {
            text_row(table, row, &mut text);
        }
        let copy = transaction.copy_in("COPY stage FROM STDIN").await.unwrap();
        futures::pin_mut!(copy);
        copy.send(bytes::Bytes::from(text)).await.unwrap();
        copy.finish().await.unwrap();
        transaction
            .batch_execute("INSERT INTO text_copy.bench SELECT * FROM stage ON CONFLICT DO NOTHING")
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    }
    let elapsed = started.elapsed();
    let count: i64 = client
        .query_one("SELECT count(*) FROM text_copy.bench", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, EVENTS as i64);
    println!(
        "text COPY: {EVENTS} events in {elapsed:.2?} = {:.0} rows/s",
        EVENTS as f64 / elapsed.as_secs_f64()
    );
}

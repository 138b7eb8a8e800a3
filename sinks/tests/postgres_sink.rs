//! The PostgreSQL sink against a real server: events of every call type in, the same rows out;
//! a redelivered table adds nothing; dead letters get their own table; a dead server is an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use eventkit_model::{
    Batch, Event, EventType, REJECTED_STREAM, Records, Rejected, Table, Text, TextFields, Times,
};
use eventkit_sinks::{PostgresSink, PostgresSinkConfig, Sink, SinkError};
use tokio_postgres::NoTls;

use crate::postgres_support::{Postgres, shared};

/// JSON the sink must keep as sent: unicode, escapes, numbers past f64, deep nesting.
const ODD_JSON: [&str; 6] = [
    r#"{"emoji":"😀","accents":"é\u00e9","cjk":"漢字"}"#,
    r#"{"quote":"a\"b","backslash":"c\\d","newline":"e\nf","tab":"\t","slash":"\/"}"#,
    r#"{"big":123456789012345678901234567890,"tiny":1e-300,"neg":-0.5,"exp":6.02e23}"#,
    r#"{"a":{"b":{"c":{"d":[1,[2,[3,{"e":null}]]]}}},"empty":{},"list":[]}"#,
    r#"{"bool":true,"nothing":null,"dup_looking":"{\"x\":1}"}"#,
    r#"[1,"two",{"three":3}]"#,
];

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_767_225_600_000_000 + micros).unwrap()
}

/// One event per call type and odd JSON value, every field set, times to the microsecond.
pub fn events(prefix: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for (i, kind) in EventType::ALL.iter().enumerate() {
        for (j, json) in ODD_JSON.iter().enumerate() {
            let id = format!("{prefix}-{i}-{j}");
            let mut text: TextFields = [None; Text::COUNT];
            for field in Text::ALL {
                text[field as usize] = Some(if field.is_json() {
                    json
                } else {
                    field.column()
                });
            }
            text[Text::MessageId as usize] = Some(&id);
            text[Text::UserId as usize] = Some("ünïcødé 'quoted' \"user\"");
            if j % 2 == 0 {
                text[Text::Traits as usize] = None;
                text[Text::Event as usize] = None;
            }
            let n = (i * 10 + j) as i64;
            let times = Times {
                timestamp: at(n * 1_000_001 + 1),
                original_timestamp: (j % 3 != 0).then(|| at(n * 7 + 999_999)),
                sent_at: Some(at(-n * 123_457)),
                received_at: at(n * 1_000_003),
            };
            events.push(Event::new(*kind, times, &text));
        }
    }
    events
}

pub fn table(stream: &str, events: Vec<Event>) -> Arc<Table> {
    let records = Records::Events(events);
    Arc::new(
        Table::from_batch(Batch {
            stream: stream.into(),
            records,
        })
        .unwrap(),
    )
}

async fn client(server: &Postgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn config(server: &Postgres, schema: &str) -> PostgresSinkConfig {
    PostgresSinkConfig {
        schema: schema.to_owned(),
        ..PostgresSinkConfig::new(server.url())
    }
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    let row = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn every_field_of_every_event_comes_back_as_sent() {
    let server = shared();
    let sink = PostgresSink::connect(&config(server, "exact"))
        .await
        .unwrap();
    let events = events("exact");
    let files = sink.write(table("web", events.clone())).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].rows, events.len());
    assert_eq!(files[0].path, r#""exact"."web""#);

    let client = client(server).await;
    assert_eq!(count(&client, "exact.web").await, events.len() as i64);
    for event in &events {
        let row = client
            .query_one(
                "SELECT * FROM exact.web WHERE message_id = $1",
                &[&event.message_id()],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, &str>("stream"), "web");
        assert_eq!(row.get::<_, &str>("type"), event.event_type.as_str());
        for field in Text::ALL.into_iter().filter(|f| !f.is_json()) {
            let stored: Option<&str> = row.get(field.column());
            assert_eq!(stored, event.text(field), "{}", field.column());
        }
        for time in eventkit_model::Time::ALL {
            let stored: Option<DateTime<Utc>> = row.get(time.column());
            assert_eq!(stored, event.times.get(time), "{}", time.column());
        }
        // jsonb against the text sent, compared by PostgreSQL's own JSON equality.
        for field in Text::JSON {
            let query = format!(
                "SELECT {0} IS NOT DISTINCT FROM $2::text::jsonb, {0}::text FROM exact.web \
                 WHERE message_id = $1",
                field.column()
            );
            let row = client
                .query_one(&query, &[&event.message_id(), &event.text(field)])
                .await
                .unwrap();
            let same: bool = row.get(0);
            let stored: Option<&str> = row.get(1);
            assert!(
                same,
                "{}: sent {:?}, stored {stored:?}",
                field.column(),
                event.text(field)
            );
        }
    }
    let column_types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'exact' AND table_name = 'web' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let jsonb: Vec<&str> = column_types
        .iter()
        .filter(|(_, t)| t == "jsonb")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(jsonb, ["properties", "traits", "context", "integrations"]);
    let times = column_types
        .iter()
        .filter(|(_, t)| t == "timestamp with time zone")
        .count();
    assert_eq!(times, 4);
}

#[tokio::test]
async fn a_redelivered_table_adds_no_rows() {
    let server = shared();
    let sink = PostgresSink::connect(&config(server, "redelivery"))
        .await
        .unwrap();
    let first = table("app", events("r"));
    sink.write(first.clone()).await.unwrap();
    sink.write(first.clone()).await.unwrap();
    // A table overlapping the first: only its new rows are added.
    let mut overlapping = events("r");
    overlapping.truncate(3);
    overlapping.extend(events("new").into_iter().take(2));
    sink.write(table("app", overlapping)).await.unwrap();
    let client = client(server).await;
    assert_eq!(
        count(&client, "redelivery.app").await,
        first.num_rows() as i64 + 2
    );
}

#[tokio::test]
async fn dead_letters_land_in_their_own_table() {
    let server = shared();
    let sink = PostgresSink::connect(&config(server, "dead"))
        .await
        .unwrap();
    let rejected: Vec<Rejected> = (0..3)
        .map(|i| Rejected {
            received_at: at(i),
            stream: "web".into(),
            index: i as u32,
            error: format!("error {i}"),
            raw: format!(r#"{{"broken": {i}"#),
            context_ip: (i != 1).then(|| "10.0.0.1".to_owned()),
        })
        .collect();
    let batch = Batch {
        stream: REJECTED_STREAM.into(),
        records: Records::Rejected(rejected.clone()),
    };
    let dead = Arc::new(Table::from_batch(batch).unwrap());
    sink.write(dead.clone()).await.unwrap();
    sink.write(dead).await.unwrap();
    let client = client(server).await;
    let rows = client
        .query(
            r#"SELECT received_at, stream, "index", error, raw, context_ip FROM dead._rejected ORDER BY "index""#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), rejected.len());
    for (row, sent) in rows.iter().zip(&rejected) {
        assert_eq!(row.get::<_, DateTime<Utc>>(0), sent.received_at);
        assert_eq!(row.get::<_, &str>(1), sent.stream);
        assert_eq!(row.get::<_, i64>(2), i64::from(sent.index));
        assert_eq!(row.get::<_, &str>(3), sent.error);
        assert_eq!(row.get::<_, &str>(4), sent.raw);
        assert_eq!(row.get::<_, Option<String>>(5), sent.context_ip);
    }
}

#[tokio::test]
async fn a_stopped_server_is_an_error_not_a_hang() {
    let mut server = Postgres::start();
    let settings = PostgresSinkConfig {
        connect_timeout_ms: 2_000,
        write_timeout_ms: 5_000,
        ..config(&server, "down")
    };
    let sink = PostgresSink::connect(&settings).await.unwrap();
    sink.probe().await.unwrap();
    sink.write(table("web", events("up"))).await.unwrap();
    server.stop();

    let started = Instant::now();
    let written = sink.write(table("web", events("down"))).await;
    assert!(
        matches!(written, Err(SinkError::Postgres(_))),
        "{written:?}"
    );
    assert!(matches!(sink.probe().await, Err(SinkError::Postgres(_))));
    // Bounded by the settings above, not by an operating-system timeout.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let refused = PostgresSink::connect(&settings).await;
    assert!(matches!(refused, Err(SinkError::Postgres(_))));
}

#[tokio::test]
async fn a_server_that_stops_answering_is_a_timeout_not_a_hang() {
    let server = Postgres::start();
    let settings = PostgresSinkConfig {
        connect_timeout_ms: 1_000,
        write_timeout_ms: 2_000,
        ..config(&server, "frozen")
    };
    let sink = PostgresSink::connect(&settings).await.unwrap();
    sink.write(table("web", events("before"))).await.unwrap();
    server.freeze();
    let started = Instant::now();
    let written = sink.write(table("web", events("frozen"))).await;
    assert!(
        matches!(written, Err(SinkError::Postgres(_))),
        "{written:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn unknown_settings_are_refused_by_name() {
    let error = serde_json::from_str::<PostgresSinkConfig>(r#"{"url":"x","max_conections":2}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("max_conections"), "{error}");
}

#[tokio::test]
async fn a_failed_write_leaves_no_rows() {
    let server = shared();
    let sink = PostgresSink::connect(&config(server, "atomic"))
        .await
        .unwrap();
    let mut events = events("ok");
    // Not JSON (the collector never sends such), so the last row fails the whole COPY.
    let mut text: TextFields = [None; Text::COUNT];
    text[Text::MessageId as usize] = Some("refused");
    text[Text::Properties as usize] = Some(r#"{"unclosed":"#);
    let times = Times {
        timestamp: at(0),
        original_timestamp: None,
        sent_at: None,
        received_at: at(0),
    };
    events.push(Event::new(EventType::Track, times, &text));
    let written = sink.write(table("web", events)).await;
    assert!(
        matches!(written, Err(SinkError::Postgres(_))),
        "{written:?}"
    );
    let client = client(server).await;
    assert_eq!(count(&client, "atomic.web").await, 0);
    // The connection that failed went back to the pool usable.
    sink.write(table("web", self::events("ok"))).await.unwrap();
    assert_eq!(count(&client, "atomic.web").await, 36);
}

#[tokio::test]
async fn nul_characters_become_replacement_characters() {
    let server = shared();
    let sink = PostgresSink::connect(&config(server, "nul")).await.unwrap();
    let mut text: TextFields = [None; Text::COUNT];
    text[Text::MessageId as usize] = Some("nul");
    text[Text::Event as usize] = Some("a\0b");
    text[Text::Properties as usize] = Some(r#"{"escape":"x\u0000y","text":"\\u0000"}"#);
    let times = Times {
        timestamp: at(0),
        original_timestamp: None,
        sent_at: None,
        received_at: at(0),
    };
    let event = Event::new(EventType::Track, times, &text);
    sink.write(table("web", vec![event])).await.unwrap();
    let client = client(server).await;
    let row = client
        .query_one(
            "SELECT event, properties->>'escape', properties->>'text' FROM nul.web",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "a\u{fffd}b");
    assert_eq!(row.get::<_, &str>(1), "x\u{fffd}y");
    assert_eq!(row.get::<_, &str>(2), "\\u0000");
}

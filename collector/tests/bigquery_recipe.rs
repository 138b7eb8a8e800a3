//! README's BigQuery recipe against the code: each external table lists the columns of the Arrow
//! schema its stream's files are written with, in order, and reads them where the collector
//! puts them.

use std::path::Path;

use arrow::datatypes::{DataType, Field, TimeUnit};
use eventkit_model::{EVENT_SCHEMA, REJECTED_SCHEMA, REJECTED_STREAM};

use crate::common::docs::code_block;
use crate::common::{TestServer, parquet_files};

/// The type BigQuery reads a Parquet column of `field` as.
fn bigquery_type(field: &Field) -> &'static str {
    match field.data_type() {
        // The Parquet JSON logical type has no BigQuery mapping: it is read as plain bytes.
        DataType::Utf8 if field.extension_type_name() == Some("arrow.json") => "BYTES",
        DataType::Utf8 => "STRING",
        DataType::UInt32 => "INT64",
        DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) if zone.as_ref() == "UTC" => {
            "TIMESTAMP"
        }
        other => panic!("{}: no BigQuery type for {other}", field.name()),
    }
}

/// One `CREATE EXTERNAL TABLE` statement, as far as the recipe depends on it.
#[derive(Debug)]
struct ExternalTable {
    /// `(name, type)`, in order.
    columns: Vec<(String, String)>,
    partitions: Vec<(String, String)>,
    uris: String,
    prefix: String,
}

/// The text between `open` and the next `close` after it, and what follows.
fn between<'a>(text: &'a str, open: &str, close: &str) -> (&'a str, &'a str) {
    let (_, rest) = text
        .split_once(open)
        .unwrap_or_else(|| panic!("no {open:?} in {text}"));
    rest.split_once(close)
        .unwrap_or_else(|| panic!("no {close:?} after {open:?}"))
}

fn column_list(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .map(|column| {
            let words: Vec<&str> = column.split_whitespace().collect();
            match words[..] {
                [name, kind] => (name.to_owned(), kind.to_owned()),
                _ => panic!("a column is a name and a type: {column:?}"),
            }
        })
        .collect()
}

fn parse(ddl: &str) -> Vec<ExternalTable> {
    ddl.split("CREATE EXTERNAL TABLE")
        .skip(1)
        .map(|statement| {
            let (columns, rest) = between(statement, "(", ")");
            let (partitions, options) = between(rest, "WITH PARTITION COLUMNS (", ")");
            ExternalTable {
                columns: column_list(columns),
                partitions: column_list(partitions),
                uris: between(options, "uris = ['", "']").0.to_owned(),
                prefix: between(options, "hive_partition_uri_prefix = '", "'")
                    .0
                    .to_owned(),
            }
        })
        .collect()
}

/// The stream a table reads, from its partition prefix `.../stream=<name>`.
fn stream_of(table: &ExternalTable) -> &str {
    table
        .prefix
        .rsplit_once("/stream=")
        .unwrap_or_else(|| panic!("{} does not end at a stream", table.prefix))
        .1
}

/// The file's path below the sink root matches the table's prefix followed by its partition
/// keys in order, each value of the declared type.
fn assert_reads(table: &ExternalTable, relative: &str) {
    let root = table.prefix.rsplit_once("/stream=").unwrap().0;
    let path = format!("{root}/{relative}");
    let glob = table.uris.strip_suffix('*').unwrap();
    assert_eq!(
        glob,
        format!("{}/", table.prefix),
        "uris of {}",
        table.prefix
    );
    let below = path.strip_prefix(glob).unwrap_or_else(|| panic!("{path}"));
    let segments: Vec<&str> = below.split('/').collect();
    assert_eq!(segments.len(), table.partitions.len() + 1, "{path}");
    for ((key, kind), segment) in table.partitions.iter().zip(&segments) {
        let value = segment
            .strip_prefix(&format!("{key}="))
            .unwrap_or_else(|| panic!("{path}: {key} expected at {segment}"));
        match kind.as_str() {
            "DATE" => assert!(
                chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
                "{path}"
            ),
            "INT64" => assert!(value.parse::<i64>().is_ok(), "{path}"),
            other => panic!("no check for partition type {other}"),
        }
    }
    assert!(path.ends_with(".parquet"), "{path}");
}

#[tokio::test]
async fn the_bigquery_tables_match_the_schemas_and_the_layout() {
    let tables = parse(&code_block("README.md", "### BigQuery", "sql"));
    let streams: Vec<&str> = tables.iter().map(stream_of).collect();
    assert_eq!(streams, ["web", REJECTED_STREAM]);

    for table in &tables {
        let schema = if stream_of(table) == REJECTED_STREAM {
            &*REJECTED_SCHEMA
        } else {
            &*EVENT_SCHEMA
        };
        let expected: Vec<(String, String)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), bigquery_type(f).to_owned()))
            .collect();
        assert_eq!(table.columns, expected, "columns of {}", table.prefix);
        // BigQuery refuses a partition key that is also a column of the files.
        for (key, _) in &table.partitions {
            assert!(schema.field_with_name(key).is_err(), "{key} is a column");
        }
    }

    // The `bq` route declares the same partitions in its own spelling.
    let web = &tables[0];
    let custom: String = web
        .partitions
        .iter()
        .map(|(key, kind)| format!("/{{{key}:{}}}", kind.replace("INT64", "INTEGER")))
        .collect();
    let bq = code_block("README.md", "### BigQuery", "sh");
    assert!(bq.contains(&format!("'{}{custom}'", web.prefix)), "{bq}");
    assert!(bq.contains(&format!("'{}'", web.uris)), "{bq}");

    // One event and one dead letter, so each table has a file the collector wrote to check.
    let mut server = TestServer::start(|_| {}).await;
    let body = r#"[{"type": "track", "event": "E", "userId": "u"}, {"type": "track"}]"#;
    let (status, answer) = server.post("/collect/web", body).await;
    assert_eq!(status, 202, "{answer}");
    server.stop().await;
    let files = parquet_files(&server.dir());
    assert_eq!(files.len(), 2, "{files:?}");
    for table in &tables {
        let stream = format!("stream={}", stream_of(table));
        let file = files
            .iter()
            .map(|f| f.strip_prefix(server.dir()).unwrap())
            .find(|f| f.starts_with(Path::new(&stream)))
            .unwrap_or_else(|| panic!("no file of {stream} in {files:?}"));
        assert_reads(table, &file.to_string_lossy());
    }
}

//! The Parquet sink over an in-memory store: files land in the partition of their hour, whole,
//! with every row. [`assert_written_like_local`] checks a cloud store against a local directory.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use eventkit_model::{
    Batch, Event, EventType, Records, Table, TableBuilder, Text, TextFields, Times,
};
use eventkit_sinks::{ParquetSink, Sink, open_store};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn event(id: &str, received_at: &str) -> Event {
    let received_at: DateTime<Utc> = received_at.parse().unwrap();
    let mut text: TextFields = [None; Text::COUNT];
    text[Text::MessageId as usize] = Some(id);
    text[Text::Event as usize] = Some("E");
    text[Text::UserId as usize] = Some("u");
    text[Text::Properties as usize] = Some(r#"{"n":1}"#);
    let times = Times {
        timestamp: received_at,
        original_timestamp: None,
        sent_at: None,
        received_at,
    };
    Event::new(EventType::Track, times, &text)
}

fn table(stream: &str, events: Vec<Event>) -> Arc<Table> {
    let batch = Batch {
        stream: stream.into(),
        records: Records::Events(events),
    };
    Arc::new(Table::from_batch(batch).unwrap())
}

/// Writes the same tables through `store` and through a local directory: both must hold the
/// same Hive partitions with byte-identical files (names differ: they are uuid v7), read back
/// through `reader` (the same objects; a signed store where `store` writes unsigned). Returns
/// the files, sorted.
pub async fn assert_written_like_local(
    store: Arc<dyn ObjectStore>,
    reader: Arc<dyn ObjectStore>,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let local = open_store(dir.path().to_str().unwrap()).unwrap();
    for target in [&store, &local] {
        let sink = ParquetSink::new(target.clone()).unwrap();
        let web = vec![
            event("a", "2026-01-01T09:59:59Z"),
            event("b", "2026-01-01T10:00:00Z"),
        ];
        sink.write(table("web", web)).await.unwrap();
        let app = (0..5_000)
            .map(|i| event(&format!("m{i}"), "2026-01-02T23:00:00Z"))
            .collect();
        sink.write(table("app", app)).await.unwrap();
    }
    let remote = files_by_partition(&reader).await;
    let local = files_by_partition(&local).await;
    let partitions = |files: &[(String, String, Bytes)]| -> Vec<String> {
        files.iter().map(|(dir, _, _)| dir.clone()).collect()
    };
    assert_eq!(partitions(&remote), partitions(&local));
    assert_eq!(
        partitions(&remote),
        [
            "stream=app/date=2026-01-02/hour=23",
            "stream=web/date=2026-01-01/hour=09",
            "stream=web/date=2026-01-01/hour=10",
        ]
    );
    for ((dir, _, remote), (_, _, local)) in remote.iter().zip(&local) {
        assert!(remote == local, "{dir}: the files differ");
    }
    remote.into_iter().map(|(_, path, _)| path).collect()
}

/// Every key in `store` (under `prefix`), sorted.
pub async fn sorted_keys(store: &Arc<dyn ObjectStore>, prefix: Option<&str>) -> Vec<String> {
    let prefix = prefix.map(object_store::path::Path::from);
    let mut keys: Vec<String> = store
        .list(prefix.as_ref())
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Where files a store scoped to `prefix` wrote appear in the unscoped bucket.
pub fn prefixed(prefix: &str, files: &[String]) -> Vec<String> {
    files.iter().map(|f| format!("{prefix}/{f}")).collect()
}

/// (partition, path, contents) of every file, by partition; each test partition holds one.
async fn files_by_partition(store: &Arc<dyn ObjectStore>) -> Vec<(String, String, Bytes)> {
    let mut files = Vec::new();
    for (path, bytes) in crate::emulator_support::stored_files(store.as_ref()).await {
        let (dir, name) = path.rsplit_once('/').unwrap();
        assert!(name.ends_with(".parquet"), "{path}");
        files.push((dir.to_owned(), path.clone(), bytes));
    }
    files.sort();
    files
}

#[tokio::test]
async fn a_batch_spanning_two_hours_becomes_one_file_per_hour() {
    let store = open_store("memory://").unwrap();
    let sink = ParquetSink::new(store.clone()).unwrap();
    let events = vec![
        event("a", "2026-01-01T09:59:59Z"),
        event("b", "2026-01-01T09:59:59.999Z"),
        event("c", "2026-01-01T10:00:00Z"),
    ];
    let table = table("web", events);
    let files = sink.write(table).await.unwrap();
    assert_eq!(files.iter().map(|f| f.rows).collect::<Vec<_>>(), [2, 1]);

    let stored = files_by_partition(&store).await;
    let paths: Vec<&str> = stored.iter().map(|(_, path, _)| path.as_str()).collect();
    assert_eq!(paths.len(), 2);
    assert!(
        paths[0].starts_with("stream=web/date=2026-01-01/hour=09/"),
        "{paths:?}"
    );
    assert!(
        paths[1].starts_with("stream=web/date=2026-01-01/hour=10/"),
        "{paths:?}"
    );

    let mut ids = Vec::new();
    for (_, _, bytes) in stored {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch.column_by_name("message_id").unwrap();
            let column = column
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            ids.extend(column.iter().map(|v| v.unwrap().to_owned()));
        }
    }
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[tokio::test]
async fn large_batches_are_split_into_row_groups_and_stay_one_file() {
    let store = open_store("memory://").unwrap();
    let sink = ParquetSink::new(store.clone()).unwrap();
    let events: Vec<Event> = (0..150_000)
        .map(|i| event(&format!("m{i}"), "2026-01-01T00:00:00Z"))
        .collect();
    let files = sink.write(table("big", events)).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].rows, 150_000);
    let bytes = store
        .get(&files[0].path.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 3);
    assert_eq!(builder.metadata().file_metadata().num_rows(), 150_000);
}

#[test]
fn columns_started_at_a_previous_size_hold_the_same_rows() {
    let events: Vec<Event> = (0..100)
        .map(|i| event(&format!("m-{i}"), "2026-05-01T10:00:00Z"))
        .collect();
    let grown = TableBuilder::from_records(Records::Events(events.clone()));
    let Some(sizes) = grown.column_sizes() else {
        panic!("event columns have sizes")
    };
    let mut sized = TableBuilder::sized_for(&Records::Events(Vec::new()), Some(&sizes));
    assert!(sized.append(Records::Events(events)).is_ok());
    assert_eq!(sized.column_sizes(), Some(sizes));
    let (Ok(grown), Ok(sized)) = (grown.finish("s".into()), sized.finish("s".into())) else {
        panic!("both finish")
    };
    assert_eq!(grown.rows, sized.rows);
}

#[tokio::test]
async fn memory_store_holds_what_a_local_directory_does() {
    let store = open_store("memory://").unwrap();
    let files = assert_written_like_local(store.clone(), store).await;
    assert_eq!(files.len(), 3);
}

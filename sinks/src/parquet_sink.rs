//! Parquet files through any `object_store` backend, streamed so that a file of any size needs
//! only a row group and one upload part in memory.

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventkit_model::{Table, Text, Time};
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio_util::io::SyncIoBridge;

use crate::layout::{file_path, hour_of};
use crate::sink::{Sink, SinkError, WrittenFile};

/// Rows per Parquet row group. Large enough for good compression and for readers to
/// parallelise over groups, small enough that the writer's buffered group stays a few MB.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Upload part size: object_store's multipart minimum is 5 MiB and GCS wants 256 KiB multiples;
/// 8 MiB keeps a 64 MB file to eight parts while bounding the upload buffer.
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// zstd level 1: on event tables it is both the faster level and, measured, the smaller file.
/// A 50k-row file encoded about a quarter faster than at level 3 and came out 8-12% smaller
/// (the random half of every message id leaves level 3's longer match search nothing to find),
/// and each page's compressor needs a fraction of level 3's tables.
const ZSTD_LEVEL: i32 = 1;

pub struct ParquetSink {
    store: Arc<dyn ObjectStore>,
    properties: WriterProperties,
}

impl ParquetSink {
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Self, SinkError> {
        Ok(Self {
            store,
            properties: writer_properties()?,
        })
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    async fn write_file(&self, rows: RecordBatch, path: Path) -> Result<WrittenFile, SinkError> {
        let writer = BufWriter::with_capacity(self.store.clone(), path.clone(), UPLOAD_PART_BYTES);
        let bridge = SyncIoBridge::new(writer);
        let properties = self.properties.clone();
        let row_count = rows.num_rows();
        // Encoding is CPU-bound: keep it off the runtime threads that serve HTTP.
        let encoded = tokio::task::spawn_blocking(move || encode(&rows, bridge, properties))
            .await
            .map_err(|e| SinkError::Task(e.to_string()))?;
        let (mut bridge, bytes) = match encoded {
            Encoded {
                bridge: Some(bridge),
                outcome: Ok(bytes),
            } => (bridge, bytes),
            Encoded { bridge, outcome } => {
                abort(bridge).await;
                return Err(outcome
                    .err()
                    .unwrap_or_else(|| SinkError::Task("writer lost".into())));
            }
        };
        let finished = tokio::task::spawn_blocking(move || {
            let result = bridge.shutdown();
            (result, bridge)
        })
        .await
        .map_err(|e| SinkError::Task(e.to_string()))?;
        if let (Err(error), bridge) = finished {
            // BufWriter::abort panics after shutdown; the failed shutdown already dropped the
            // upload, which discards it (GCS cancels the resumable session).
            drop(bridge);
            return Err(error.into());
        }
        Ok(WrittenFile {
            path: path.to_string(),
            rows: row_count,
            bytes,
        })
    }
}

/// Columns that are unique per row (ids) or free-form JSON. Dictionary-encoding them is wasted
/// hashing (the dictionary overflows and the writer falls back anyway), and min/max statistics
/// over JSON text help no query; skipping both is most of the encoder's time on these columns.
const HIGH_CARDINALITY: [Text; 5] = [
    Text::MessageId,
    Text::Properties,
    Text::Traits,
    Text::Context,
    Text::Integrations,
];

pub fn writer_properties() -> Result<WriterProperties, SinkError> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL)?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for column in HIGH_CARDINALITY {
        let column = ColumnPath::from(column.column());
        builder = builder
            .set_column_dictionary_enabled(column.clone(), false)
            .set_column_statistics_enabled(column, EnabledStatistics::None);
    }
    Ok(builder.build())
}

async fn abort(bridge: Option<SyncIoBridge<BufWriter>>) {
    if let Some(bridge) = bridge {
        let mut writer = bridge.into_inner();
        if let Err(error) = writer.abort().await {
            tracing::warn!(%error, "aborting a failed upload");
        }
    }
}

type Bridge = SyncIoBridge<BufWriter>;

/// What encoding left behind: the upload (when the writer still owned it, so a failure can be
/// aborted rather than left half done) and the bytes written, or why it failed.
struct Encoded {
    bridge: Option<Bridge>,
    outcome: Result<u64, SinkError>,
}

impl Encoded {
    fn failed(error: SinkError, bridge: Option<Bridge>) -> Self {
        Self {
            bridge,
            outcome: Err(error),
        }
    }
}

/// Streams one file's rows through the Parquet writer into the upload.
fn encode(rows: &RecordBatch, bridge: Bridge, properties: WriterProperties) -> Encoded {
    let counted = CountingWriter {
        inner: bridge,
        bytes: 0,
    };
    let mut writer = match ArrowWriter::try_new(counted, rows.schema(), Some(properties)) {
        Ok(writer) => writer,
        Err(e) => return Encoded::failed(SinkError::Encode(e), None),
    };
    let mut start = 0;
    while start < rows.num_rows() {
        let length = ROW_GROUP_ROWS.min(rows.num_rows() - start);
        if let Err(e) = writer.write(&rows.slice(start, length)) {
            let error = SinkError::Encode(e);
            return Encoded::failed(error, writer.into_inner().ok().map(|c| c.inner));
        }
        start += length;
    }
    match writer.into_inner() {
        Ok(counted) => Encoded {
            bridge: Some(counted.inner),
            outcome: Ok(counted.bytes),
        },
        Err(e) => Encoded::failed(SinkError::Encode(e), None),
    }
}

struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Contiguous runs of rows that fall in the same hour: one file each, so every file sits in
/// the partition its rows belong to. Requests arrive in order, so a table is nearly always one run.
fn hour_runs(micros: impl Iterator<Item = i64>) -> Vec<(DateTime<Utc>, Range<usize>)> {
    let mut runs: Vec<(DateTime<Utc>, Range<usize>)> = Vec::new();
    for (i, t) in micros.enumerate() {
        let hour = hour_of(t);
        match runs.last_mut() {
            Some((h, range)) if *h == hour => range.end = i + 1,
            _ => runs.push((hour, i..i + 1)),
        }
    }
    runs
}

#[async_trait]
impl Sink for ParquetSink {
    async fn write(&self, table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError> {
        let received_at = table
            .received_at_micros()
            .ok_or_else(|| SinkError::MissingColumn(Time::ReceivedAt.column()))?;
        let runs = hour_runs(received_at.values().iter().copied());
        let mut files = Vec::with_capacity(runs.len());
        for (hour, range) in runs {
            let rows = table.rows.slice(range.start, range.len());
            let path = file_path(&table.stream, hour);
            files.push(self.write_file(rows, path).await?);
        }
        Ok(files)
    }
}

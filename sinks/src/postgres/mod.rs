//! Tables of events in PostgreSQL: one table per stream, created on first use, loaded by binary
//! COPY into a staging table and moved over with `ON CONFLICT DO NOTHING`, in one transaction,
//! so a redelivered table adds nothing and a failed write leaves nothing. See specs/postgres.md.

mod cells;
mod ddl;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use eventkit_model::Table;
use serde::Deserialize;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;

use crate::sink::{Sink, SinkError, WrittenFile};
use ddl::TableShape;

/// Where and how to reach PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// A `postgresql://` URL or a `key=value` connection string (libpq's two forms).
    pub url: String,
    /// The schema the stream tables live in; created if missing.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Connections held at most. Each is a server backend (a process and its memory on the
    /// database host), and writes are one per stream at a time, so a handful covers the batcher.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bound on opening a connection, and on waiting for a free one from the pool.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Bound on one whole write (the server enforces it per statement as well), so a database
    /// that stops answering fails the write instead of holding the batch forever.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
}

fn default_schema() -> String {
    "eventkit".to_owned()
}
fn default_max_connections() -> usize {
    4
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_write_timeout_ms() -> u64 {
    60_000
}

impl PostgresSinkConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: default_schema(),
            max_connections: default_max_connections(),
            connect_timeout_ms: default_connect_timeout_ms(),
            write_timeout_ms: default_write_timeout_ms(),
        }
    }
}

/// What went wrong talking to PostgreSQL; the driver's or pool's error is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid connection settings: {0}")]
    Config(#[source] tokio_postgres::Error),
    #[error("building the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("no connection: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("write took longer than {0:?}")]
    Timeout(Duration),
    #[error("column {column} has Arrow type {data_type}, which has no PostgreSQL column here")]
    UnsupportedColumn { column: String, data_type: String },
}

impl From<tokio_postgres::Error> for SinkError {
    fn from(error: tokio_postgres::Error) -> Self {
        SinkError::Postgres(PostgresError::Query(error))
    }
}

pub struct PostgresSink {
    pool: Pool,
    schema: String,
    write_timeout: Duration,
    /// Streams whose table is known to exist; the lock also keeps two writers from racing on
    /// the same `CREATE TABLE`, which PostgreSQL can fail with a catalog unique violation.
    created: tokio::sync::Mutex<HashSet<String>>,
}

impl PostgresSink {
    /// Connects once (so bad settings or an unreachable server fail here) and creates the schema.
    pub async fn connect(config: &PostgresSinkConfig) -> Result<Self, SinkError> {
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let write_timeout = Duration::from_millis(config.write_timeout_ms);
        let mut settings = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| SinkError::Postgres(PostgresError::Config(e)))?;
        settings.connect_timeout(connect_timeout);
        settings.options(format!("-c statement_timeout={}", config.write_timeout_ms));
        settings.application_name("eventkit");
        let manager = Manager::from_config(
            settings,
            NoTls,
            ManagerConfig {
                // A connection given back after a cancelled write may be mid-COPY: test each.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| SinkError::Postgres(e.into()))?;
        let sink = Self {
            pool,
            schema: config.schema.clone(),
            write_timeout,
            created: tokio::sync::Mutex::new(HashSet::new()),
        };
        let client = sink.client().await?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS {}", ddl::quote(&sink.schema));
        client.batch_execute(&create).await?;
        Ok(sink)
    }

    /// A round trip on a pooled connection: for a readiness check.
    pub async fn probe(&self) -> Result<(), SinkError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The schema-qualified, quoted name of a stream's table.
    pub fn table_name(&self, stream: &str) -> String {
        format!("{}.{}", ddl::quote(&self.schema), ddl::quote(stream))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SinkError> {
        self.pool
            .get()
            .await
            .map_err(|e| SinkError::Postgres(e.into()))
    }

    async fn ensure_table(&self, shape: &TableShape) -> Result<(), SinkError> {
        let mut created = self.created.lock().await;
        if created.contains(&shape.stream) {
            return Ok(());
        }
        let client = self.client().await?;
        client
            .batch_execute(&shape.create_statements(&self.schema))
            .await?;
        created.insert(shape.stream.clone());
        Ok(())
    }

    async fn load(&self, shape: &TableShape, table: &Table) -> Result<u64, SinkError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(&shape.create_stage(&self.schema))
            .await?;
        let copy = transaction.copy_in(&shape.copy_into_stage()).await?;
        let writer = BinaryCopyInWriter::new(copy, &shape.types());
        let cells = cells::Cells::of(&table.rows, shape);
        futures::pin_mut!(writer);
        for row in 0..table.num_rows() {
            writer.as_mut().write_raw(cells.row(row)).await?;
        }
        writer.finish().await?;
        let inserted = transaction
            .execute(&shape.move_from_stage(&self.schema), &[])
            .await?;
        transaction.commit().await?;
        Ok(inserted)
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn write(&self, table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError> {
        let shape = TableShape::of(&table)?;
        let write = async {
            self.ensure_table(&shape).await?;
            self.load(&shape, &table).await
        };
        let inserted = tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| SinkError::Postgres(PostgresError::Timeout(self.write_timeout)))??;
        tracing::debug!(stream = %table.stream, rows = table.num_rows(), inserted, "rows stored in PostgreSQL");
        Ok(vec![WrittenFile {
            path: self.table_name(&table.stream),
            rows: table.num_rows(),
            bytes: 0,
        }])
    }
}

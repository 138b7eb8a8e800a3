//! The sink contract: turn a table of records into stored files. A sink knows nothing of the
//! queue that fed it; the batcher above it owns retry policy and acknowledgement.

use std::sync::Arc;

use async_trait::async_trait;
use eventkit_model::Table;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("encoding records failed: {0}")]
    Encode(#[from] parquet::errors::ParquetError),
    #[error("the table has no {0} column")]
    MissingColumn(&'static str),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("writer task failed: {0}")]
    Task(String),
    #[error("postgres: {0}")]
    Postgres(#[from] crate::postgres::PostgresError),
}

/// A file that is stored whole: readers can see it, and nothing of it is partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: String,
    pub rows: usize,
    pub bytes: u64,
}

#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Resolves only once every row of `table` is in a stored file; on error nothing the call
    /// created is visible, so the caller may simply try the same table again.
    async fn write(&self, table: Arc<Table>) -> Result<Vec<WrittenFile>, SinkError>;
}

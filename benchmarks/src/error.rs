//! Errors of the library half of the generator; `main` wraps them in `anyhow`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading parquet {name}: {detail}")]
    Parquet { name: String, detail: String },
    #[error("object store listing: {0}")]
    Listing(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ceiling server: {0}")]
    Ceiling(String),
}

impl BenchError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

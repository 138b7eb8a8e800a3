//! Reads back what the collector stored, for the end-to-end loss and freshness check.

mod gcs;
mod local;
mod parquet_ids;

use std::path::PathBuf;

pub use gcs::GcsSink;
pub use parquet_ids::message_ids;

use crate::error::{BenchError, Result};
use crate::ids::Ids;
use crate::ledger::Landed;

/// Where the collector under test writes, as the generator must read it.
#[derive(Clone, Debug)]
pub enum Sink {
    File(PathBuf),
    Gcs(GcsSink),
    /// `memory://` or the ceiling server: nothing to read back, so no loss check.
    Unchecked(String),
}

impl Sink {
    /// `storage_emulator_host` is the value of `STORAGE_EMULATOR_HOST`, needed for `gs://`.
    pub fn parse(url: &str, storage_emulator_host: Option<&str>) -> Result<Sink> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(BenchError::Invalid(format!(
                    "file sink must be absolute: {url}"
                )));
            }
            return Ok(Sink::File(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let host = storage_emulator_host.ok_or_else(|| {
                BenchError::Invalid(
                    "a gs:// sink is read through the emulator: set STORAGE_EMULATOR_HOST".into(),
                )
            })?;
            return Ok(Sink::Gcs(GcsSink::new(host, rest)));
        }
        if url.starts_with("memory://") {
            return Ok(Sink::Unchecked(url.into()));
        }
        Err(BenchError::Invalid(format!("unsupported sink url {url:?}")))
    }

    pub fn describe(&self) -> String {
        match self {
            Sink::File(p) => format!("file://{}", p.display()),
            Sink::Gcs(g) => g.describe(),
            Sink::Unchecked(u) => u.clone(),
        }
    }

    pub fn checkable(&self) -> bool {
        !matches!(self, Sink::Unchecked(_))
    }

    /// Every output file of `stream`, mapped to this scenario's sequence numbers.
    pub async fn read(
        &self,
        client: &reqwest::Client,
        stream: &str,
        ids: &Ids,
    ) -> Result<Vec<Landed>> {
        match self {
            Sink::File(root) => local::read(root, stream, ids),
            Sink::Gcs(g) => g.read(client, stream, ids).await,
            Sink::Unchecked(_) => Ok(Vec::new()),
        }
    }
}

pub(crate) fn to_landed(
    ids: &Ids,
    landed_at: std::time::SystemTime,
    message_ids: Vec<String>,
) -> Landed {
    let mut seqs = Vec::with_capacity(message_ids.len());
    let mut foreign = 0;
    for m in &message_ids {
        match ids.parse(m) {
            Some(s) => seqs.push(s),
            None => foreign += 1,
        }
    }
    Landed {
        landed_at,
        seqs,
        foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_urls() {
        assert!(
            matches!(Sink::parse("file:///tmp/x", None), Ok(Sink::File(p)) if p == std::path::Path::new("/tmp/x"))
        );
        assert!(Sink::parse("file://rel", None).is_err());
        assert!(Sink::parse("gs://b/p", None).is_err());
        assert!(matches!(
            Sink::parse("gs://b/p", Some("localhost:4443")),
            Ok(Sink::Gcs(_))
        ));
        assert!(matches!(
            Sink::parse("memory://", None),
            Ok(Sink::Unchecked(_))
        ));
        assert!(Sink::parse("s3://x", None).is_err());
    }
}

//! Reads back what the collector stored, for the end-to-end loss and freshness check. Local
//! directories and `gs://` buckets are read through the same object stores the collector
//! writes with (`eventkit_sinks::store`), so listing and reading have one code path.

mod parquet_ids;

use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};

pub use parquet_ids::message_ids;

use crate::error::{BenchError, Result};
use crate::ids::Ids;
use crate::ledger::Landed;

/// Where the collector under test writes, as the generator must read it.
#[derive(Clone, Debug)]
pub struct Sink {
    url: String,
    /// `None` for `memory://`: nothing to read back, so no loss check.
    store: Option<Arc<dyn ObjectStore>>,
}

impl Sink {
    /// `storage_emulator_host` is the value of `STORAGE_EMULATOR_HOST`, needed for `gs://`:
    /// the generator reads the emulator, never a real bucket.
    pub fn parse(url: &str, storage_emulator_host: Option<&str>) -> Result<Sink> {
        let invalid = |why: String| BenchError::Invalid(why);
        let store = if url.starts_with("memory://") {
            None
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(format!("file sink must be absolute: {url}")));
            }
            // The collector creates the directory on its first write; reading it before then
            // must find an empty stream, not fail.
            std::fs::create_dir_all(path).map_err(|e| BenchError::io(path, e))?;
            Some(open(url, None)?)
        } else if url.starts_with("gs://") {
            let host = storage_emulator_host.ok_or_else(|| {
                invalid(
                    "a gs:// sink is read through the emulator: set STORAGE_EMULATOR_HOST".into(),
                )
            })?;
            Some(open(url, Some(host))?)
        } else {
            return Err(invalid(format!("unsupported sink url {url:?}")));
        };
        Ok(Sink {
            url: url.to_owned(),
            store,
        })
    }

    pub fn describe(&self) -> String {
        self.url.clone()
    }

    pub fn checkable(&self) -> bool {
        self.store.is_some()
    }

    /// Every finished output file of `stream`, mapped to this scenario's sequence numbers.
    /// A file's landing time is its last-modified time: the mtime on disk, the object's
    /// `updated` time (upload complete) on GCS.
    pub async fn read(&self, stream: &str, ids: &Ids) -> Result<Vec<Landed>> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let prefix = Path::from(format!("stream={stream}"));
        let objects: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| BenchError::Listing(format!("listing {prefix}: {e}")))?;
        let mut out = Vec::with_capacity(objects.len());
        // Writers stage files under other names and rename; only finished files count.
        for meta in objects
            .into_iter()
            .filter(|m| m.location.as_ref().ends_with(".parquet"))
        {
            let name = meta.location.to_string();
            let read = async { store.get(&meta.location).await?.bytes().await };
            let data = read
                .await
                .map_err(|e| BenchError::Listing(format!("reading {name}: {e}")))?;
            let landed_at = std::time::SystemTime::from(meta.last_modified);
            let mut landed = to_landed(ids, landed_at, message_ids(data, &name)?);
            landed.bytes = meta.size;
            out.push(landed);
        }
        Ok(out)
    }
}

fn open(url: &str, gcs_endpoint: Option<&str>) -> Result<Arc<dyn ObjectStore>> {
    eventkit_sinks::store::open_store_with(url, gcs_endpoint)
        .map_err(|e| BenchError::Invalid(e.to_string()))
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
        bytes: 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_urls() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let file = format!("file://{}", dir.path().display());
        assert!(Sink::parse(&file, None).is_ok_and(|s| s.checkable()));
        assert!(Sink::parse("file://rel", None).is_err());
        assert!(Sink::parse("gs://b/p", None).is_err());
        assert!(Sink::parse("gs://b/p", Some("localhost:4443")).is_ok_and(|s| s.checkable()));
        assert!(Sink::parse("memory://", None).is_ok_and(|s| !s.checkable()));
        assert!(Sink::parse("s3://x", None).is_err());
    }

    #[tokio::test]
    async fn reads_finished_files_of_one_stream_with_their_landing_time() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let ids = Ids::new("run", 'b');
        let hour = dir.path().join("stream=web/date=2026-01-01/hour=00");
        let other = dir.path().join("stream=app");
        for d in [&hour, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        let file = parquet_ids::tests::file_with_ids(&[&ids.message_id(1), "other-run-x1"]);
        std::fs::write(hour.join("a.parquet"), &file).unwrap();
        std::fs::write(hour.join("b.parquet.tmp"), &file).unwrap();
        std::fs::write(other.join("c.parquet"), &file).unwrap();
        let sink = Sink::parse(&format!("file://{}", dir.path().display()), None).unwrap();
        let landed = sink.read("web", &ids).await.unwrap();
        assert_eq!(landed.len(), 1, "only the finished file of stream web");
        assert_eq!((landed[0].seqs.clone(), landed[0].foreign), (vec![1], 1));
        let mtime = std::fs::metadata(hour.join("a.parquet"))
            .unwrap()
            .modified()
            .unwrap();
        let skew = landed[0]
            .landed_at
            .duration_since(mtime)
            .unwrap_or_default();
        assert!(skew.as_secs() < 1, "landing time is the file's mtime");
    }
}

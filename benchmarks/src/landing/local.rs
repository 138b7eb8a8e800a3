//! `file://` sinks: walk `<root>/stream=<s>/…` for Parquet files.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{message_ids, to_landed};
use crate::error::{BenchError, Result};
use crate::ids::Ids;
use crate::ledger::Landed;

/// Runs after the load has stopped, so reading synchronously on the runtime blocks nothing
/// that is being measured.
pub fn read(root: &Path, stream: &str, ids: &Ids) -> Result<Vec<Landed>> {
    let dir = root.join(format!("stream={stream}"));
    let mut files = Vec::new();
    if dir.exists() {
        walk(&dir, &mut files)?;
    }
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let meta = std::fs::metadata(&path).map_err(|e| BenchError::io(&path, e))?;
        // A file's mtime is when its last byte was written, i.e. when it became readable.
        let landed_at = meta.modified().map_err(|e| BenchError::io(&path, e))?;
        let data = std::fs::read(&path).map_err(|e| BenchError::io(&path, e))?;
        let rows = message_ids(Bytes::from(data), &path.display().to_string())?;
        out.push(to_landed(ids, landed_at, rows));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| BenchError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| BenchError::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            // Writers stage files under other names and rename; only finished files count.
            out.push(path);
        }
    }
    Ok(())
}

//! A segment file's bookkeeping: how many of its deliveries are still unstored, whether it can
//! still grow, and the disk budget every segment draws on. The last of "sealed" and "every
//! delivery stored" to happen deletes the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every segment starts with this: the format's name and version (see specs/wal.md).
pub(super) const MAGIC: [u8; 8] = *b"EKWAL\0\0\x02";
pub(super) const EXTENSION: &str = "wal";

/// Bytes of segment files on disk, against `queue.wal_max_bytes`.
#[derive(Debug)]
pub(super) struct DiskBudget {
    used: AtomicU64,
    max: u64,
}

impl DiskBudget {
    pub(super) fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max,
        }
    }

    pub(super) fn max(&self) -> u64 {
        self.max
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= self.max).then_some(used + bytes)
            })
            .is_ok()
    }

    /// For bytes already on disk (replayed segments, segment headers): counted, never refused.
    pub(super) fn add(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    pub(super) fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub(super) fn fits(&self, bytes: u64) -> bool {
        self.used() + bytes <= self.max
    }
}

/// Set in `state` once nothing more will be appended; the rest of `state` counts deliveries
/// written to the segment and not yet stored in a file.
const SEALED: u64 = 1 << 63;

#[derive(Debug)]
pub(super) struct Segment {
    pub(super) id: u64,
    path: PathBuf,
    state: AtomicU64,
    /// The file's length, header included: what its deletion gives back to the budget. Only the
    /// writer grows it, before sealing, so it is final by the time the file can be deleted.
    bytes: AtomicU64,
    disk: Arc<DiskBudget>,
}

impl Segment {
    pub(super) fn new(dir: &Path, id: u64, bytes: u64, disk: Arc<DiskBudget>) -> Self {
        Self {
            id,
            path: path_of(dir, id),
            state: AtomicU64::new(0),
            bytes: AtomicU64::new(bytes),
            disk,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    pub(super) fn grow(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// `deliveries` more of this segment's records are on their way to the batcher.
    pub(super) fn hold(&self, deliveries: u64) {
        self.state.fetch_add(deliveries, Ordering::AcqRel);
    }

    /// `deliveries` of this segment's records are stored in files (or were never handed on).
    pub(super) fn release(&self, deliveries: u64) {
        let before = self.state.fetch_sub(deliveries, Ordering::AcqRel);
        if before == SEALED | deliveries {
            self.delete();
        }
    }

    pub(super) fn seal(&self) {
        if self.state.fetch_or(SEALED, Ordering::AcqRel) == 0 {
            self.delete();
        }
    }

    fn delete(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            // Left behind, its records are replayed at the next start: duplicates, not loss.
            Err(error) => {
                tracing::warn!(%error, path = %self.path.display(), "cannot delete a WAL segment");
            }
        }
        self.disk.give_back(self.bytes());
        metrics::gauge!(crate::telemetry::WAL_BYTES).set(self.disk.used() as f64);
        tracing::debug!(segment = self.id, "WAL segment stored and deleted");
    }
}

pub(super) fn path_of(dir: &Path, id: u64) -> PathBuf {
    // Zero-padded so a directory listing sorts in write order.
    dir.join(format!("{id:020}.{EXTENSION}"))
}

/// The ids of the segment files in `dir`, oldest first.
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        if let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

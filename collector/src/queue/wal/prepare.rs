//! The next segment file, made before it is needed with its whole size written as zeros. A write
//! inside space the file already holds needs no inode update before `fdatasync` returns, which
//! makes each sync much shorter (benchmarks/results/wal.md), and a thread of its own does the
//! zeroing so that no request waits for it.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::segment::MAGIC;

/// Where the next segment is prepared, under a name replay does not read: it becomes a segment
/// only when renamed to one, and a start removes any a crash left.
pub(super) const PREPARED_FILE: &str = "next-segment";
/// Zeroing costs a write of its own size, so a larger segment is zeroed only this far and then
/// grows as it is written.
const MAX_PREPARED_BYTES: u64 = 64 * 1024 * 1024;
/// Zeros are written this much at a time: large enough for few calls, small enough to borrow.
const ZEROS_PER_WRITE: usize = 1024 * 1024;

pub(super) struct Preparing {
    path: PathBuf,
    done: JoinHandle<std::io::Result<File>>,
}

impl Preparing {
    pub(super) fn start(dir: &Path, segment_bytes: u64) -> std::io::Result<Self> {
        let path = dir.join(PREPARED_FILE);
        let file_path = path.clone();
        let bytes = segment_bytes.min(MAX_PREPARED_BYTES);
        let done = std::thread::Builder::new()
            .name("eventkit-wal-prepare".to_owned())
            .spawn(move || prepare(&file_path, bytes))?;
        Ok(Self { path, done })
    }

    /// The prepared file renamed to `segment`, positioned after its header; `None` if preparing
    /// or renaming it failed (a full disk, say), and then nothing of it is left behind.
    pub(super) fn finish_as(self, segment: &Path, dir: &Path) -> Option<File> {
        let path = self.path.clone();
        let renamed = self.join().and_then(|file| {
            std::fs::rename(&path, segment)?;
            // The new name must survive a crash too, or records written to it would vanish.
            File::open(dir)?.sync_all()?;
            Ok(file)
        });
        renamed
            .inspect_err(|error| {
                tracing::warn!(%error, dir = %dir.display(), "cannot use a preallocated WAL segment; appending to a new file instead");
                remove(&path);
            })
            .ok()
    }

    /// Removes the file unused: the log is closing.
    pub(super) fn discard(self) {
        let path = self.path.clone();
        drop(self.join());
        remove(&path);
    }

    fn join(self) -> std::io::Result<File> {
        self.done
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the preparing thread panicked")))
    }
}

fn prepare(path: &Path, bytes: u64) -> std::io::Result<File> {
    let mut file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(&MAGIC)?;
    let zeros = vec![0; ZEROS_PER_WRITE];
    let mut left = bytes.saturating_sub(MAGIC.len() as u64);
    while left > 0 {
        let chunk = usize::try_from(left).map_or(ZEROS_PER_WRITE, |l| l.min(ZEROS_PER_WRITE));
        file.write_all(&zeros[..chunk])?;
        left -= chunk as u64;
    }
    file.sync_all()?;
    file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
    Ok(file)
}

/// Removes a prepared file left unused (here, or by a crash before this start).
pub(super) fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        // Left behind, it is removed at the next start.
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot remove an unused WAL segment");
        }
    }
}

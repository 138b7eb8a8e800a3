//! `async` mode with `queue.durability = "wal"`: the in-process queue behind a write-ahead log.
//! A request is answered only once its record is appended and fdatasynced (group commit, in
//! `writer.rs`); the batcher is fed from memory as before, and each stored delivery releases
//! its hold on the segment it was written to. A segment is deleted once it is sealed and all its
//! deliveries are stored. At start, the segments left by the last run are checked (a torn or
//! corrupt tail is cut off at the last whole record) and replayed into the queue. The format is
//! in specs/wal.md.

mod frame;
mod prepare;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use eventkit_model::Batch;
use tokio::sync::oneshot;

use self::segment::{DiskBudget, MAGIC, Segment};
use self::writer::{Command, WalStats, Writer};
use super::in_process::OnStored;
use super::{Consumer, Delivery, InProcessConsumer, InProcessQueue, Queue, QueueError};
use crate::ingest::MAX_ENRICHED_REQUEST_BYTES;

/// How often a replay waiting for queue capacity looks again; the batcher frees capacity as
/// files are stored, in batches, so waking sooner would mostly find none.
const REPLAY_RETRY: Duration = Duration::from_millis(5);

/// Held exclusively while a process uses the directory: two writers would interleave records.
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    /// Bound on the segment files' total size; past it requests get 503 + `Retry-After`.
    pub max_bytes: u64,
    /// A segment is closed, and a new one started, once it reaches this size.
    pub segment_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("queue.wal_dir {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("queue.wal_dir {} is in use by another eventkit process", .0.display())]
    Locked(PathBuf),
    #[error("{}: not a WAL segment this version reads; move it away to start", .0.display())]
    Format(PathBuf),
    #[error("the queue closed before the WAL was replayed")]
    Closed,
}

pub struct WalQueue {
    memory: Arc<InProcessQueue>,
    commands: mpsc::Sender<Command>,
    disk: Arc<DiskBudget>,
    stats: Arc<WalStats>,
    _lock: File,
}

pub struct WalConsumer {
    memory: InProcessConsumer,
    disk: Arc<DiskBudget>,
}

/// The records the last run left, to be enqueued by [`Replay::run`] once the batcher is
/// consuming (they may not all fit in the queue at once) and before traffic is accepted.
#[must_use = "the records of the last run are stored only when the replay is run"]
pub struct Replay {
    memory: Arc<InProcessQueue>,
    segments: Vec<Arc<Segment>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub segments: usize,
    pub records: usize,
    pub events: usize,
}

impl WalQueue {
    /// Opens (or creates) the log in `options.dir` in front of an in-process queue of the given
    /// capacity. Torn tails are cut off here; their records are replayed by the returned
    /// [`Replay`].
    pub fn open(
        options: &WalOptions,
        event_capacity: usize,
        byte_capacity: usize,
    ) -> Result<(Arc<Self>, WalConsumer, Replay), WalError> {
        let dir = options.dir.clone();
        let io = |source| WalError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(WalError::Locked(dir)),
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        prepare::remove(&dir.join(prepare::PREPARED_FILE));
        let disk = Arc::new(DiskBudget::new(options.max_bytes));
        let ids = segment::list(&dir).map_err(io)?;
        let mut segments = Vec::new();
        for &id in &ids {
            if let Some(segment) = recover(&dir, id, &disk)? {
                segments.push(segment);
            }
        }
        let stats = Arc::new(WalStats::default());
        let next_id = ids.last().map_or(0, |last| last + 1);
        let writer = Writer::new(
            dir.clone(),
            next_id,
            options.segment_bytes,
            disk.clone(),
            stats.clone(),
        );
        let commands = writer.spawn().map_err(io)?;
        let (memory, consumer) = InProcessQueue::new(event_capacity, byte_capacity);
        let queue = Arc::new(Self {
            memory: memory.clone(),
            commands,
            disk: disk.clone(),
            stats,
            _lock: lock,
        });
        let consumer = WalConsumer {
            memory: consumer,
            disk,
        };
        Ok((queue, consumer, Replay { memory, segments }))
    }

    /// fdatasyncs of appended records so far: requests answered per sync is the group commit.
    pub fn fsyncs(&self) -> u64 {
        self.stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests appended so far.
    pub fn appends(&self) -> u64 {
        self.stats
            .appends
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Checks segment `id` and cuts it after its last whole record. `None`: nothing in it to replay
/// (and it is gone).
fn recover(dir: &Path, id: u64, disk: &Arc<DiskBudget>) -> Result<Option<Arc<Segment>>, WalError> {
    let path = segment::path_of(dir, id);
    let io = |source| WalError::Io {
        dir: dir.to_owned(),
        source,
    };
    let bytes = std::fs::read(&path).map_err(io)?;
    let Some(records) = bytes.strip_prefix(&MAGIC) else {
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            // Cut off while it was being created: no record ever reached it.
            std::fs::remove_file(&path).map_err(io)?;
            return Ok(None);
        }
        return Err(WalError::Format(path));
    };
    let (payloads, valid) = frame::valid_prefix(records);
    let keep = MAGIC.len() + valid;
    if keep < bytes.len() {
        // Zeros are the preallocated space no record reached yet, not damage.
        if bytes
            .get(keep..)
            .is_some_and(|tail| tail.iter().any(|&byte| byte != 0))
        {
            tracing::warn!(
                segment = %path.display(),
                records = payloads.len(),
                dropped_bytes = bytes.len() - keep,
                "WAL segment ends in a torn or corrupt record; cutting it off after the last whole one"
            );
        }
        let file = File::options().write(true).open(&path).map_err(io)?;
        file.set_len(keep as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    if payloads.is_empty() {
        std::fs::remove_file(&path).map_err(io)?;
        return Ok(None);
    }
    disk.add(keep as u64);
    Ok(Some(Arc::new(Segment::new(
        dir,
        id,
        keep as u64,
        disk.clone(),
    ))))
}

impl Replay {
    /// Enqueues every record the last run left, waiting for capacity as the batcher frees it.
    pub async fn run(self) -> Result<Replayed, WalError> {
        let mut replayed = Replayed::default();
        for segment in self.segments {
            let path = segment.path().to_owned();
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|source| WalError::Io {
                    dir: path.clone(),
                    source,
                })?;
            let (payloads, _) = frame::valid_prefix(bytes.get(MAGIC.len()..).unwrap_or_default());
            let mut whole = true;
            for payload in payloads {
                let batches = match frame::decode(payload) {
                    Ok(batches) => batches,
                    Err(error) => {
                        // Its checksum held, so the bytes are as written: a format bug. The
                        // segment is kept (never deleted) so nothing in it is lost.
                        tracing::error!(%error, segment = %path.display(), "a WAL record cannot be decoded; keeping the segment");
                        whole = false;
                        continue;
                    }
                };
                replayed.records += 1;
                for batch in batches {
                    let events = batch.records.len();
                    if enqueue_replayed(&self.memory, batch, &segment).await? {
                        replayed.events += events;
                    } else {
                        whole = false;
                    }
                }
            }
            if whole {
                segment.seal();
            }
            replayed.segments += 1;
        }
        Ok(replayed)
    }
}

/// One replayed batch into the queue, holding its segment until it is stored. `false`: it can
/// never fit the queue (its capacity was lowered since), so it stays in the log.
async fn enqueue_replayed(
    memory: &InProcessQueue,
    batch: Batch,
    segment: &Arc<Segment>,
) -> Result<bool, WalError> {
    loop {
        match memory.reserve(std::slice::from_ref(&batch)) {
            Ok(reservation) => {
                segment.hold(1);
                // Refused only by a close; the hold then stays, keeping the segment for the
                // next start.
                return reservation
                    .commit(std::iter::once((batch, Some(release_on_stored(segment)))))
                    .map(|()| true)
                    .map_err(|_| WalError::Closed);
            }
            Err(QueueError::Full) => tokio::time::sleep(REPLAY_RETRY).await,
            Err(QueueError::TooLarge(what)) => {
                tracing::error!(
                    what,
                    segment = segment.id,
                    "a replayed batch exceeds queue.capacity; it stays in the WAL"
                );
                return Ok(false);
            }
            Err(QueueError::Closed | QueueError::Backend(_) | QueueError::Unavailable(_)) => {
                return Err(WalError::Closed);
            }
        }
    }
}

fn release_on_stored(segment: &Arc<Segment>) -> OnStored {
    let segment = segment.clone();
    Box::new(move || segment.release(1))
}

#[async_trait]
impl Queue for WalQueue {
    async fn enqueue(&self, batches: Vec<Batch>) -> Result<(), QueueError> {
        if self.memory.is_closed() {
            return Err(QueueError::Closed);
        }
        let frame = frame::encode(&batches).map_err(|error| match error {
            frame::FrameError::TooLarge(_) => QueueError::TooLarge(error.to_string()),
            frame::FrameError::Encode(_) => QueueError::Backend(error.to_string()),
        })?;
        let bytes = frame.len() as u64;
        if bytes > self.disk.max() {
            return Err(QueueError::TooLarge(format!(
                "a request of {bytes} bytes in the write-ahead log"
            )));
        }
        let reservation = self.memory.reserve(&batches)?;
        if !self.disk.try_take(bytes) {
            return Err(QueueError::Full);
        }
        let deliveries = batches.len() as u64;
        let (done, appended) = oneshot::channel();
        let append = Command::Append {
            frame,
            deliveries,
            done,
        };
        if self.commands.send(append).is_err() {
            self.disk.give_back(bytes);
            return Err(QueueError::Backend("the WAL writer stopped".to_owned()));
        }
        let segment = appended
            .await
            .map_err(|_| QueueError::Backend("the WAL writer stopped".to_owned()))??;
        reservation
            .commit(
                batches
                    .into_iter()
                    .map(|batch| (batch, Some(release_on_stored(&segment)))),
            )
            .inspect_err(|_| segment.release(deliveries))
    }

    fn depth(&self) -> usize {
        self.memory.depth()
    }

    fn has_room(&self) -> bool {
        self.memory.has_room() && self.disk.fits(MAX_ENRICHED_REQUEST_BYTES)
    }

    fn close(&self) {
        self.memory.close();
        // Sealing the segment being written lets it be deleted once its deliveries are stored,
        // so a clean stop leaves an empty log.
        let _ = self.commands.send(Command::Seal);
    }
}

#[async_trait]
impl Consumer for WalConsumer {
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize {
        self.memory.next_many(into, max).await
    }

    fn is_backlogged(&self) -> bool {
        // A full log frees up only as segments' deliveries are stored, as a full queue does.
        self.memory.is_backlogged() || !self.disk.fits(MAX_ENRICHED_REQUEST_BYTES)
    }
}

//! The one thread that appends to the log. Group commit: it takes every append waiting, writes
//! them with one `write`, makes them durable with one `fdatasync`, then answers each request,
//! so concurrent requests share a sync instead of queueing for one each.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::prepare::Preparing;
use super::segment::{DiskBudget, MAGIC, Segment, path_of};
use crate::queue::QueueError;
use crate::telemetry;

/// Bytes one group may gather before it is written: a bound on the latency a request waits
/// behind others' records (4 MiB take ~20 ms to write and sync here), not on memory, which the
/// queue's capacity already bounds.
const MAX_GROUP_BYTES: usize = 4 * 1024 * 1024;

pub(super) type Appended = Result<Arc<Segment>, QueueError>;

pub(super) enum Command {
    /// One request's framed record; its disk budget is already taken and passes to the writer.
    Append {
        frame: Vec<u8>,
        deliveries: u64,
        done: oneshot::Sender<Appended>,
    },
    /// Close the segment being written and refuse further appends: the queue is closing.
    Seal,
}

/// Counts kept for tests and figures (the metrics are process-wide; these are per log).
#[derive(Debug, Default)]
pub(crate) struct WalStats {
    pub(crate) fsyncs: AtomicU64,
    pub(crate) appends: AtomicU64,
}

struct Active {
    file: File,
    segment: Arc<Segment>,
}

struct Waiter {
    deliveries: u64,
    done: oneshot::Sender<Appended>,
}

/// Starts zeroing the next segment; a failure to start only costs the speed-up.
fn prepare(dir: &std::path::Path, segment_bytes: u64) -> Option<Preparing> {
    Preparing::start(dir, segment_bytes)
        .inspect_err(|error| tracing::warn!(%error, "cannot start preparing a WAL segment"))
        .ok()
}

pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) next_id: u64,
    pub(super) segment_bytes: u64,
    pub(super) disk: Arc<DiskBudget>,
    pub(super) stats: Arc<WalStats>,
    active: Option<Active>,
    /// The segment after the active one, being zeroed ahead of need.
    next: Option<Preparing>,
    closed: bool,
    group: Vec<u8>,
    waiters: Vec<Waiter>,
}

impl Writer {
    pub(super) fn new(
        dir: PathBuf,
        next_id: u64,
        segment_bytes: u64,
        disk: Arc<DiskBudget>,
        stats: Arc<WalStats>,
    ) -> Self {
        let next = prepare(&dir, segment_bytes);
        Self {
            dir,
            next_id,
            segment_bytes,
            disk,
            stats,
            active: None,
            next,
            closed: false,
            group: Vec::new(),
            waiters: Vec::new(),
        }
    }

    pub(super) fn spawn(self) -> std::io::Result<mpsc::Sender<Command>> {
        let (commands, received) = mpsc::channel();
        std::thread::Builder::new()
            .name("eventkit-wal".to_owned())
            .spawn(move || self.run(received))?;
        Ok(commands)
    }

    pub(super) fn run(mut self, commands: mpsc::Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            self.take(first);
            while self.group.len() < MAX_GROUP_BYTES {
                match commands.try_recv() {
                    Ok(command) => self.take(command),
                    Err(_) => break,
                }
            }
            self.commit();
        }
        // Every sender is gone: the queue was dropped.
        self.close();
    }

    fn close(&mut self) {
        self.seal_active();
        if let Some(unused) = self.next.take() {
            unused.discard();
        }
        self.closed = true;
    }

    fn take(&mut self, command: Command) {
        match command {
            Command::Append { frame, done, .. } if self.closed => {
                self.disk.give_back(frame.len() as u64);
                let _ = done.send(Err(QueueError::Closed));
            }
            Command::Append {
                frame,
                deliveries,
                done,
            } => {
                self.group.extend_from_slice(&frame);
                self.waiters.push(Waiter { deliveries, done });
            }
            Command::Seal => {
                self.commit();
                self.close();
            }
        }
    }

    /// Writes and syncs the group, then answers its requests.
    fn commit(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        match self.write_group() {
            Ok(segment) => {
                self.stats
                    .appends
                    .fetch_add(self.waiters.len() as u64, Ordering::Relaxed);
                for Waiter { deliveries, done } in self.waiters.drain(..) {
                    // Held before the answer, so the segment cannot be deleted under a
                    // delivery still on its way to the batcher.
                    segment.hold(deliveries);
                    if done.send(Ok(segment.clone())).is_err() {
                        // The request was abandoned (its client went away): nothing will ack it.
                        segment.release(deliveries);
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, dir = %self.dir.display(), "cannot append to the WAL; refusing the requests");
                // What part of the group reached the file is unknown: write the next one to a
                // fresh segment rather than after bytes that may be half a record.
                self.seal_active();
                let reason = format!("write-ahead log: {error}");
                for Waiter { done, .. } in self.waiters.drain(..) {
                    let _ = done.send(Err(QueueError::Backend(reason.clone())));
                }
            }
        }
        self.group.clear();
        metrics::gauge!(telemetry::WAL_BYTES).set(self.disk.used() as f64);
    }

    fn write_group(&mut self) -> std::io::Result<Arc<Segment>> {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.segment.bytes() >= self.segment_bytes)
        {
            self.seal_active();
        }
        if self.active.is_none() {
            match self.create_segment() {
                Ok(active) => self.active = Some(active),
                Err(error) => {
                    // No segment holds the group's bytes, so none would give them back.
                    self.disk.give_back(self.group.len() as u64);
                    return Err(error);
                }
            }
        }
        let Some(active) = self.active.as_mut() else {
            return Err(std::io::Error::other("no segment to write to"));
        };
        // Counted before the write: whatever it leaves in the file is given back on deletion.
        active.segment.grow(self.group.len() as u64);
        active.file.write_all(&self.group)?;
        active.file.sync_data()?;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::WAL_FSYNCS).increment(1);
        Ok(active.segment.clone())
    }

    fn create_segment(&mut self) -> std::io::Result<Active> {
        let id = self.next_id;
        let path = path_of(&self.dir, id);
        let prepared = self
            .next
            .take()
            .and_then(|next| next.finish_as(&path, &self.dir));
        let file = match prepared {
            Some(file) => {
                self.next_id += 1;
                file
            }
            None => self.create_unprepared(id)?,
        };
        if !self.closed {
            self.next = prepare(&self.dir, self.segment_bytes);
        }
        self.disk.add(MAGIC.len() as u64);
        let segment = Arc::new(Segment::new(
            &self.dir,
            id,
            MAGIC.len() as u64,
            self.disk.clone(),
        ));
        Ok(Active { file, segment })
    }

    /// A segment that grows as it is written, when none could be prepared.
    fn create_unprepared(&mut self, id: u64) -> std::io::Result<File> {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(path_of(&self.dir, id))?;
        // Past this id even if the rest fails: a half-made file keeps its name until replay.
        self.next_id += 1;
        file.write_all(&MAGIC)?;
        file.sync_all()?;
        // The new name must survive a crash too, or its records would vanish with it.
        File::open(&self.dir)?.sync_all()?;
        Ok(file)
    }

    fn seal_active(&mut self) {
        if let Some(active) = self.active.take() {
            active.segment.seal();
        }
    }
}

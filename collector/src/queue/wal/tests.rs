use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, TimeZone, Utc};
use eventkit_model::{Batch, Event, EventType, Records, Text, TextFields, Times};

use super::segment::{self, DiskBudget, MAGIC};
use super::writer::{Command, WalStats, Writer};
use super::*;
use crate::queue::{Ack, Consumer, Delivery, Queue, QueueError};

fn options(dir: &Path, segment_bytes: u64) -> WalOptions {
    WalOptions {
        dir: dir.to_owned(),
        max_bytes: 1 << 30,
        segment_bytes,
    }
}

fn open(dir: &Path, segment_bytes: u64) -> (Arc<WalQueue>, WalConsumer, Replay) {
    WalQueue::open(&options(dir, segment_bytes), 1_000_000, 1 << 30)
        .unwrap_or_else(|e| panic!("open the WAL: {e}"))
}

/// An event whose message id is `id`, with some fields absent and one empty.
fn event(id: &str) -> Event {
    let at = Utc
        .timestamp_opt(1_700_000_000, 123_456_000)
        .single()
        .unwrap_or_default();
    let mut fields: TextFields = [None; Text::COUNT];
    fields[Text::MessageId as usize] = Some(id);
    fields[Text::Event as usize] = Some("Order Completed");
    fields[Text::UserId as usize] = Some("");
    fields[Text::Properties as usize] = Some(r#"{"total":12.5}"#);
    let times = Times {
        timestamp: at,
        original_timestamp: Some(at),
        sent_at: None,
        received_at: at,
    };
    Event::new(EventType::Track, times, &fields)
}

fn events(stream: &str, ids: impl IntoIterator<Item = String>) -> Batch {
    Batch {
        stream: stream.to_owned(),
        records: Records::Events(ids.into_iter().map(|id| event(&id)).collect()),
    }
}

/// Message ids of every delivery the consumer has until the queue is closed and drained.
async fn drain(queue: &WalQueue, consumer: &mut WalConsumer) -> (Vec<String>, Vec<Delivery>) {
    queue.close();
    let mut deliveries = Vec::new();
    while consumer.next_many(&mut deliveries, 1024).await > 0 {}
    let ids = deliveries
        .iter()
        .flat_map(|d| match &d.batch.records {
            Records::Events(events) => events
                .iter()
                .map(|e| e.message_id().to_owned())
                .collect::<Vec<_>>(),
            Records::Rejected(_) => vec![],
        })
        .collect();
    (ids, deliveries)
}

/// `time` as the columns keep it: to the microsecond.
fn to_the_microsecond(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or_default()
}

#[test]
fn a_record_reads_back_as_it_was_written() {
    let mut rejected = crate::queue::test_batch("_rejected", 2);
    if let Records::Rejected(records) = &mut rejected.records {
        for record in records {
            record.received_at = to_the_microsecond(record.received_at);
        }
    }
    let batches = vec![events("web", (0..3).map(|i| format!("m{i}"))), rejected];
    let framed = frame::encode(&batches).unwrap_or_default();
    let (payloads, valid) = frame::valid_prefix(&framed);
    assert_eq!(valid, framed.len());
    assert_eq!(payloads.len(), 1);
    assert_eq!(frame::decode(payloads[0]).ok(), Some(batches));
}

/// Finer digits would be lost in the Parquet columns anyway; the log keeps what they keep.
#[test]
fn times_are_logged_to_the_microsecond() {
    let mut event = event("m0");
    let sent = Utc.timestamp_opt(1_700_000_000, 123_456_789).single();
    event.times.sent_at = sent;
    let batch = Batch {
        stream: "web".to_owned(),
        records: Records::Events(vec![event]),
    };
    let framed = frame::encode(&[batch]).unwrap_or_default();
    let (payloads, _) = frame::valid_prefix(&framed);
    let decoded = payloads.first().and_then(|p| frame::decode(p).ok());
    let sent_at = decoded
        .as_deref()
        .and_then(|batches| match &batches[0].records {
            Records::Events(events) => events[0].times.sent_at,
            Records::Rejected(_) => None,
        });
    assert_eq!(sent_at, sent.map(to_the_microsecond));
    assert_eq!(
        sent_at.map(|t| t.timestamp_subsec_nanos()),
        Some(123_456_000)
    );
}

/// Every append queued before the writer looks is written and synced as one group.
#[tokio::test]
async fn appends_waiting_together_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let disk = Arc::new(DiskBudget::new(1 << 30));
    let stats = Arc::new(WalStats::default());
    let writer = Writer::new(dir.path().to_owned(), 0, 1 << 20, disk, stats.clone());
    let (commands, received) = std::sync::mpsc::channel();
    let mut answers = Vec::new();
    for i in 0..100 {
        let batch = events("web", [format!("m{i}")]);
        let (done, answer) = tokio::sync::oneshot::channel();
        let frame = frame::encode(&[batch]).unwrap_or_default();
        let _ = commands.send(Command::Append {
            frame,
            deliveries: 1,
            done,
        });
        answers.push(answer);
    }
    drop(commands);
    let thread = std::thread::spawn(move || writer.run(received));
    for answer in answers {
        assert!(matches!(answer.await, Ok(Ok(_))));
    }
    let _ = thread.join();
    assert_eq!(stats.appends.load(Ordering::Relaxed), 100);
    assert_eq!(stats.fsyncs.load(Ordering::Relaxed), 1);
}

/// Concurrent requests through the queue: all acknowledged, fewer syncs than requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_group_committed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (queue, mut consumer, replay) = open(dir.path(), 1 << 20);
    assert_eq!(replay.run().await.ok(), Some(Replayed::default()));
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let batch = events("web", [format!("t{task}-{i}")]);
                    queue.enqueue(vec![batch]).await?;
                }
                Ok::<(), QueueError>(())
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await, Ok(Ok(()))));
    }
    assert_eq!(queue.appends(), 320);
    assert!(queue.fsyncs() < 320, "{} fsyncs", queue.fsyncs());
    let (ids, _) = drain(&queue, &mut consumer).await;
    assert_eq!(ids.len(), 320);
}

fn segment_files(dir: &Path) -> Vec<u64> {
    segment::list(dir).unwrap_or_default()
}

/// A segment goes only once it is closed and every delivery in it is stored; a released
/// delivery keeps its segment, and its records come back at the next start.
#[tokio::test]
async fn segments_are_deleted_only_after_every_delivery_in_them_is_stored() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        // One byte per segment: every append after the first starts a new one.
        let (queue, mut consumer, replay) = open(dir.path(), 1);
        assert!(replay.run().await.is_ok());
        for request in 0..3 {
            let batches = vec![
                events("web", [format!("r{request}")]),
                events("app", [format!("r{request}-app")]),
            ];
            assert_eq!(queue.enqueue(batches).await, Ok(()));
        }
        assert_eq!(segment_files(dir.path()), [0, 1, 2]);
        let (ids, deliveries) = drain(&queue, &mut consumer).await;
        assert_eq!(ids, ["r0", "r0-app", "r1", "r1-app", "r2", "r2-app"]);
        let mut acks = deliveries.into_iter().map(|d| d.ack);
        let store = |ack: Option<Ack>| {
            if let Some(ack) = ack {
                ack.ack();
            }
        };

        // Segment 0: one of its two deliveries stored, the other released.
        store(acks.next());
        assert_eq!(segment_files(dir.path()), [0, 1, 2]);
        drop(acks.next());
        // Segment 1: both stored.
        store(acks.next());
        assert_eq!(segment_files(dir.path()), [0, 1, 2]);
        store(acks.next());
        assert_eq!(segment_files(dir.path()), [0, 2]);
        // Segment 2 is sealed by the close, which the writer thread takes in its own time: it
        // goes with the later of its seal and its last delivery.
        store(acks.next());
        store(acks.next());
        let sealed_by = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while segment_files(dir.path()) != [0] && std::time::Instant::now() < sealed_by {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(segment_files(dir.path()), [0]);
    }
    let (queue, mut consumer, replay) = open(dir.path(), 1);
    let replayed = replay.run().await.ok();
    assert_eq!(
        replayed.map(|r| (r.segments, r.records, r.events)),
        Some((1, 1, 2))
    );
    // The whole request comes back, the stored half too: a duplicate, never a loss.
    let (ids, deliveries) = drain(&queue, &mut consumer).await;
    assert_eq!(ids, ["r0", "r0-app"]);
    deliveries.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(segment_files(dir.path()), Vec::<u64>::new());
}

/// Whole frames of a segment file: where each ends (the zeros of preallocated space end them).
fn frame_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = MAGIC.len();
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len == 0 {
            break;
        }
        at += frame::HEADER_BYTES + len;
        ends.push(at);
    }
    ends
}

/// Writes `n` one-event requests to one segment and returns its bytes, with the preallocated
/// zeros after them.
async fn written_segment(n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (queue, _consumer, replay) = open(dir.path(), 1 << 20);
    assert!(replay.run().await.is_ok());
    for i in 0..n {
        assert_eq!(
            queue.enqueue(vec![events("web", [format!("m{i}")])]).await,
            Ok(())
        );
    }
    std::fs::read(segment::path_of(dir.path(), 0)).unwrap_or_default()
}

/// Replays a copy of `bytes` as the only segment: the ids it gives back and the length the file
/// was cut to.
async fn replay_damaged(bytes: &[u8]) -> (Vec<String>, u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = segment::path_of(dir.path(), 0);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let (queue, mut consumer, replay) = open(dir.path(), 1 << 20);
    assert!(replay.run().await.is_ok());
    let length = std::fs::metadata(&path).map_or(0, |m| m.len());
    let (ids, _unacked) = drain(&queue, &mut consumer).await;
    (ids, length)
}

fn first(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_after_the_last_whole_record() {
    let preallocated = written_segment(20).await;
    let ends = frame_ends(&preallocated);
    assert_eq!(ends.len(), 20);
    assert!(
        preallocated.len() > ends[19] && preallocated[ends[19]..].iter().all(|&b| b == 0),
        "the segment is preallocated with zeros"
    );
    // The zeros after the last record read as its end: nothing is lost, nothing is made up.
    assert_eq!(
        replay_damaged(&preallocated).await,
        (first(20), ends[19] as u64)
    );
    let bytes = &preallocated[..ends[19]];
    let mut rng = fastrand::Rng::with_seed(14);
    let mut cuts: Vec<usize> = (0..24)
        .map(|_| rng.usize(MAGIC.len()..bytes.len()))
        .collect();
    // The edges: right after the header, on a frame boundary, one byte short of the end.
    cuts.extend([MAGIC.len(), ends[9], bytes.len() - 1, bytes.len()]);
    for cut in cuts {
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let kept = if whole == 0 {
            0
        } else {
            ends[whole - 1] as u64
        };
        // Torn at the end of a file that grew, or inside preallocated space (zeros after it).
        let mut torn_in_place = bytes[..cut].to_vec();
        torn_in_place.resize(preallocated.len(), 0);
        for torn in [&bytes[..cut], &torn_in_place[..]] {
            let (ids, length) = replay_damaged(torn).await;
            assert_eq!(ids, first(whole), "cut at {cut}");
            // A segment left with no record is deleted; one with records is cut to them.
            assert_eq!(length, kept, "cut at {cut}");
        }
    }
}

#[tokio::test]
async fn a_corrupt_record_is_cut_off_with_everything_after_it() {
    let mut bytes = written_segment(20).await;
    let ends = frame_ends(&bytes);
    bytes.truncate(ends[19]);
    let mut rng = fastrand::Rng::with_seed(41);
    for _ in 0..12 {
        let at = rng.usize(MAGIC.len()..bytes.len());
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << rng.u32(0..8);
        // The record holding the flipped byte and all after it are gone; all before it stay.
        let whole = ends.iter().filter(|&&end| end <= at).count();
        let (ids, _) = replay_damaged(&damaged).await;
        assert_eq!(ids, first(whole), "byte {at} flipped");
    }
}

#[tokio::test]
async fn a_full_log_refuses_until_its_segments_are_stored() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = WalOptions {
        dir: dir.path().to_owned(),
        max_bytes: 4096,
        segment_bytes: 1024,
    };
    let opened = WalQueue::open(&options, 1_000_000, 1 << 30);
    let Ok((queue, mut consumer, _replay)) = opened else {
        panic!("open");
    };
    let request = |i: usize| vec![events("web", (0..4).map(|j| format!("m{i}-{j}")))];
    let mut accepted = 0;
    let refused = loop {
        match queue.enqueue(request(accepted)).await {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 100, "a 4 KiB log never filled");
    };
    assert_eq!(refused, QueueError::Full);
    assert!(!queue.has_room());
    assert!(consumer.is_backlogged());
    let mut deliveries = Vec::new();
    consumer.next_many(&mut deliveries, 1024).await;
    assert_eq!(deliveries.len(), accepted);
    deliveries.into_iter().for_each(|d| d.ack.ack());
    assert_eq!(queue.enqueue(request(accepted)).await, Ok(()));
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let _first = open(dir.path(), 1 << 20);
    let second = WalQueue::open(&options(dir.path(), 1 << 20), 10_000, 1 << 20);
    assert!(matches!(second, Err(WalError::Locked(_))));
}

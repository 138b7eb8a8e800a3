//! `async` mode's `messageId` window: a consumer that drops events whose id it has seen in the
//! window, on their way from the queue to the batcher. Only queued events reach it, so an id
//! from a request the queue refused (503) is never recorded and the client's retry is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use eventkit_model::{Batch, Records};

use super::{Consumer, Delivery};
use crate::dedup::{DedupWindow, Owner};

pub struct Deduplicated<C> {
    inner: C,
    window: Arc<Mutex<DedupWindow>>,
    next_owner: AtomicU64,
}

impl<C: Consumer> Deduplicated<C> {
    pub fn new(inner: C, window: DedupWindow) -> Self {
        Self {
            inner,
            window: Arc::new(Mutex::new(window)),
            next_owner: AtomicU64::new(0),
        }
    }

    /// The delivery without the events already in the window; `None` when every one was (its
    /// ack is then given at once: the first copy's delivery holds those records until stored).
    fn without_duplicates(&self, delivery: Delivery) -> Option<Delivery> {
        let Delivery {
            batch,
            ack,
            approx_bytes,
        } = delivery;
        let Batch { stream, records } = batch;
        let Records::Events(events) = records else {
            // Dead letters carry no messageId of ours; they are kept as they come.
            let batch = Batch { stream, records };
            return Some(Delivery {
                batch,
                ack,
                approx_bytes,
            });
        };
        let owner: Owner = self.next_owner.fetch_add(1, Ordering::Relaxed);
        let before = events.len();
        let (kept, keys) = self
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain_new(&stream, events, owner);
        let removed = before - kept.len();
        if kept.is_empty() {
            ack.ack();
            return None;
        }
        let records = Records::Events(kept);
        let approx_bytes = if removed > 0 {
            records.approx_bytes()
        } else {
            approx_bytes
        };
        // Released unstored, the ids are forgotten: the records come back (the log replays them)
        // and must not then be taken for duplicates of themselves.
        let window = self.window.clone();
        let ack = ack.on_release(move || {
            window
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget(&keys, owner);
        });
        Some(Delivery {
            batch: Batch { stream, records },
            ack,
            approx_bytes,
        })
    }
}

#[async_trait]
impl<C: Consumer> Consumer for Deduplicated<C> {
    async fn next_many(&mut self, into: &mut Vec<Delivery>, max: usize) -> usize {
        let start = into.len();
        loop {
            // Cancellation-safe as the inner consumer is: nothing is held across this await.
            let received = self.inner.next_many(into, max).await;
            if received == 0 {
                return 0;
            }
            let taken: Vec<Delivery> = into.drain(start..).collect();
            into.extend(taken.into_iter().filter_map(|d| self.without_duplicates(d)));
            let kept = into.len() - start;
            if kept > 0 {
                return kept;
            }
        }
    }

    fn is_backlogged(&self) -> bool {
        self.inner.is_backlogged()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use eventkit_model::{Event, EventType, Text, TextFields, Times};

    use super::*;
    use crate::queue::{Ack, Settled};

    fn event(message_id: &str) -> Event {
        let mut text: TextFields = [None; Text::COUNT];
        text[Text::MessageId as usize] = Some(message_id);
        text[Text::UserId as usize] = Some("u");
        let now = chrono::Utc::now();
        let times = Times {
            timestamp: now,
            original_timestamp: None,
            sent_at: None,
            received_at: now,
        };
        Event::new(EventType::Identify, times, &text)
    }

    /// A delivery of `ids` whose settlement is reported on `settled` under `name`.
    fn delivery(
        ids: &[&str],
        name: &'static str,
        settled: &mpsc::Sender<(&'static str, Settled)>,
    ) -> Delivery {
        let records = Records::Events(ids.iter().map(|id| event(id)).collect());
        let settled = settled.clone();
        Delivery {
            approx_bytes: records.approx_bytes(),
            batch: Batch {
                stream: "web".into(),
                records,
            },
            ack: Ack::settled_by(move |how| {
                let _ = settled.send((name, how));
            }),
        }
    }

    /// Hands out one scripted round of deliveries per call.
    struct Rounds(Vec<Vec<Delivery>>);

    #[async_trait]
    impl Consumer for Rounds {
        async fn next_many(&mut self, into: &mut Vec<Delivery>, _max: usize) -> usize {
            if self.0.is_empty() {
                return 0;
            }
            let round = self.0.remove(0);
            let n = round.len();
            into.extend(round);
            n
        }
    }

    fn ids(delivery: &Delivery) -> Vec<String> {
        match &delivery.batch.records {
            Records::Events(events) => events.iter().map(|e| e.message_id().to_owned()).collect(),
            Records::Rejected(_) => Vec::new(),
        }
    }

    #[tokio::test]
    async fn repeats_are_dropped_and_ids_released_unstored_are_new_again() {
        let (tx, settled) = mpsc::channel();
        let rounds = Rounds(vec![
            vec![delivery(&["a", "b"], "first", &tx)],
            // A retry of the same batch, and one that repeats one id of it.
            vec![
                delivery(&["a", "b"], "retry", &tx),
                delivery(&["b", "c"], "overlap", &tx),
            ],
            vec![delivery(&["a", "b"], "after release", &tx)],
        ]);
        let mut consumer =
            Deduplicated::new(rounds, DedupWindow::new(100, Duration::from_secs(60)));
        let mut into = Vec::new();

        assert_eq!(consumer.next_many(&mut into, 10).await, 1);
        assert_eq!(ids(&into[0]), ["a", "b"]);
        assert_eq!(consumer.next_many(&mut into, 10).await, 1);
        assert_eq!(ids(&into[1]), ["c"]);
        // The retry held nothing new: acknowledged at once, its records being the first's.
        assert_eq!(settled.try_recv().ok(), Some(("retry", Settled::Stored)));

        // The first delivery is released unstored (a failed encode, a stop): its ids are
        // forgotten, so when its records come back they are kept, not taken for duplicates.
        let first = into.remove(0);
        drop(first);
        assert_eq!(settled.try_recv().ok(), Some(("first", Settled::Released)));
        assert_eq!(consumer.next_many(&mut into, 10).await, 1);
        // Both: the overlapping delivery dropped its "b" as the first's, which comes back.
        assert_eq!(ids(&into[1]), ["a", "b"]);
        assert_eq!(consumer.next_many(&mut into, 10).await, 0);
    }

    #[tokio::test]
    async fn a_zero_window_keeps_everything() {
        let (tx, _settled) = mpsc::channel();
        let rounds = Rounds(vec![vec![
            delivery(&["a"], "one", &tx),
            delivery(&["a"], "two", &tx),
        ]]);
        let mut consumer = Deduplicated::new(rounds, DedupWindow::new(0, Duration::from_secs(60)));
        let mut into = Vec::new();
        assert_eq!(consumer.next_many(&mut into, 10).await, 2);
    }
}

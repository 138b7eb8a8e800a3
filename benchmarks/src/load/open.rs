//! Open loop: requests leave on a fixed schedule whether or not earlier ones have returned, and
//! latency runs from the scheduled time. A server that stalls for a second therefore shows a
//! second of latency on every request due in that second (no coordinated omission), instead of
//! one slow sample as a closed loop would record.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::{GRACE, Recorder, lock};
use crate::client::Target;
use crate::ids::Ids;
use crate::schedule::{Phase, Schedule};
use crate::workload::Workload;

pub async fn open_loop(
    target: Arc<Target>,
    workload: Arc<dyn Workload>,
    ids: Arc<Ids>,
    rec: Arc<Mutex<Recorder>>,
    phases: Vec<Phase>,
    max_in_flight: u32,
    seed: u64,
) {
    let start = lock(&rec).start;
    let schedule = Schedule::new(phases);
    let give_up = start + schedule.total() + GRACE;
    // The cap bounds sockets and memory if the server stops answering. Waiting for a permit
    // delays the send but not the intended time, so the wait is still counted as latency.
    let permits = Arc::new(Semaphore::new(max_in_flight as usize));
    let mut rng = fastrand::Rng::with_seed(seed);
    for (phase, offset) in schedule {
        let intended = start + offset;
        tokio::time::sleep_until(intended.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let req = workload.next(&mut rng, &ids);
        let (target, rec) = (target.clone(), rec.clone());
        tokio::spawn(async move {
            let sent = target.send(&req, give_up).await;
            let done = std::time::Instant::now();
            lock(&rec).record(&req, intended, done, &sent, phase);
            drop(permit);
        });
    }
    // All permits back means every request has been recorded.
    let _ = permits.acquire_many(max_in_flight).await;
}

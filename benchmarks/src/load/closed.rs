//! Closed loop: N virtual users, each sending its next request as soon as the previous one
//! returns. It measures what the server sustains, but a stalled server also stalls the users,
//! which is why burst uses the open loop instead.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{GRACE, Recorder, lock};
use crate::client::Target;
use crate::ids::Ids;
use crate::workload::Workload;

pub async fn closed_loop(
    target: Arc<Target>,
    workload: Arc<dyn Workload>,
    ids: Arc<Ids>,
    rec: Arc<Mutex<Recorder>>,
    users: usize,
    duration: Duration,
    seed: u64,
) {
    let start = lock(&rec).start;
    let deadline = start + duration;
    let mut handles = Vec::with_capacity(users);
    for user in 0..users {
        let (target, workload, ids, rec) =
            (target.clone(), workload.clone(), ids.clone(), rec.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(user as u64));
            while Instant::now() < deadline {
                let req = workload.next(&mut rng, &ids);
                let sent_at = Instant::now();
                let sent = target.send(&req, deadline + GRACE).await;
                let done = Instant::now();
                lock(&rec).record(&req, sent_at, done, &sent, 0);
            }
        }));
    }
    for h in handles {
        // A panicking user only ends its own loop; the others' numbers stand.
        let _ = h.await;
    }
}

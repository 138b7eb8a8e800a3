//! Stream labels that cannot grow without bound. Every metric with a `stream` label passes
//! through [`BoundedStreamLabels`]: the first [`LABELLED_STREAMS`] streams (and the configured
//! ones) keep their own label, and any other is counted under [`OTHER_STREAMS`], so `/metrics`
//! stays small however many streams clients name.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};

/// Streams with series of their own, besides the configured ones. Each costs about a dozen
/// series; a hundred keeps a scrape well under a megabyte.
pub const LABELLED_STREAMS: usize = 100;
/// The label the rest share. Stream names cannot start with `_`, so no stream is called this.
pub const OTHER_STREAMS: &str = "_other";
const STREAM_LABEL: &str = "stream";

#[derive(Default)]
struct Labelled {
    /// Configured streams, labelled whatever their number.
    configured: HashSet<String>,
    first_come: HashSet<String>,
}

/// Process-wide, as the recorder is.
static LABELLED: LazyLock<Mutex<Labelled>> = LazyLock::new(Mutex::default);

/// Only names, whole at every step: a poisoned lock is used as it is.
fn labelled() -> MutexGuard<'static, Labelled> {
    LABELLED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gives these streams labels of their own (the dead-letter stream and configured streams).
pub fn label_streams(streams: impl IntoIterator<Item = String>) {
    labelled().configured.extend(streams);
}

/// The label `stream`'s metrics carry.
pub fn stream_label(stream: &str) -> &str {
    let mut labelled = labelled();
    if stream == OTHER_STREAMS
        || labelled.configured.contains(stream)
        || labelled.first_come.contains(stream)
    {
        return stream;
    }
    if labelled.first_come.len() < LABELLED_STREAMS {
        labelled.first_come.insert(stream.to_owned());
        return stream;
    }
    OTHER_STREAMS
}

/// Rewrites the `stream` label of every metric registered through it, then hands it on.
pub struct BoundedStreamLabels<R>(pub R);

impl<R> BoundedStreamLabels<R> {
    fn bounded(key: &Key) -> Option<Key> {
        let stream = key.labels().find(|l| l.key() == STREAM_LABEL)?;
        if stream_label(stream.value()) != OTHER_STREAMS || stream.value() == OTHER_STREAMS {
            return None;
        }
        let labels: Vec<Label> = key
            .labels()
            .map(|label| {
                if label.key() == STREAM_LABEL {
                    Label::new(STREAM_LABEL, OTHER_STREAMS)
                } else {
                    label.clone()
                }
            })
            .collect();
        Some(Key::from_parts(key.name_shared(), labels))
    }
}

impl<R: Recorder> Recorder for BoundedStreamLabels<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match Self::bounded(key) {
            Some(key) => self.0.register_counter(&key, metadata),
            None => self.0.register_counter(key, metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match Self::bounded(key) {
            Some(key) => self.0.register_gauge(&key, metadata),
            None => self.0.register_gauge(key, metadata),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match Self::bounded(key) {
            Some(key) => self.0.register_histogram(&key, metadata),
            None => self.0.register_histogram(key, metadata),
        }
    }
}

//! Samples the collector while load runs: queue depth from `/metrics`, RSS from /proc.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub queue_depth: Option<f64>,
    pub rss_mb: Option<f64>,
}

/// Sum of every series of `name` in Prometheus text format (labels ignored), or `None` if the
/// metric is absent.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // Exclude longer names sharing the prefix (`_total` vs `_total_bucket`).
        let rest = match rest.chars().next() {
            Some('{') => rest.split_once('}').map(|(_, v)| v),
            Some(' ') => Some(rest),
            _ => None,
        };
        let value = rest
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Sum of the series of `name` whose label set contains `label="value"`.
pub fn metric_sum_labelled(text: &str, name: &str, label: &str, value: &str) -> Option<f64> {
    let needle = format!("{label}=\"{value}\"");
    let filtered: String = text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&needle))
        .map(|l| format!("{l}\n"))
        .collect();
    metric_sum(&filtered, name)
}

pub fn parse_rss_mb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn read_rss_mb(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(parse_rss_mb)
}

pub async fn scrape(client: &reqwest::Client, metrics_url: &str) -> Option<String> {
    let resp = client.get(metrics_url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

/// The collector's `eventkit_pubsub_{messages,bytes}_published_total`; a counter that has not
/// appeared yet (nothing published so far, or not pubsub mode) reads 0.
pub async fn published(client: &reqwest::Client, metrics_url: &str) -> Option<(f64, f64)> {
    let text = scrape(client, metrics_url).await?;
    let read = |name| metric_sum(&text, name).unwrap_or(0.0);
    Some((
        read("eventkit_pubsub_messages_published_total"),
        read("eventkit_pubsub_bytes_published_total"),
    ))
}

pub async fn queue_depth(client: &reqwest::Client, metrics_url: &str) -> Option<f64> {
    metric_sum(&scrape(client, metrics_url).await?, "eventkit_queue_depth")
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Samples every `every` from `start` until stopped. A target without `/metrics` (the
    /// ceiling server) simply yields `None` depths.
    pub fn spawn(
        client: reqwest::Client,
        metrics_url: String,
        pid: Option<u32>,
        start: Instant,
        every: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !flag.load(Ordering::Relaxed) {
                tick.tick().await;
                let queue_depth = queue_depth(&client, &metrics_url).await;
                out.push(Sample {
                    t_s: start.elapsed().as_secs_f64(),
                    queue_depth,
                    rss_mb: pid.and_then(read_rss_mb),
                });
            }
            out
        });
        Self { stop, handle }
    }

    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP eventkit_queue_depth events waiting\n\
        # TYPE eventkit_queue_depth gauge\n\
        eventkit_queue_depth 42\n\
        eventkit_events_accepted_total{stream=\"a\",type=\"track\"} 10\n\
        eventkit_events_accepted_total{stream=\"a\",type=\"page\"} 5\n\
        eventkit_events_accepted_total{stream=\"b\",type=\"track\"} 7\n\
        eventkit_events_accepted_total_other 1000\n";

    #[test]
    fn sums_series_and_ignores_prefixed_names() {
        assert_eq!(metric_sum(TEXT, "eventkit_queue_depth"), Some(42.0));
        assert_eq!(
            metric_sum(TEXT, "eventkit_events_accepted_total"),
            Some(22.0)
        );
        assert_eq!(
            metric_sum_labelled(TEXT, "eventkit_events_accepted_total", "stream", "a"),
            Some(15.0)
        );
        assert_eq!(metric_sum(TEXT, "eventkit_missing"), None);
    }

    #[test]
    fn reads_vmrss_in_megabytes() {
        let status = "Name:\teventkit\nVmPeak:\t  900 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(parse_rss_mb(status), Some(20.0));
        assert_eq!(parse_rss_mb("Name: x\n"), None);
    }
}

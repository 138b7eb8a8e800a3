//! Every HTTP resource has a bound that holds against clients that misbehave on purpose:
//! stalled bodies, trickled headers, idle keep-alive connections, endless stream names, and a
//! stop requested while all of those are open. Memory is the collector process's own resident
//! set, so these run the binary as a child.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestServer;
use crate::common::child::ChildCollector;

const MAX_BODY: usize = 500 * 1024;
const MIB: u64 = 1024 * 1024;

/// Sends a request head declaring a full-size body, then `sent` bytes of it, and stops.
async fn stalled_body(addr: SocketAddr, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /collect/web HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nContent-Length: {MAX_BODY}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // Leading spaces are valid JSON: only the missing rest makes this body incomplete.
    stream.write_all(&vec![b' '; sent]).await.expect("body");
    stream
}

/// What the server sends before it closes, read until it closes or `limit` passes.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Samples the child's memory until it stops growing (or `limit` passes); returns the peak.
async fn settled_rss(collector: &ChildCollector, limit: Duration) -> u64 {
    let started = Instant::now();
    let mut peak = collector.rss_bytes();
    let mut unchanged = 0;
    while started.elapsed() < limit && unchanged < 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = collector.rss_bytes();
        if now > peak + MIB {
            unchanged = 0;
        } else {
            unchanged += 1;
        }
        peak = peak.max(now);
    }
    peak
}

async fn post_event(
    client: &reqwest::Client,
    collector: &ChildCollector,
    stream: &str,
) -> (u16, String) {
    let response = client
        .post(collector.url(&format!("/collect/{stream}")))
        .header("content-type", "application/json")
        .body(r#"{"type":"track","event":"Signed Up","userId":"u-1"}"#)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_hold_what_they_sent_and_no_more_while_others_are_served() {
    let collector = ChildCollector::start(&[("EVENTKIT_SERVER__BODY_TIMEOUT_MS", "15000")]);
    let client = reqwest::Client::new();
    assert_eq!(post_event(&client, &collector, "web").await.0, 202);
    let baseline = collector.rss_bytes();

    const STALLED: usize = 1000;
    const SENT: usize = 400 * 1024;
    let started = Instant::now();
    let stalled = futures::future::join_all(
        (0..STALLED).map(|_| tokio::spawn(stalled_body(collector.addr, SENT))),
    )
    .await;
    let mut stalled: Vec<TcpStream> = stalled.into_iter().map(|s| s.expect("task")).collect();
    let peak = settled_rss(&collector, Duration::from_secs(10)).await;

    // README, "How memory adds up": a request in flight holds at most its declared body size
    // (the buffer is made that size at once; pages never written may not count) plus 64 KiB:
    // its read buffer (server.max_header_bytes) and connection state.
    let per_request = MAX_BODY as u64 + 64 * 1024;
    let bound = baseline + STALLED as u64 * per_request;
    println!(
        "stalled bodies: baseline {} MiB, peak {} MiB, bound {} MiB ({:.0} KiB per stalled request)",
        baseline / MIB,
        peak / MIB,
        bound / MIB,
        (peak - baseline) as f64 / STALLED as f64 / 1024.0
    );
    assert!(
        peak <= bound,
        "peak RSS {peak} over the documented bound {bound}"
    );
    // The collector did read what was sent (else the bound above proves nothing).
    assert!(
        peak >= baseline + (STALLED * SENT / 2) as u64,
        "peak RSS {peak}: bodies not read"
    );

    for _ in 0..20 {
        assert_eq!(post_event(&client, &collector, "web").await.0, 202);
    }
    let health = client
        .get(collector.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);

    // server.body_timeout_ms cuts every one of them off with a 408.
    let answers = futures::future::join_all(
        stalled
            .iter_mut()
            .map(|stream| read_until_closed(stream, Duration::from_secs(40))),
    )
    .await;
    // Each is answered 408 and closed; a reset can reach a client before the answer does (the
    // collector closes a socket it did not read to the end), so an empty answer counts as cut
    // off too, but every connection must end.
    let timed_out = answers
        .iter()
        .filter(|a| a.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 408")))
        .count();
    let cut_off = answers
        .iter()
        .filter(|a| {
            a.as_deref()
                .is_some_and(|a| a.is_empty() || a.starts_with("HTTP/1.1 408"))
        })
        .count();
    println!(
        "stalled bodies: {timed_out} answered 408, {cut_off} cut off, after {:?}",
        started.elapsed()
    );
    assert_eq!(cut_off, STALLED, "cut off after {:?}", started.elapsed());
    assert!(timed_out > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_do_not_pin_a_read_buffer_per_piece() {
    let collector = ChildCollector::start(&[]);
    let client = reqwest::Client::new();
    assert_eq!(post_event(&client, &collector, "web").await.0, 202);
    let baseline = collector.rss_bytes();

    // Two bytes every 5 ms, for 3 s: hundreds of pieces, each its own read.
    const TRICKLING: usize = 100;
    const DECLARED: usize = 64 * 1024;
    let trickle = |addr: SocketAddr| async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let head = format!(
            "POST /collect/web HTTP/1.1\r\nHost: collector\r\nContent-Length: {DECLARED}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if stream.write_all(b"  ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stream
    };
    let streams =
        futures::future::join_all((0..TRICKLING).map(|_| tokio::spawn(trickle(collector.addr))));
    let (streams, peak) = tokio::join!(streams, async {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        collector.rss_bytes()
    });
    // README: a request in flight holds at most its declared body size plus 64 KiB.
    let bound = baseline + TRICKLING as u64 * (DECLARED as u64 + 64 * 1024);
    println!(
        "trickled bodies: baseline {} MiB, peak {} MiB, bound {} MiB",
        baseline / MIB,
        peak / MIB,
        bound / MIB
    );
    assert!(peak <= bound, "peak RSS {peak} over the bound {bound}");
    drop(streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_and_idle_keep_alive_connections_are_closed_by_the_header_timeout() {
    let collector = ChildCollector::start(&[("EVENTKIT_SERVER__HEADER_TIMEOUT_MS", "1000")]);
    let trickle = |addr: SocketAddr| async move {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST /collect/web HTTP/1.1\r\nHost: collector\r\n")
            .await
            .expect("head");
        let mut buffer = [0u8; 1024];
        while started.elapsed() < Duration::from_secs(10) {
            if stream.write_all(b"x").await.is_err() {
                return started.elapsed();
            }
            let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer));
            if let Ok(Ok(0) | Err(_)) = read.await {
                return started.elapsed();
            }
        }
        started.elapsed()
    };
    let idle = |addr: SocketAddr| async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: collector\r\n\r\n")
            .await
            .expect("request");
        let started = Instant::now();
        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        (answer, started.elapsed())
    };
    let slow = futures::future::join_all((0..50).map(|_| tokio::spawn(trickle(collector.addr))));
    let (slow, (answer, idle_for)) = tokio::join!(slow, idle(collector.addr));
    for held in slow {
        let held = held.expect("task");
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(4),
            "a slowloris connection was held {held:?}"
        );
    }
    assert!(answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
    assert!(
        idle_for < Duration::from_secs(4),
        "idle keep-alive held {idle_for:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_keep_no_buffer_of_their_largest_request() {
    let collector = ChildCollector::start(&[("EVENTKIT_SERVER__HEADER_TIMEOUT_MS", "60000")]);
    // A full-size body that is refused once read (a JSON string is not an event).
    let large = format!("\"{}\"", "a".repeat(MAX_BODY - 2));
    let send_large = |client: reqwest::Client| {
        let url = collector.url("/collect/web");
        let large = large.clone();
        async move {
            let response = client.post(url).body(large).send().await.expect("request");
            assert_eq!(response.status(), 400);
            let _ = response.bytes().await;
            client
        }
    };
    let warm = send_large(reqwest::Client::new()).await;
    let baseline = settled_rss(&collector, Duration::from_secs(3)).await;

    // One at a time, so the freed bodies are reused and only what connections keep adds up.
    const CONNECTIONS: usize = 500;
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(send_large(reqwest::Client::new()).await);
    }
    let after = settled_rss(&collector, Duration::from_secs(3)).await;
    let per_connection = after.saturating_sub(baseline) / CONNECTIONS as u64;
    println!(
        "idle keep-alive after a {MAX_BODY}-byte request: baseline {} MiB, after {} MiB, {} KiB per connection",
        baseline / MIB,
        after / MIB,
        per_connection / 1024
    );
    // README: an idle connection keeps at most server.max_header_bytes (16 KiB) of read buffer.
    assert!(
        per_connection <= 48 * 1024,
        "{per_connection} bytes per idle connection"
    );
    drop((warm, clients));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_bound_are_refused_and_cost_nothing() {
    let mut collector = ChildCollector::start(&[
        ("EVENTKIT_SERVER__MAX_STREAMS", "1000"),
        // Each accepted stream is flushed at once, while the first 2,000 requests are sent:
        // the writer's metrics carry stream labels too, and its buffers are in place before
        // the refused requests are measured.
        ("EVENTKIT_BATCH__MAX_EVENTS", "1"),
    ]);
    let client = reqwest::Client::new();
    assert_eq!(post_event(&client, &collector, "web").await.0, 202);
    let baseline = collector.rss_bytes();

    let send = |range: std::ops::Range<usize>| {
        let client = client.clone();
        let collector = &collector;
        futures::stream::iter(range)
            .map(move |i| {
                let client = client.clone();
                async move { post_event(&client, collector, &format!("s-{i}")).await }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
    };
    let first = send(0..2_000).await;
    // The accepted streams' flushes run a few at a time; they settle before the rest is sent.
    let after_first = settled_rss(&collector, Duration::from_secs(15)).await;
    let rest = send(2_000..10_000).await;
    let after_all = settled_rss(&collector, Duration::from_secs(5)).await;

    let answers: Vec<&(u16, String)> = first.iter().chain(&rest).collect();
    let accepted = answers.iter().filter(|(status, _)| *status == 202).count();
    // "web" came first and holds one of the 1000.
    assert_eq!(accepted, 999);
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 400)
        .collect();
    assert_eq!(refused.len(), 10_000 - 999);
    assert!(
        refused[0].1.contains("at most 1000 streams")
            && refused[0].1.contains("server.max_streams"),
        "{}",
        refused[0].1
    );
    let metrics = client
        .get(collector.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let labels: std::collections::BTreeSet<&str> = metrics
        .split("stream=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    println!(
        "10,000 stream names: RSS {} MiB idle, {} MiB after 2,000, {} MiB after 10,000; /metrics {} bytes, {} stream labels",
        baseline / MIB,
        after_first / MIB,
        after_all / MIB,
        metrics.len(),
        labels.len()
    );
    // 100 first-come streams, the dead-letter and anonymous streams, and the overflow label.
    assert!(labels.len() <= 103, "{} stream labels", labels.len());
    assert!(labels.contains("_other"));
    assert!(
        metrics.len() < 256 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    // Refused streams cost nothing that lasts; the accepted ones were all in by 2,000.
    assert!(
        after_all < after_first + 8 * MIB,
        "RSS grew from {after_first} to {after_all}"
    );
    assert!(
        after_all < baseline + 64 * MIB,
        "RSS grew from {baseline} to {after_all}"
    );

    // One file per accepted stream, none for the refused.
    collector.terminate();
    let exited = tokio::task::block_in_place(|| collector.wait_for_exit(Duration::from_secs(30)));
    assert!(exited.is_some_and(|s| s.success()));
    let streams = std::fs::read_dir(collector.data.path())
        .expect("data dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("stream="))
        })
        .count();
    assert_eq!(streams, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_slow_clients_exits_within_the_grace_period_losing_nothing() {
    const GRACE_MS: u64 = 3_000;
    let mut collector = ChildCollector::start(&[
        ("EVENTKIT_SERVER__SHUTDOWN_GRACE_MS", "3000"),
        // Longer than the grace period: only the stop may end these connections.
        ("EVENTKIT_SERVER__HEADER_TIMEOUT_MS", "60000"),
        ("EVENTKIT_SERVER__BODY_TIMEOUT_MS", "60000"),
    ]);
    let client = reqwest::Client::new();
    let mut sent = Vec::new();
    for request in 0..20 {
        let events: Vec<_> = (0..10)
            .map(|i| {
                let id = format!("m-{request}-{i}");
                sent.push(id.clone());
                serde_json::json!({"type": "track", "event": "Paid", "userId": "u", "messageId": id})
            })
            .collect();
        let response = client
            .post(collector.url("/collect/web"))
            .json(&events)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 202);
    }
    let mut slow = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(collector.addr).await.expect("connect");
        stream
            .write_all(b"POST /collect/web HTTP/1.1\r\nHost: collector\r\nX-Slow: ")
            .await
            .expect("head");
        slow.push(stream);
    }
    slow.push(stalled_body(collector.addr, 1024).await);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = Instant::now();
    collector.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = client
        .get(collector.url("/ready"))
        .send()
        .await
        .expect("/ready while draining");
    assert_eq!(ready.status(), 503);
    let refused = post_event(&client, &collector, "web").await;
    assert_eq!(refused.0, 503, "{}", refused.1);

    let status = tokio::task::block_in_place(|| {
        collector.wait_for_exit(Duration::from_millis(GRACE_MS) + Duration::from_secs(10))
    });
    let took = stopping.elapsed();
    println!("SIGTERM with 11 slow clients open: exited after {took:?} (grace {GRACE_MS} ms)");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit: {status:?} after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(GRACE_MS - 100),
        "slow clients were not waited for"
    );
    assert!(
        took < Duration::from_millis(GRACE_MS + 2_000),
        "stop took {took:?}"
    );

    let stored: std::collections::BTreeSet<String> =
        crate::common::read_rows(&collector.data.path().join("stream=web"))
            .into_iter()
            .filter_map(|row| row["message_id"].as_str().map(str::to_owned))
            .collect();
    let lost: Vec<_> = sent.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );
}

#[tokio::test]
async fn connection_and_request_caps_refuse_at_once_and_probes_still_answer() {
    let mut server = TestServer::start(|config| {
        config.server.max_connections = 4;
        config.server.max_requests = 2;
        config.server.body_timeout_ms = 1_000;
    })
    .await;
    let mut held = vec![
        stalled_body(server.addr, 1024).await,
        stalled_body(server.addr, 1024).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    third
        .write_all(b"POST /collect/web HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .expect("request");
    let answer = read_until_closed(&mut third, Duration::from_secs(2)).await;
    let answer = answer.expect("an answer before the body timeout");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("server.max_requests"), "{answer}");

    // Probes take no request slot.
    let mut probe = TcpStream::connect(server.addr).await.expect("connect");
    probe
        .write_all(b"GET /health HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")
        .await
        .expect("probe");
    let answer = read_until_closed(&mut probe, Duration::from_secs(2)).await;
    assert!(answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")));

    // Two stalled plus two idle fill the four connection slots; a fifth is closed unanswered.
    held.push(TcpStream::connect(server.addr).await.expect("connect"));
    held.push(TcpStream::connect(server.addr).await.expect("connect"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(server.addr).await.expect("connect");
    let closed_at_once = read_until_closed(&mut over, Duration::from_millis(500)).await;
    assert_eq!(closed_at_once.as_deref(), Some(""));

    // The body timeout answers the stalled ones 408.
    for stream in &mut held[..2] {
        let answer = read_until_closed(stream, Duration::from_secs(3)).await;
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with("HTTP/1.1 408")),
            "{answer:?}"
        );
    }
    drop(held);
    server.stop().await;
}

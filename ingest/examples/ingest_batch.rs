//! Ingests the 100-event body of `benchmarks/wrk/batch.lua` N times (default 100): a small,
//! deterministic driver for instruction counts, e.g.
//! `valgrind --tool=callgrind target/release/examples/ingest_batch 100`.

use eventkit_ingest::{IngestError, IpPolicy, RequestInfo, ingest};

fn main() -> Result<(), IngestError> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(100);
    let events: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"type":"track","event":"Product Viewed","userId":"user-{i}","anonymousId":null,"messageId":"m-{i}","timestamp":"2026-11-23T10:00:00.123Z","properties":{{"product_id":"p-991","price":19.99,"currency":"USD","category":"shoes","name":"Runner 3000"}},"context":{{"library":{{"name":"analytics-node","version":"2.1.0"}},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}}}}"#
            )
        })
        .collect();
    let body = format!(
        r#"{{"batch":[{}],"sentAt":"2026-11-23T10:00:01Z"}}"#,
        events.join(",")
    );
    let info = RequestInfo {
        stream: "bench".into(),
        received_at: chrono::Utc::now(),
        client_ip: Some("127.0.0.1"),
        implied_type: None,
        ip_policy: IpPolicy::default(),
    };
    let mut accepted = 0;
    for _ in 0..rounds {
        accepted += ingest(body.as_bytes(), &info)?.events.len();
    }
    println!("{accepted} events accepted");
    Ok(())
}

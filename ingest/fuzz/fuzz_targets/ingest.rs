//! Any bytes as a request body: the ingest path answers with events and rejections or an
//! error, never a panic, and never more events than a request may carry.
#![no_main]

use chrono::DateTime;
use eventkit_ingest::{CaptureIp, IpPolicy, MAX_EVENTS_PER_REQUEST, RequestInfo, ingest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let info = RequestInfo {
        stream: "web".to_owned(),
        received_at: DateTime::from_timestamp(1_772_359_200, 0).unwrap_or_default(),
        client_ip: Some("203.0.113.7"),
        implied_type: None,
        ip_policy: IpPolicy {
            capture: CaptureIp::Auto,
            anonymize: false,
        },
    };
    if let Ok(outcome) = ingest(body, &info) {
        let events = outcome.events.len() + outcome.rejected.len();
        assert!((1..=MAX_EVENTS_PER_REQUEST).contains(&events), "{events} events");
        assert_eq!(outcome.rejections().len(), outcome.rejected.len());
    }
});

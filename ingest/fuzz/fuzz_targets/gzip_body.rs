//! Any bytes as a gzip request body (what Segment SDKs send): inflating stays within the body
//! limit, whatever the stream claims, and what inflates goes through the ingest path.
#![no_main]

use chrono::DateTime;
use eventkit_ingest::{CaptureIp, IpPolicy, MAX_BODY_BYTES, RequestInfo, gunzip, ingest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|compressed: &[u8]| {
    let Ok(body) = gunzip(compressed) else {
        return;
    };
    assert!(body.len() <= MAX_BODY_BYTES, "{} bytes inflated", body.len());
    let info = RequestInfo {
        stream: "web".to_owned(),
        received_at: DateTime::from_timestamp(1_772_359_200, 0).unwrap_or_default(),
        client_ip: None,
        implied_type: None,
        ip_policy: IpPolicy {
            capture: CaptureIp::Auto,
            anonymize: false,
        },
    };
    let _ = ingest(&body, &info);
});

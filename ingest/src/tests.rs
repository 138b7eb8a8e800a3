use chrono::{DateTime, Utc};
use eventkit_model::Text;

use super::*;

fn info() -> RequestInfo<'static> {
    RequestInfo {
        stream: "web".into(),
        received_at: time::parse("2026-05-01T10:00:00Z").unwrap_or_default(),
        client_ip: Some("203.0.113.7"),
        implied_type: None,
        ip_policy: IpPolicy::default(),
    }
}

fn one(event: &str) -> Result<Event, String> {
    let outcome = ingest(event.as_bytes(), &info()).map_err(|e| e.to_string())?;
    match (
        outcome.events.into_iter().next(),
        outcome.rejected.into_iter().next(),
    ) {
        (Some(event), None) => Ok(event),
        (None, Some(rejected)) => Err(rejected.error),
        _ => Err("expected exactly one event".into()),
    }
}

fn at(s: &str) -> DateTime<Utc> {
    time::parse(s).unwrap_or_default()
}

#[test]
fn each_rule_has_an_actionable_error() {
    let cases = [
        (r#"{"event":"x","userId":"u"}"#, "type is required"),
        (
            r#"{"type":"click","userId":"u"}"#,
            r#"type "click" is not one of track, identify, page, screen, group, alias"#,
        ),
        (
            r#"{"type":"track","event":"x"}"#,
            "userId or anonymousId is required",
        ),
        (
            r#"{"type":"track","event":"x","userId":"","anonymousId":null}"#,
            "userId or anonymousId is required",
        ),
        (
            r#"{"type":"track","userId":"u"}"#,
            "event is required for track",
        ),
        (
            r#"{"type":"group","userId":"u"}"#,
            "groupId is required for group",
        ),
        (
            r#"{"type":"alias","userId":"u"}"#,
            "previousId is required for alias",
        ),
        (
            r#"{"type":"alias","anonymousId":"a","previousId":"p"}"#,
            "userId is required for alias",
        ),
        (
            r#"{"type":"identify","userId":"u","timestamp":"last tuesday"}"#,
            r#"timestamp must be an ISO-8601 date-time, got "last tuesday""#,
        ),
        (
            r#"{"type":"identify","userId":"u","sentAt":"2026-99-01"}"#,
            r#"sentAt must be an ISO-8601 date-time, got "2026-99-01""#,
        ),
        (
            r#"{"type":"identify","userId":"u","properties":[1]}"#,
            "properties must be an object",
        ),
        (
            r#"{"type":"identify","userId":"u","traits":"vip"}"#,
            "traits must be an object",
        ),
        (
            r#"{"type":"identify","userId":"u","event":5}"#,
            "event must be a string",
        ),
        (
            r#"{"type":"identify","userId":true}"#,
            "userId must be a string",
        ),
        (
            r#"{"type":"identify","userId":"u","userId":"v"}"#,
            r#"the key "userId" appears twice in the event"#,
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(one(event), Err(expected.to_owned()), "for {event}");
    }
    let long_id = format!(
        r#"{{"type":"identify","userId":"u","messageId":"{}"}}"#,
        "m".repeat(101)
    );
    assert_eq!(
        one(&long_id),
        Err("messageId must be at most 100 characters".to_owned())
    );
    let padding = "x".repeat(MAX_EVENT_BYTES);
    let big = format!(r#"{{"type":"identify","userId":"u","traits":{{"p":"{padding}"}}}}"#);
    let error = one(&big).err().unwrap_or_default();
    assert!(
        error.starts_with("event is ") && error.ends_with("the limit is 32 KB (32768 bytes)"),
        "{error}"
    );
    assert_eq!(one("[5]"), Err("event must be a JSON object".to_owned()));
}

#[test]
fn request_shape_errors() {
    let err = |body: &str| ingest(body.as_bytes(), &info()).err();
    assert!(matches!(err("{nope"), Some(IngestError::Malformed(_))));
    assert_eq!(err("42"), Some(IngestError::NotEvents));
    assert_eq!(err(""), Some(IngestError::Empty));
    assert_eq!(err("[]"), Some(IngestError::Empty));
    assert_eq!(err(r#"{"batch":[]}"#), Some(IngestError::Empty));
    let many = format!(
        "[{}]",
        vec![r#"{"type":"identify","userId":"u"}"#; 2501].join(",")
    );
    assert_eq!(err(&many), Some(IngestError::TooManyEvents(2501)));
}

#[test]
fn enrichment_fills_ids_times_and_ip() {
    let event = one(r#"{"type":"identify","anonymousId":"a1","userId":null}"#);
    let Ok(event) = event else {
        panic!("{event:?}")
    };
    assert_eq!(event.text(Text::UserId), None);
    assert_eq!(event.text(Text::AnonymousId), Some("a1"));
    let id = uuid::Uuid::parse_str(event.message_id());
    assert!(id.as_ref().is_ok_and(|u| u.get_version_num() == 7));
    // Stamped with the arrival time: ids sort by when the collector received them.
    let stamp = id.ok().and_then(|u| u.get_timestamp()).map(|t| t.to_unix());
    assert_eq!(
        stamp,
        Some((at("2026-05-01T10:00:00Z").timestamp() as u64, 0))
    );
    assert_eq!(event.times.timestamp, at("2026-05-01T10:00:00Z"));
    assert_eq!(event.times.received_at, at("2026-05-01T10:00:00Z"));
    assert_eq!(event.text(Text::ContextIp), Some("203.0.113.7"));
    assert_eq!(event.text(Text::Context), Some(r#"{"ip":"203.0.113.7"}"#));

    // Device clock one hour fast; the event happened 30 s before it was sent.
    let skewed = one(r#"{"type":"track","event":"E","userId":7,"messageId":"m-1",
            "timestamp":"2026-05-01T11:00:00Z","sentAt":"2026-05-01T11:00:30Z",
            "context":{"ip":"198.51.100.1","userAgent":"UA","library":{"name":"lib","version":"1.2"}}}"#);
    let Ok(skewed) = skewed else {
        panic!("{skewed:?}")
    };
    assert_eq!(skewed.text(Text::UserId), Some("7"));
    assert_eq!(skewed.message_id(), "m-1");
    assert_eq!(skewed.times.timestamp, at("2026-05-01T09:59:30Z"));
    assert_eq!(
        skewed.times.original_timestamp,
        Some(at("2026-05-01T11:00:00Z"))
    );
    assert_eq!(skewed.text(Text::ContextIp), Some("198.51.100.1"));
    assert_eq!(skewed.text(Text::ContextUserAgent), Some("UA"));
    assert_eq!(skewed.text(Text::ContextLibraryName), Some("lib"));
    assert_eq!(skewed.text(Text::ContextLibraryVersion), Some("1.2"));
}

#[test]
fn batch_context_is_merged_and_event_keys_win() {
    let body = r#"{"sentAt":"2026-05-01T10:00:10Z","context":{"library":{"name":"batch-lib"},"locale":"en"},
        "integrations":{"All":false},
        "batch":[
          {"type":"page","userId":"u","name":"Home","timestamp":"2026-05-01T10:00:00Z",
           "properties":{"path":"/","url":"https://x.test/","title":"Home"},"context":{"locale":"de","page":{"referrer":"https://r.test/"}}},
          {"type":"screen","userId":"u","name":"Main","category":"Nav","integrations":{"All":true}}
        ]}"#;
    let outcome = ingest(body.as_bytes(), &info());
    let Ok(outcome) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(outcome.rejected.is_empty());
    let [page, screen] = &outcome.events[..] else {
        panic!("two events expected")
    };
    assert_eq!(page.text(Text::ContextLibraryName), Some("batch-lib"));
    assert_eq!(page.text(Text::PagePath), Some("/"));
    assert_eq!(page.text(Text::PageUrl), Some("https://x.test/"));
    assert_eq!(page.text(Text::PageTitle), Some("Home"));
    assert_eq!(page.text(Text::PageReferrer), Some("https://r.test/"));
    assert_eq!(page.times.timestamp, at("2026-05-01T09:59:50Z"));
    let context: serde_json::Value =
        serde_json::from_str(page.text(Text::Context).unwrap_or("null")).unwrap_or_default();
    assert_eq!(context["locale"], "de");
    assert_eq!(context["ip"], "203.0.113.7");
    assert_eq!(page.text(Text::Integrations), Some(r#"{"All":false}"#));
    assert_eq!(screen.text(Text::Integrations), Some(r#"{"All":true}"#));
    assert_eq!(screen.text(Text::Name), Some("Main"));
    assert_eq!(screen.text(Text::Category), Some("Nav"));
}

#[test]
fn mixed_request_keeps_good_events_and_reports_bad_ones_by_index() {
    let body = r#"[{"type":"identify","userId":"a"},{"type":"identify"},{"type":"identify","userId":"b"}]"#;
    let outcome = ingest(body.as_bytes(), &info());
    let Ok(outcome) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(outcome.events.len(), 2);
    assert_eq!(
        outcome.rejections(),
        vec![Rejection {
            index: 1,
            error: "userId or anonymousId is required".into()
        }]
    );
    assert_eq!(outcome.rejected[0].raw, r#"{"type":"identify"}"#);
    assert_eq!(outcome.rejected[0].stream, "web");
}

#[test]
fn implied_type_fills_a_missing_type_only() {
    let mut info = info();
    info.implied_type = Some(EventType::Track);
    let outcome = ingest(br#"{"event":"E","userId":"u","writeKey":"k"}"#, &info);
    let Ok(outcome) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(outcome.events[0].event_type, EventType::Track);
    assert_eq!(outcome.write_key.as_deref(), Some("k"));
}

fn batch(body: &str) -> Outcome {
    ingest(body.as_bytes(), &info()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn merging_keeps_the_event_text_and_appends_the_batch_keys_it_lacks() {
    let outcome = batch(
        r#"{"context":{"app":{"name":"a"},"locale":"en","n":1e2},
            "integrations":{"All":false, "Mixpanel" : {"x":-0}},
            "batch":[{"type":"identify","userId":"u","context":{"n":123456789012345678901234567890,"z":-0,"e":1e2,"s":"\u00e9\n","locale":"fr"},
                      "integrations":{"All":true}}]}"#,
    );
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    let event = &outcome.events[0];
    assert_eq!(
        event.text(Text::Context),
        Some(
            r#"{"ip":"203.0.113.7","n":123456789012345678901234567890,"z":-0,"e":1e2,"s":"\u00e9\n","locale":"fr","app":{"name":"a"}}"#
        )
    );
    assert_eq!(
        event.text(Text::Integrations),
        Some(r#"{"All":true,"Mixpanel" : {"x":-0}}"#)
    );
}

#[test]
fn a_client_ip_key_is_never_doubled() {
    let event = one(r#"{"type":"identify","userId":"u","context":{"ip":null,"locale":"fr"}}"#);
    let Ok(event) = event else {
        panic!("{event:?}")
    };
    assert_eq!(
        event.text(Text::Context),
        Some(r#"{"ip":null,"locale":"fr"}"#)
    );
    assert_eq!(event.text(Text::ContextIp), None);
    // The batch's ip is the client's too.
    let outcome =
        batch(r#"{"context":{"ip":"198.51.100.2"},"batch":[{"type":"identify","userId":"u"}]}"#);
    assert_eq!(
        outcome.events[0].text(Text::Context),
        Some(r#"{"ip":"198.51.100.2"}"#)
    );
    assert_eq!(
        outcome.events[0].text(Text::ContextIp),
        Some("198.51.100.2")
    );
}

#[test]
fn an_event_whose_object_cannot_be_kept_is_rejected_whole() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        (
            r#"{"type":"identify","userId":"u","context":{"x":1e400,"keep":"me"}}"#.to_owned(),
            "context cannot be stored as sent: a number is beyond the range of a double (about 1.8e308)",
        ),
        (
            r#"{"type":"track","event":"E","userId":"u","properties":{"plan":"\ud800"}}"#
                .to_owned(),
            r"properties cannot be stored as sent: a string holds a lone surrogate escape (\ud800-\udfff without its pair)",
        ),
        (
            format!(r#"{{"type":"identify","userId":"u","traits":{{"d":{deep}}}}}"#),
            "traits cannot be stored as sent: it is nested deeper than 127 levels",
        ),
        (
            r#"{"type":"identify","userId":"u","integrations":{"All":true,"All":false}}"#
                .to_owned(),
            r#"integrations cannot be stored as sent: the key "All" appears twice in one object"#,
        ),
    ];
    for (event, expected) in &cases {
        // Alone, and in a batch whose defaults are merged into it.
        assert_eq!(one(event), Err((*expected).to_owned()), "{event}");
        let outcome = batch(&format!(
            r#"{{"context":{{"app":{{}}}},"integrations":{{"x":1}},"batch":[{event}]}}"#
        ));
        assert_eq!(outcome.rejections()[0].error, *expected, "{event}");
        assert_eq!(outcome.rejected[0].raw, *event);
    }
    // Unkeepable batch defaults reject every event they would be merged into.
    let outcome = batch(&format!(
        r#"{{"context":{{"d":{deep}}},"batch":[{{"type":"identify","userId":"u"}},{{"type":"identify","userId":"v"}}]}}"#
    ));
    assert!(outcome.events.is_empty());
    assert_eq!(
        outcome
            .rejections()
            .iter()
            .map(|r| r.error.as_str())
            .collect::<Vec<_>>(),
        vec![
            "the batch's context cannot be stored as sent: it is nested deeper than 127 levels";
            2
        ]
    );
    // Their dead letters hold the batch's context beside each event, both as sent: the reason
    // names something in them.
    assert_eq!(
        outcome.rejected[1].raw,
        format!(
            r#"{{"event":{{"type":"identify","userId":"v"}},"batch":{{"context":{{"d":{deep}}}}}}}"#
        )
    );
    assert!(
        outcome.rejected[0]
            .raw
            .starts_with(r#"{"event":{"type":"identify","userId":"u"},"batch":{"context":"#)
    );
}

#[test]
fn numeric_ids_keep_their_digits() {
    let event = one(
        r#"{"type":"alias","userId":123456789012345678901234567890,"previousId":-1.50,"anonymousId":"a"}"#,
    );
    let Ok(event) = event else {
        panic!("{event:?}")
    };
    assert_eq!(
        event.text(Text::UserId),
        Some("123456789012345678901234567890")
    );
    assert_eq!(event.text(Text::PreviousId), Some("-1.50"));
    assert_eq!(event.text(Text::AnonymousId), Some("a"));
}

#[test]
fn the_peer_address_follows_the_ip_policy() {
    let stamped = |policy: IpPolicy, event: &str| {
        let info = RequestInfo {
            ip_policy: policy,
            ..info()
        };
        let outcome = ingest(event.as_bytes(), &info).unwrap_or_else(|e| panic!("{e}"));
        let event = &outcome.events[0];
        (
            event.text(Text::ContextIp).map(str::to_owned),
            event.text(Text::Context).map(str::to_owned),
        )
    };
    let browser =
        r#"{"type":"identify","userId":"u","context":{"library":{"name":"analytics.js"}}}"#;
    let server =
        r#"{"type":"identify","userId":"u","context":{"library":{"name":"analytics-python"}}}"#;
    let forwarded = r#"{"type":"identify","userId":"u","context":{"ip":"198.51.100.4","library":{"name":"analytics-python"}}}"#;
    let auto = IpPolicy::default();
    assert_eq!(stamped(auto, browser).0.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        stamped(auto, server),
        (
            None,
            Some(r#"{"library":{"name":"analytics-python"}}"#.to_owned())
        )
    );
    assert_eq!(stamped(auto, forwarded).0.as_deref(), Some("198.51.100.4"));
    let never = IpPolicy {
        capture: CaptureIp::Never,
        anonymize: false,
    };
    assert_eq!(stamped(never, browser).0, None);
    let anonymized = IpPolicy {
        capture: CaptureIp::Always,
        anonymize: true,
    };
    assert_eq!(
        stamped(anonymized, server),
        (
            Some("203.0.113.0".to_owned()),
            Some(r#"{"ip":"203.0.113.0","library":{"name":"analytics-python"}}"#.to_owned())
        )
    );
    // A client's own address is kept as sent.
    assert_eq!(
        stamped(anonymized, forwarded).0.as_deref(),
        Some("198.51.100.4")
    );
}

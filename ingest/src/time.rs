//! ISO-8601 timestamps as SDKs send them, and the clock-skew correction Segment defines.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// ISO 8601 as SDKs write it: RFC 3339 (`2026-01-02T03:04:05.678Z`, `…+02:00`), an offset
/// without its colon (`…+0530`), a date-time without an offset (read as UTC, which is what the
/// SDKs that omit it mean), or a bare date (midnight UTC).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Some(t) = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// `receivedAt − (sentAt − originalTimestamp)`: the client's own measure of how long ago the
/// event happened, replayed on the server's clock, so a device whose clock is hours off still
/// gets a true timestamp.
pub fn corrected(
    received_at: DateTime<Utc>,
    original: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    match (original, sent_at) {
        (Some(original), Some(sent)) => {
            let age = sent.signed_duration_since(original);
            received_at.checked_sub_signed(age).unwrap_or(original)
        }
        (Some(original), None) => original,
        (None, _) => received_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    #[test]
    fn parses_offsets_fractions_and_naive_as_utc() {
        assert_eq!(
            t("2026-01-02T03:04:05.678+02:00"),
            t("2026-01-02T01:04:05.678Z")
        );
        assert_eq!(t("2026-01-02T03:04:05"), t("2026-01-02T03:04:05Z"));
        assert_eq!(t("2026-01-02T08:34:05.5+0530"), t("2026-01-02T03:04:05.5Z"));
        assert_eq!(t("2026-01-02"), t("2026-01-02T00:00:00Z"));
        assert_eq!(parse("2026-01-02T03:04"), None);
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2026-13-02T03:04:05Z"), None);
    }

    #[test]
    fn skew_correction_keeps_the_client_measured_age() {
        let received = t("2026-01-01T12:00:10Z");
        // The device clock is an hour fast: it stamped the event 5 s before sending it.
        let original = Some(t("2026-01-01T13:00:00Z"));
        let sent = Some(t("2026-01-01T13:00:05Z"));
        assert_eq!(
            corrected(received, original, sent),
            t("2026-01-01T12:00:05Z")
        );
        assert_eq!(
            corrected(received, original, None),
            t("2026-01-01T13:00:00Z")
        );
        assert_eq!(corrected(received, None, sent), received);
    }
}

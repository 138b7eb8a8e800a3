//! Where files land: a Hive layout (`stream=…/date=…/hour=…`) that DuckDB, Spark and BigQuery
//! external tables read with partition pruning and no extra metadata.

use chrono::{DateTime, Timelike, Utc};
use object_store::path::Path;

/// Files are partitioned by the server's `received_at`, not the client's clock: client clocks
/// can be days off, and a late-arriving event must not rewrite an old partition's meaning.
pub fn file_path(stream: &str, hour: DateTime<Utc>) -> Path {
    let name = uuid::Uuid::now_v7();
    Path::from(format!(
        "stream={stream}/date={}/hour={:02}/{name}.parquet",
        hour.format("%Y-%m-%d"),
        hour.hour()
    ))
}

/// The start of the hour a `received_at` (microseconds since the epoch, as the column holds it)
/// falls in: the key rows are grouped by before writing.
pub fn hour_of(micros: i64) -> DateTime<Utc> {
    const MICROS_PER_HOUR: i64 = 3_600_000_000;
    let hour = micros.div_euclid(MICROS_PER_HOUR);
    DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_hive_partitioned_by_hour() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let path = file_path("web", hour_of(t.timestamp_micros())).to_string();
        assert!(
            path.starts_with("stream=web/date=2026-03-04/hour=05/"),
            "{path}"
        );
        assert!(path.ends_with(".parquet"));
    }
}

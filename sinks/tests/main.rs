//! Every integration test of the sinks, built as one binary (one link of the dependency tree).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The collector's tests read documented code blocks the same way; one helper serves both.
mod azure_support;
#[path = "../../collector/tests/common/docs.rs"]
mod docs;
mod emulator_support;
mod gcs_support;
mod postgres_support;
mod s3_support;

mod azure_store;
mod conformance;
mod gcs_store;
mod object_stores_documented;
mod parquet_sink;
mod postgres_documented;
mod postgres_sink;
mod postgres_throughput;
mod s3_store;
mod store_urls;

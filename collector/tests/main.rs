//! Every integration test of the collector, built as one binary: each binary links the whole
//! dependency tree, so one instead of six saves minutes of linking and gigabytes of disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../sinks/tests/emulator_support/mod.rs"]
mod emulator_support;
#[path = "../../sinks/tests/gcs_support/mod.rs"]
mod gcs_support;
// The sinks tests' PostgreSQL server, for the parquet + postgres fan-out.
#[path = "../../sinks/tests/azure_support.rs"]
mod azure_support;
#[path = "../../sinks/tests/postgres_support/mod.rs"]
#[allow(dead_code)]
mod postgres_support;
#[path = "../../sinks/tests/s3_support.rs"]
mod s3_support;
mod sdk;

mod async_dedup;
mod bigquery_recipe;
mod bounds;
mod collect_errors;
mod collect_rows;
mod documented_queries;
mod gcs_e2e;
mod independent_readers;
mod pubsub_e2e;
mod round_trip;
mod segment_api;
mod segment_sdks;
mod shared_aws_files;
mod sink_conformance;
mod sink_routing;
mod wal_crash;

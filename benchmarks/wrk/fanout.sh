#!/usr/bin/env bash
# What writing every flush to two sinks costs: one build run twice, with one Parquet sink and
# with two (two local directories, each taking every stream), under the 100-event /v1/batch
# load in paired rounds whose order alternates. `queue.durability = "memory"` on both, so the
# log's syncs add no noise to what the sinks cost.
#
# usage: benchmarks/wrk/fanout.sh [pairs=16] [seconds-per-round=4]
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/wrk/pairs.sh

pairs=${1:-16}
seconds=${2:-4}
bin=target/release
data=$(mktemp -d)
trap stop_servers EXIT

cargo build --release --quiet -p eventkit
cat >"$data/one.toml" <<EOF
[sink]
url = "$data/one"
EOF
cat >"$data/two.toml" <<EOF
[[sinks]]
name = "first"
type = "parquet"
url = "$data/two-first"

[[sinks]]
name = "second"
type = "parquet"
url = "$data/two-second"
EOF
start() { # config port
  EVENTKIT_SOURCES=benchkey=bench EVENTKIT_QUEUE__DURABILITY=memory \
    EVENTKIT_QUEUE__WAL_DIR="$data/wal-$2" EVENTKIT_SERVER__LISTEN="127.0.0.1:$2" \
    "$bin/eventkit" serve --config "$1" >/dev/null 2>&1 &
  servers+=($!)
}
one=18080
two=18082
start "$data/one.toml" $one
start "$data/two.toml" $two
sleep 1

round() { # port → req/s
  WRITE_KEY=benchkey wrk -t1 -c16 -d"${seconds}s" -s benchmarks/wrk/batch.lua \
    "http://127.0.0.1:$1/v1/batch" | awk '/Requests\/sec/ {print $2}'
}

round $one >/dev/null # warm-up, both
round $two >/dev/null
echo "pair  one sink req/s  two sinks req/s  two/one"
paired_rounds "$pairs" $one $two |
  awk '{printf "%4d  %14.0f  %15.0f  %.3f\n", $1, $2, $3, $3 / $2}' | tee "$data/pairs"
median_of 4 "two sinks / one sink" <"$data/pairs"
files() { find "$1" -name '*.parquet' 2>/dev/null | wc -l; }
echo "Parquet files so far: one $(files "$data/one"), first $(files "$data/two-first"), second $(files "$data/two-second")"

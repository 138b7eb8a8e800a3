#!/usr/bin/env bash
# What the write-ahead log costs: one build run twice, with queue.durability = "wal" and
# "memory", under the single-event /collect load and the 100-event /v1/batch load, in paired
# rounds whose order alternates. Also prints the fsyncs per second the log's group commit made
# during its rounds, read from eventkit_wal_fsyncs_total.
#
# usage: benchmarks/wrk/durability.sh [pairs=16] [seconds-per-round=4]
# SINGLE_CONNECTIONS (32) and BATCH_CONNECTIONS (16) set each load's wrk connections: group
# commit shares a sync among the requests waiting, so the ratio depends on how many there are.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/wrk/pairs.sh

pairs=${1:-16}
seconds=${2:-4}
bin=target/release
data=$(mktemp -d)
trap stop_servers EXIT

cargo build --release --quiet -p eventkit
start() { # durability port
  mkdir -p "$data/$1"
  EVENTKIT_SOURCES=benchkey=bench EVENTKIT_QUEUE__DURABILITY="$1" \
    EVENTKIT_QUEUE__WAL_DIR="$data/$1/wal" EVENTKIT_SINK__URL="$data/$1/data" \
    EVENTKIT_SERVER__LISTEN="127.0.0.1:$2" "$bin/eventkit" serve >/dev/null 2>&1 &
  servers+=($!)
}
wal=18080
memory=18082
start wal $wal
start memory $memory
sleep 1

fsyncs() {
  curl -s "http://127.0.0.1:$wal/metrics" |
    awk '/^eventkit_wal_fsyncs_total/ {n = $2} END {print n + 0}'
}

load=single
round() { # port → "req/s fsyncs/s" (the fsyncs of the wal server during the round)
  local before rate
  before=$(fsyncs)
  if [[ $load == single ]]; then
    rate=$(wrk -t1 -c"${SINGLE_CONNECTIONS:-32}" -d"${seconds}s" -s benchmarks/wrk/single.lua \
      "http://127.0.0.1:$1/collect/web" | awk '/Requests\/sec/ {print $2}')
  else
    rate=$(WRITE_KEY=benchkey wrk -t1 -c"${BATCH_CONNECTIONS:-16}" -d"${seconds}s" -s benchmarks/wrk/batch.lua \
      "http://127.0.0.1:$1/v1/batch" | awk '/Requests\/sec/ {print $2}')
  fi
  echo "$rate $(($(fsyncs) - before))" | awk -v s="$seconds" '{print $1, $2 / s}'
}

for load in single batch; do
  round $wal >/dev/null # warm-up, both
  round $memory >/dev/null
  echo "== $load: pair  wal req/s  fsyncs/s  req/fsync  memory req/s  wal/memory"
  paired_rounds "$pairs" $wal $memory |
    awk '{printf "%4d  %9.0f  %8.0f  %9.1f  %12.0f  %.3f\n", $1, $2, $3, $2 / ($3 > 0 ? $3 : 1), $4, $2 / $4}' |
    tee "$data/$load"
  median_of 6 "$load wal/memory" <"$data/$load"
  median_of 3 "$load wal fsyncs/s" <"$data/$load"
  median_of 4 "$load wal requests per fsync" <"$data/$load"
done

#!/usr/bin/env bash
# Two collector builds side by side under the single-event load, in paired short rounds, so a
# change to the request path can be judged on a machine whose speed drifts from minute to minute.
#
# Whichever build listens first tends to win by a few percent, so run it both ways round: the
# change's effect is the square root of (ratio with it second) / (ratio with it first).
#
# usage: benchmarks/wrk/ab.sh BINARY_A BINARY_B [pairs=20] [seconds-per-round=3]
# LOAD=batch: 100-event bodies to /v1/batch (batch.lua) instead of single events.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/wrk/pairs.sh

first=$1
second=$2
pairs=${3:-20}
seconds=${4:-3}
data=$(mktemp -d)
trap stop_servers EXIT

start() { # binary port
  mkdir -p "$data/$2"
  # A log directory each: a second process on the same one would refuse to start.
  EVENTKIT_SOURCES=benchkey=bench EVENTKIT_SINK__URL="$data/$2" EVENTKIT_QUEUE__WAL_DIR="$data/wal-$2" \
    EVENTKIT_SERVER__LISTEN="127.0.0.1:$2" "$1" serve \
    >/dev/null 2>&1 &
  servers+=($!)
}
start "$first" 18080
start "$second" 18082
sleep 1

round() { # port → req/s
  if [[ ${LOAD:-single} == batch ]]; then
    WRITE_KEY=benchkey wrk -t1 -c16 -d"${seconds}s" -s benchmarks/wrk/batch.lua \
      "http://127.0.0.1:$1/v1/batch"
  else
    wrk -t1 -c32 -d"${seconds}s" -s benchmarks/wrk/single.lua "http://127.0.0.1:$1/collect/web"
  fi | awk '/Requests\/sec/ {print $2}'
}

round 18080 >/dev/null # warm-up, both
round 18082 >/dev/null
echo "pair  A req/s  B req/s  B/A"
paired_rounds "$pairs" 18080 18082 |
  awk '{printf "%4d  %7.0f  %7.0f  %.3f\n", $1, $2, $3, $3 / $2}' |
  tee "$data/pairs"
median_of 4 B/A <"$data/pairs"

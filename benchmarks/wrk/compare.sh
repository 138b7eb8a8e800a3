#!/usr/bin/env bash
# Single-event POST /collect against the bare handler, in many short paired rounds.
#
# On a shared machine the speed of both servers drifts from minute to minute; pairing short
# rounds (alternating which server goes first) and taking the median of the per-pair ratios
# keeps that drift out of the comparison. Prints every pair, then the summary.
#
# usage: benchmarks/wrk/compare.sh [pairs=20] [seconds-per-round=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/wrk/pairs.sh

pairs=${1:-20}
seconds=${2:-3}
bin=target/release
data=$(mktemp -d)
bare=""
collector=""
stop() {
  [[ -n $bare ]] && kill "$bare" 2>/dev/null
  [[ -n $collector ]] && kill -TERM "$collector" 2>/dev/null
  wait
  rm -rf "$data"
}
trap stop EXIT

cargo build --release --quiet -p eventkit -p eventkit-bench
"$bin/eventkit-bench" ceiling-server --listen 127.0.0.1:18081 >/dev/null &
bare=$!
EVENTKIT_SINK__URL="$data/files" EVENTKIT_QUEUE__WAL_DIR="$data/wal" \
  EVENTKIT_SERVER__LISTEN=127.0.0.1:18080 "$bin/eventkit" serve \
  >/dev/null 2>&1 &
collector=$!
sleep 1

round() { # port → "req/s p99"
  wrk -t1 -c32 -d"${seconds}s" -s benchmarks/wrk/single.lua --latency \
    "http://127.0.0.1:$1/collect/web" |
    awk '/Requests\/sec/ {r = $2} / 99%/ {p = $2} END {print r, p}'
}

echo "collector RSS at rest: $(awk '/VmRSS/ {print $2, $3}' "/proc/$collector/status")"
round 18081 >/dev/null # warm-up, both
round 18080 >/dev/null
echo "pair  bare req/s  p99  eventkit req/s  p99  ratio"
paired_rounds "$pairs" 18081 18080 |
  awk '{printf "%4d  %10.0f  %s  %14.0f  %s  %.3f\n", $1, $2, $3, $4, $5, $4 / $2}' |
  tee "$data/pairs"
echo "collector RSS peak: $(awk '/VmHWM/ {print $2, $3}' "/proc/$collector/status")"
median_of 6 ratio <"$data/pairs"

#!/usr/bin/env bash
# eventkit benchmark suite: one command from source to report.
#
#   benchmarks/run.sh [async|pubsub|all] [--quick] [--sink auto|file|gcs] [--out DIR]
#
# Builds release binaries, starts the emulators (when the GCS sink is used, and always for
# pubsub), starts the collector once per mode with that mode's configuration (pubsub: a loader
# first, on a fresh topic and subscription), runs every scenario against it, stops everything
# it started and writes <out>/<mode>/<scenario>.{json,csv}, <out>/README.md and
# <out>/report.html.
#
# --quick runs the whole suite in well under two minutes (for CI) and writes to
# target/eventkit-bench/quick unless --out is given, so it never overwrites the committed
# full results in benchmarks/results.
#
# Exit status: 0 all modes ran and every check passed; 1 a check failed or something broke;
# 2 a requested mode is not available in this build (nothing is reported for it but that).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODES=(async)
QUICK=0
SINK_CHOICE=auto
OUT=""

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    async | pubsub) MODES=("$1") ;;
    all) MODES=(async pubsub) ;;
    --quick) QUICK=1 ;;
    --sink) SINK_CHOICE="${2:?--sink needs auto, file or gcs}"; shift ;;
    --out) OUT="${2:?--out needs a directory}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 1 ;;
  esac
  shift
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ -z "$OUT" ]]; then
  if [[ $QUICK -eq 1 ]]; then OUT="$TARGET_DIR/eventkit-bench/quick"; else OUT="$ROOT/benchmarks/results"; fi
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
QUICK_FLAG=()
[[ $QUICK -eq 1 ]] && QUICK_FLAG=(--quick)

log() { printf '\n== %s\n' "$*" >&2; }

log "building release binaries"
(cd "$ROOT" && cargo build --release -p eventkit -p eventkit-bench)
BENCH="$TARGET_DIR/release/eventkit-bench"
COLLECTOR="$TARGET_DIR/release/eventkit"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/eventkit-bench.XXXXXX")"
COLLECTOR_PID=""
LOADER_PID=""
LOADER_URL=""
EMULATORS_STARTED=0
declare -A EMU=()

# SIGTERM, then up to 60 s for a graceful stop, then SIGKILL.
stop_gracefully() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# SIGTERM makes the collector drain its queue: flush every open file (async) or publish
# everything it accepted (pubsub).
stop_collector() {
  [[ -n "$COLLECTOR_PID" ]] || return 0
  stop_gracefully "$COLLECTOR_PID"
  COLLECTOR_PID=""
}

# The loader stops pulling, stores what it holds, acknowledges it and exits. Stopped after the
# collector, so everything the collector published is there to be pulled.
stop_loader() {
  [[ -n "$LOADER_PID" ]] || return 0
  stop_gracefully "$LOADER_PID"
  LOADER_PID=""
  LOADER_URL=""
}

cleanup() {
  stop_collector
  stop_loader
  if [[ $EMULATORS_STARTED -eq 1 ]]; then
    "$ROOT/emulators/stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- sink: the GCS emulator when asked for (or available under auto), else a local directory.
# pubsub mode needs the Pub/Sub emulator whatever the sink.
SINK_KIND=file
WANT_EMULATORS=0
if [[ "$SINK_CHOICE" != file || " ${MODES[*]} " == *" pubsub "* ]]; then WANT_EMULATORS=1; fi
if [[ $WANT_EMULATORS -eq 1 ]]; then
  if [[ -x "$ROOT/emulators/start" ]]; then
    log "starting emulators"
    if "$ROOT/emulators/start" >"$WORK/emulators.log" 2>&1 && [[ -f "$ROOT/emulators/.env" ]]; then
      # emulators/start reuses emulators that already answer; stop only what this run started.
      if grep -q 'starting on' "$WORK/emulators.log"; then EMULATORS_STARTED=1; fi
      # Read, don't source: the file also carries settings for other modes (EVENTKIT_PUBSUB__*)
      # that a collector in async mode must not see. Each mode picks what it needs below.
      while IFS='=' read -r key value; do
        if [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]]; then EMU["$key"]="$value"; fi
      done <"$ROOT/emulators/.env"
      [[ "$SINK_CHOICE" == file ]] || SINK_KIND=gcs
    elif [[ "$SINK_CHOICE" == gcs ]]; then
      echo "run.sh: emulators/start failed:" >&2; tail -20 "$WORK/emulators.log" >&2; exit 1
    else
      echo "run.sh: emulators did not start; using a file:// sink (see below)" >&2
      tail -5 "$WORK/emulators.log" >&2
    fi
  elif [[ "$SINK_CHOICE" == gcs ]]; then
    echo "run.sh: --sink gcs needs emulators/start, which does not exist yet" >&2; exit 1
  fi
fi

sink_url() {
  local mode="$1"
  if [[ $SINK_KIND == gcs ]]; then
    # One prefix per mode and run, so a run never reads another's objects.
    echo "${EMU[EVENTKIT_SINK__URL]%/}/bench-$mode-$(date +%s)"
  else
    mkdir -p "$WORK/sink-$mode"
    echo "file://$WORK/sink-$mode"
  fi
}

# --- per-mode configuration. pubsub mode also needs the Pub/Sub emulator, and a loader
# (started in start_mode_deps, before the collector, so the subscription exists before the
# first publish).
PUBSUB_NAMES=""
start_mode_deps() {
  local mode="$1" envfile="$2"
  case "$mode" in
    async) return 0 ;;
    pubsub)
      if [[ -z "${EMU[PUBSUB_EMULATOR_HOST]:-}" ]]; then
        echo "run.sh: mode pubsub needs the Pub/Sub emulator (emulators/start did not run or failed)" >&2
        return 3
      fi
      local port
      port="$("$BENCH" free-port)"
      echo "EVENTKIT_LOADER__LISTEN=127.0.0.1:$port" >>"$envfile"
      log "pubsub: starting the loader on 127.0.0.1:$port (topic and subscription $PUBSUB_NAMES)"
      (set -a; . "$envfile"; exec "$COLLECTOR" loader) >>"$WORK/loader-$mode.log" 2>&1 &
      LOADER_PID=$!
      local ready=0
      "$BENCH" wait-ready --url "http://127.0.0.1:$port/ready" --pid "$LOADER_PID" --timeout-secs 60 || ready=$?
      if [[ $ready -ne 0 ]]; then
        echo "run.sh: the loader did not become ready:" >&2
        tail -5 "$WORK/loader-$mode.log" >&2
        stop_loader
        return "$ready"
      fi
      LOADER_URL="http://127.0.0.1:$port"
      ;;
  esac
}

collector_env() {
  local mode="$1" port="$2" sink="$3"
  cat <<EOF
EVENTKIT_SERVER__LISTEN=127.0.0.1:$port
EVENTKIT_QUEUE__MODE=$mode
EVENTKIT_SINK__URL=$sink
EVENTKIT_QUEUE__WAL_DIR=$WORK/wal-$mode
EVENTKIT_BATCH__MAX_AGE_MS=1000
EVENTKIT_SOURCES=bench-realistic=bench_realistic,bench-wrk=bench_realistic_wrk
RUST_LOG=warn
EOF
  if [[ $SINK_KIND == gcs ]]; then
    echo "STORAGE_EMULATOR_HOST=${EMU[STORAGE_EMULATOR_HOST]}"
  fi
  if [[ "$mode" == pubsub ]]; then
    local key
    for key in "${!EMU[@]}"; do
      if [[ "$key" == PUBSUB_EMULATOR_HOST || "$key" == EVENTKIT_PUBSUB__PROJECT ]]; then
        echo "$key=${EMU[$key]}"
      fi
    done
    # A topic and subscription of their own per collector start, so a run never pulls another
    # run's (or another start's) messages; the loader creates both on the emulator.
    echo "EVENTKIT_PUBSUB__TOPIC=$PUBSUB_NAMES"
    echo "EVENTKIT_PUBSUB__SUBSCRIPTION=$PUBSUB_NAMES"
    echo "EVENTKIT_PUBSUB__CREATE_MISSING=true"
  fi
  return 0
}

# Emulator processes for CPU accounting (each with its children: gcloud runs a JVM).
emulator_pids() {
  local f pids=()
  for f in "$ROOT/emulators/.run/gcs.pid" "$ROOT/emulators/.run/pubsub.pid"; do
    if [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; then pids+=("$(cat "$f")"); fi
  done
  local IFS=,
  echo "${pids[*]}"
}

STATUS=0
UNAVAILABLE=()
SOURCES_SUPPORTED=1
SINK=""
TARGET=""
RUN_ID=""

# Returns wait-ready's status: 0 ready, 3 the process exited first, 1 timed out.
start_collector() {
  local mode="$1" port="$2" envfile="$3"
  (set -a; . "$envfile"; exec "$COLLECTOR" serve) >"$WORK/collector-$mode.log" 2>&1 &
  COLLECTOR_PID=$!
  "$BENCH" wait-ready --url "http://127.0.0.1:$port/ready" --pid "$COLLECTOR_PID" --timeout-secs 30
}

# The burst runs against a collector whose queue and batch bounds are the defaults' proportions
# scaled down 10x (capacity 4x a batch), so an overload reaches the queue bound within a 10 s
# spike and the 503 + Retry-After path is exercised. Every other scenario uses the defaults.
BURST_CAPACITY=20000
BURST_CAPACITY_MIB=64
BURST_SETTINGS="EVENTKIT_QUEUE__CAPACITY=$BURST_CAPACITY EVENTKIT_QUEUE__CAPACITY_BYTES=$((BURST_CAPACITY_MIB * 1024 * 1024)) EVENTKIT_BATCH__MAX_EVENTS=5000"

# Starts the collector for $1 (mode) with extra VAR=value lines in $2. Returns 0 when ready,
# 2 when the mode is unavailable (recorded), 1 on any other failure.
bring_up() {
  local mode="$1" extra="$2" label="$3"
  local port envfile ready=0
  port="$("$BENCH" free-port)"
  envfile="$WORK/collector-$mode.env"
  PUBSUB_NAMES="bench-$RUN_ID-${label%% *}"
  { collector_env "$mode" "$port" "$SINK"; tr ' ' '\n' <<<"$extra" | grep -v '^$' || true; } >"$envfile"
  [[ $SOURCES_SUPPORTED -eq 1 ]] || sed -i '/^EVENTKIT_SOURCES=/d' "$envfile"
  local deps=0
  start_mode_deps "$mode" "$envfile" || deps=$?
  if [[ $deps -ne 0 ]]; then
    # 3: no Pub/Sub emulator, or the loader exited during start-up (a build without it).
    if [[ "$mode" == pubsub && $deps -eq 3 ]]; then
      local why
      why="$(grep -v '^\s*$' "$WORK/loader-$mode.log" 2>/dev/null | tail -3 | tr '\n' ' ')"
      "$BENCH" unavailable --out "$OUT/$mode" --reason "pubsub mode cannot run here: ${why:-no Pub/Sub emulator}"
      return 2
    fi
    return 1
  fi
  log "$mode: starting the collector on 127.0.0.1:$port${extra:+ with $extra}"
  start_collector "$mode" "$port" "$envfile" || ready=$?
  if [[ $ready -eq 3 && $SOURCES_SUPPORTED -eq 1 ]] && grep -q 'found `sources`' "$WORK/collector-$mode.log"; then
    # A build without Segment write keys rejects the unknown `sources` key; run without
    # it (realistic then reports that its batches fell back to /collect).
    stop_collector
    echo "note: this collector build does not know EVENTKIT_SOURCES; starting it without" >&2
    SOURCES_SUPPORTED=0
    sed -i '/^EVENTKIT_SOURCES=/d' "$envfile"
    ready=0
    start_collector "$mode" "$port" "$envfile" || ready=$?
  fi
  if [[ $ready -eq 3 && $SINK_KIND == gcs && $SINK_CHOICE == auto ]] &&
    grep -q 'unsupported scheme "gs"' "$WORK/collector-$mode.log"; then
    stop_collector
    echo "note: this collector build cannot write gs:// yet; using a file:// sink instead" >&2
    SINK_KIND=file
    SINK="$(sink_url "$mode")"
    collector_env "$mode" "$port" "$SINK" >"$envfile"
    [[ $SOURCES_SUPPORTED -eq 1 ]] || sed -i '/^EVENTKIT_SOURCES=/d' "$envfile"
    ready=0
    start_collector "$mode" "$port" "$envfile" || ready=$?
  fi
  if [[ $ready -ne 0 ]]; then
    local why
    why="$(grep -v '^\s*$' "$WORK/collector-$mode.log" | tail -3 | tr '\n' ' ')"
    stop_collector
    stop_loader
    if [[ $ready -eq 3 && "$mode" == pubsub ]]; then
      echo "run.sh: mode pubsub is unavailable: the collector does not start in pubsub mode: $why" >&2
      "$BENCH" unavailable --out "$OUT/$mode" --reason "the collector does not start in pubsub mode in this build: $why"
      return 2
    fi
    echo "run.sh: the collector did not become ready in $mode mode: $why" >&2
    return 1
  fi
  TARGET="http://127.0.0.1:$port"
  mkdir -p "$OUT/$mode"
  rm -f "$OUT/$mode/UNAVAILABLE.txt"
  echo "# $label" >>"$OUT/$mode/collector.env"
  grep -v -e '^RUST_LOG' -e '^EVENTKIT_SERVER__LISTEN' -e '^EVENTKIT_LOADER__LISTEN' "$envfile" |
    sed -e "s#^EVENTKIT_SINK__URL=.*#EVENTKIT_SINK__URL=<$SINK_KIND sink, per run>#" \
      -e "s#^STORAGE_EMULATOR_HOST=.*#STORAGE_EMULATOR_HOST=<the GCS emulator>#" \
      -e "s#^PUBSUB_EMULATOR_HOST=.*#PUBSUB_EMULATOR_HOST=<the Pub/Sub emulator>#" \
      -e "s#^EVENTKIT_PUBSUB__\(TOPIC\|SUBSCRIPTION\)=.*#EVENTKIT_PUBSUB__\1=<fresh per collector start>#" >>"$OUT/$mode/collector.env"
}

run_suite() {
  local mode="$1" scenarios="$2"
  shift 2
  log "$mode: running $scenarios"
  local extra=("$@")
  if [[ $SINK_KIND == gcs ]]; then extra+=(--storage-emulator-host "${EMU[STORAGE_EMULATOR_HOST]}"); fi
  if [[ -n "$LOADER_PID" ]]; then extra+=(--loader-url "$LOADER_URL" --loader-pid "$LOADER_PID"); fi
  local emulators
  emulators="$(emulator_pids)"
  if [[ -n "$emulators" ]]; then extra+=(--emulator-pids "$emulators"); fi
  "$BENCH" suite --mode "$mode" --target "$TARGET" --sink "$SINK" --collector-pid "$COLLECTOR_PID" "${extra[@]}" \
    --out "$OUT/$mode" --run-id "$RUN_ID" --scenarios "$scenarios" "${QUICK_FLAG[@]}" || STATUS=1
  stop_collector
  stop_loader
  local file
  for file in "$WORK/collector-$mode.log" "$WORK/loader-$mode.log"; do
    if [[ -f "$file" ]] && grep -qE 'panicked|ERROR' "$file"; then
      echo "run.sh: the $(basename "$file" "-$mode.log") logged errors in $mode mode:" >&2
      grep -E 'panicked|ERROR' "$file" | head -10 >&2
    fi
  done
}

run_mode() {
  local mode="$1" up=0
  SINK="$(sink_url "$mode")"
  # Six hex digits: short enough for the 50-byte payload's messageIds, distinct per run.
  RUN_ID="$(printf '%06x' $(( $(date +%s) % 16777216 )))"
  rm -f "$OUT/$mode/collector.env"
  bring_up "$mode" "" "every scenario but burst" || up=$?
  case $up in
    0) ;;
    2) UNAVAILABLE+=("$mode"); return 0 ;;
    *) STATUS=1; return 0 ;;
  esac
  # Burst sizes its spike from error-rate's control run, hence this order.
  run_suite "$mode" "ceiling,baseline,payload-size,realistic,error-rate"
  bring_up "$mode" "$BURST_SETTINGS" "burst" || { STATUS=1; return 0; }
  run_suite "$mode" "burst" --queue-bound-events "$BURST_CAPACITY" --queue-bound-mib "$BURST_CAPACITY_MIB"
}

# The realistic scenario compares itself with wrk sending the same bodies. A full run installs
# wrk when it can; without it (CI) the results say that the comparison was skipped.
if [[ $QUICK -eq 0 ]] && ! command -v wrk >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
  log "installing wrk"
  apt-get install -y -o DPkg::Lock::Timeout=600 wrk >"$WORK/apt.log" 2>&1 || echo "note: could not install wrk" >&2
fi
log "machine load before the run: $(uptime)"

for mode in "${MODES[@]}"; do
  run_mode "$mode"
done

log "writing the report"
"$BENCH" report --results "$OUT" "${QUICK_FLAG[@]}"
echo "results: $OUT/README.md and $OUT/report.html" >&2

if [[ ${#UNAVAILABLE[@]} -gt 0 ]]; then
  echo "run.sh: not available in this build: ${UNAVAILABLE[*]} (no results were produced for it)" >&2
  [[ $STATUS -eq 0 ]] && STATUS=2
fi
exit "$STATUS"

#!/usr/bin/env bash
# End-to-end events/s for each kind of sink, one after another in one run: a local directory,
# GCS (fake-gcs-server), S3 (moto), Azure Blob (Azurite) and PostgreSQL 15. For each, the release
# collector runs with that one `[[sinks]]` entry taking "*" and `queue.durability = "memory"`
# (so the log's fsyncs do not mix in) under the 100-event /v1/batch load (batch.lua, wrk -t1
# -c16) for the given seconds. Then it gets SIGTERM, and a graceful stop returns once every
# accepted event is stored. Per sink it prints: events accepted, and their rate during the load;
# non-2xx answers (503s when the queue is full); seconds from the end of the load until the
# collector logs "all accepted events stored"; and end-to-end events/s, which is events stored
# ÷ (load + drain seconds). The stored count is the sum of the collector's "file stored"
# log lines (debug level for the fan-out only). It is checked against the store itself where
# that is cheap: files in the directory, objects listed on GCS and S3, `count(*)` in PostgreSQL.
#
# Emulators: emulators/start, which also starts the Pub/Sub emulator because it has no switch to
# skip it. If none of the emulators it records in emulators/.run was running, they are stopped at
# exit (emulators/stop). Otherwise they stay running. Objects go under a prefix of their own
# (sinks-bench/<time>/) in bucket and container eventkit-dev. GCS and Azurite keep them in
# emulators/.run/, about 50 MB each for a 10 s run; moto's are gone when it stops.
# PostgreSQL: a throwaway cluster (initdb -A trust --no-sync) in a temp dir, unix socket only,
# run as `postgres` when root, removed at exit. It runs with the server's defaults (fsync,
# synchronous_commit on); PG_SETTINGS adds server options, e.g. PG_SETTINGS="-c fsync=off".
#
# usage: benchmarks/wrk/sinks.sh [seconds-per-sink=10] [sinks=local,gcs,s3,azure,postgres]
# DRAIN_TIMEOUT (300) bounds each stop in seconds: a sink still not done by then is reported
# as such, and its collector is killed. LOGS=dir keeps each collector's log, config, metrics
# and wrk output there (and PostgreSQL's log); otherwise they go with the temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/wrk/pairs.sh

seconds=${1:-10}
sinks=${2:-local,gcs,s3,azure,postgres}
drain_timeout=${DRAIN_TIMEOUT:-300}
bin=target/release
pg_bin=/usr/lib/postgresql/15/bin
data=$(mktemp -d)
[[ -n ${LOGS:-} ]] && mkdir -p "$LOGS"
pg_dir=""
stop_emulators=false
collector=""
load=""

# The configuration is this script's: none of the caller's (say, from emulators/.env) applies.
for name in "${!EVENTKIT_@}"; do unset "$name"; done

now() { date +%s.%N; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
as_postgres() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
emulator_setting() { sed -n "s/^$1=//p" emulators/.env; }

# The collector first (its stop drains into the sink, which must still be up), then PostgreSQL
# and the emulators; stop_servers removes $data.
cleanup() {
  set +e
  [[ -n $load ]] && kill "$load" 2>/dev/null
  if [[ -n $collector ]] && kill -0 "$collector" 2>/dev/null; then
    kill -TERM "$collector"
    for _ in $(seq 100); do kill -0 "$collector" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$collector" 2>/dev/null
  fi
  if [[ -n $pg_dir ]]; then
    [[ -f $pg_dir/data/postmaster.pid ]] &&
      as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null
    [[ -n ${LOGS:-} ]] && cp "$pg_dir/server.log" "$LOGS/postgres-server.log"
    rm -rf "$pg_dir"
  fi
  $stop_emulators && emulators/stop
  [[ -n ${LOGS:-} ]] && cp "$data"/*.{log,toml,metrics,wrk} "$LOGS"/ 2>/dev/null
  stop_servers
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cargo build --release --quiet -p eventkit

# --- Stores ------------------------------------------------------------------------------------
if [[ ,$sinks, =~ ,(gcs|s3|azure), ]]; then
  running=false
  for pidfile in emulators/.run/{pubsub,gcs,s3,azure}.pid; do
    [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && running=true
  done
  $running || stop_emulators=true
  emulators/start
  prefix="sinks-bench/$(date -u +%Y%m%dT%H%M%SZ)"
  bucket=${EMULATORS_BUCKET:-eventkit-dev}
  gcs_url=$(emulator_setting STORAGE_EMULATOR_HOST)
  s3_url=$(emulator_setting AWS_ENDPOINT_URL_S3)
  azure_url=$(emulator_setting AZURITE_BLOB_STORAGE_URL)
fi
if [[ ,$sinks, == *,postgres,* ]]; then
  pg_dir=$(mktemp -d)
  ((EUID == 0)) && chown postgres: "$pg_dir"
  as_postgres "$pg_bin/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$pg_dir/data" >/dev/null
  # Its own session, so a Ctrl-C meant for the script does not stop it before the collector.
  # shellcheck disable=SC2086 # PG_SETTINGS is a list of server options
  as_postgres setsid "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $pg_dir -p 5432 ${PG_SETTINGS:-}" start >/dev/null
  psql() { "$pg_bin/psql" -h "$pg_dir" -p 5432 -U postgres -d postgres -Atq "$@"; }
  echo "PostgreSQL $(psql -c 'show server_version'): fsync $(psql -c 'show fsync')," \
    "synchronous_commit $(psql -c 'show synchronous_commit')," \
    "shared_buffers $(psql -c 'show shared_buffers')"
fi

# --- One sink ------------------------------------------------------------------------------------
sink_config() { # sink → its [[sinks]] entry
  echo "[[sinks]]"
  echo "name = \"$1\""
  case $1 in
  local) printf 'type = "parquet"\nurl = "%s"\n' "$data/local" ;;
  gcs) printf 'type = "parquet"\nurl = "gs://%s/%s"\nendpoint = "%s"\n' "$bucket" "$prefix" "$gcs_url" ;;
  s3) printf 'type = "parquet"\nurl = "s3://%s/%s"\nendpoint = "%s"\n' "$bucket" "$prefix" "$s3_url" ;;
  azure)
    # Azurite's account URL is path-style; for devstoreaccount1 the emulator's key is used.
    printf 'type = "parquet"\nurl = "az://%s/%s"\nendpoint = "%s/devstoreaccount1"\n' \
      "$bucket" "$prefix" "$azure_url"
    ;;
  postgres) printf 'type = "postgres"\nurl = "host=%s port=5432 user=postgres dbname=postgres"\n' "$pg_dir" ;;
  *) echo "sinks.sh: unknown sink $1 (local, gcs, s3, azure, postgres)" >&2; exit 2 ;;
  esac
}

stored_in_store() { # sink → what the store itself holds: files, objects or rows
  case $1 in
  local) echo "$(find "$data/local" -name '*.parquet' | wc -l) files" ;;
  gcs)
    curl -fsS "$gcs_url/storage/v1/b/$bucket/o?prefix=$prefix/&maxResults=1000" | python3 -c '
import json, sys
listing = json.load(sys.stdin)
print(len(listing.get("items", [])), end="+" if "nextPageToken" in listing else "")
print(" objects")'
    ;;
  s3)
    curl -fsS "$s3_url/$bucket?list-type=2&prefix=$prefix/" |
      sed -n 's/.*<KeyCount>\([0-9]*\)<\/KeyCount>.*/\1 objects/p'
    ;;
  azure) echo "not listed" ;; # Azurite refuses unsigned listings
  postgres) echo "$(psql -c 'select count(*) from eventkit.bench') rows" ;;
  esac
}

metric() { # metrics-file name → the sum of its series
  awk -v name="$2" '$1 == name || index($1, name "{") == 1 {n += $2} END {printf "%d\n", n}' "$1"
}

measure() { # sink → one line of the table
  local sink=$1 port log metrics start loaded stopped_at stored files status
  port=$(free_port)
  log="$data/$sink.log"
  metrics="$data/$sink.metrics"
  sink_config "$sink" >"$data/$sink.toml"
  # AWS_*: moto takes any key; an s3 sink with an endpoint and no key would send unsigned.
  env RUST_LOG=info,eventkit::batcher::fan_out=debug NO_COLOR=1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    EVENTKIT_SOURCES=benchkey=bench EVENTKIT_QUEUE__DURABILITY=memory \
    EVENTKIT_QUEUE__WAL_DIR="$data/wal-$sink" EVENTKIT_SERVER__LISTEN="127.0.0.1:$port" \
    "$bin/eventkit" serve --config "$data/$sink.toml" >"$log" 2>&1 &
  collector=$!
  servers+=("$collector")
  # Listening, and it is this collector that listens (the port could have been taken since).
  for _ in $(seq 300); do
    kill -0 "$collector" 2>/dev/null || break
    grep -q "eventkit listening addr=127.0.0.1:$port" "$log" && break
    sleep 0.1
  done
  if ! grep -q "eventkit listening addr=127.0.0.1:$port" "$log"; then
    echo "sinks.sh: the $sink collector did not start:" >&2
    cat "$log" >&2
    exit 1
  fi

  start=$(now)
  # In the background, so a Ctrl-C ends the script (wrk would take it as "print and exit").
  WRITE_KEY=benchkey wrk -t1 -c16 -d"${seconds}s" -s benchmarks/wrk/batch.lua \
    "http://127.0.0.1:$port/v1/batch" >"$data/$sink.wrk" &
  load=$!
  wait "$load"
  load=""
  loaded=$(now)
  curl -fsS "http://127.0.0.1:$port/metrics" >"$metrics"
  kill -TERM "$collector"
  for _ in $(seq $((drain_timeout * 10))); do
    kill -0 "$collector" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$collector" 2>/dev/null; then
    echo "sinks.sh: the $sink collector was still storing after ${drain_timeout}s; killed" >&2
    kill -KILL "$collector"
  fi
  status=0
  wait "$collector" || status=$?
  collector=""
  servers=()
  ((status == 0)) || echo "sinks.sh: the $sink collector exited with status $status" >&2

  # Log timestamps are UTC RFC 3339, on the same clock as now().
  stopped_at=$(sed -n 's/^\([^ ]*\) .*all accepted events stored.*/\1/p' "$log")
  stored=$(awk -v sink="sink=$sink" '/file stored/ && index($0, sink " ") {
      for (i = 1; i <= NF; i++) if ($i ~ /^rows=/) n += substr($i, 6)
    } END {printf "%d\n", n}' "$log")
  files=$(grep -c "file stored sink=$sink " "$log" || true)
  sed -n "s/^ *Socket errors:/sinks.sh: $sink: wrk socket errors:/p" "$data/$sink.wrk" >&2
  if grep -E ' (WARN|ERROR) ' "$log" >"$data/$sink.warnings"; then
    echo "sinks.sh: $sink collector warnings ($(wc -l <"$data/$sink.warnings"), first 5):" >&2
    head -5 "$data/$sink.warnings" >&2
  fi
  awk -v sink="$sink" -v start="$start" -v loaded="$loaded" \
    -v stopped="$([[ -n $stopped_at ]] && date -d "$stopped_at" +%s.%N || echo -1)" \
    -v accepted="$(metric "$metrics" eventkit_events_accepted_total)" \
    -v refused="$(metric "$metrics" eventkit_requests_refused_total)" \
    -v over="$(metric "$metrics" eventkit_requests_over_capacity_total)" \
    -v queued="$(metric "$metrics" eventkit_queue_depth)" \
    -v non2xx="$(awk '/Non-2xx/ {print $NF}' "$data/$sink.wrk")" \
    -v stored="$stored" -v files="$files" -v store="$(stored_in_store "$sink" || echo "?")" \
    'BEGIN {
      load = loaded - start
      drain = stopped < 0 ? "-" : sprintf("%.2f", stopped - loaded)
      e2e = stopped < 0 ? "-" : sprintf("%.0f", stored / (stopped - start))
      printf "%-8s %10d %6.2f %11.0f %7d %7d %7d %7s %12s %10d %5d  %s\n", sink, accepted, load,
        accepted / load, non2xx + 0, refused + over, queued, drain, e2e, stored, files, store
    }'
}

# queued: events accepted but not yet stored when the load ended.
echo "sink       accepted load s  accepted/s  non2xx    503s  queued drain s end-to-end/s     stored files  in the store"
for sink in ${sinks//,/ }; do
  measure "$sink"
done
if [[ -n $pg_dir ]] && grep -E 'WARNING|ERROR|FATAL|PANIC' "$pg_dir/server.log" >"$data/pg.warnings"; then
  echo "sinks.sh: PostgreSQL's log ($(wc -l <"$data/pg.warnings") warnings, first 5):" >&2
  head -5 "$data/pg.warnings" >&2
fi

#!/usr/bin/env bash
# Sourced by the experiments' run.sh: a durable throw-away cluster and the benchmark's data.
#   experiment_cluster DIR PORT   start it (scripts/cluster.sh), stopped when the script exits
#   q ARGS...                     psql, quiet, stopping on the first error
#   load IMPL N                   bench_IMPL with N waiting chats, as scripts/bench.sh loads (a) or (d)
#   reset_queue DB                every chat back to the queue, vacuumed, then a CHECKPOINT
# shellcheck source=scripts/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/cluster.sh"
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

experiment_cluster() {
  cluster_start "$1" "$2" "fsync = on" "synchronous_commit = on" "shared_buffers = 1GB" \
    "max_wal_size = 16GB" "checkpoint_timeout = 30min"
  # shellcheck disable=SC2064  # the directory is known now
  trap "cluster_stop '$1'" EXIT
}

q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }

load() {
  local impl=$1 n=$2 t0 f
  t0=$(psql -XAtq -d postgres -c "SELECT now()")
  q -d postgres -c "DROP DATABASE IF EXISTS bench_$impl" -c "CREATE DATABASE bench_$impl"
  case $impl in
    a) q -d bench_a -c "CREATE EXTENSION chat_assign" ;;
    d) for f in "$BENCH_DIR"/peer/[0-9]*.sql; do q -d bench_d -f "$f"; done ;;
  esac
  q -d "bench_$impl" -v n="$n" -v k=100 -v t0="$t0" -f "$BENCH_DIR/load/source.sql" >/dev/null
  q -d "bench_$impl" -v t0="$t0" -f "$BENCH_DIR/load/load_$impl.sql" >/dev/null
}

reset_queue() {
  psql -XAtq -d "$1" -c "SELECT count(real_user_send_message(id, 'bench: reset')) FROM chats \
    WHERE chat_state IN ('assigned', 'waiting_real_user_reply')" >/dev/null
  q -d "$1" -c "VACUUM ANALYZE" -c CHECKPOINT
}

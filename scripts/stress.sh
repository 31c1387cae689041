#!/usr/bin/env bash
# Multi-connection stress test of chat_assign against a throw-away PostgreSQL cluster.
#
#   bash scripts/stress.sh
#
# Builds tests/stress (its own Cargo workspace), starts a cluster with scripts/cluster.sh,
# creates a database with the installed extension (`cargo pgrx install` must have run),
# runs the stress binary and stops the cluster again, also on failure. Exits with the
# binary's status; its last line is `stress: N passed, M failed`.
#
# Settings (environment):
#   STRESS_CONNECTIONS  concurrent connections            (default 32)
#   STRESS_SECONDS      length of the run in seconds      (default 20)
#   STRESS_SEED         random seed                       (default: time based, printed)
#   STRESS_DIR          cluster directory                 (default /tmp/ca_stress)
#   STRESS_PORT         cluster port                      (default 54350)
#   STRESS_WORKER       1 (default): preloaded, with the worker in the database; 0: no preload
#   STRESS_DEADLOCK_TIMEOUT  the server's deadlock_timeout, which is also how long a lock
#                       wait lasts before it is logged      (default 200ms; 20ms logs more)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export STRESS_CONNECTIONS=${STRESS_CONNECTIONS:-32}
export STRESS_SECONDS=${STRESS_SECONDS:-20}
STRESS_DIR=${STRESS_DIR:-/tmp/ca_stress}
STRESS_PORT=${STRESS_PORT:-54350}
STRESS_DEADLOCK_TIMEOUT=${STRESS_DEADLOCK_TIMEOUT:-200ms}
DB=chat_assign_stress
# STRESS_WORKER=1 (the default): chat_assign preloaded with its worker in the database, as
# docs/operations.md deploys it, so that the claims start from the queue heads the worker
# keeps (src/store/heads.rs) and try the head range alone first; 0: no preload (the claims
# read each queue from its start, the path of a server without the worker).
STRESS_WORKER=${STRESS_WORKER:-1}
worker_conf=()
if [ "$STRESS_WORKER" = 1 ]; then
  worker_conf=("shared_preload_libraries = 'chat_assign'" "chat_assign.databases = '$DB'")
fi
BIN="$ROOT/tests/stress/target/stress/chat_assign_stress"

echo "== stress: building tests/stress"
cargo build --profile stress --quiet --manifest-path "$ROOT/tests/stress/Cargo.toml" \
  --target-dir "$ROOT/tests/stress/target"

# shellcheck source=cluster.sh
source "$ROOT/scripts/cluster.sh"
cleanup() { cluster_stop "$STRESS_DIR"; }
trap cleanup EXIT
# max_connections=200 comes from cluster.sh; the stress run needs connections + 2.
echo "== stress: starting PostgreSQL $PG_MAJOR in $STRESS_DIR on port $STRESS_PORT"
# log_lock_waits: a wait longer than deadlock_timeout is logged with the statement inside the
# call that waits (CONTEXT), so that a deadlock's log says which statements closed the cycle.
cluster_start "$STRESS_DIR" "$STRESS_PORT" "deadlock_timeout = '$STRESS_DEADLOCK_TIMEOUT'" "log_lock_waits = on" \
  "${worker_conf[@]}"

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres "$@"; }
worker_runs() {
  [ "$(psql_ -d "$DB" -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'chat_assign%' AND datname = '$DB'")" != 0 ]
}
psql_ -d postgres -c "CREATE DATABASE $DB"
psql_ -d "$DB" -c "CREATE EXTENSION chat_assign"
if [ "$STRESS_WORKER" = 1 ]; then
  # The worker starts with the server, for the databases that exist then.
  cluster_restart "$STRESS_DIR"
  for _ in $(seq 50); do
    worker_runs && break
    sleep 0.2
  done
  # A run meant to cover the worker's path (the claims from its queue heads) that ran
  # without it would pass for the wrong reason: fail instead.
  if ! worker_runs; then
    echo "== stress: FAILED: the worker does not run in $DB (STRESS_WORKER=1)" >&2
    tail -n 20 "$STRESS_DIR/server.log" >&2
    exit 1
  fi
  echo "== stress: the worker runs in $DB"
fi

echo "== stress: $STRESS_CONNECTIONS connections for $STRESS_SECONDS s"
status=0
"$BIN" --dsn "host=$PGHOST port=$PGPORT user=postgres dbname=$DB" \
  --connections "$STRESS_CONNECTIONS" --seconds "$STRESS_SECONDS" || status=$?
if [ "$STRESS_WORKER" = 1 ] && ! worker_runs; then
  echo "== stress: the worker no longer runs in $DB after the run" >&2
  status=1
fi

# For the record: how often a SKIP LOCKED statement waited all the same (PostgreSQL locking
# the newer version of a row whose update committed just then; see spi::in_subtransaction),
# and how often a wait was found to close a deadlock (each undone or retried by the call
# when it is the one that waits in a subtransaction; a 40P01 that reached a caller fails
# the run above).
echo "== stress: lock waits logged (longer than $STRESS_DEADLOCK_TIMEOUT): $(grep -c 'still waiting' "$STRESS_DIR/server.log" || true)," \
  "of them inside SKIP LOCKED on a newer row version: $(grep -c 'while locking updated version' "$STRESS_DIR/server.log" || true);" \
  "deadlocks detected: $(grep -c 'detected deadlock' "$STRESS_DIR/server.log" || true)"

if [ "$status" -ne 0 ]; then
  echo "== stress: FAILED (exit $status); server log lines of interest ($STRESS_DIR/server.log):"
  grep -E 'deadlock|internal error|duplicate key|violates|PANIC|TRAP|terminated by signal|server process' \
    "$STRESS_DIR/server.log" | tail -n 40 || true
  # For a deadlock: every process in its cycle, with the lock waits each logged and the
  # statements (top-level and inside the call) they were waiting in.
  if grep -q 'deadlock detected' "$STRESS_DIR/server.log"; then
    pids=$(grep -A3 'deadlock detected' "$STRESS_DIR/server.log" | grep -oE 'Process [0-9]+' |
             grep -oE '[0-9]+' | sort -u | tr '\n' '|' | sed 's/|$//')
    echo "== stress: the processes of the deadlock ($pids): their lock waits and statements"
    grep -E "\[($pids)\]" "$STRESS_DIR/server.log" |
      grep -E 'still waiting|acquired|deadlock|DETAIL|CONTEXT|STATEMENT|Process' | tail -n 80 || true
  fi
fi
exit "$status"

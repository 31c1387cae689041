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
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export STRESS_CONNECTIONS=${STRESS_CONNECTIONS:-32}
export STRESS_SECONDS=${STRESS_SECONDS:-20}
STRESS_DIR=${STRESS_DIR:-/tmp/ca_stress}
STRESS_PORT=${STRESS_PORT:-54350}
DB=chat_assign_stress
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
cluster_start "$STRESS_DIR" "$STRESS_PORT" "deadlock_timeout = '200ms'"

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE $DB"
psql_ -d "$DB" -c "CREATE EXTENSION chat_assign"

echo "== stress: $STRESS_CONNECTIONS connections for $STRESS_SECONDS s"
status=0
"$BIN" --dsn "host=$PGHOST port=$PGPORT user=postgres dbname=$DB" \
  --connections "$STRESS_CONNECTIONS" --seconds "$STRESS_SECONDS" || status=$?

if [ "$status" -ne 0 ]; then
  echo "== stress: FAILED (exit $status); server log lines of interest ($STRESS_DIR/server.log):"
  grep -E 'deadlock|internal error|duplicate key|violates|PANIC|TRAP|terminated by signal|server process' \
    "$STRESS_DIR/server.log" | tail -n 40 || true
fi
exit "$status"

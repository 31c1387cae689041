#!/usr/bin/env bash
# Times moving an app onto the extension at scale: an app database of bench/plpgsql's shape
# (bench/plpgsql) with IMPORT_CHATS chats of IMPORT_MESSAGES messages each
# (default 1,000,000 x 10), then import_app_tables, switch_app_calls and restore_app_calls,
# each timed, in a throw-away PostgreSQL cluster (durable defaults, port 54361). Writes
# bench/results/import.md. Uses the chat_assign build installed in the server.
set -euo pipefail
cd "$(dirname "$0")/.."
IMPORT_CHATS=${IMPORT_CHATS:-1000000}
IMPORT_MESSAGES=${IMPORT_MESSAGES:-10}
IMPORT_OPERATORS=${IMPORT_OPERATORS:-1000}
DIR=${IMPORT_DIR:-/tmp/chat_assign_bench_import}
PORT=${IMPORT_PORT:-54361}
OUT=${IMPORT_OUT:-bench/results/import.md}
# shellcheck source=scripts/cluster.sh disable=SC1091
source scripts/cluster.sh
cluster_start "$DIR" "$PORT" "shared_buffers = 1GB" "max_wal_size = 16GB" "checkpoint_timeout = 30min" \
  "maintenance_work_mem = 256MB"
trap 'cluster_stop "$DIR"' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_ -d postgres -c "DROP DATABASE IF EXISTS app" -c "CREATE DATABASE app"
for f in bench/plpgsql/0*.sql; do psql_ -d app -f "$f" >/dev/null; done
t=$(date +%s.%N)
psql_ -d app -v n="$IMPORT_CHATS" -v per="$IMPORT_MESSAGES" -v k="$IMPORT_OPERATORS" -f bench/import/app_data.sql
load_s=$(awk -v a="$(date +%s.%N)" -v b="$t" 'BEGIN { printf "%.0f", a - b }')
psql_ -d app -c "CREATE SCHEMA chat_assign" -c "CREATE EXTENSION chat_assign SCHEMA chat_assign" -c CHECKPOINT
# timed STEP SQL: runs SQL in its own transaction; prints its output; records seconds.
declare -A secs
timed() {
  local step=$1 sql=$2 t0
  t0=$(date +%s.%N)
  psql_ -d app -c "$sql"
  secs[$step]=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
  echo "$step: ${secs[$step]} s"
}
lsn0=$(psql -XAtq -d app -c "SELECT pg_current_wal_lsn()")
timed import "SELECT * FROM chat_assign.import_app_tables('public')"
lsn1=$(psql -XAtq -d app -c "SELECT pg_current_wal_lsn()")
wal_mb=$(psql -XAtq -d app -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / 1048576)")
timed switch "SELECT count(*) AS objects FROM chat_assign.switch_app_calls('public')"
timed restore "SELECT count(*) AS objects FROM chat_assign.restore_app_calls('public')"
counts=$(psql -XAtq -d app -F ' ' -c "SELECT (SELECT count(*) FROM chat_assign.chats), (SELECT count(*) FROM chat_assign.messages), (SELECT count(*) FROM chat_assign.chat_assignments), pg_size_pretty(pg_database_size('app'))")
read -r n_chats n_messages n_assignments db_size <<<"$counts"
{
  echo "# Moving an app onto chat_assign: import time"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), \`bash scripts/bench_import.sh\` on $(nproc) cores, PostgreSQL $(psql -XAtq -d app -c 'SHOW server_version'), fsync on, shared_buffers 1GB, maintenance_work_mem 256MB, git $(git rev-parse --short HEAD)."
  echo
  echo "App database of bench/plpgsql's shape (bench/plpgsql, bench/import/app_data.sql): $IMPORT_OPERATORS operators, $n_chats chats, $n_messages messages, $n_assignments assignments; loaded in ${load_s} s; database size after import $db_size."
  echo
  echo "| step | seconds |"
  echo "|---|---:|"
  echo "| \`import_app_tables('public')\` (one transaction; WAL ${wal_mb} MB) | ${secs[import]} |"
  echo "| \`switch_app_calls('public')\` | ${secs[switch]} |"
  echo "| \`restore_app_calls('public')\` | ${secs[restore]} |"
} >"$OUT"
cat "$OUT"

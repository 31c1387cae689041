#!/usr/bin/env bash
# An experiment, not part of the product or its tests: would `chats` rows that update HOT
# make the live-chat cycle cheaper? Two schemas of the same cycle (assign, operator reply,
# user reply, each writing an event), in plain SQL so that only the layout differs:
#   plain: the queue is a partial index on chats, as chat_assign's is; every state change
#          rewrites the chat's index entries (chat_state is in the indexes' predicates);
#   hot:   chats has only its primary key (fillfactor 70), so its updates are HOT; the queue
#          is a table of its own (a row inserted when a chat starts waiting, deleted when it
#          is claimed), an operator's load a counter on its row.
# Each N waiting chats, C clients, S seconds per run, ROUNDS rounds, each schema loaded
# fresh, a warm-up run, then the measured one; prints cycles/s and WAL bytes per cycle.
# Usage: bash bench/experiments/hot_queue/run.sh [N] [C] [S] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../../scripts/cluster.sh"
n=${1:-1000} c=${2:-16} s=${3:-10} rounds=${4:-2}
DIR=/tmp/chat_assign_hot_queue PORT=54364
cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "shared_buffers = 1GB" \
  "max_wal_size = 8GB" "checkpoint_timeout = 30min"
trap 'cluster_stop "$DIR"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
for round in $(seq 1 "$rounds"); do
  for layout in plain hot; do
    q -d postgres -c "DROP DATABASE IF EXISTS hq" -c "CREATE DATABASE hq" 2>/dev/null
    q -d hq -f "$here/schema_$layout.sql"
    q -d hq -v n="$n" -f "$here/load_$layout.sql"
    q -d hq -c CHECKPOINT
    "$PG_BIN/pgbench" -n -M prepared -c "$c" -j 2 -T 3 -D step=0 -f "$here/cycle_$layout.sql" hq >/dev/null 2>&1 || true
    q -d hq -f "$here/reset_$layout.sql" >/dev/null
    lsn0=$(psql -XAtq -d hq -c "SELECT pg_current_wal_lsn()")
    out=$("$PG_BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$s" -D step=0 -f "$here/cycle_$layout.sql" hq 2>&1)
    lsn1=$(psql -XAtq -d hq -c "SELECT pg_current_wal_lsn()")
    tx=$(sed -n 's/number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    bytes=$(psql -XAtq -d hq -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
    echo "round $round $layout N=$n C=$c: $(( tx / 3 / s )) cycles/s, $(( bytes * 3 / tx )) WAL bytes/cycle"
  done
done

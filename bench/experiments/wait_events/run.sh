#!/usr/bin/env bash
# An experiment, not part of the product or its tests: what do 16 clients running the
# live-chat cycle wait for, in (a) chat_assign and (d) the PL/pgSQL peer? With durable
# commits both spend most of their time waiting for the WAL flush of their commits
# (docs/performance.md), which is why a cycle that costs less CPU is not much faster there.
# Loads N waiting chats into both (as scripts/bench.sh does), then per round and
# implementation: a reset, vacuumed queue, a CHECKPOINT, a pgbench run of S seconds, and
# from 3 s into it 300 samples (every 20 ms) of pg_stat_activity's wait events of the
# run's backends. Prints the share of each wait event, and cycles/s.
# Usage: bash bench/experiments/wait_events/run.sh [N] [C] [S] [ROUNDS]
# Needs chat_assign installed into the PostgreSQL 15 that scripts/cluster.sh uses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=$(cd "$here/../.." && pwd)
source "$here/../../../scripts/cluster.sh"
n=${1:-1000} c=${2:-16} s=${3:-12} rounds=${4:-2}
(( s >= 10 )) || { echo "S must be at least 10 (samples run from 3 s to 9 s)" >&2; exit 2; }
DIR=/tmp/chat_assign_wait_events PORT=54365
cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "shared_buffers = 1GB" \
  "max_wal_size = 8GB" "checkpoint_timeout = 30min"
trap 'cluster_stop "$DIR"' EXIT
q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$@"; }
t0=$(psql -XAtq -d postgres -c "SELECT now()")
for impl in a d; do
  q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench_$impl" \
    -c "CREATE DATABASE bench_$impl"
  case $impl in
    a) q -d bench_a -c "CREATE EXTENSION chat_assign" ;;
    d) for f in "$bench"/peer/[0-9]*.sql; do q -d bench_d -f "$f"; done ;;
  esac
  q -d "bench_$impl" -v n="$n" -v k=100 -v t0="$t0" -f "$bench/load/source.sql" >/dev/null
  q -d "bench_$impl" -v t0="$t0" -f "$bench/load/load_$impl.sql" >/dev/null
done
for round in $(seq 1 "$rounds"); do
  for impl in a d; do
    db=bench_$impl
    psql -XAtq -d "$db" -c "SELECT count(real_user_send_message(id, 'bench: reset')) FROM chats \
      WHERE chat_state IN ('assigned', 'waiting_real_user_reply')" >/dev/null
    q -d "$db" -c "VACUUM ANALYZE" -c CHECKPOINT
    "$PG_BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$s" -D step=0 \
      -f "$bench/pgbench/cycle_$impl.sql" "$db" >"$DIR/pgbench_$impl.out" 2>&1 &
    pgb=$!
    sleep 3
    echo "round $round ($impl), N=$n, $c clients:"
    psql -XAtq -F ' ' -d postgres -v db="$db" <<'SQL'
CREATE TEMP TABLE samples (w text);
SELECT set_config('x.db', :'db', false) \g /dev/null
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    INSERT INTO samples
    SELECT coalesce(wait_event_type || ':' || wait_event, 'no wait event, ' || state)
    FROM pg_stat_activity
    WHERE datname = current_setting('x.db') AND backend_type = 'client backend';
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;
SELECT format('  %-28s %5s%%', w, round(100.0 * count(*) / sum(count(*)) OVER (), 1))
FROM samples GROUP BY w ORDER BY count(*) DESC LIMIT 8;
SQL
    wait "$pgb"
    tx=$(sed -n 's/number of transactions actually processed: \([0-9]*\).*/\1/p' "$DIR/pgbench_$impl.out")
    echo "  cycles/s: $(( tx / 3 / s ))"
  done
done

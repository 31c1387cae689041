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
source "$here/../common.sh"
n=${1:-1000} c=${2:-16} s=${3:-12} rounds=${4:-2}
(( s >= 10 )) || { echo "S must be at least 10 (samples run from 3 s to 9 s)" >&2; exit 2; }
experiment_cluster /tmp/chat_assign_wait_events 54365
load a "$n"
load d "$n"
for round in $(seq 1 "$rounds"); do
  for impl in a d; do
    db=bench_$impl
    reset_queue "$db"
    "$PG_BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$s" -D step=0 \
      -f "$BENCH_DIR/pgbench/cycle_$impl.sql" "$db" >"$PGHOST/pgbench_$impl.out" 2>&1 &
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
    tx=$(sed -n 's/number of transactions actually processed: \([0-9]*\).*/\1/p' "$PGHOST/pgbench_$impl.out")
    echo "  cycles/s: $(( tx / 3 / s ))"
  done
done

#!/usr/bin/env bash
# An experiment, not part of the product or its tests: how much of the old-snapshot slowdown
# (docs/performance.md, "An old snapshot") would a queue-head hint remove? Needs a
# throw-away build with claim_from_head.patch applied by hand (the claim of an operator of
# no team starts at the `waiting_since` held in the sequence public.qh, priority 0 only;
# NOT correct in general: a chat placed before the head is passed by) installed into the
# PostgreSQL 15 that scripts/cluster.sh uses. Loads N waiting chats into (a), then per
# round: 16 clients run the cycle for 65 s, a REPEATABLE READ snapshot is held from 5 s to
# the end, once without the head (qh stays 0) and once with a side session publishing the
# queue's first visible chat every 100 ms. Prints pgbench's 5 s progress lines (time, tps,
# mean latency of all steps).
# Usage: bash bench/experiments/queue_head/run.sh [N] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"
n=${1:-1000000} rounds=${2:-2}
experiment_cluster /tmp/chat_assign_queue_head 54366
load a "$n"
q -d bench_a -c "CREATE SEQUENCE public.qh MINVALUE 0"
for round in $(seq 1 "$rounds"); do
  for head in 0 1; do
    q -d bench_a -c "SELECT setval('public.qh', 0)" >/dev/null
    reset_queue bench_a
    if (( head )); then
      psql -X -q -d bench_a -c "SET application_name = 'head_publisher'" -c "DO \$\$ BEGIN LOOP
        PERFORM setval('public.qh', greatest(0, coalesce((
          SELECT (extract(epoch FROM waiting_since) * 1e6)::bigint - 2 FROM chats
          WHERE coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid)
                = '00000000-0000-0000-0000-000000000000'
            AND chat_state = 'waiting_assignment' AND is_active
          ORDER BY priority DESC, waiting_since, id LIMIT 1), 0)));
        COMMIT; PERFORM pg_sleep(0.1); END LOOP; END \$\$" >/dev/null 2>&1 &
    fi
    "$PG_BIN/pgbench" -n -M prepared -c 16 -j 2 -T 65 -P 5 -D step=0 \
      -f "$BENCH_DIR/pgbench/cycle_a.sql" bench_a >"$PGHOST/pgbench.out" 2>&1 &
    pgb=$!
    sleep 5
    psql -X -q -d bench_a -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM operators" \
      -c "SELECT pg_sleep(60)" -c "COMMIT" >/dev/null 2>&1 &
    wait "$pgb"
    psql -XAtq -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
      WHERE application_name = 'head_publisher'" >/dev/null
    wait
    echo "round $round, head $( (( head )) && echo on || echo off ), N=$n: time tps latency-ms"
    awk '/^progress/ {printf "  %s %s %s\n", $2, $4, $7}' "$PGHOST/pgbench.out"
  done
done

#!/usr/bin/env bash
# Automatic assignment and service metrics, measured: (1) the live-chat cycle in a pushed
# team (bench/routing/cycle_push.sql: nobody asks; the reply pulls the next chat, the user's
# message pushes the chat) against the pull cycle (bench/pgbench/cycle_a.sql) in a manual
# team, same data, same run, interleaved; (2) fairness: how evenly each routing spreads
# 10,000 chats over 20 operators of equal capacity (bench/routing/fairness.sql); (3) what
# a push costs in teams of 1 to 500 members (bench/routing/push_members.sql); (4)
# get_service_metrics at 1M chats with 100k in the last 24 hours
# (bench/routing/metrics_load.sql). A throw-away PostgreSQL cluster with durable defaults
# (port 54363). Writes bench/results/routing.md. Uses the chat_assign build installed in
# the server.
#
#   ROUTING_SECONDS  length of each pgbench run (default 20)
#   ROUTING_ROUNDS   runs per cycle, interleaved (default 2)
#   ROUTING_CLIENTS  pgbench clients = operators at work (default 16)
#   ROUTING_CHATS    chats through the team in the fairness runs (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_=${ROUTING_SECONDS:-20}
ROUNDS=${ROUTING_ROUNDS:-2}
CLIENTS=${ROUTING_CLIENTS:-16}
FAIR_CHATS=${ROUTING_CHATS:-10000}
DIR=${ROUTING_DIR:-/tmp/chat_assign_bench_routing}
PORT=${ROUTING_PORT:-54363}
OUT=${ROUTING_OUT:-bench/results/routing.md}
# shellcheck source=scripts/cluster.sh disable=SC1091
source scripts/cluster.sh
# shellcheck source=scripts/bench_lib.sh disable=SC1091
source scripts/bench_lib.sh
cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "shared_buffers = 1GB" \
  "max_wal_size = 16GB" "checkpoint_timeout = 30min" "maintenance_work_mem = 256MB"
trap 'cluster_stop "$DIR"' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
log() { printf '== bench_routing [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# ---------------------------------------------------------------- push against pull
for db in pull_team push_team; do
  log "loading $db: 1000 waiting chats in one team, $CLIENTS operators in it"
  psql_ -d postgres -c "CREATE DATABASE $db"
  psql_ -d "$db" -v n=1000 -v teams=1 -v per=1 -v ops="$CLIENTS" -f bench/teams/load.sql
done
psql_ -d push_team -c "SELECT set_team_routing(id, 'least_loaded') FROM teams" >/dev/null
declare -A cps walc
for round in $(seq 1 "$ROUNDS"); do
  order="pull push"; (( round % 2 == 0 )) && order="push pull"
  for kind in $order; do
    script=bench/pgbench/cycle_a.sql prepare=
    if [ "$kind" = push ]; then
      # Every operator starts holding a chat, as it does in the steady state (a reply pulls
      # the next): one that holds none asks, and a push that lands between its look and its
      # ask would make the ask fail at capacity, which ends a pgbench client.
      script=bench/routing/cycle_push.sql
      prepare="SELECT count(assign_chat_to_operator(o.id)) FROM operators o
               WHERE NOT EXISTS (SELECT 1 FROM chats c WHERE c.assigned_operator_id = o.id)"
    fi
    log "round $round: $kind cycle, $CLIENTS clients, $SECONDS_ s"
    read -r c _ _ w < <(cycle_run "${kind}_team" "$script" "$round" "$prepare")
    cps[$kind]+="$c "; walc[$kind]+="$w "
    log "  $c cycles/s, WAL $w B/cycle"
  done
done
auto=$(psql -XAtq -d push_team -c "SELECT count(*) FROM chat_events WHERE reason = 'auto_assigned'")
asked=$(psql -XAtq -d push_team -c "SELECT count(*) FROM chat_events WHERE reason = 'assigned'")

# ---------------------------------------------------------------- fairness
psql_ -d postgres -c "CREATE DATABASE fairness"
fair=""
for busy in 0 20; do
  for routing in least_loaded round_robin; do
    log "fairness: $routing, $FAIR_CHATS chats, 20 operators of capacity 2, $busy chats kept open"
    fair+="$busy|"$(PGOPTIONS="-c synchronous_commit=off" psql -X -q -v ON_ERROR_STOP=1 -d fairness -A -F '|' -t \
      -v routing="$routing" -v n="$FAIR_CHATS" -v ops=20 -v cap=2 -v busy="$busy" -f bench/routing/fairness.sql \
      | grep "^$routing|")$'\n'
  done
done

# ---------------------------------------------------------------- push by team size
psql_ -d postgres -c "CREATE DATABASE push_members"
psql_ -d push_members -c "CREATE EXTENSION chat_assign"
members=""
for m in 1 16 100 500; do
  log "push cost: a least_loaded team of $m members, 300 starts"
  members+=$(PGOPTIONS="-c bench.members=$m -c bench.starts=300" psql -X -q -v ON_ERROR_STOP=1 \
    -d push_members -A -t -v members="$m" -v starts=300 -f bench/routing/push_members.sql | tail -1)$'\n'
done

# ---------------------------------------------------------------- service metrics
log "loading metrics: 1,000,000 chats in 50 teams, 100,000 in the last 24 hours"
psql_ -d postgres -c "CREATE DATABASE metrics"
psql_ -d metrics -v n=1000000 -v recent=100000 -f bench/routing/metrics_load.sql
metrics_time() {
  psql -X -q -v ON_ERROR_STOP=1 -d metrics -A -t -c "
    CREATE TEMP TABLE t (ms float8);
    DO \$\$ DECLARE t0 timestamptz; BEGIN
      FOR i IN 1 .. 20 LOOP
        t0 := clock_timestamp();
        PERFORM * FROM get_service_metrics($1);
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
      END LOOP; END \$\$;
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || '|' ||
           round(max(ms)::numeric, 1) FROM t"
}
m_all=$(metrics_time "")
m_team=$(metrics_time "p_team_id => (SELECT id FROM teams ORDER BY name LIMIT 1)")
m_rows=$(psql -XAtq -d metrics -c "SELECT count(*) || ' rows; all: ' || max(chats_started) FILTER (WHERE scope = 'all') || ' chats, first response p50 ' || round(max(first_response_p50) FILTER (WHERE scope = 'all')) || ' s, idle releases ' || max(idle_releases) FILTER (WHERE scope = 'all') || ', transfers ' || max(transfers) FILTER (WHERE scope = 'all') || ', abandoned ' || max(abandoned) FILTER (WHERE scope = 'all') FROM get_service_metrics()")

pull=$(median <<<"${cps[pull]}"); push=$(median <<<"${cps[push]}")
{
  echo "# Automatic assignment and service metrics"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), \`bash scripts/bench_routing.sh\` on $(nproc) cores, PostgreSQL $(psql -XAtq -d postgres -c 'SHOW server_version'), fsync and synchronous_commit on, shared_buffers 1GB, git $(git rev-parse --short HEAD)."
  echo
  echo "## Push against pull"
  echo
  echo "1,000 waiting chats in one team, $CLIENTS operators (capacity 1) in it, $CLIENTS pgbench clients, $ROUNDS x $SECONDS_ s each, interleaved, each run after a CHECKPOINT; median of the rounds (each round in brackets)."
  echo
  echo "| cycle | team routing | cycles/s | WAL B/cycle |"
  echo "|---|---|---:|---:|"
  echo "| pull: assign, reply, user reply (bench/pgbench/cycle_a.sql) | manual | $pull [${cps[pull]% }] | $(median <<<"${walc[pull]}") |"
  echo "| push: look, reply (pulls the next), user reply (pushes) (bench/routing/cycle_push.sql) | least_loaded | $push [${cps[push]% }] | $(median <<<"${walc[push]}") |"
  echo
  echo "Push / pull: $(awk -v a="$push" -v b="$pull" 'BEGIN { printf "%.2f", a / b }')x. In the push runs $auto chats were given by the calls themselves (auto_assigned) and $asked taken by asking (an operator holding none, at the start)."
  echo
  echo "## Fairness"
  echo
  echo "$FAIR_CHATS chats through one team of 20 operators of capacity 2 (a team of its own per run), one chat at a time, each in its own transaction (bench/routing/fairness.sql): answered as soon as it is given (0 kept open), or with about 20 kept open and answered in a random order, so that some operators are at capacity when their turn comes. Chats given per operator (even: $(( FAIR_CHATS / 20 ))):"
  echo
  echo "| chats kept open | routing | min | max | max/min | automatic assignments |"
  echo "|---:|---|---:|---:|---:|---:|"
  while IFS='|' read -r k r a b m n; do
    [ -n "$r" ] && echo "| $k | $r | $a | $b | $m | $n |"
  done <<<"$fair"
  echo
  echo "## Push cost by team size"
  echo
  echo "A least_loaded team of N members, each holding a chat and with room for many more, so that every push compares every member; 300 chats started one at a time in the team, each pushed in the same call (bench/routing/push_members.sql), timed in the server:"
  echo
  echo "| members | start_chat with its push, p50 ms | chats of the team assigned |"
  echo "|---:|---:|---:|"
  while IFS='|' read -r m ms n; do
    [ -n "$m" ] && echo "| $m | $ms | $n |"
  done <<<"$members"
  echo
  echo "## get_service_metrics"
  echo
  echo "1,000,000 chats in 50 teams, 100,000 of them started in the last 24 hours, 100,000 assignments and about 5,000 transfers in that window (bench/routing/metrics_load.sql); 20 calls each, timed in the server:"
  echo
  echo "| call | p50 ms | max ms |"
  echo "|---|---:|---:|"
  echo "| \`get_service_metrics()\` (52 rows: all, no team, 50 teams) | ${m_all%|*} | ${m_all#*|} |"
  echo "| \`get_service_metrics(p_team_id => ...)\` (one team) | ${m_team%|*} | ${m_team#*|} |"
  echo
  echo "Answer: $m_rows."
} >"$OUT"
cat "$OUT"

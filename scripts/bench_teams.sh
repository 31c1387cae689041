#!/usr/bin/env bash
# The cost of teams: the live-chat cycle (bench/pgbench/cycle_a.sql: assign, operator reply,
# user reply) with chats in teams, against the same cycle without teams, and the time of
# get_queue_position by position. A throw-away PostgreSQL cluster with durable defaults
# (fsync and synchronous_commit on; port 54362), one database per setup, loaded by
# bench/teams/load.sql. Writes bench/results/teams.md. Uses the chat_assign build installed
# in the server.
#
#   TEAMS_SECONDS  length of each pgbench run (default 20)
#   TEAMS_ROUNDS   runs per setup, interleaved (default 2)
#   TEAMS_CLIENTS  pgbench clients = operators at work (default 16)
#   TEAMS_CALLS    get_queue_position calls per position (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_=${TEAMS_SECONDS:-20}
ROUNDS=${TEAMS_ROUNDS:-2}
CLIENTS=${TEAMS_CLIENTS:-16}
CALLS=${TEAMS_CALLS:-200}
DIR=${TEAMS_DIR:-/tmp/chat_assign_bench_teams}
PORT=${TEAMS_PORT:-54362}
OUT=${TEAMS_OUT:-bench/results/teams.md}
# shellcheck source=scripts/cluster.sh disable=SC1091
source scripts/cluster.sh
# shellcheck source=scripts/bench_lib.sh disable=SC1091
source scripts/bench_lib.sh
cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "shared_buffers = 1GB" \
  "max_wal_size = 16GB" "checkpoint_timeout = 30min" "maintenance_work_mem = 256MB"
trap 'cluster_stop "$DIR"' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
log() { printf '== bench_teams [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# name, waiting chats, teams, teams per operator.
SETUPS=(
  "none_1k 1000 0 0"
  "team_1k 1000 1 1"
  "none_1m 1000000 0 0"
  "teams50_1m 1000000 50 1"
  "teams50x3_1m 1000000 50 3"
)
for setup in "${SETUPS[@]}"; do
  read -r name n teams per <<<"$setup"
  log "loading $name: $n waiting chats in $teams team(s), $CLIENTS operators in $per team(s) each"
  psql_ -d postgres -c "CREATE DATABASE $name"
  psql_ -d "$name" -v n="$n" -v teams="$teams" -v per="$per" -v ops="$CLIENTS" \
    -f bench/teams/load.sql
done
psql_ -d postgres -c CHECKPOINT

declare -A cps p50 p99 walc
for round in $(seq 1 "$ROUNDS"); do
  # Alternate the order so that no setup always runs first on a warm or cold machine.
  order=("${SETUPS[@]}")
  if (( round % 2 == 0 )); then
    order=(); for (( i=${#SETUPS[@]}-1; i>=0; i-- )); do order+=("${SETUPS[$i]}"); done
  fi
  for setup in "${order[@]}"; do
    read -r name _ <<<"$setup"
    log "round $round: $name, $CLIENTS clients, $SECONDS_ s"
    read -r c a b w < <(cycle_run "$name" bench/pgbench/cycle_a.sql "$round")
    cps[$name]+="$c "; p50[$name]+="$a "; p99[$name]+="$b "; walc[$name]+="$w "
    log "  $c cycles/s, assign p50 $a ms, p99 $b ms, WAL $w B/cycle"
  done
done

# Positions after the cycles, so that the estimate reads a real assignment history.
positions() {
  local db=$1 list=$2
  PGOPTIONS="-c bench.positions=$list -c bench.calls=$CALLS" \
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -A -F '|' -t -f bench/teams/position.sql
}
log "get_queue_position in teams50_1m (a team's queue of 20,000) and none_1m (one queue of 1,000,000)"
pos_team=$(positions teams50_1m "1,100,1000,10000,20000")
pos_one=$(positions none_1m "1,1000,10000,100000,500000,1000000")

{
  echo "# Teams: the cycle's cost by queue layout, and queue positions"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), \`bash scripts/bench_teams.sh\` on $(nproc) cores, PostgreSQL $(psql -XAtq -d postgres -c 'SHOW server_version'), fsync and synchronous_commit on, shared_buffers 1GB, git $(git rev-parse --short HEAD)."
  echo
  echo "The cycle is bench/pgbench/cycle_a.sql (assign, operator reply, user reply: three commits) at $CLIENTS clients, $ROUNDS x $SECONDS_ s per setup, interleaved; figures are the median of the rounds (each round's in brackets)."
  echo
  echo "| setup | waiting | teams | teams per operator | cycles/s | assign p50 ms | assign p99 ms | WAL B/cycle |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for setup in "${SETUPS[@]}"; do
    read -r name n teams per <<<"$setup"
    echo "| $name | $n | $teams | $per | $(median <<<"${cps[$name]}") [${cps[$name]% }] | $(median <<<"${p50[$name]}") [${p50[$name]% }] | $(median <<<"${p99[$name]}") | $(median <<<"${walc[$name]}") |"
  done
  echo
  echo "get_queue_position, $CALLS calls per position, timed in the server around each call (bench/teams/position.sql); 'answered' is the position the call returned (it must equal the one asked):"
  echo
  echo "| queue | position asked | answered | p50 ms | p95 ms |"
  echo "|---|---:|---:|---:|---:|"
  while IFS='|' read -r asked answered _ a b; do
    [ -n "$asked" ] && echo "| a team's queue of 20,000 (1M waiting in 50 teams) | $asked | $answered | $a | $b |"
  done <<<"$pos_team"
  while IFS='|' read -r asked answered _ a b; do
    [ -n "$asked" ] && echo "| one queue of 1,000,000 | $asked | $answered | $a | $b |"
  done <<<"$pos_one"
  echo
  echo "A position is counted exactly from the queue index (index-only), so its cost grows with the position; the estimate adds a bounded read of the last 500 assignments."
} >"$OUT"
cat "$OUT"

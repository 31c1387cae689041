#!/usr/bin/env bash
# Shared by scripts/bench_teams.sh and scripts/bench_routing.sh (source it after
# scripts/cluster.sh, with CLIENTS, SECONDS_ and DIR set).

# cycle_run DB SCRIPT ROUND [PREPARE]: one pgbench run of a three-step cycle
# (bench/pgbench/cycle_a.sql and the scripts shaped like it); prints cycles/s, assign p50 and
# p99 (ms) and WAL bytes per cycle. PREPARE, an SQL statement, runs before the checkpoint.
cycle_run() {
  local db=$1 script=$2 prefix="$DIR/log_$1_$3" prepare=${4:-} lsn0 lsn1 wal cycles
  rm -f "$prefix".*
  # A run ends mid-cycle: operators still hold the chat they took last. Give those back
  # (the same queue for every run), then start just after a checkpoint, as scripts/bench.sh
  # does: each run pays the full-page images of its first change to every page it touches.
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
    -c "SELECT count(release_and_reassign_chat(id)) FROM chats WHERE chat_state = 'assigned'" >/dev/null
  [ -z "$prepare" ] || psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "$prepare" >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c CHECKPOINT
  lsn0=$(psql -XAtq -d "$db" -c "SELECT pg_current_wal_lsn()")
  "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_" -D step=0 \
    -f "$script" --log --log-prefix="$prefix" "$db" >"$prefix.out" 2>&1 \
    || { cat "$prefix.out" >&2; return 1; }
  lsn1=$(psql -XAtq -d "$db" -c "SELECT pg_current_wal_lsn()")
  wal=$(psql -XAtq -d "$db" -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
  # A client's transaction t (from 1) is step (t - 1) mod 3: assign (or look) is step 0, a
  # cycle ends with step 2.
  cycles=$(cat "$prefix".[0-9]* | awk 'NF >= 6 && ($2 - 1) % 3 == 2 { n++ } END { print n + 0 }')
  cat "$prefix".[0-9]* | awk 'NF >= 6 && ($2 - 1) % 3 == 0 { print $3 / 1000.0 }' | sort -g \
    >"$prefix.assign"
  awk -v secs="$SECONDS_" -v wal="$wal" -v cycles="$cycles" '
    { a[NR] = $1 }
    END {
      p50 = NR ? a[int((NR - 1) * 0.50) + 1] : 0
      p99 = NR ? a[int((NR - 1) * 0.99) + 1] : 0
      printf "%.0f %.2f %.2f %.0f\n", cycles / secs, p50, p99, cycles ? wal / cycles : 0
    }' "$prefix.assign"
}

# median: of the numbers on standard input (space or newline separated).
median() {
  tr ' ' '\n' | sed '/^$/d' | sort -g |
    awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}

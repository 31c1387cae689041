#!/usr/bin/env bash
# The throughput benchmark. (a) chat_assign, (a0) chat_assign with change
# events off, (b) the PL/pgSQL design apps ran before this extension (bench/plpgsql), (d) a plain PL/pgSQL peer of
# the 0.2 contract (bench/peer), (e) the write floor (the cycle's rows alone, written into
# chat_assign's tables by three plain statements: bench/write_floor) and (c) the floor (three
# single-row UPDATE commits per cycle), side by side on the same data in one cluster: cycles/s, WAL bytes per cycle, assign
# latency; then, at the largest queue, the monitoring calls and two slow cases (an old
# snapshot held open; the avoid-same-operator fallback). See bench/README.md.
#
#   bash scripts/bench.sh                      # full run, roughly 45 minutes
#   BENCH_SIZES=1000 BENCH_CLIENTS=1 BENCH_SECONDS=3 BENCH_SNAPSHOT_SECONDS=0 bash scripts/bench.sh   # smoke
#
# Settings (environment):
#   BENCH_SIZES      waiting chats N, space separated     (default "1000 100000 1000000")
#   BENCH_CLIENTS    pgbench clients = operators at work  (default "1 16 64")
#   BENCH_SECONDS    length of each pgbench run           (default 15)
#   BENCH_ROUNDS     runs per implementation and (N, clients), interleaved a b c, c b a, ...
#                    and pooled, so that a burst of load from other processes on the machine
#                    falls on all three alike                     (default 2)
#   BENCH_WARMUP     seconds cut from the start of each run before measuring (default 1)
#   BENCH_OPERATORS  operators K loaded (>= the largest client count)   (default 100)
#   BENCH_IDLE       idle chats released by release_idle_assignments at the largest N
#                    (default 10000, at most N/2)
#   BENCH_FSYNC      durability of the throw-away cluster: on (default: fsync, synchronous_commit
#                    and full_page_writes on, as in production) or off (all three off but
#                    synchronous_commit: CPU and locking cost only)
#   BENCH_SNAPSHOT_SECONDS  slow case (i): how long a REPEATABLE READ transaction stays open
#                    while 16 clients run the cycle, for (a) and (d) at the largest N
#                    (default 60; 0 skips it)
#   BENCH_IMPLS      implementations to run (default "a a0 b d e c"; (a0) is skipped with a note
#                    when the installed build has no chat_assign.events setting)
#   BENCH_NOTIFY     chat_assign.notify for (a): on (the default, as installed) or off
#   BENCH_KEEP_LOGS  1 = keep pgbench's per-transaction logs (hundreds of MB for a full run);
#                    by default they are deleted once the report is written
#   BENCH_BUILD      1 = (re)build and install the extension first (cargo pgrx install
#                    --release); by default the installed build is used, and built only if
#                    none is installed
#   BENCH_DIR, BENCH_PORT   cluster directory and port (default /tmp/chat_assign_bench, 54360)
#   BENCH_OUT        where results.md, cycles.png and raw/ go     (default bench/results)
#
# Writes bench/results/results.md (printed at the end), bench/results/cycles.png, and the raw
# material under bench/results/raw/ (per-run figures, pgbench outputs, monitoring TSV, plans).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
OUT=${BENCH_OUT:-$BENCH/results}
RAW="$OUT/raw"
# shellcheck source=scripts/pg.sh
if ! source "$ROOT/scripts/pg.sh" 2>/dev/null; then
  bash "$ROOT/scripts/setup.sh"
  # shellcheck source=scripts/pg.sh
  source "$ROOT/scripts/pg.sh"
fi
PGBENCH="$PG_BIN/pgbench"

BENCH_SIZES=${BENCH_SIZES:-"1000 100000 1000000"}
BENCH_CLIENTS=${BENCH_CLIENTS:-"1 16 64"}
BENCH_SECONDS=${BENCH_SECONDS:-15}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_OPERATORS=${BENCH_OPERATORS:-100}
BENCH_IDLE=${BENCH_IDLE:-10000}
BENCH_FSYNC=${BENCH_FSYNC:-on}
BENCH_SNAPSHOT_SECONDS=${BENCH_SNAPSHOT_SECONDS:-60}
BENCH_NOTIFY=${BENCH_NOTIFY:-on}
BENCH_BUILD=${BENCH_BUILD:-0}
BENCH_KEEP_LOGS=${BENCH_KEEP_LOGS:-0}
BENCH_DIR=${BENCH_DIR:-/tmp/chat_assign_bench}
BENCH_PORT=${BENCH_PORT:-54360}
IMPLS=${BENCH_IMPLS:-"a a0 b d e c"}
SNAPSHOT_CLIENTS=16
has_impl() { [[ " $IMPLS " == *" $1 "* ]]; }
uses_ext() { has_impl a || has_impl a0 || has_impl e; }

started=$(date +%s)
log() { printf '== bench [%4ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }

# ---------------------------------------------------------------- prerequisites
max_clients=0; max_size=0
for c in $BENCH_CLIENTS; do (( c > max_clients )) && max_clients=$c; done
for n in $BENCH_SIZES; do (( n > max_size )) && max_size=$n; done
(( BENCH_SNAPSHOT_SECONDS > 0 && SNAPSHOT_CLIENTS > max_clients )) && max_clients=$SNAPSHOT_CLIENTS
if (( BENCH_OPERATORS < max_clients )); then
  echo "BENCH_OPERATORS ($BENCH_OPERATORS) must be >= the largest client count ($max_clients)" >&2
  exit 2
fi
for n in $BENCH_SIZES; do
  if (( n < 2 * max_clients )); then
    echo "queue size $n is too small for $max_clients clients (need >= $((2 * max_clients)))" >&2
    exit 2
  fi
done

if [ ! -x "$PGBENCH" ] || [ ! -x "$PG_BIN/initdb" ]; then
  log "PostgreSQL not found: running scripts/setup.sh"
  bash "$ROOT/scripts/setup.sh"
fi
ext_control=$("$PG_CONFIG" --sharedir)/extension/chat_assign.control
if uses_ext && { [ "$BENCH_BUILD" = 1 ] || [ ! -f "$ext_control" ]; }; then
  log "building and installing chat_assign (release)"
  bash "$ROOT/scripts/setup.sh"
  export PATH="$HOME/.cargo/bin:$PATH"
  (cd "$ROOT" && cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null)
fi
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib (pip)"
  python3 -m pip install --quiet matplotlib 2>&1 | grep -v 'WARNING: Running pip as' || true
  python3 -c 'import matplotlib' || { echo "matplotlib could not be installed" >&2; exit 1; }
fi

# raw/ is regenerated by every run; its .gitignore (raw material is not committed) stays.
mkdir -p "$RAW"
find "$RAW" -mindepth 1 -maxdepth 1 ! -name .gitignore -exec rm -rf {} +
mkdir -p "$RAW/logs"
chmod 777 "$RAW" "$RAW/logs"

# ---------------------------------------------------------------- the cluster
# Durable by default (fsync, synchronous_commit, full_page_writes on): what an app gets in
# production, where each cycle's three commits wait for the disk and the WAL each
# implementation writes (full-page images included) is part of its cost. BENCH_FSYNC=off
# measures CPU and locking cost only. Every implementation runs under the same settings.
if [ "$BENCH_FSYNC" = on ]; then
  durability=("fsync = on" "synchronous_commit = on" "full_page_writes = on")
else
  durability=("fsync = off" "synchronous_commit = on" "full_page_writes = off")
fi
# shellcheck source=scripts/cluster.sh disable=SC1091
source "$ROOT/scripts/cluster.sh"
cleanup() { cluster_stop "$BENCH_DIR"; }
trap cleanup EXIT
log "starting PostgreSQL $PG_MAJOR in $BENCH_DIR (port $BENCH_PORT), fsync=$BENCH_FSYNC, chat_assign.notify=$BENCH_NOTIFY, implementations: $IMPLS"
# chat_assign as docs/operations.md deploys it: preloaded, with its worker in its databases
# (it folds the change events, wakes listeners and moves the queue heads claims start
# from). Its idle passes are spaced an hour apart: the idle release is measured by hand.
# A worker starts with the server, so the server restarts after each load (a worker
# whose database is dropped under it stops until the next start).
cluster_start "$BENCH_DIR" "$BENCH_PORT" \
  "shared_buffers = 1GB" \
  "${durability[@]}" \
  "max_wal_size = 16GB" \
  "checkpoint_timeout = 30min" \
  "log_min_duration_statement = -1" \
  "log_temp_files = -1" \
  "chat_assign.notify = $BENCH_NOTIFY" \
  "shared_preload_libraries = 'chat_assign'" \
  "chat_assign.databases = 'bench_a, bench_a0'" \
  "chat_assign.idle_check_interval = 3600"
export PGDATABASE=postgres

psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
fmt_n() { local n=$1; if (( n >= 1000000 && n % 1000000 == 0 )); then echo "$((n / 1000000))M";
          elif (( n >= 1000 && n % 1000 == 0 )); then echo "$((n / 1000))k"; else echo "$n"; fi; }
psql_at() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# The installed build is fingerprinted before and after: a reinstall in the middle of a run
# (another session's `cargo pgrx install`) would mix two builds in one table.
ext_fingerprint() {
  cat "$("$PG_CONFIG" --pkglibdir)/chat_assign.so" \
      "$("$PG_CONFIG" --sharedir)"/extension/chat_assign* 2>/dev/null | md5sum | cut -c1-12
}
build_start=$(ext_fingerprint)

# ---------------------------------------------------------------- the machine
{
  echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu	$(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
  echo "memory	$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel	$(uname -sr)"
  echo "load_start	$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "server	$(psql_at -c 'SHOW server_version')"
  echo "pgbench	$("$PGBENCH" --version)"
  echo "tree	git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src sql Cargo.toml 2>/dev/null || echo ' (with uncommitted changes in src/sql)')"
  if [ -f "$ext_control" ]; then
    so="$("$PG_CONFIG" --pkglibdir)/chat_assign.so"
    so_mb=$(( $(stat -c %s "$so") / 1048576 ))
    echo "extension	chat_assign $(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$ext_control"), $(date -r "$so" '+%Y-%m-%d %H:%M') build, ${so_mb} MB, fingerprint $build_start"
    # A release build (cargo pgrx install --release) is a few MB; cargo pgrx install/test
    # without --release installs an unoptimised build with debug info, many times larger.
    if (( so_mb > 20 )); then
      echo "note	the installed chat_assign.so is ${so_mb} MB ($(file -b "$so" 2>/dev/null | grep -o 'with debug_info' || echo 'large')): most likely a debug (unoptimised) build, which understates (a) and (a0); install with cargo pgrx install --release for figures that count"
    fi
  else
    echo "extension	chat_assign not installed"
  fi
  echo "settings	$(psql_at -F ' ' -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','work_mem','fsync','synchronous_commit','full_page_writes','max_connections','autovacuum','max_wal_size','max_parallel_workers_per_gather','jit','shared_preload_libraries','chat_assign.databases')")"
  echo "run	sizes=[$BENCH_SIZES] clients=[$BENCH_CLIENTS] seconds=$BENCH_SECONDS rounds=$BENCH_ROUNDS warmup=$BENCH_WARMUP operators=$BENCH_OPERATORS idle=$BENCH_IDLE snapshot=${BENCH_SNAPSHOT_SECONDS}s fsync=$BENCH_FSYNC impls=[$IMPLS]"
} >"$RAW/machine.tsv"

# ---------------------------------------------------------------- loading
# create_db IMPL: an empty database with the implementation's schema.
create_db() {
  local impl=$1 db=bench_$1
  psql_ -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  psql_ -d "$db" -c "CREATE EXTENSION pg_prewarm"
  case $impl in
    a|a0) psql_ -d "$db" -c "CREATE EXTENSION chat_assign" ;;
    b) for f in "$BENCH"/plpgsql/[0-9]*.sql; do psql_ -d "$db" -f "$f"; done ;;
    d) for f in "$BENCH"/peer/[0-9]*.sql; do psql_ -d "$db" -f "$f"; done ;;
    e) psql_ -d "$db" -c "CREATE EXTENSION chat_assign" -f "$BENCH/write_floor/schema.sql" ;;
    c) psql_ -d "$db" -f "$BENCH/floor/schema.sql" ;;
  esac
  if [ "$impl" = a0 ]; then
    # Change events off for this database only. The setting exists from 0.3.0 on: an older
    # build would take it as a bare placeholder, so check that the loaded library knows it.
    psql_ -c "ALTER DATABASE $db SET chat_assign.events = off"
    local seen
    seen=$(psql_at -d "$db" -c "LOAD 'chat_assign'" \
             -c "SELECT setting FROM pg_settings WHERE name = 'chat_assign.events'" 2>&1) || true
    if [ "$seen" != off ]; then
      echo "note	(a0) skipped: the installed chat_assign has no chat_assign.events setting (got '${seen:-nothing}'); events-off runs need the 0.3.0 build" >>"$RAW/machine.tsv"
      log "(a0) skipped: chat_assign.events does not exist in the installed build"
      IMPLS=$(echo " $IMPLS " | sed 's/ a0 / /; s/^ *//; s/ *$//')
      psql_ -c "DROP DATABASE $db"
      return 1
    fi
  fi
  psql_ -d "$db" -f "$BENCH/monitor/timing.sql"
}

# load N T0: the same N chats, K operators and one message each into the three databases.
load() {
  local n=$1 t0=$2 impl t_start
  for impl in $IMPLS; do
    create_db "$impl" || continue
    t_start=$(date +%s.%N)
    psql_ -d "bench_$impl" -v n="$n" -v k="$BENCH_OPERATORS" -v t0="$t0" \
      -f "$BENCH/load/source.sql" 2>/dev/null
    # (a0) is (a) with events off: the same loader.
    psql_ -d "bench_$impl" -v t0="$t0" -f "$BENCH/load/load_${impl%0}.sql"
    psql_ -d "bench_$impl" -c "VACUUM ANALYZE"
    if [ "$impl" = a ] || [ "$impl" = a0 ]; then
      # The loader writes the extension's tables directly: its own bookkeeping must agree.
      seen=$(psql_at -d "bench_$impl" -c "SELECT waiting_count FROM get_assignment_queue_status()")
      [ "$seen" = "$n" ] || echo "check	N=$n ($impl): get_assignment_queue_status().waiting_count = $seen after loading $n chats" >>"$RAW/machine.tsv"
    fi
    printf '%s\t%s\t%.1f\n' "$n" "$impl" "$(awk -v a="$(date +%s.%N)" -v b="$t_start" 'BEGIN { print a - b }')" >>"$RAW/load.tsv"
  done
  psql_ -c "CHECKPOINT"
}

# reset IMPL: every chat back in the queue (a run can end between two steps of a cycle),
# then vacuum, so every run starts from the same kind of table.
reset() {
  local impl=$1 db=bench_$1
  case $impl in
    a|a0|b|d|e) psql_at -d "$db" -c "SELECT count(real_user_send_message(id, 'bench: reset')) FROM chats
                           WHERE chat_state IN ('assigned', 'waiting_real_user_reply')" >/dev/null ;;
    c) psql_at -d "$db" -c "UPDATE chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL
                           WHERE chat_state <> 'waiting_assignment'" >/dev/null ;;
  esac
  psql_ -d "$db" -c "VACUUM ANALYZE"
  # Every run starts with its database's tables and indexes in shared buffers, as far as
  # they fit: the server restarts after each load (for the worker), and without this the
  # implementation that runs first would read its pages from the OS cache.
  psql_at -d "$db" -c "SELECT count(pg_prewarm(c.oid)) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'i') AND n.nspname = 'public'" >/dev/null
  # Every run starts just after a checkpoint, so each pays the full-page images of the
  # first change to every page it touches (with full_page_writes on), as after any checkpoint.
  psql_ -c "CHECKPOINT"
}

lsn() { psql_at -c "SELECT pg_current_wal_lsn()"; }

# waldump IMPL LSN0 LSN1 NAME: per-record-type WAL statistics of one run, into raw/.
waldump() {
  as_postgres "$PG_BIN/pg_waldump" --stats=record -p "$BENCH_DIR/data/pg_wal" -s "$2" -e "$3" \
    >"$RAW/$4" 2>&1 || log "pg_waldump failed for ($1): see $RAW/$4"
}

# run N C IMPL ROUND [WALDUMP]: one pgbench run, its per-step log kept for the report, the
# WAL it wrote (LSN before and after; per-record-type statistics when WALDUMP=1).
run() {
  local n=$1 c=$2 impl=$3 round=$4 dump=${5:-0} jobs=1 prefix
  (( c > 1 )) && jobs=2
  prefix="$RAW/logs/n${n}_c${c}_${impl}_r${round}"
  reset "$impl"
  local load1 t_start t_end lsn0 lsn1
  load1=$(cut -d' ' -f1 /proc/loadavg)
  lsn0=$(lsn)
  t_start=$(date +%s.%N)
  "$PGBENCH" -n -M prepared -c "$c" -j "$jobs" -T "$BENCH_SECONDS" \
    -D step=0 -D nclients="$c" -D per=$(( n / c )) \
    -f "$BENCH/pgbench/cycle_${impl%0}.sql" --log --log-prefix="$prefix" \
    "bench_$impl" >"$prefix.out" 2>&1 || { cat "$prefix.out"; return 1; }
  t_end=$(date +%s.%N)
  lsn1=$(lsn)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$c" "$impl" "$prefix" "$load1" "$BENCH_SECONDS" \
    "$(awk -v a="$t_end" -v b="$t_start" 'BEGIN { print a - b }')" "$round" "$lsn0" "$lsn1" >>"$RAW/runs.tsv"
  if [ "$dump" = 1 ]; then
    waldump "$impl" "$lsn0" "$lsn1" "waldump_${impl}_n${n}_c${c}.txt"
    printf '%s\t%s\t%s\t%s\t%s\n' "$impl" "$n" "$c" "$round" "waldump_${impl}_n${n}_c${c}.txt" >>"$RAW/waldump.tsv"
  fi
  grep -E '^(number of transactions actually processed|number of failed|tps)' "$prefix.out" \
    | tr '\n' ' ' | sed "s/^/   $impl N=$n C=$c round $round: /; s/ $/\n/"
}

# snapshot_case N IMPL: slow case (i). SNAPSHOT_CLIENTS clients run the cycle for 5 +
# BENCH_SNAPSHOT_SECONDS s; from 5 s on, another session holds a REPEATABLE READ snapshot
# open for BENCH_SNAPSHOT_SECONDS s (vacuum can then remove nothing the cycles leave behind).
# report.py compares assign p50 in windows after the snapshot opened with the 5 s before.
snapshot_case() {
  local n=$1 impl=$2 c=$SNAPSHOT_CLIENTS prefix t_open pg_pid rc=0
  prefix="$RAW/logs/snapshot_n${n}_${impl}"
  reset "$impl"
  "$PGBENCH" -n -M prepared -c "$c" -j 2 -T $(( 5 + BENCH_SNAPSHOT_SECONDS )) \
    -D step=0 -D nclients="$c" -D per=$(( n / c )) \
    -f "$BENCH/pgbench/cycle_${impl%0}.sql" --log --log-prefix="$prefix" \
    "bench_$impl" >"$prefix.out" 2>&1 &
  pg_pid=$!
  sleep 5
  # The snapshot is taken by the first query; its time is printed before the sleep.
  psql_at -d "bench_$impl" -c "BEGIN ISOLATION LEVEL REPEATABLE READ" \
    -c "SELECT 1 FROM chats LIMIT 1" -c "SELECT extract(epoch FROM clock_timestamp())" \
    -c "SELECT pg_sleep($BENCH_SNAPSHOT_SECONDS)" -c "COMMIT" >"$prefix.snap" 2>&1 || rc=1
  wait "$pg_pid" || rc=1
  if (( rc )); then log "slow case (i) for ($impl) failed: see $prefix.out, $prefix.snap"; return 0; fi
  t_open=$(grep -E '^[0-9]+\.[0-9]+$' "$prefix.snap" | head -1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$impl" "$n" "$c" "$prefix" "$t_open" "$BENCH_SNAPSHOT_SECONDS" >>"$RAW/snapshot.tsv"
  grep -E '^(number of transactions actually processed|tps)' "$prefix.out" \
    | tr '\n' ' ' | sed "s/^/   $impl N=$n C=$c snapshot held ${BENCH_SNAPSHOT_SECONDS}s: /; s/ $/\n/"
}

# monitoring PHASE IMPL...: the timed monitoring calls, one TSV line each.
monitoring() {
  local phase=$1 impl; shift
  for impl in "$@"; do
    psql_at -F $'\t' -d "bench_$impl" -v impl="$impl" -v phase="$phase" \
      -f "$BENCH/monitor/monitor.sql" >>"$RAW/monitoring.tsv"
  done
}

# Every (N, clients) group of runs starts from a fresh load, so that no run inherits the
# statistics, bloat or history of the one before it (the planner's view of last_operator_id
# after a one-client run, for one, is not what a 16-client run would start from).
: >"$RAW/runs.tsv"; : >"$RAW/load.tsv"; : >"$RAW/monitoring.tsv"; : >"$RAW/waldump.tsv"; : >"$RAW/snapshot.tsv"
# pg_waldump statistics: one run per implementation, at the largest N, with 16 clients
# (or the largest client count when 16 is not run), first round.
dump_c=0
for c in $BENCH_CLIENTS; do (( c > dump_c )) && dump_c=$c; done
[[ " $BENCH_CLIENTS " == *" 16 "* ]] && dump_c=16
for n in $BENCH_SIZES; do
  first_c=1
  for c in $BENCH_CLIENTS; do
    t0=$(psql_at -c "SELECT now()")
    log "N=$n: loading $n waiting chats, $BENCH_OPERATORS operators, one message each, into $(for i in $IMPLS; do printf 'bench_%s ' "$i"; done)"
    load "$n" "$t0"
    cluster_restart "$BENCH_DIR"
    if (( n == max_size && first_c )); then
      log "N=$n: monitoring on the freshly loaded queue"
      # shellcheck disable=SC2046
      monitoring "N=$(fmt_n "$n"), as loaded" $(for i in a b d; do has_impl $i && echo $i; done)
    fi
    first_c=0
    log "N=$n: $c client(s), $BENCH_ROUNDS x $BENCH_SECONDS s per implementation, interleaved"
    for (( r = 1; r <= BENCH_ROUNDS; r++ )); do
      order=$IMPLS
      (( r % 2 == 0 )) && order=$(echo "$IMPLS" | tr ' ' '\n' | tac | tr '\n' ' ')
      for impl in $order; do
        dump=0; (( n == max_size && c == dump_c && r == 1 )) && dump=1
        run "$n" "$c" "$impl" "$r" "$dump"
      done
    done
  done
  if (( n == max_size )); then
    idle=$(( BENCH_IDLE < n / 2 ? BENCH_IDLE : n / 2 ))
    cap=$(( (idle + 99) / 100 ))
    idle_ops=$(( (idle + cap - 1) / cap ))
    idle=$(( idle_ops * cap ))
    if (( BENCH_SNAPSHOT_SECONDS > 0 )); then
      for impl in a d; do
        has_impl "$impl" || continue
        log "N=$n: slow case (i): ($impl), $SNAPSHOT_CLIENTS clients, a REPEATABLE READ snapshot held ${BENCH_SNAPSHOT_SECONDS} s"
        snapshot_case "$n" "$impl"
      done
    fi
    log "N=$n: plans (auto_explain) of the claim statements"
    for impl in a b d; do
      has_impl "$impl" || continue
      reset "$impl"
      psql -X -d "bench_$impl" -f "$BENCH/monitor/explain_$impl.sql" >"$RAW/explain_$impl.txt" 2>&1 || true
    done
    if has_impl d; then
      log "N=$n: slow case (ii) for (d): assignment when every waiting chat is the caller's own"
      psql_at -F $'\t' -d bench_d -v impl=d -v phase="N=$(fmt_n "$n"), own chats only" \
        -f "$BENCH/monitor/solo.sql" 2>>"$RAW/solo.err" | grep -P '^d\t' >>"$RAW/monitoring.tsv" \
        || log "the own-chats-only measurement failed for (d) (see $RAW/solo.err)"
    fi
    has_impl a || continue
    log "N=$n: $idle chats assigned to $idle_ops quiet operators (capacity $cap), heartbeats 10 min old"
    psql_ -d bench_a -v idle_ops="$idle_ops" -v cap="$cap" -f "$BENCH/monitor/idle_setup_a.sql" >/dev/null
    log "N=$n: monitoring after the cycle runs, with $idle chats assigned"
    monitoring "N=$(fmt_n "$n"), after the runs, $idle assigned" a
    log "N=$n: release_idle_assignments releasing $idle idle chats"
    psql_at -F $'\t' -d bench_a -v phase="N=$(fmt_n "$n"), $idle idle" \
      -f "$BENCH/monitor/idle_release_a.sql" >>"$RAW/monitoring.tsv"
    left=$(psql_at -d bench_a -c "SELECT count(*) FROM chats WHERE chat_state = 'assigned'")
    echo "check	chats still assigned after the idle release: $left (expected 0)" >>"$RAW/machine.tsv"
    log "N=$n: slow case (ii) for (a): assignment when every waiting chat is the caller's own"
    psql_at -F $'\t' -d bench_a -v impl=a -v phase="N=$(fmt_n "$n"), own chats only" \
      -f "$BENCH/monitor/solo.sql" 2>>"$RAW/solo.err" | grep -P '^a\t' >>"$RAW/monitoring.tsv" \
      || log "the own-chats-only measurement failed for (a) (see $RAW/solo.err)"
  fi
done
build_end=$(ext_fingerprint)
has_impl a0 || grep -q '^note	(a0) skipped' "$RAW/machine.tsv" \
  || echo "note	(a0) not run (BENCH_IMPLS=\"$IMPLS\")" >>"$RAW/machine.tsv"
if [ "$build_end" != "$build_start" ]; then
  echo "warning	the installed chat_assign changed during the run (fingerprint $build_start -> $build_end): runs may mix two builds; run again" >>"$RAW/machine.tsv"
  log "WARNING: the installed chat_assign changed during the run"
fi
echo "load_end	$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/machine.tsv"
echo "wall	$(( $(date +%s) - started )) s" >>"$RAW/machine.tsv"

log "report"
python3 "$BENCH/report.py" --raw "$RAW" --out "$OUT" --warmup "$BENCH_WARMUP"
[ -s "$RAW/solo.err" ] || rm -f "$RAW/solo.err"
if [ "$BENCH_KEEP_LOGS" != 1 ]; then
  find "$RAW/logs" -type f ! -name '*.out' ! -name '*.snap' -delete
fi

#!/usr/bin/env bash
# Operations tests of chat_assign, against the installed extension
# (`cargo pgrx install --release` must have run). Run as root:
#
#   bash scripts/ops.sh
#   OPS_PARTS="dump upgrade" bash scripts/ops.sh     # only some parts
#
# Parts, in this order:
#   worker   1. the idle-release background worker (shared_preload_libraries), and no
#               worker without preload
#   events   2. change events (chat_events, read_chat_events, the worker's coalesced wake-up
#               NOTIFY), checked by the chat_assign_events binary of tests/stress
#               (src/bin/events.rs) in the preloaded events cluster
#   dump     3. pg_dump -Fc / pg_restore and plain pg_dump / psql keep every row, the
#               sequences, the grants and a working extension
#   upgrade  4. the released scripts are unchanged (sql/released/SHA256SUMS); an upgrade from
#               every older released version keeps the data and ends in the schema of a fresh
#               install; DROP EXTENSION leaves nothing, also in a non-public schema
#   replication 5. logical replication: a second cluster subscribes to the publication
#               chat_events_pub of the events cluster's chat_events (publish = 'insert'),
#               has exactly its rows after a burst of calls, and keeps them when the
#               publisher prunes
#   retry    6. calls whose replies were lost to a server crash after their commit, retried
#               with their idempotency keys, return the original results and store nothing twice
#   standby  7. a physical streaming replica of the main cluster (pg_basebackup) answers the
#               monitoring as the primary does once replay caught up; writes are refused there
#
# Throw-away clusters (scripts/cluster.sh): /tmp/ca_ops_main on port 54370 (no preload),
# /tmp/ca_ops_worker on 54371 (part 1), /tmp/ca_ops_events on 54372 (preloaded, wal_level =
# logical; parts 2 and 5), /tmp/ca_ops_sub on 54373 (the subscriber, part 5); scratch files
# in /tmp/ca_ops_work. OPS_TMP=/tmp/x OPS_PORT=N move them all to /tmp/x_main ... on ports
# N..N+3. All are stopped or removed on exit, and so is any released install script this
# run copied into the server's extension directory (part 4).
#
# Prints `ok - ...` / `not ok - ...` per check (diagnostics on `#` lines), a line per part,
# and ends with `ops: N passed, M failed`; exit status 0 only when M is 0.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
OPS_PARTS=${OPS_PARTS:-worker events dump upgrade replication retry standby}
OPS_TMP=${OPS_TMP:-/tmp/ca_ops} OPS_PORT=${OPS_PORT:-54370}
MAIN_DIR=${OPS_TMP}_main MAIN_PORT=$OPS_PORT
WORKER_DIR=${OPS_TMP}_worker WORKER_PORT=$((OPS_PORT + 1))
EVENTS_DIR=${OPS_TMP}_events EVENTS_PORT=$((OPS_PORT + 2))
SUB_DIR=${OPS_TMP}_sub SUB_PORT=$((OPS_PORT + 3))
STANDBY_DIR=${OPS_TMP}_standby STANDBY_PORT=$((OPS_PORT + 4))
WORK=${OPS_TMP}_work
SQL_DIR=$ROOT/tests/ops
# shellcheck source=scripts/pg.sh
source "$ROOT/scripts/pg.sh"
EXT_DIR=$("$PG_CONFIG" --sharedir)/extension
EVENTS_BIN=$ROOT/tests/stress/target/stress/chat_assign_events
WORKER_TYPE='chat_assign idle worker'

# shellcheck source=cluster.sh
source "$ROOT/scripts/cluster.sh"

# Released install scripts this run copied into $EXT_DIR (put back or removed on exit).
COPIED=()
cleanup() {
  cluster_stop "$STANDBY_DIR"
  cluster_stop "$SUB_DIR"
  cluster_stop "$EVENTS_DIR"
  cluster_stop "$WORKER_DIR"
  cluster_stop "$MAIN_DIR"
  local target
  for target in "${COPIED[@]}"; do
    if [ -f "$WORK/backup/${target##*/}" ]; then
      cp -p "$WORK/backup/${target##*/}" "$target"
    else
      rm -f "$target"
    fi
  done
}
trap cleanup EXIT

# ------------------------------------------------------------------------------ reporting

PASSED=0 FAILED=0
SECTION_LINES=() SECTION_NAME='' SECTION_P=0 SECTION_F=0 SECTION_T=0

pass() { echo "ok - $1"; PASSED=$((PASSED + 1)); }
# fail NAME [DETAILS]: details are printed as `#` lines (at most 60).
fail() {
  echo "not ok - $1"
  FAILED=$((FAILED + 1))
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 60 | sed 's/^/#   /'; fi
}
# check NAME EXPECTED ACTUAL: passes when the texts are equal; shows a diff otherwise.
check() {
  if [ "$2" == "$3" ]; then
    pass "$1"
  elif [[ "$2$3" == *$'\n'* ]]; then
    fail "$1" "$(diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$3") | tail -n +3)"
  else
    fail "$1" "expected: $2"$'\n'"got:      $3"
  fi
}
# check_cmd NAME COMMAND...: passes when COMMAND exits 0; shows its output otherwise.
check_cmd() {
  local name=$1 out rc; shift
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name" "exit status $rc"$'\n'"$out"; fi
}
# setup NAME COMMAND...: a step the checks rely on; silent when it works, a failure otherwise.
setup() {
  local name=$1 out rc; shift
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq 0 ] || fail "setup: $name" "exit status $rc"$'\n'"$out"
  return "$rc"
}

end_section() {
  [ -n "$SECTION_NAME" ] || return 0
  SECTION_LINES+=("$(printf '== %-56s %3d ok, %d not ok (%d s)' "$SECTION_NAME:" \
    $((PASSED - SECTION_P)) $((FAILED - SECTION_F)) $((SECONDS - SECTION_T)))")
  SECTION_NAME=''
}
section() {
  end_section
  SECTION_NAME=$1 SECTION_P=$PASSED SECTION_F=$FAILED SECTION_T=$SECONDS
  echo; echo "== $1"
}

# ------------------------------------------------------------------------------ helpers

# msql / wsql DB [psql args...]: psql on the main / worker cluster, unaligned tuples only,
# stopping at the first error. PGOPTIONS='-c search_path=s' reaches an extension in s.
psql_at() {
  local dir=$1 port=$2 db=$3; shift 3
  psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d "$db" "$@"
}
msql() { psql_at "$MAIN_DIR" "$MAIN_PORT" "$@"; }
wsql() { psql_at "$WORKER_DIR" "$WORKER_PORT" "$@"; }

# poll SECONDS COMMAND...: true as soon as COMMAND succeeds (tried every 0.25 s).
poll() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.25
  done
}

# state_is SQLFN DB CHAT STATE: the chat's state is STATE (SQLFN: msql or wsql).
state_is() { [ "$($1 "$2" -c "SELECT chat_state FROM chats WHERE id = '$3'")" = "$4" ]; }
# last_release SQLFN DB CHAT: "<chat state> <reason of its latest assignment>".
last_release() {
  $1 "$2" -c "SELECT c.chat_state || ' ' || coalesce(a.release_reason, '(open)')
              FROM chats c JOIN chat_assignments a ON a.chat_id = c.id
              WHERE c.id = '$3' ORDER BY a.id DESC LIMIT 1" 2>&1
}

# executable_by DB ROLE: the extension's functions ROLE may execute, one signature a line.
executable_by() {
  msql "$1" -c "SELECT p.oid::regprocedure FROM pg_proc p
                JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'chat_assign'
                WHERE d.deptype = 'e' AND has_function_privilege('$2', p.oid, 'EXECUTE')
                ORDER BY 1" 2>&1
}

# works LABEL DB: the extension in DB (an extension in schema s with PGOPTIONS set) still
# does its job: an operator takes a chat, answers, the user answers back; new ids continue
# after the existing ones; afterwards the monitoring agrees with the tables and every
# invariant holds.
works() {
  local label=$1 db=$2 max_message max_assignment op chat reply user_reply assignment
  max_message=$(msql "$db" -c "SELECT coalesce(max(id), 0) FROM messages")
  max_assignment=$(msql "$db" -c "SELECT coalesce(max(id), 0) FROM chat_assignments")
  op=$(msql "$db" -c "SELECT create_operator('ops: $label')" 2>&1)
  chat=$(msql "$db" -c "SELECT assign_chat_to_operator('$op')" 2>&1)
  reply=$(msql "$db" -c "SELECT operator_send_message('$chat', '$op', 'Answer after: $label')" 2>&1)
  user_reply=$(msql "$db" -c "SELECT real_user_send_message('$chat', 'Thanks!')" 2>&1)
  assignment=$(msql "$db" -c "SELECT max(id) FROM chat_assignments WHERE chat_id = '$chat'" 2>&1)
  check "$label: assign, operator reply, user message work (the chat is back in the queue)" \
    "waiting_assignment operator_replied" "$(last_release msql "$db" "$chat")"
  check "$label: new message and assignment ids continue above the existing ones" "t" \
    "$(msql "$db" -c "SELECT $reply > $max_message AND $user_reply > $reply
                             AND $assignment > $max_assignment" 2>&1)"
  check "$label: afterwards the monitoring agrees with the tables, every invariant holds" "" \
    "$(msql "$db" -f "$ROOT/tests/invariants.sql" 2>&1)"
}

# ------------------------------------------------------------------------------ 1. worker

# The worker cluster's server log since the restart with preload (byte offset WLOG_FROM).
WLOG_FROM=0
wlog() { tail -c +$((WLOG_FROM + 1)) "$WORKER_DIR/server.log"; }
# (grep -c reads everything: grep -q would close the pipe early, and with pipefail the
# SIGPIPE of wlog would turn a match into a failure.)
log_has() { [ "$(wlog | grep -cF -- "$1")" -gt 0 ]; }
# The databases of the running idle workers; the pid of the one in database $1.
worker_dbs() {
  wsql postgres -c "SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_stat_activity
                    WHERE backend_type = '$WORKER_TYPE'"
}
worker_pid() {
  wsql postgres -c "SELECT pid FROM pg_stat_activity
                    WHERE backend_type = '$WORKER_TYPE' AND datname = '$1'"
}
# The chats of database $1 (worker cluster) back in the queue by an idle release.
idle_released() {
  wsql "$1" -c "SELECT count(*) FROM chats c WHERE chat_state = 'waiting_assignment'
                  AND (SELECT release_reason FROM chat_assignments a WHERE a.chat_id = c.id
                       ORDER BY a.id DESC LIMIT 1) = 'idle_timeout'" 2>&1
}

part_worker() {
  section "1. background worker (idle release without a client)"
  local nopre_op nopre_chat nopre_since ops c_replied c_idle c_hb b_op t0 listener
  local pid_a idle_line idle_s warning c_h rc

  # Without preload the same settings start nothing: the main cluster names ops_nopre in
  # chat_assign.databases; its idle chat is looked at again at the end of this part.
  setup "ops_nopre with an assigned chat (idle_timeout 2 s)" \
    msql postgres -c "CREATE DATABASE ops_nopre" &&
    setup "extension in ops_nopre" msql ops_nopre -c "CREATE EXTENSION chat_assign" \
      -c "ALTER DATABASE ops_nopre SET chat_assign.idle_timeout = 2"
  nopre_op=$(msql ops_nopre -c "SELECT create_operator('no preload')")
  msql ops_nopre -c "SELECT start_chat(gen_random_uuid(), 'Hello?')" >/dev/null
  nopre_chat=$(msql ops_nopre -c "SELECT assign_chat_to_operator('$nopre_op')")
  nopre_since=$SECONDS

  # The worker cluster: the databases exist before the library is preloaded (a worker
  # for a missing database would fail and restart). ops_b gets the extension later.
  # cluster.sh's log_min_messages = warning logs both the worker's LOG lines and its
  # WARNINGs (for the server log LOG ranks above ERROR: `= log` would hide the WARNINGs).
  setup "worker cluster" cluster_start "$WORKER_DIR" "$WORKER_PORT" \
    "chat_assign.databases = 'ops_a,ops_b'" "chat_assign.idle_check_interval = 1" \
    "chat_assign.idle_timeout = 2" || return
  wsql postgres -c "CREATE DATABASE ops_a" -c "CREATE DATABASE ops_b"
  # ops_b belongs to a non-superuser, who plants an '=' for oid in public and puts public
  # first on the database's search_path, and a zero-argument release_idle_assignments()
  # beside the extension's (which would make a call by name ambiguous): the worker, a
  # superuser, must never run either, nor fail because of them.
  setup "ops_b owned by a non-superuser with a trap '=' for oid first on its search_path" \
    wsql ops_b -c "CREATE ROLE ops_b_owner NOLOGIN" -c "ALTER DATABASE ops_b OWNER TO ops_b_owner" \
      -c "SET ROLE ops_b_owner" -c "CREATE TABLE public.ops_trap (pid int, run_as name)" \
      -c "CREATE FUNCTION public.ops_trap_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
          \$\$BEGIN INSERT INTO public.ops_trap VALUES (pg_backend_pid(), current_user);
                 RETURN \$1 OPERATOR(pg_catalog.=) \$2; END\$\$" \
      -c "CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.ops_trap_eq)" \
      -c "CREATE FUNCTION public.release_idle_assignments()
          RETURNS TABLE (chat_id uuid, operator_id uuid, idle_seconds float8) LANGUAGE sql AS
          \$\$INSERT INTO public.ops_trap VALUES (pg_backend_pid(), current_user)
            RETURNING NULL::uuid, NULL::uuid, 0::float8\$\$" \
      -c "ALTER DATABASE ops_b SET search_path = public, pg_catalog"
  setup "extension in ops_a" wsql ops_a -c "CREATE EXTENSION chat_assign"
  mapfile -t ops < <(wsql ops_a -c "SELECT create_operator('worker op ' || g)
                                     FROM generate_series(1, 3) AS g")
  wsql ops_a -c "SELECT start_chat(gen_random_uuid(), 'chat ' || g)
                 FROM generate_series(1, 3) AS g" >/dev/null
  c_replied=$(wsql ops_a -c "SELECT assign_chat_to_operator('${ops[1]}')")
  wsql ops_a -c "SELECT operator_send_message('$c_replied', '${ops[1]}', 'Hi!')" >/dev/null
  wsql postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'chat_assign'"
  WLOG_FROM=$(stat -c %s "$WORKER_DIR/server.log")
  setup "restart with shared_preload_libraries = 'chat_assign'" as_postgres "$PG_BIN/pg_ctl" \
    -D "$WORKER_DIR/data" -l "$WORKER_DIR/server.log" -w -t 60 -m fast restart || return

  poll 15 eval '[ "$(worker_dbs)" = "ops_a ops_b" ]'
  check "pg_stat_activity has a '$WORKER_TYPE' in ops_a and in ops_b" "ops_a ops_b" "$(worker_dbs)"
  pid_a=$(worker_pid ops_a)
  for db in ops_a ops_b; do
    check "log: 'idle worker started in database \"$db\" (every 1 s)'" yes \
      "$(log_has "chat_assign: idle worker started in database \"$db\" (every 1 s)" && echo yes)"
  done
  local not_installed="chat_assign: extension chat_assign is not installed in database \"ops_b\"; idle worker waiting"
  poll 5 log_has "$not_installed"
  check "log: ops_b without the extension: 'not installed ... idle worker waiting'" yes \
    "$(log_has "$not_installed" && echo yes)"

  # ops_a: one chat left idle, one kept alive by heartbeats, one waiting for its user.
  # ops_b: the extension arrives, with 25 idle chats (more than the log names one by one).
  # A psql session LISTENs in ops_a meanwhile; it prints what arrived when its sleep ends.
  wsql ops_a -c "LISTEN chat_assign" -c "SELECT pg_sleep(8)" >"$WORK/listen_ops_a.txt" 2>&1 &
  listener=$!
  c_idle=$(wsql ops_a -c "SELECT assign_chat_to_operator('${ops[0]}')")
  c_hb=$(wsql ops_a -c "SELECT assign_chat_to_operator('${ops[2]}')")
  setup "extension in ops_b" wsql ops_b -c "CREATE EXTENSION chat_assign"
  b_op=$(wsql ops_b -c "SELECT create_operator('worker op b', 25)")
  wsql ops_b -c "SELECT start_chat(gen_random_uuid(), 'Hello ' || g) FROM generate_series(1, 25) AS g" \
    -c "SELECT assign_chat_to_operator('$b_op') FROM generate_series(1, 25)" >/dev/null
  t0=$SECONDS
  # Heartbeat every 0.5 s until the idle chat is released and at least 5 s (several
  # passes past the 2 s threshold) have gone by; 15 s at most.
  while :; do
    wsql ops_a -c "SELECT touch_operator_activity('${ops[2]}', '$c_hb')" >/dev/null
    if state_is wsql ops_a "$c_idle" waiting_assignment && [ $((SECONDS - t0)) -ge 5 ]; then break; fi
    [ $((SECONDS - t0)) -lt 15 ] || break
    sleep 0.5
  done
  check "ops_a: the idle chat is released by the worker within 15 s, no client calling release_idle_assignments" \
    "waiting_assignment idle_timeout" "$(last_release wsql ops_a "$c_idle")"
  check "ops_a: not before the 2 s chat_assign.idle_timeout of postgresql.conf" "t" \
    "$(wsql ops_a -c "SELECT released_at - assigned_at >= interval '2 s' FROM chat_assignments
                      WHERE chat_id = '$c_idle' ORDER BY id DESC LIMIT 1" 2>&1)"
  check "ops_a: a chat whose operator keeps sending heartbeats stays assigned" \
    "assigned (open)" "$(last_release wsql ops_a "$c_hb")"
  check "ops_a: a chat in waiting_real_user_reply is never touched" \
    "waiting_real_user_reply operator_replied" "$(last_release wsql ops_a "$c_replied")"
  check "log: 'released 1 idle chat(s) in database \"ops_a\"'" yes \
    "$(log_has 'chat_assign: released 1 idle chat(s) in database "ops_a"' && echo yes)"
  idle_line=$(wlog | grep -oE "chat_assign: released chat $c_idle from operator ${ops[0]} after [0-9]+ s idle")
  idle_s=$(grep -oE '[0-9]+ s idle' <<<"$idle_line" | grep -oE '^[0-9]+')
  check "log: 'released chat <chat> from operator <operator> after <n> s idle' with n >= 2" yes \
    "$([ -n "$idle_s" ] && [ "$idle_s" -ge 2 ] && echo yes || echo "line: '$idle_line'")"
  poll 10 eval '[ "$(idle_released ops_b)" = 25 ]'
  check "ops_b: once the extension is created there, its 25 idle chats are released too" \
    25 "$(idle_released ops_b)"
  check "log: 'released 25 idle chat(s) in database \"ops_b\"', then one line per chat for 20 of them" \
    "yes 20" "$(log_has 'chat_assign: released 25 idle chat(s) in database "ops_b"' && echo yes) $(
      wlog | grep -cE "\[$(worker_pid ops_b)\] LOG:  chat_assign: released chat [0-9a-f-]+ from operator $b_op after")"
  check "log: 'not installed' was logged once, not on every pass" 1 \
    "$(wlog | grep -cF "$not_installed")"
  check "worker_status(): both workers made idle passes, none failed" \
    "$(printf 'ops_a|t|0|t\nops_b|t|0|t')" \
    "$(wsql ops_a -c "SELECT database, idle_passes > 0, failed_passes, started_at < last_pass_at
                         FROM worker_status() ORDER BY 1" 2>&1)"
  check "ops_b: the worker never ran the database owner's '=' for oid nor its release_idle_assignments()" 0 \
    "$(wsql ops_b -c "SELECT count(*) FROM public.ops_trap WHERE pid = $(worker_pid ops_b)" 2>&1)"
  check "ops_b: the trap does catch a session that looks '=' up on the database's search_path" \
    "$(printf 't\n1')" \
    "$(wsql ops_b -c "SELECT 1::oid = 1::oid" \
                 -c "SELECT count(*) FROM public.ops_trap WHERE pid = pg_backend_pid()" 2>&1)"
  while kill -0 "$listener" 2>/dev/null; do  # the heartbeat chat must stay alive until below
    wsql ops_a -c "SELECT touch_operator_activity('${ops[2]}', '$c_hb')" >/dev/null
    sleep 0.5
  done
  wait "$listener"
  # 0.3: the release is an event row; LISTEN clients get the worker's wake-up, whose
  # payload is the newest event id (a hint), never the event itself.
  local idle_event woken
  idle_event=$(wsql ops_a -c "SELECT max(id) FROM chat_events WHERE chat_id = '$c_idle'
                                AND operator_id = '${ops[0]}' AND reason = 'idle_timeout'
                                AND old_state = 'assigned' AND new_state = 'waiting_assignment'" 2>&1)
  woken=$(grep -F "received from server process with PID $pid_a." "$WORK/listen_ops_a.txt" |
    grep -oE 'payload "[0-9]+"' | grep -oE '[0-9]+' | sort -n | tail -n 1)
  check "ops_a: the idle release has its event (assigned -> waiting_assignment, idle_timeout), and a LISTEN client gets a wake-up from the worker with a payload at or past its id" yes \
    "$([[ "$idle_event" =~ ^[0-9]+$ && "$woken" =~ ^[0-9]+$ ]] && [ "$woken" -ge "$idle_event" ] &&
       echo yes || echo "event id '$idle_event', largest wake-up payload '$woken'")"

  # A pass that fails: a user trigger refuses every update of chat_assignments. The
  # heartbeat chat, no longer touched, is the one the passes try to release.
  wsql ops_a -c "CREATE FUNCTION ops_refuse() RETURNS trigger LANGUAGE plpgsql
                 AS \$\$BEGIN RAISE EXCEPTION 'ops test: chat_assignments is read-only'; END\$\$" \
    -c "CREATE TRIGGER ops_refuse BEFORE UPDATE ON chat_assignments
        FOR EACH ROW EXECUTE FUNCTION ops_refuse()"
  warning='WARNING:  chat_assign: idle release in database "ops_a" failed: ops test: chat_assignments is read-only'
  poll 15 eval '[ "$(wlog | grep -cF "$warning")" -ge 2 ]'
  check "a failing pass logs: $warning" yes "$(log_has "$warning" && echo yes)"
  check "the worker goes on after a failed pass (the next pass fails again)" yes \
    "$([ "$(wlog | grep -cF "$warning")" -ge 2 ] && echo yes)"
  check "a failed pass changes nothing: the chat is still assigned" \
    "assigned (open)" "$(last_release wsql ops_a "$c_hb")"
  check "the same worker process after failed passes (pid $pid_a)" "$pid_a" "$(worker_pid ops_a)"
  check "worker_status(): the failed passes are counted, with the last error and its time" \
    "t|ops test: chat_assignments is read-only|t" \
    "$(wsql ops_a -c "SELECT failed_passes >= 2, last_error, last_error_at > now() - interval '1 minute'
                         FROM worker_status() WHERE database = 'ops_a'" 2>&1)"
  wsql ops_a -c "DROP TRIGGER ops_refuse ON chat_assignments" -c "DROP FUNCTION ops_refuse()"
  poll 10 state_is wsql ops_a "$c_hb" waiting_assignment
  check "after the trigger is dropped a later pass releases the chat" \
    "waiting_assignment idle_timeout" "$(last_release wsql ops_a "$c_hb")"
  check "still the same worker process (pid $pid_a)" "$pid_a" "$(worker_pid ops_a)"

  # A reload re-reads idle_check_interval and runs a pass at once.
  wsql postgres -c "ALTER SYSTEM SET chat_assign.idle_check_interval = 3600" \
    -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1.5
  c_h=$(wsql ops_a -c "SELECT assign_chat_to_operator('${ops[1]}')")
  sleep 3.5
  check "reload with idle_check_interval = 3600: no pass for 3.5 s, the idle chat stays assigned" \
    "assigned (open)" "$(last_release wsql ops_a "$c_h")"
  wsql postgres -c "SELECT pg_reload_conf()" >/dev/null
  poll 5 state_is wsql ops_a "$c_h" waiting_assignment
  check "a reload (SIGHUP) runs a pass at once: released within 5 s" \
    "waiting_assignment idle_timeout" "$(last_release wsql ops_a "$c_h")"
  check "same worker process after the reloads (pid $pid_a)" "$pid_a" "$(worker_pid ops_a)"
  wsql postgres -c "ALTER SYSTEM RESET chat_assign.idle_check_interval" \
    -c "SELECT pg_reload_conf()" >/dev/null

  # pg_ctl stop -m fast: the workers say goodbye and exit cleanly.
  as_postgres "$PG_BIN/pg_ctl" -D "$WORKER_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1
  rc=$?
  check "pg_ctl stop -m fast stops the server" 0 "$rc"
  for db in ops_a ops_b; do
    check "log at stop: 'idle worker in database \"$db\" stopped'" yes \
      "$(log_has "chat_assign: idle worker in database \"$db\" stopped" && echo yes)"
  done
  check "log: no worker exited abnormally or was restarted (no 'exited with exit code' / 'terminated by signal' / PANIC)" "" \
    "$(wlog | grep -E 'chat_assign.*(exited with exit code|terminated by signal)|PANIC' )"

  check "without preload: worker_status() has no rows" 0 \
    "$(msql ops_nopre -c "SELECT count(*) FROM worker_status()" 2>&1)"
  check "without preload: no '$WORKER_TYPE' in pg_stat_activity" 0 \
    "$(msql postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = '$WORKER_TYPE'")"
  check "without preload: the idle chat is still assigned after $((SECONDS - nopre_since)) s" \
    "assigned (open)" "$(last_release msql ops_nopre "$nopre_chat")"
  check "without preload: a client's release_idle_assignments() releases it (the threshold applied)" \
    "$nopre_chat" "$(msql ops_nopre -c "SELECT chat_id FROM release_idle_assignments()" 2>&1)"
}

# ------------------------------------------------------------------------------ 2. events
# (change events: this section and part 5 below are one block, kept apart from the others)

# esql DB [psql args...]: psql on the events cluster (the publisher of part 5).
esql() { psql_at "$EVENTS_DIR" "$EVENTS_PORT" "$@"; }

# events_cluster: starts the events cluster once (parts 2 and 5 share it): the worker
# preloaded for ops_events (extension in public) and ops_pub (extension in schema chat),
# max_prepared_transactions for the PREPARE TRANSACTION checks, wal_level = logical for the
# publication. The databases and extensions exist before the restart with preload, so the
# workers find them at once.
events_workers() {
  esql postgres -c "SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_stat_activity
                    WHERE backend_type = '$WORKER_TYPE'" 2>&1
}
EVENTS_UP=0
events_cluster() {
  [ "$EVENTS_UP" = 0 ] || return "$((EVENTS_UP == 1 ? 0 : 1))"
  EVENTS_UP=2
  setup "events cluster" cluster_start "$EVENTS_DIR" "$EVENTS_PORT" "wal_level = logical" \
    "max_prepared_transactions = 10" "chat_assign.databases = 'ops_events,ops_pub'" || return
  setup "ops_events and ops_pub with the extension (ops_pub: in schema chat)" \
    esql postgres -c "CREATE DATABASE ops_events" -c "CREATE DATABASE ops_pub" &&
    setup "extension in ops_events" esql ops_events -c "CREATE EXTENSION chat_assign" &&
    setup "extension in ops_pub" esql ops_pub -c "CREATE SCHEMA chat" \
      -c "CREATE EXTENSION chat_assign SCHEMA chat" || return
  esql postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'chat_assign'"
  setup "events cluster: restart with shared_preload_libraries = 'chat_assign'" as_postgres \
    "$PG_BIN/pg_ctl" -D "$EVENTS_DIR/data" -l "$EVENTS_DIR/server.log" -w -t 60 -m fast restart || return
  poll 15 eval '[ "$(events_workers)" = "ops_events ops_pub" ]'
  check "events cluster: a '$WORKER_TYPE' runs in ops_events and in ops_pub" "ops_events ops_pub" \
    "$(events_workers)"
  EVENTS_UP=1
}

part_events() {
  section "2. change events (chat_events, read_chat_events, worker wake-ups)"
  local out rc
  setup "build tests/stress (chat_assign_events)" cargo build --profile stress --quiet \
    --manifest-path "$ROOT/tests/stress/Cargo.toml" --target-dir "$ROOT/tests/stress/target" \
    --bin chat_assign_events || return
  events_cluster || return
  out=$("$EVENTS_BIN" --dsn "host=$EVENTS_DIR port=$EVENTS_PORT user=postgres dbname=ops_events" 2>&1)
  rc=$?
  # Its closing `events: N passed, M failed` becomes a comment: the counts join this suite's.
  printf '%s\n' "$out" | sed -E 's/^(events: [0-9]+ passed, [0-9]+ failed)$/# \1/'
  PASSED=$((PASSED + $(grep -c '^ok - ' <<<"$out")))
  FAILED=$((FAILED + $(grep -c '^not ok - ' <<<"$out")))
  if [ "$rc" -ne 0 ] && ! grep -q '^not ok - ' <<<"$out"; then
    fail "chat_assign_events exited with status $rc"
  fi
  check "events cluster log: no wake-up or prune WARNING from the worker, no worker restarted" "" \
    "$(grep -E 'chat_assign: (wake-up NOTIFY|reading the newest event|deleting expired events)|chat_assign.*(exited with exit code|terminated by signal)' \
         "$EVENTS_DIR/server.log")"
}

# ------------------------------------------------------------------------------ 3. dump

part_dump() {
  section "3. pg_dump / pg_restore"
  local src=ops_dump_src src_md5 src_catalog src_queue src_exec out rc db label
  setup "$src with data" msql postgres -c "CREATE DATABASE $src" || return
  setup "extension in $src" msql "$src" -c "CREATE EXTENSION chat_assign" || return
  setup "fill $src (tests/ops/fill.sql)" msql "$src" -f "$SQL_DIR/fill.sql" || return
  # A role with grants on extension objects: they must survive too.
  msql "$src" -c "CREATE ROLE ops_grantee NOLOGIN" \
    -c "GRANT EXECUTE ON FUNCTION assign_chat_to_operator(uuid) TO ops_grantee" \
    -c "GRANT SELECT ON chats TO ops_grantee"
  check "source: data in every table, chats in all four states, assignments open and released for every reason" \
    "operators 4 (1 inactive), chats 9/3/1/1, messages 21, assignments 11 (3 open; completed, escalated to billing, idle_timeout, manual_unassign, operator_inactive, operator_replied, real_user_message), heartbeats 3" \
    "$(msql "$src" -c "SELECT format('operators %s (%s inactive), chats %s, messages %s, assignments %s (%s open; %s), heartbeats %s',
         (SELECT count(*) FROM operators), (SELECT count(*) FROM operators WHERE NOT is_active),
         (SELECT string_agg(n::text, '/' ORDER BY s) FROM (SELECT chat_state, count(*) FROM chats GROUP BY 1) AS x (s, n)),
         (SELECT count(*) FROM messages), (SELECT count(*) FROM chat_assignments),
         (SELECT count(*) FROM chat_assignments WHERE released_at IS NULL),
         (SELECT string_agg(DISTINCT release_reason, ', ') FROM chat_assignments),
         (SELECT count(*) FROM operator_activity))" 2>&1)"
  src_md5=$(msql "$src" -f "$SQL_DIR/table_md5.sql" 2>&1)
  src_catalog=$(msql "$src" -f "$SQL_DIR/catalog.sql" 2>&1)
  src_queue=$(msql "$src" -c "SELECT waiting_count, assigned_count, waiting_reply_count, active_operators,
                                     busy_operators, available_operators FROM get_assignment_queue_status()" 2>&1)
  src_exec=$(executable_by "$src" ops_grantee)
  check "source: ops_grantee may execute exactly the granted function (no EXECUTE for PUBLIC)" \
    "assign_chat_to_operator(uuid)" "$src_exec"
  check "source: the monitoring agrees with the tables, every invariant holds" "" \
    "$(msql "$src" -f "$ROOT/tests/invariants.sql" 2>&1)"

  rm -rf "$WORK/dump" && mkdir -p "$WORK/dump"
  setup "pg_dump -Fc" "$PG_BIN/pg_dump" -h "$MAIN_DIR" -p "$MAIN_PORT" -U postgres -Fc \
    -f "$WORK/dump/src.dump" "$src" || return
  msql postgres -c "CREATE DATABASE ops_dump_custom" -c "CREATE DATABASE ops_dump_plain"
  out=$("$PG_BIN/pg_restore" -h "$MAIN_DIR" -p "$MAIN_PORT" -U postgres --exit-on-error \
    -d ops_dump_custom "$WORK/dump/src.dump" 2>&1)
  rc=$?
  check "pg_restore of the pg_dump -Fc archive into a new database: no error" "0" "$rc$out"
  out=$("$PG_BIN/pg_dump" -h "$MAIN_DIR" -p "$MAIN_PORT" -U postgres -Fp "$src" 2>&1 >"$WORK/dump/src.sql" &&
    msql ops_dump_plain -f "$WORK/dump/src.sql" 2>&1 >/dev/null)
  rc=$?
  check "plain pg_dump restored with psql into a new database: no error" "0" "$rc$out"

  for db in ops_dump_custom ops_dump_plain; do
    label="restored ${db#ops_dump_}"
    check "$label: every row of every table equal (md5 per table, and the monitoring totals)" \
      "$src_md5" "$(msql "$db" -f "$SQL_DIR/table_md5.sql" 2>&1)"
    check "$label: extension objects equal, grants included (tests/ops/catalog.sql)" \
      "$src_catalog" "$(msql "$db" -f "$SQL_DIR/catalog.sql" 2>&1)"
    check "$label: ops_grantee keeps EXECUTE on assign_chat_to_operator(uuid) and SELECT on chats, nothing more" \
      "$src_exec t" "$(executable_by "$db" ops_grantee) $(msql "$db" -c \
        "SELECT has_table_privilege('ops_grantee', 'chats', 'SELECT')" 2>&1)"
    check "$label: get_assignment_queue_status() counts as in the source" "$src_queue" \
      "$(msql "$db" -c "SELECT waiting_count, assigned_count, waiting_reply_count, active_operators,
                               busy_operators, available_operators FROM get_assignment_queue_status()" 2>&1)"
    check "$label: the monitoring agrees with the tables, every invariant holds" "" \
      "$(msql "$db" -f "$ROOT/tests/invariants.sql" 2>&1)"
    works "$label" "$db"
  done
}

# ------------------------------------------------------------------------------ 7. standby
# A physical streaming replica (pg_basebackup) answers the monitoring as the primary does once
# replay caught up, and refuses what writes.
part_standby() {
  section "7. monitoring on a hot standby (pg_basebackup, streaming)"
  local db=ops_standby op chats primary standby lsn rc out
  setup "$db on the primary, with chats in every state" msql postgres -c "CREATE DATABASE $db" || return
  setup "extension in $db" msql "$db" -c "CREATE EXTENSION chat_assign" || return
  setup "fill $db (tests/ops/fill.sql)" msql "$db" -f "$SQL_DIR/fill.sql" || return
  cluster_stop "$STANDBY_DIR" 2>/dev/null || true
  rm -rf "$STANDBY_DIR" && mkdir -p "$STANDBY_DIR" && chown postgres:postgres "$STANDBY_DIR"
  # A fast checkpoint (not a spread one, which takes minutes); a second try if the first
  # backup's connection is lost (seen once, PostgreSQL 15, not reproduced).
  basebackup() {
    rm -rf "$STANDBY_DIR/data"
    as_postgres "$PG_BIN/pg_basebackup" -h "$MAIN_DIR" -p "$MAIN_PORT" -U postgres \
      -D "$STANDBY_DIR/data" -R -X stream --checkpoint=fast
  }
  setup "pg_basebackup -R of the primary" eval 'basebackup || { sleep 2; basebackup; }' || return
  printf '%s\n' "port = $STANDBY_PORT" "unix_socket_directories = '$STANDBY_DIR'" "hot_standby = on" |
    as_postgres tee -a "$STANDBY_DIR/data/postgresql.conf" >/dev/null
  setup "standby started" as_postgres "$PG_BIN/pg_ctl" -D "$STANDBY_DIR/data" \
    -l "$STANDBY_DIR/server.log" -w -t 60 start || return
  check "the standby is in recovery" t "$(rsql "$db" -c "SELECT pg_is_in_recovery()" 2>&1)"
  # More changes on the primary after the base backup: they reach the standby by streaming.
  op=$(msql "$db" -c "SELECT create_operator('standby op', 3)")
  chats=$(msql "$db" -c "SELECT count(start_chat(gen_random_uuid(), 'after the backup ' || g))
                          FROM generate_series(1, 5) g")
  msql "$db" -c "SELECT assign_chat_to_operator('$op')" >/dev/null
  lsn=$(msql postgres -c "SELECT pg_current_wal_lsn()")
  poll 30 eval '[ "$(rsql postgres -c "SELECT pg_last_wal_replay_lsn() >= '"'$lsn'"'::pg_lsn")" = t ]'
  check "replay caught up with the primary ($chats chats started after the backup)" t \
    "$(rsql postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" 2>&1)"
  # The same answers: everything but the ages, which depend on now().
  for q in \
    "SELECT waiting_count, assigned_count, waiting_reply_count, active_operators, busy_operators, available_operators FROM get_assignment_queue_status()" \
    "SELECT chat_state, chat_count, oldest_state_changed_at FROM chat_state_summary" \
    "SELECT chat_id, chat_state, state_changed_at, assigned_operator_id, last_operator_id, operator_name FROM detect_stuck_chats(0.000001)" \
    "SELECT * FROM operator_assignment_stats ORDER BY operator_id" \
    "SELECT * FROM operator_activity ORDER BY chat_id"; do
    primary=$(msql "$db" -c "$q" 2>&1)
    standby=$(rsql "$db" -c "$q" 2>&1)
    check "standby = primary: ${q:0:60}..." "$primary" "$standby"
  done
  check "the monitoring agrees with the tables on the standby, every invariant holds" "" \
    "$(rsql "$db" -f "$ROOT/tests/invariants.sql" 2>&1)"
  # What writes is refused there, with PostgreSQL's code for it; read_chat_events says why.
  out=$(rsql "$db" -v VERBOSITY=sqlstate -c "SELECT start_chat(gen_random_uuid(), 'on the standby')" 2>&1)
  check "a call that writes is refused on the standby: 25006 (read_only_sql_transaction)" \
    "ERROR:  25006" "$out"
  out=$(rsql "$db" -v VERBOSITY=sqlstate -c "SELECT * FROM read_chat_events(0, 10)" 2>&1)
  check "read_chat_events on the standby: 0A000 (it runs on the primary)" "ERROR:  0A000" "$out"
  as_postgres "$PG_BIN/pg_ctl" -D "$STANDBY_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1
  rc=0; msql postgres -c "DROP DATABASE $db" >/dev/null 2>&1 || rc=$?
  check "$db dropped" 0 "$rc"
}

# ------------------------------------------------------------------------------ 6. retries
# A call whose reply was lost (the server crashed after its commit) is retried with its
# idempotency key: the retry returns the original result and stores nothing twice.
part_retry() {
  section "6. retries across a crash (p_idempotency_key)"
  local db=ops_retry op chat msg1 user1 retry_msg retry_user rc
  setup "$db with an assigned chat" msql postgres -c "CREATE DATABASE $db" || return
  setup "extension in $db" msql "$db" -c "CREATE EXTENSION chat_assign" || return
  op=$(msql "$db" -c "SELECT create_operator('retry op')")
  chat=$(msql "$db" -c "SELECT start_chat(gen_random_uuid(), 'Hello?', 'start-1')")
  msql "$db" -c "SELECT assign_chat_to_operator('$op')" >/dev/null
  # The calls commit; their replies are thrown away, as a client whose connection broke
  # before the reply arrived never sees them. Then the server crashes (immediate stop:
  # no shutdown checkpoint, the commits are replayed from the WAL).
  msg1=$(msql "$db" -c "SELECT operator_send_message('$chat', '$op', 'Answer', 'reply-1')")
  user1=$(msql "$db" -c "SELECT real_user_send_message('$chat', 'Thanks', 'user-1')")
  as_postgres "$PG_BIN/pg_ctl" -D "$MAIN_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1
  setup "server restarted after the crash (crash recovery)" as_postgres "$PG_BIN/pg_ctl" \
    -D "$MAIN_DIR/data" -l "$MAIN_DIR/server.log" -w -t 60 start || return
  check "log: the restart ran crash recovery" yes \
    "$(grep -q 'database system was interrupted\|was not properly shut down' "$MAIN_DIR/server.log" && echo yes)"
  retry_msg=$(msql "$db" -c "SELECT operator_send_message('$chat', '$op', 'Answer', 'reply-1')" 2>&1)
  retry_user=$(msql "$db" -c "SELECT real_user_send_message('$chat', 'Thanks', 'user-1')" 2>&1)
  check "the operator's retry returns the original message id (the chat has moved on since: without the key it would be refused)" \
    "$msg1" "$retry_msg"
  check "the user's retry returns the original message id" "$user1" "$retry_user"
  check "start_chat retried with its key returns the same chat" "$chat" \
    "$(msql "$db" -c "SELECT start_chat(real_user_id, 'Hello?', 'start-1') FROM chats WHERE id = '$chat'" 2>&1)"
  check "one message per key, one chat, and one event per change (no second reply, no second message)" \
    "1|1|1|1|4" \
    "$(msql "$db" -c "SELECT (SELECT count(*) FROM messages WHERE idempotency_key = 'reply-1'),
                             (SELECT count(*) FROM messages WHERE idempotency_key = 'user-1'),
                             (SELECT count(*) FROM chats),
                             (SELECT count(*) FROM messages WHERE chat_id = '$chat' AND sender_type = 'operator'),
                             (SELECT count(*) FROM chat_events WHERE chat_id = '$chat')" 2>&1)"
  check "the monitoring agrees with the tables, every invariant holds" "" \
    "$(msql "$db" -f "$ROOT/tests/invariants.sql" 2>&1)"
  rc=0; msql postgres -c "DROP DATABASE $db" >/dev/null 2>&1 || rc=$?
  check "$db dropped" 0 "$rc"
}

# ------------------------------------------------------------------------------ 4. upgrade

# catalog DB [SCHEMA]: the description of the extension's objects in DB.
catalog() { PGOPTIONS="-c search_path=${2:-public}" msql "$1" -f "$SQL_DIR/catalog.sql" 2>&1; }
db_objects() { PGOPTIONS='' msql "$1" -f "$SQL_DIR/db_objects.sql" 2>&1; }

# install_released V: the released install script of V in the server's extension directory
# (where `cargo pgrx install` of a later version does not put it).
install_released() {
  local file=$ROOT/sql/released/chat_assign--$1.sql target=$EXT_DIR/chat_assign--$1.sql
  if [ -f "$target" ] && cmp -s "$file" "$target"; then return 0; fi
  mkdir -p "$WORK/backup"
  if [ -f "$target" ]; then cp -p "$target" "$WORK/backup/"; fi
  COPIED+=("$target")
  cp "$file" "$target"
}

# drop_leaves_nothing LABEL DB SCHEMA BEFORE: DROP EXTENSION, then the database holds what
# it held before CREATE EXTENSION (BEFORE: db_objects then).
drop_leaves_nothing() {
  local label=$1 db=$2 schema=$3 before=$4 ext
  ext=$(msql "$db" -c "SELECT oid FROM pg_extension WHERE extname = 'chat_assign'")
  check_cmd "$label: DROP EXTENSION chat_assign" msql "$db" -c "DROP EXTENSION chat_assign"
  check "$label: after DROP EXTENSION the database holds what it held before CREATE EXTENSION (tests/ops/db_objects.sql)" \
    "$before" "$(db_objects "$db")"
  check "$label: no pg_depend row refers to the dropped extension, no relation, function or type left in $schema" \
    "0 0" "$(msql "$db" -c "SELECT (SELECT count(*) FROM pg_depend
                                      WHERE refobjid = ${ext:-0} OR objid = ${ext:-0}),
                                   (SELECT count(*) FROM pg_class WHERE relnamespace = '$schema'::regnamespace)
                                   + (SELECT count(*) FROM pg_proc WHERE pronamespace = '$schema'::regnamespace)
                                   + (SELECT count(*) FROM pg_type WHERE typnamespace = '$schema'::regnamespace)" 2>&1 |
       tr '|' ' ')"
}

# upgrade_from V SCHEMA CURRENT: install V into SCHEMA of a new database, fill it, update,
# compare with a fresh install of CURRENT (database ops_fresh_SCHEMA), then drop.
upgrade_from() {
  local v=$1 schema=$2 current=$3 db before md5 label
  db=ops_up_${v//./_}_$schema
  label="$v -> $current in $schema"
  msql postgres -c "CREATE DATABASE $db"
  [ "$schema" = public ] || msql "$db" -c "CREATE SCHEMA $schema"
  before=$(db_objects "$db")
  export PGOPTIONS="-c search_path=$schema"
  check_cmd "$label: CREATE EXTENSION chat_assign VERSION '$v' SCHEMA $schema (the released script)" \
    msql "$db" -c "CREATE EXTENSION chat_assign VERSION '$v' SCHEMA $schema"
  setup "$label: fill $v's tables (tests/ops/fill_direct.sql)" msql "$db" -f "$SQL_DIR/fill_direct.sql"
  msql "$db" -c "DO \$\$ BEGIN CREATE ROLE ops_reader; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" \
    -c "GRANT SELECT ON operator_activity TO ops_reader" \
    -c "DO \$\$ BEGIN CREATE ROLE ops_writer; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" \
    -c "GRANT SELECT, INSERT, UPDATE, DELETE ON operators, chats, messages, chat_assignments TO ops_writer" \
    -c "GRANT UPDATE (priority) ON chats TO ops_writer" \
    -c "GRANT EXECUTE ON FUNCTION start_chat(uuid, text), operator_send_message(uuid, uuid, text) TO ops_reader"
  md5=$(msql "$db" -f "$SQL_DIR/table_md5.sql" 2>&1)
  check "$label: before the update, a call refuses with 0A000 and names the command to run" \
    "0A000 ALTER EXTENSION chat_assign UPDATE" \
    "$(msql "$db" -v VERBOSITY=verbose -c "SELECT create_operator('too early')" 2>&1 |
       grep -oE '0A000|ALTER EXTENSION chat_assign UPDATE' | tr '\n' ' ' | sed 's/ $//')"
  check_cmd "$label: ALTER EXTENSION chat_assign UPDATE" msql "$db" -c "ALTER EXTENSION chat_assign UPDATE"
  check "$label: the installed version is $current" "$current" \
    "$(msql "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'chat_assign'" 2>&1)"
  check "$label: every row of every table unchanged (md5 per table, and the monitoring totals)" \
    "$md5" "$(msql "$db" -f "$SQL_DIR/table_md5.sql" 2>&1)"
  check "$label: the monitoring agrees with the tables, every invariant holds" "" \
    "$(msql "$db" -f "$ROOT/tests/invariants.sql" 2>&1)"
  check "$label: a SELECT grant on operator_activity is kept across the update" t \
    "$(msql "$db" -c "SELECT has_table_privilege('ops_reader', 'operator_activity', 'SELECT')" 2>&1)"
  msql "$db" -c "REVOKE SELECT ON operator_activity FROM ops_reader"
  check "$label: table-level INSERT/UPDATE/DELETE grants (0.1.0 needed them) are revoked; SELECT and a column grant (UPDATE (priority) ON chats) are kept" \
    "0|t|t" \
    "$(msql "$db" -c "SELECT (SELECT count(*) FROM unnest(ARRAY['operators', 'chats', 'messages', 'chat_assignments']) t,
                                unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) p
                            WHERE has_table_privilege('ops_writer', t, p)),
                           has_table_privilege('ops_writer', 'chats', 'SELECT'),
                           has_column_privilege('ops_writer', 'chats', 'priority', 'UPDATE')" 2>&1)"
  msql "$db" -c "REVOKE ALL ON operators, chats, messages, chat_assignments FROM ops_writer"
  # 0.1.0's functions ran with their caller's rights: the update to 0.2.0 revoked every
  # EXECUTE grant on purpose. From 0.2.0 on, a grant on a function whose signature grows
  # (p_idempotency_key) is kept.
  check "$label: EXECUTE grants on start_chat and operator_send_message are on their new signatures (none from 0.1.0)" \
    "$([ "$v" = 0.1.0 ] && echo 'f|f' || echo 't|t')" \
    "$(msql "$db" -c "SELECT has_function_privilege('ops_reader', 'start_chat(uuid, text, text)', 'EXECUTE'),
                            has_function_privilege('ops_reader', 'operator_send_message(uuid, uuid, text, text)', 'EXECUTE')" 2>&1)"
  msql "$db" -c "REVOKE ALL ON FUNCTION start_chat(uuid, text, text), operator_send_message(uuid, uuid, text, text) FROM ops_reader"
  check "$label: the extension's objects equal a fresh install of $current (tests/ops/catalog.sql)" \
    "$(catalog "ops_fresh_$schema" "$schema")" "$(catalog "$db" "$schema")"
  works "$label" "$db"
  drop_leaves_nothing "$label" "$db" "$schema" "$before"
  unset PGOPTIONS
}

part_upgrade() {
  section "4. upgrades and DROP EXTENSION"
  local out rc listed missing current f v older=() schema before
  out=$(cd "$ROOT" && sha256sum --check --strict sql/released/SHA256SUMS 2>&1)
  rc=$?
  check "sql/released/SHA256SUMS: every released script has its recorded checksum (sha256sum -c)" \
    "0" "$rc$([ "$rc" -eq 0 ] || printf '\n%s' "$out")"
  current=$(awk -F'"' '/^\[/ { in_package = ($0 == "[package]") }
                       in_package && /^version *=/ { print $2; exit }' "$ROOT/Cargo.toml")
  listed=$(sed -E 's/^[0-9a-f]{64} [ *]//' "$ROOT/sql/released/SHA256SUMS" 2>/dev/null)
  # A version is released when its install script is archived in sql/released; until then
  # the upgrade script into it may still change and is not listed yet.
  missing=$(cd "$ROOT" && shopt -s nullglob &&
    for f in sql/chat_assign--*--*.sql sql/released/chat_assign--*.sql; do
      if [[ "$f" == "sql/chat_assign--"*"--$current.sql" && ! -f "sql/released/chat_assign--$current.sql" ]]; then
        continue
      fi
      grep -qxF "$f" <<<"$listed" || echo "$f"
    done)
  check "every released sql/chat_assign--*--*.sql and sql/released/chat_assign--*.sql is listed in SHA256SUMS (the upgrade into unreleased $current excepted)" "" "$missing"

  check "the installed default_version is Cargo.toml's version ($current)" "$current" \
    "$(msql postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'chat_assign'" 2>&1)"
  for f in "$ROOT"/sql/released/chat_assign--*.sql; do
    v=${f##*/chat_assign--}; v=${v%.sql}
    if [[ "$v" != *--* && "$v" != "$current" &&
          "$(printf '%s\n%s\n' "$v" "$current" | sort -V | head -n 1)" == "$v" ]]; then
      older+=("$v")
    fi
  done
  check "released versions older than $current to upgrade from (sql/released)" yes \
    "$([ "${#older[@]}" -gt 0 ] && echo yes || echo none)"

  for schema in public ops_s; do
    msql postgres -c "CREATE DATABASE ops_fresh_$schema"
    [ "$schema" = public ] || msql "ops_fresh_$schema" -c "CREATE SCHEMA $schema"
    before=$(db_objects "ops_fresh_$schema")
    check_cmd "fresh install of $current in schema $schema" \
      msql "ops_fresh_$schema" -c "CREATE EXTENSION chat_assign SCHEMA $schema"
    check "fresh install in $schema: every object the extension owns is in $schema" "" \
      "$(msql "ops_fresh_$schema" -c "SELECT pg_describe_object(d.classid, d.objid, 0)
           FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'chat_assign'
           JOIN pg_identify_object(d.classid, d.objid, 0) AS i ON true
           WHERE d.deptype = 'e' AND i.schema IS DISTINCT FROM '$schema'" 2>&1)"
    for v in "${older[@]}"; do
      # Not through setup: its subshell would lose the record of the copy.
      if install_released "$v"; then
        upgrade_from "$v" "$schema" "$current"
      else
        fail "install the released chat_assign--$v.sql into $EXT_DIR"
      fi
    done
    # Compared with every upgrade above; dropped last.
    drop_leaves_nothing "fresh $current in $schema" "ops_fresh_$schema" "$schema" "$before"
  done
}

# ------------------------------------------------------------------------------ 5. replication
# (change events, continued: logical replication of chat_events)

# ssql DB [psql args...]: psql on the subscriber cluster.
ssql() { psql_at "$SUB_DIR" "$SUB_PORT" "$@"; }
rsql() { psql_at "$STANDBY_DIR" "$STANDBY_PORT" "$@"; }
# event_rows_md5 [CONDITION]: SQL for "count md5" of the rows of chat.chat_events in id
# order (run with TimeZone pinned: `at` is compared as text).
event_rows_md5() {
  printf '%s\n' "SELECT count(*) || ' ' || coalesce(md5(string_agg((id, chat_id, old_state::text,
          new_state::text, operator_id, team_id, reason, at)::text, E'\n' ORDER BY id)), '-')
        FROM chat.chat_events WHERE ${1:-true}"
}
pub_md5() { PGOPTIONS='-c TimeZone=UTC' esql ops_pub -c "$(event_rows_md5)" 2>&1; }
sub_md5() { PGOPTIONS='-c TimeZone=UTC' ssql ops_sub -c "$(event_rows_md5 "$@")" 2>&1; }

part_replication() {
  section "5. logical replication of chat_events (publication chat_events_pub)"
  local ops before pub sub out rc t0 kept pruned marker
  events_cluster || return
  setup "subscriber cluster (no extension)" cluster_start "$SUB_DIR" "$SUB_PORT" || return

  # Events that exist before the subscription: the initial copy brings them.
  ops=$(esql ops_pub -c "SELECT string_agg(chat.create_operator('pub op ' || g, 50)::text, ' ')
                         FROM generate_series(1, 4) g")
  esql ops_pub -c "SELECT chat.start_chat(gen_random_uuid(), 'before ' || g) FROM generate_series(1, 20) g" \
    >/dev/null
  # The event's own columns (the publication docs/operations.md shows): since and waiting_since serve the
  # monitoring totals and stay home.
  check_cmd "publisher: CREATE PUBLICATION chat_events_pub FOR TABLE chat.chat_events (the eight event columns) WITH (publish = 'insert')" \
    esql ops_pub -c "CREATE PUBLICATION chat_events_pub FOR TABLE chat.chat_events
                       (id, chat_id, old_state, new_state, operator_id, team_id, reason, at)
                       WITH (publish = 'insert')"
  check "publisher: the publication has chat.chat_events, inserts only" "chat.chat_events t f f f" \
    "$(esql ops_pub -c "SELECT t.schemaname || '.' || t.tablename, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate
                         FROM pg_publication p JOIN pg_publication_tables t ON t.pubname = p.pubname
                         WHERE p.pubname = 'chat_events_pub'" 2>&1 | tr '|' ' ')"
  check_cmd "subscriber: a plain chat.chat_events of the same shape (no extension)" \
    ssql postgres -c "CREATE DATABASE ops_sub" -c '\c ops_sub' -c "CREATE SCHEMA chat" \
      -c "CREATE TABLE chat.chat_events (id bigint PRIMARY KEY, chat_id uuid NOT NULL, old_state text,
            new_state text NOT NULL, operator_id uuid, team_id uuid, reason text NOT NULL,
            at timestamptz NOT NULL)"
  check_cmd "subscriber: CREATE SUBSCRIPTION chat_events_sub ... PUBLICATION chat_events_pub" \
    ssql ops_sub -c "CREATE SUBSCRIPTION chat_events_sub
                       CONNECTION 'host=$EVENTS_DIR port=$EVENTS_PORT user=postgres dbname=ops_pub'
                       PUBLICATION chat_events_pub"

  # A burst: 4 pgbench clients for 3 s, each transaction a new chat, an assignment and the
  # reply (three events), autocommit per call.
  cat >"$WORK/burst.pgbench" <<'PGB'
SELECT id AS op FROM chat.operators ORDER BY random() LIMIT 1 \gset
SELECT chat.start_chat(gen_random_uuid(), 'burst');
SELECT coalesce(chat.assign_chat_to_operator(':op')::text, '') AS c \gset
SELECT chat.operator_send_message(nullif(':c', '')::uuid, ':op', 'hi') WHERE ':c' <> '';
PGB
  chmod a+r "$WORK/burst.pgbench"
  out=$("$PG_BIN/pgbench" -n -h "$EVENTS_DIR" -p "$EVENTS_PORT" -U postgres -c 4 -j 4 -T 3 \
    -f "$WORK/burst.pgbench" ops_pub 2>&1)
  rc=$?
  check "publisher: pgbench burst (4 clients, 3 s) without a failed transaction" "0 yes" \
    "$rc $(grep -qE '^number of failed transactions: 0 ' <<<"$out" && echo yes)$(
      [ "$rc" -eq 0 ] || printf '\n%s' "$(grep -E 'error' <<<"$out" | head -3)")"
  printf '# %s\n' "$(grep -E '^number of transactions actually processed' <<<"$out")"
  pub=$(pub_md5)
  t0=$SECONDS
  poll 30 eval '[ "$(sub_md5)" = "$pub" ]'
  sub=$(sub_md5)
  check "subscriber: exactly the publisher's ${pub%% *} rows (count md5 of the ordered rows) within 30 s (took $((SECONDS - t0)) s)" \
    "$pub" "$sub"
  check "publisher: the burst made events (rows before it: 20)" yes \
    "$([ "${pub%% *}" -gt 1000 ] 2>/dev/null && echo yes || echo "rows: ${pub%% *}")"

  # Pruning on the publisher (retention 1 s, prune_chat_events() until a short batch; the
  # worker prunes too) deletes nothing on the subscriber; replication goes on after it.
  kept=$sub
  esql ops_pub -c "ALTER SYSTEM SET chat_assign.event_retention = 1" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1.5
  pruned=0
  for _ in $(seq 1 50); do
    out=$(esql ops_pub -c "SELECT chat.prune_chat_events()" 2>&1) || { pruned="error: $out"; break; }
    pruned=$((pruned + out))
    [ "$out" -ge 10000 ] || break
  done
  check "publisher: pruned to no event older than 1 s (prune_chat_events() and the worker)" "0" \
    "$(esql ops_pub -c "SELECT count(*) FROM chat.chat_events WHERE at < now() - interval '1 s'" 2>&1)"
  printf '# prune_chat_events() deleted %s, the worker the rest; publisher rows now %s\n' "$pruned" \
    "$(esql ops_pub -c "SELECT count(*) FROM chat.chat_events" 2>&1)"
  marker=$(esql ops_pub -c "SELECT chat.start_chat(gen_random_uuid(), 'after the prune')")
  poll 30 eval '[ "$(ssql ops_sub -c "SELECT count(*) FROM chat.chat_events WHERE chat_id = '"'$marker'"'")" = 1 ]'
  check "subscriber: an event made after the prune arrives" 1 \
    "$(ssql ops_sub -c "SELECT count(*) FROM chat.chat_events WHERE chat_id = '$marker'" 2>&1)"
  check "subscriber: still every row it had before the prune (count md5 unchanged)" "$kept" \
    "$(sub_md5 "chat_id <> '$marker'")"
  esql ops_pub -c "ALTER SYSTEM RESET chat_assign.event_retention" -c "SELECT pg_reload_conf()" >/dev/null
  check_cmd "subscriber: DROP SUBSCRIPTION (drops its slot on the publisher)" \
    ssql ops_sub -c "DROP SUBSCRIPTION chat_events_sub"
  check "publisher: no replication slot left" 0 \
    "$(esql ops_pub -c "SELECT count(*) FROM pg_replication_slots" 2>&1)"
}

# ------------------------------------------------------------------------------ main

started=$SECONDS
rm -rf "$WORK" && mkdir -p "$WORK"
echo "== ops: starting PostgreSQL $PG_MAJOR in $MAIN_DIR on port $MAIN_PORT"
if ! cluster_start "$MAIN_DIR" "$MAIN_PORT" "chat_assign.databases = 'ops_nopre'" \
  "chat_assign.idle_check_interval = 1"; then
  fail "start the main cluster"
else
  for part in $OPS_PARTS; do
    case $part in
      worker | events | dump | upgrade | replication | retry | standby) "part_$part" ;;
      *) fail "unknown part '$part' in OPS_PARTS (worker, events, dump, upgrade, replication, retry, standby)" ;;
    esac
  done
fi
end_section

echo
printf '%s\n' "${SECTION_LINES[@]}"
echo "== run time: $((SECONDS - started)) s"
echo "ops: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

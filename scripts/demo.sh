#!/usr/bin/env bash
# The main job: set up the machine, build and install chat_assign (release), start a local
# PostgreSQL cluster, run a realistic live-chat session against it and print the
# monitoring output. Must run as root (apt-get; the cluster runs as postgres).
#
# The session: 36 users open chats; four operators work them from their own connections
# at the same time (take a chat, heartbeat, answer, take the next); users answer some
# replies, which puts those chats back in the queue; one operator takes a chat and goes
# quiet, and the idle worker (a background worker inside PostgreSQL, no cron) releases it;
# an admin takes a chat away from another. A LISTEN client counts the worker's wake-ups;
# the change events are then read from chat_events. Then a second desk, organized in two
# teams: Billing (routing manual: members ask) and Tech support (least_loaded: each chat is
# given at once to the least loaded member, and a reply pulls the next one); chats in each
# team with priorities, the place in line a waiting customer sees, transfers to a team and
# to an operator, an operator away and one offline (her chats back in the queue, keeping
# their place), team_queue_status and get_service_metrics(). Last, an existing app
# (bench/plpgsql's tables and functions, with the messes its old code left) moves onto the
# extension: import, switch its calls, roll back.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
DIR=${CHAT_ASSIGN_DEMO_DIR:-/tmp/chat_assign_demo}
PORT=${CHAT_ASSIGN_DEMO_PORT:-54310}

bash scripts/setup.sh
echo "== building and installing chat_assign (release)"
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
source scripts/cluster.sh
echo "== starting PostgreSQL $PG_MAJOR in $DIR (port $PORT)"
# The idle worker runs in chat_demo every second and releases chats idle for 4 s. The
# database must exist before the worker connects, so it is created first and the server
# restarted with the library preloaded.
cluster_start "$DIR" "$PORT"
trap 'cluster_stop "$DIR"' EXIT
export PGDATABASE=chat_demo
psql -qX -d postgres -c "CREATE DATABASE chat_demo"
as_postgres tee -a "$DIR/data/postgresql.conf" >/dev/null <<'CONF'
shared_preload_libraries = 'chat_assign'
chat_assign.databases = 'chat_demo'
chat_assign.idle_check_interval = 1
chat_assign.idle_timeout = 4
CONF
as_postgres "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w restart >/dev/null

# q SQL [name=value ...]: one statement in its own session and transaction, values passed
# as psql variables (:'name'), never spliced into the SQL text.
q() {
  local sql=$1; shift
  local vars=()
  for kv in "$@"; do vars+=(-v "$kv"); done
  psql -qAtX -v ON_ERROR_STOP=1 "${vars[@]}" <<<"$sql"
}

q "CREATE EXTENSION chat_assign"

# A client that LISTENs on channel chat_assign; psql prints the wake-ups that arrived after
# each query.
EVENTS=$DIR/events.log
(
  echo "LISTEN chat_assign;"
  while [ ! -f "$DIR/stop_listener" ]; do echo "SELECT 1;"; sleep 0.2; done
  echo "SELECT 1;"
) | psql -qAtX >"$EVENTS" 2>&1 &
listener=$!
sleep 0.5
echo "== 36 users open chats"
for i in $(seq 1 36); do
  q "SELECT start_chat(gen_random_uuid(), :'text')" "text=Hello, this is customer $i: I need help with order #$((1000 + i))" >/dev/null
done

# An operator's client: take a chat, send a heartbeat while typing, answer, repeat.
operator() {
  local name=$1 capacity=$2 rounds=$3 id chat
  id=$(q "SELECT create_operator(:'name', :'cap'::int)" "name=$name" "cap=$capacity")
  for r in $(seq 1 "$rounds"); do
    chat=$(q "SELECT assign_chat_to_operator(:'op')" "op=$id")
    if [ -z "$chat" ]; then sleep 0.2; continue; fi
    q "SELECT touch_operator_activity(:'op', :'chat')" "op=$id" "chat=$chat" >/dev/null
    sleep 0.0$((RANDOM % 9 + 1))
    q "SELECT operator_send_message(:'chat', :'op', :'text')" "chat=$chat" "op=$id" \
      "text=Hi, $name here. Let me look into that for you (round $r)." >/dev/null
  done
}
# The users: answer about half of the operators' replies, and close a few chats.
users() {
  for _ in $(seq 1 12); do
    q "SELECT count(real_user_send_message(id, 'Thanks! One more question...'))
       FROM (SELECT id FROM chats WHERE chat_state = 'waiting_real_user_reply'
             ORDER BY random() LIMIT 3) c" >/dev/null
    q "SELECT count(complete_chat(id)) FROM (SELECT id FROM chats
       WHERE chat_state = 'waiting_real_user_reply' ORDER BY random() LIMIT 1) c" >/dev/null
    sleep 0.3
  done
}

echo "== four operators work the queue concurrently; users answer"
workers=()
operator Alice 1 14 & workers+=($!)
operator Bob 1 14 & workers+=($!)
operator Carol 2 14 & workers+=($!)
operator Dave 1 12 & workers+=($!)
users & workers+=($!)
wait "${workers[@]}"

echo "== Erin takes a chat and goes quiet; Frank takes one and an admin takes it away"
erin=$(q "SELECT create_operator('Erin')")
frank=$(q "SELECT create_operator('Frank')")
erin_chat=$(q "SELECT assign_chat_to_operator(:'op')" "op=$erin")
frank_chat=$(q "SELECT assign_chat_to_operator(:'op')" "op=$frank")
q "SELECT 'admin release of Frank''s chat: ' || release_and_reassign_chat(:'chat')" "chat=$frank_chat"
if [ -n "$erin_chat" ]; then
  echo "   (nobody calls release_idle_assignments: the idle worker releases chats idle for 4 s)"
  for _ in $(seq 1 30); do
    [ "$(q "SELECT chat_state FROM chats WHERE id = :'c'" "c=$erin_chat")" = assigned ] || break
    sleep 0.5
  done
  echo "   server log:"
  grep -E 'chat_assign: (idle worker started|released)' "$DIR/server.log" | sed -E 's/^[0-9-]+ ([0-9:.]+) [A-Z]+ \[[0-9]+\]/     \1/'
else
  echo "   (Erin found no chat waiting)"
fi

echo "== Alice, Bob and Carol take what is still waiting (and keep it)"
for who in Alice Bob Carol; do
  q "SELECT assign_chat_to_operator(id) IS NOT NULL FROM operators WHERE name = :'n'" "n=$who" >/dev/null
done

psql -X <<'SQL'
\echo
\echo '== chat_state_summary'
SELECT * FROM chat_state_summary;
\echo '== get_assignment_queue_status()'
\x on
SELECT * FROM get_assignment_queue_status();
\x off
\echo '== detect_stuck_chats(p_hours => 0.001): chats in their state for more than 3.6 s'
SELECT chat_state, round(extract(epoch FROM now() - state_changed_at), 1) AS seconds_in_state,
       hours_in_state, operator_name AS held_or_last_held_by,
       left(chat_id::text, 8) AS chat
FROM detect_stuck_chats(p_hours => 0.001) LIMIT 10;
\echo '== operator_assignment_stats'
SELECT operator_name, max_concurrent_chats AS cap, total_assignments, released_assignments,
       active_assignments, avg_handling_seconds
FROM operator_assignment_stats ORDER BY operator_name;
\echo '== why assignments ended'
SELECT coalesce(release_reason, '(still open)') AS release_reason, count(*)
FROM chat_assignments GROUP BY 1 ORDER BY 2 DESC;
\echo '== messages stored'
SELECT sender_type, count(*) FROM messages GROUP BY 1 ORDER BY 1;
SQL

touch "$DIR/stop_listener"; wait "$listener" || true
echo
echo "== wake-ups the LISTEN client received (NOTIFY chat_assign from the worker, at most one per 100 ms; payload: the newest event id it can read)"
wakeups=$(grep -c 'Asynchronous notification "chat_assign"' "$EVENTS" || true)
last=$(grep -oE 'Asynchronous notification "chat_assign" with payload "[0-9]+"' "$EVENTS" | tail -1 | grep -oE '[0-9]+' || true)
echo "   $wakeups wake-ups, the last one for event ${last:-none}"
echo "== change events (chat_events, read with read_chat_events from id 0), by reason"
q "SELECT reason, count(*) FROM read_chat_events(0, 100000) GROUP BY reason ORDER BY 2 DESC, 1" |
  awk -F'|' '{printf "%7d %s\n", $2, $1}'
if [ -n "$erin_chat" ]; then
  echo "== Erin's chat, event by event"
  q "SELECT coalesce(old_state::text, '(new)'), new_state, reason FROM read_chat_events(0, 100000)
     WHERE chat_id = :'chat' ORDER BY id" "chat=$erin_chat" |
    awk -F'|' '{printf "   %-22s -> %-24s %s\n", $1, $2, $3}'
fi

# ---------------------------------------------------------------- a desk organized in teams
# A second support desk, in a database of its own, in two teams: Billing is worked by hand
# (routing manual: its members ask for their next chat), Tech support's routing is
# least_loaded (a chat that starts waiting there is given at once to the member with the
# most free capacity, and a member who frees room is given the next one in the same call).
# Customers wait in their team's queue, with priorities, and see their place in it;
# transfers to a team and to an operator; an operator who steps away and one who goes
# offline; the queues and the service metrics at the end.
echo
echo "== a desk organized in teams (docs/api.md, \"Teams, presence, transfers, queue positions\")"
psql -qX -d postgres -c "CREATE DATABASE chat_demo_teams"
psql -X -q -v ON_ERROR_STOP=1 -d chat_demo_teams <<'SQL'
CREATE EXTENSION chat_assign;
-- The app's own table of customers, and two views of its screens: the agents' list of
-- chats, and what a waiting customer's chat window shows.
CREATE TABLE customers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL UNIQUE);
INSERT INTO customers (name)
VALUES ('Maya'), ('Noah'), ('Olga'), ('Pedro'), ('Quinn'), ('Rosa'), ('Sam'), ('Tariq'), ('Uma'), ('Vic');
CREATE VIEW desk AS
SELECT cu.name AS customer, coalesce(t.name, '(no team)') AS team, c.priority, c.chat_state,
       o.name AS held_by,
       (SELECT m.content FROM messages m WHERE m.chat_id = c.id ORDER BY m.id LIMIT 1) AS first_message
FROM chats c JOIN customers cu ON cu.id = c.real_user_id
LEFT JOIN teams t ON t.id = c.team_id LEFT JOIN operators o ON o.id = c.assigned_operator_id;
CREATE VIEW waiting_customers AS
SELECT cu.name AS customer, coalesce(t.name, '(no team)') AS queue, p.queue_position AS place,
       format('You are number %s in line (%s ahead of you)%s', p.queue_position, p.waiting_ahead,
              coalesce(', estimated wait about ' || ceil(p.estimated_wait_seconds) || ' s', '')) AS they_see
FROM chats c JOIN customers cu ON cu.id = c.real_user_id LEFT JOIN teams t ON t.id = c.team_id
CROSS JOIN LATERAL get_queue_position(c.id) AS p
WHERE p.queue_position IS NOT NULL;

\echo '-- two teams: Billing works by hand (routing manual: its members ask for their next chat);'
\echo '-- Tech support''s routing is least_loaded: its chats are given to its members, no one asks.'
\echo '-- Lena is in both; her shift starts later (offline until then)'
SELECT create_team('Billing') AS billing \gset
SELECT create_team('Tech support', 'least_loaded') AS tech \gset
SELECT create_operator('Hana', 2) AS hana, create_operator('Ivan', 2) AS ivan,
       create_operator('Jun', 2) AS jun, create_operator('Kofi') AS kofi,
       create_operator('Lena', 2) AS lena \gset
SELECT set_operator_status(:'lena', 'offline') AS lena_was \gset
SELECT add_team_member(:'billing', :'hana') AND add_team_member(:'billing', :'ivan')
   AND add_team_member(:'billing', :'lena') AND add_team_member(:'tech', :'jun')
   AND add_team_member(:'tech', :'kofi') AND add_team_member(:'tech', :'lena') AS joined \gset
SELECT t.name AS team, t.routing,
       string_agg(o.name || ' (' || o.max_concurrent_chats || ' at a time, ' || o.status || ')', ', '
                  ORDER BY o.name) AS members
FROM teams t JOIN team_members m ON m.team_id = t.id JOIN operators o ON o.id = m.operator_id
GROUP BY t.name, t.routing ORDER BY t.name;

\echo '-- customers open chats in the team their question is for; a double charge goes first (priority 5).'
\echo '-- Each Tech support chat is given to the least loaded member at once (the most free capacity;'
\echo '-- on a tie, the one assigned longest ago): Noah''s to Jun, Pedro''s to Kofi, Sam''s to Jun.'
\echo '-- Then both are full: Uma and Vic wait. Billing''s chats wait for a member to ask'
SELECT start_chat(id, 'I was charged twice for my subscription', NULL, :'billing', 5) AS maya FROM customers WHERE name = 'Maya' \gset
SELECT start_chat(id, 'The app crashes when I open a photo', NULL, :'tech', 2) AS noah FROM customers WHERE name = 'Noah' \gset
SELECT start_chat(id, 'Can I get a refund for order #4417?', p_team_id => :'billing') AS olga FROM customers WHERE name = 'Olga' \gset
SELECT start_chat(id, 'My plan renewed although I cancelled it in the app', p_team_id => :'tech') AS pedro FROM customers WHERE name = 'Pedro' \gset
SELECT start_chat(id, 'How do I update my card?', p_team_id => :'billing') AS quinn FROM customers WHERE name = 'Quinn' \gset
SELECT start_chat(id, 'Do you ship to Canada?') AS rosa FROM customers WHERE name = 'Rosa' \gset
SELECT start_chat(id, 'Sync has been stuck since this morning', p_team_id => :'tech') AS sam FROM customers WHERE name = 'Sam' \gset
SELECT start_chat(id, 'Where is my invoice for March?', p_team_id => :'billing') AS tariq FROM customers WHERE name = 'Tariq' \gset
SELECT start_chat(id, 'Notifications stopped working', p_team_id => :'tech') AS uma FROM customers WHERE name = 'Uma' \gset
SELECT start_chat(id, 'I cannot log in on my new phone', p_team_id => :'tech') AS vic FROM customers WHERE name = 'Vic' \gset
SELECT customer, team, priority, chat_state, held_by, first_message FROM desk
ORDER BY team, priority DESC, customer;
\echo '-- what each waiting customer sees: a place in their own team''s queue (get_queue_position)'
SELECT customer, queue, they_see FROM waiting_customers ORDER BY queue, place;

\echo '-- over the next seconds Hana, in Billing, asks for chats (assign_chat_to_operator): each time'
\echo '-- she gets the next chat of the queues she may take from (her teams'' and the one without a'
\echo '-- team): highest priority first, then the longest waiting'
\! sleep 1
SELECT assign_chat_to_operator(:'hana') AS got \gset
\! sleep 1
SELECT assign_chat_to_operator(:'hana') AS got \gset
SELECT held_by AS operator, customer, team, priority FROM desk
WHERE chat_state = 'assigned' ORDER BY held_by, customer;
\echo '-- what Tariq sees now: the estimate comes from how fast Billing was served lately'
SELECT they_see FROM waiting_customers WHERE customer = 'Tariq';

\echo '-- Pedro''s question is about billing: Kofi transfers the chat to the Billing team. It goes back'
\echo '-- to a queue, Billing''s, keeping its place: Pedro has waited since before Quinn and Tariq'
SELECT transfer_chat(:'pedro', p_to_team_id => :'billing', p_reason => 'billing question') AS moved;
SELECT customer, queue, they_see FROM waiting_customers WHERE queue = 'Billing' ORDER BY place;
\echo '-- Kofi is free again: the same call gave him the next Tech support chat, Uma''s'
SELECT customer, held_by FROM desk WHERE customer = 'Uma';
\echo '-- Hana hands the double charge to Ivan, who approves refunds (a transfer to an operator),'
\echo '-- then asks for her next chat: Pedro'
SELECT transfer_chat(:'maya', p_to_operator_id => :'ivan', p_reason => 'refund above my limit') AS moved;
SELECT assign_chat_to_operator(:'hana') = :'pedro' AS hana_takes_pedro;
\echo '-- the history of transfers (chat_transfers)'
SELECT cu.name AS customer, fo.name AS from_operator, ft.name AS from_team,
       coalesce(tor.name, '(queue)') AS to_operator, tt.name AS to_team, x.reason
FROM chat_transfers x JOIN chats c ON c.id = x.chat_id JOIN customers cu ON cu.id = c.real_user_id
LEFT JOIN operators fo ON fo.id = x.from_operator_id LEFT JOIN teams ft ON ft.id = x.from_team_id
LEFT JOIN operators tor ON tor.id = x.to_operator_id LEFT JOIN teams tt ON tt.id = x.to_team_id
ORDER BY x.id;

\echo '-- Jun answers Noah: the reply frees room, and the same call gives him the next Tech support'
\echo '-- chat: Vic''s, the last one waiting there'
SELECT operator_send_message(:'noah', :'jun', 'A fix is out: please update the app') IS NOT NULL AS answered;
SELECT customer, chat_state, held_by FROM desk WHERE team = 'Tech support' ORDER BY customer;

\echo '-- Kofi steps away: away, he keeps Uma''s chat and is given nothing new'
SELECT set_operator_status(:'kofi', 'away') AS kofi_was;
\echo '-- Hana''s shift ends: she goes offline. Olga and Pedro go back to Billing''s queue, each'
\echo '-- keeping the place it had (waiting since the customer wrote): they are next in line'
SELECT waiting_since AS olga_since FROM chats WHERE id = :'olga' \gset
SELECT set_operator_status(:'hana', 'offline') AS hana_was;
SELECT customer, queue, they_see FROM waiting_customers WHERE queue = 'Billing' ORDER BY place;
SELECT waiting_since = :'olga_since' AS olga_kept_her_place FROM chats WHERE id = :'olga';
\echo '-- Lena''s shift starts: she comes online and, in both teams, asks for a chat: Olga''s,'
\echo '-- first in line again (nothing waits in Tech support for her)'
SELECT set_operator_status(:'lena', 'online') AS lena_was;
SELECT assign_chat_to_operator(:'lena') = :'olga' AS lena_takes_olga;
\echo '-- how chats reached the operators here (chat_events): given by the routing (auto_assigned),'
\echo '-- asked for (assigned), or handed over (the transfer''s reason)'
SELECT reason, count(*) AS chats FROM chat_events WHERE new_state = 'assigned' GROUP BY 1 ORDER BY 2 DESC, 1;
\echo '-- why assignments ended here'
SELECT o.name AS operator, a.release_reason, count(*) AS chats
FROM chat_assignments a JOIN operators o ON o.id = a.operator_id
WHERE a.release_reason IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2;
\echo '-- the operators'
SELECT o.name AS operator, o.status,
       string_agg(d.customer, ', ' ORDER BY d.customer) AS chats_held
FROM operators o LEFT JOIN desk d ON d.held_by = o.name AND d.chat_state = 'assigned'
GROUP BY o.name, o.status ORDER BY o.name;
\echo '== team_queue_status: one row per queue (the chats without a team, then each team)'
SELECT coalesce(team_name, '(no team)') AS queue, routing, waiting, oldest_waiting_seconds,
       assigned, eligible, online, available
FROM team_queue_status;
\echo '== get_service_metrics(): the last 24 hours, for all chats, those without a team and each team'
\echo '-- (seconds from the start of a chat to its first operator reply and to its first assignment;'
\echo '-- transfers out, idle releases, chats closed before any reply)'
SELECT scope, team_name, chats_started,
       round(first_response_p50::numeric, 1) AS first_response_p50,
       round(first_response_p90::numeric, 1) AS first_response_p90,
       round(wait_to_assignment_p50::numeric, 1) AS wait_to_assignment_p50,
       round(wait_to_assignment_p90::numeric, 1) AS wait_to_assignment_p90,
       transfers, idle_releases, abandoned
FROM get_service_metrics();
SQL

# ---------------------------------------------------------------- an existing app moves in
# An app built from the migrations apps ran before this extension (bench/plpgsql: its own tables, its PL/pgSQL
# functions, rows in every state and the messes its old code left) moves onto the
# extension: install beside it, import, switch its calls, run them, roll back.
echo
echo "== an existing app moves onto the extension (docs/adopting.md)"
app() { psql -X -q -v ON_ERROR_STOP=1 -d chat_demo_app "$@"; }
psql -qX -d postgres -c "CREATE DATABASE chat_demo_app"
app -f tests/pg_regress/sql/include/legacy_app.sql >/dev/null
app <<'SQL'
\echo '-- the app, on its own PL/pgSQL: the queue as it sees it'
SELECT * FROM get_assignment_queue_status();
\echo '-- install beside it'
CREATE SCHEMA chat_assign;
CREATE EXTENSION chat_assign SCHEMA chat_assign;
\echo '-- import: refused, naming the rows its old code left broken (nothing is written)'
\set ON_ERROR_STOP off
\set SHOW_CONTEXT never
SELECT * FROM chat_assign.import_app_tables('public');
\set ON_ERROR_STOP on
\echo '-- import with the repair rules'
SELECT * FROM chat_assign.import_app_tables('public', p_repair => true);
\echo '-- switch: the app''s calls now reach the extension'
SELECT split_part(action, ' ', 1) AS action, count(*) AS objects
FROM chat_assign.switch_app_calls('public') GROUP BY 1 ORDER BY 1;
\echo '-- the app''s own calls, unchanged'
SELECT assign_chat_to_operator('0a000000-0000-0000-0000-000000000003') AS carol_takes;
SELECT * FROM get_assignment_queue_status();
SELECT * FROM chat_state_summary;
\echo '-- rollback: the app''s tables and functions come back as they were at the switch'
SELECT action, count(*) AS objects FROM chat_assign.restore_app_calls('public') GROUP BY 1 ORDER BY 1;
SELECT * FROM get_assignment_queue_status();
SQL

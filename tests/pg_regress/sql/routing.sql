-- Automatic assignment (least_loaded, round_robin; chat_assign.default_routing for chats
-- without a team) and service metrics. Self-contained: its own database.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_routing;
\c chat_assign_routing
CREATE EXTENSION chat_assign;
-- Fixed ids, so that ties (broken by id) print the same every run.
INSERT INTO operators (id, name, max_concurrent_chats) VALUES
    ('00000000-0000-0000-0000-00000000000a', 'Ann', 2),
    ('00000000-0000-0000-0000-00000000000b', 'Bo', 1),
    ('00000000-0000-0000-0000-00000000000c', 'Cy', 1),
    ('00000000-0000-0000-0000-00000000000d', 'Dee', 1),
    ('00000000-0000-0000-0000-00000000000e', 'Eve', 1),
    ('00000000-0000-0000-0000-00000000000f', 'Fay', 1);
SELECT '00000000-0000-0000-0000-00000000000a' AS ann,
       '00000000-0000-0000-0000-00000000000b' AS bo, '00000000-0000-0000-0000-00000000000c' AS cy,
       '00000000-0000-0000-0000-00000000000d' AS dee, '00000000-0000-0000-0000-00000000000e' AS eve,
       '00000000-0000-0000-0000-00000000000f' AS fay \gset
SELECT create_team('Sales', 'least_loaded') AS sales \gset
SELECT create_team('Support', 'round_robin') AS support \gset
SELECT create_team('Desk') AS desk \gset
SELECT add_team_member(:'sales', id) FROM operators WHERE name IN ('Ann', 'Bo', 'Cy') ORDER BY name;
SELECT add_team_member(:'support', id) FROM operators WHERE name IN ('Dee', 'Eve') ORDER BY name;
SELECT add_team_member(:'desk', :'cy') AS cy_joins_desk;
CREATE TEMP VIEW board AS
SELECT c.real_user_id::text AS u, c.chat_state, o.name AS holder, t.name AS team
FROM chats c LEFT JOIN operators o ON o.id = c.assigned_operator_id LEFT JOIN teams t ON t.id = c.team_id
ORDER BY c.created_at, c.real_user_id;
CREATE TEMP VIEW load AS
SELECT o.name, o.status, count(c.id) AS holds, o.max_concurrent_chats AS capacity
FROM operators o LEFT JOIN chats c ON c.assigned_operator_id = o.id AND c.chat_state = 'assigned'
GROUP BY o.id ORDER BY o.name;
CREATE FUNCTION pg_temp.u(n int) RETURNS uuid LANGUAGE sql AS $$ SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;

-- ---------------------------------------------------------------- least_loaded
-- A chat that starts in Sales goes at once to the member with the most free capacity (Ann:
-- 2), then, on a tie, to the one assigned longest ago (never first; then by id).
SELECT start_chat(pg_temp.u(1), 'Quote please', p_team_id => :'sales') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(2), 'Pricing?', p_team_id => :'sales') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(3), 'Discount?', p_team_id => :'sales') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(4), 'Invoice?', p_team_id => :'sales') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(5), 'Anyone?', p_team_id => :'sales') IS NOT NULL AS started;
SELECT * FROM board;
SELECT * FROM load;
-- Bo answers: the reply frees him, and he is given the next waiting Sales chat in the same call.
SELECT operator_send_message(c.id, :'bo', 'On it') IS NOT NULL AS bo_answers
FROM chats c WHERE c.assigned_operator_id = :'bo';
SELECT * FROM board;

-- ---------------------------------------------------------------- round_robin
-- Support: the operator assigned longest ago with room; when both are busy, the chat waits
-- and the first who frees capacity takes it.
SELECT start_chat(pg_temp.u(11), 'Broken', p_team_id => :'support') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(12), 'Still broken', p_team_id => :'support') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(13), 'Help', p_team_id => :'support') IS NOT NULL AS started;
SELECT * FROM board WHERE team = 'Support';
-- Eve goes offline: her chat goes back and is pushed again, to nobody (Dee is busy); Dee
-- answers and pulls the oldest waiting chat.
SELECT set_operator_status(:'eve', 'offline') AS eve_was;
SELECT * FROM board WHERE team = 'Support';
SELECT operator_send_message(c.id, :'dee', 'Fixed?') IS NOT NULL AS dee_answers
FROM chats c WHERE c.assigned_operator_id = :'dee';
SELECT * FROM board WHERE team = 'Support';
-- Eve comes back online: she pulls the other waiting chat in the same call.
SELECT set_operator_status(:'eve', 'online') AS eve_was;
SELECT * FROM board WHERE team = 'Support';
-- The user answers Dee: the chat waits again; both members are busy, so it waits.
SELECT real_user_send_message(c.id, 'No') IS NOT NULL AS user_answers
FROM chats c WHERE c.real_user_id = pg_temp.u(11);
SELECT * FROM board WHERE team = 'Support';

-- ---------------------------------------------------------------- manual and default_routing
-- Desk is manual: its chats wait for someone to ask. Chats without a team follow
-- chat_assign.default_routing (manual by default): Fay, in no team and free, is not given
-- one until the setting pushes.
SELECT start_chat(pg_temp.u(21), 'Desk question', p_team_id => :'desk') IS NOT NULL AS started;
SELECT start_chat(pg_temp.u(22), 'No team') IS NOT NULL AS started;
SELECT * FROM board WHERE u IN (pg_temp.u(21)::text, pg_temp.u(22)::text);
SET chat_assign.default_routing = 'round_robin';
SELECT start_chat(pg_temp.u(23), 'No team, pushed') IS NOT NULL AS started;
SELECT * FROM board WHERE u IN (pg_temp.u(22)::text, pg_temp.u(23)::text);
SET chat_assign.default_routing = 'fastest';
RESET chat_assign.default_routing;
-- Leaving a team releases its chats, which are pushed to the other members, never back to
-- the one who left; joining a pushed team pulls its waiting chats, up to capacity.
SELECT * FROM load;
SELECT operator_send_message(c.id, :'bo', 'Done') IS NOT NULL AS bo_answers
FROM chats c WHERE c.assigned_operator_id = :'bo';
SELECT remove_team_member(:'sales', :'ann') AS ann_leaves_sales;
SELECT * FROM board WHERE team = 'Sales';
SELECT add_team_member(:'sales', :'ann') AS ann_rejoins_sales;
SELECT * FROM board WHERE team = 'Sales';
SELECT * FROM load;

-- Every automatic assignment is an event with reason auto_assigned.
SELECT e.reason, count(*) FROM chat_events e WHERE e.new_state = 'assigned' GROUP BY 1 ORDER BY 1;

-- ---------------------------------------------------------------- service metrics
-- A chat completed before anyone answered is abandoned; a transfer counts for the team it
-- left; an idle release for the assignment's chat's team.
SELECT complete_chat(c.id) AS completed FROM chats c WHERE c.real_user_id = pg_temp.u(21);
SELECT transfer_chat(c.id, p_to_team_id => :'desk') AS moved FROM chats c WHERE c.real_user_id = pg_temp.u(5);
-- An idle release pushes the chats again, but never to an operator released in the same
-- pass (as idle as the one before): with everyone idle, they all wait.
SELECT pg_sleep(0.01);
SELECT count(*) AS idle_released FROM release_idle_assignments('1 millisecond');
SELECT chat_state, count(*) FROM chats GROUP BY 1 ORDER BY 1;
SELECT scope, team_name, chats_started, first_response_p50 >= 0 AS has_response_p50,
       first_response_p90 >= first_response_p50 AS p90_after_p50,
       wait_to_assignment_p50 >= 0 AS has_wait_p50, transfers, idle_releases, abandoned
FROM get_service_metrics();
SELECT scope, team_name, chats_started, transfers FROM get_service_metrics(now() - interval '1 hour', :'sales');
SELECT scope, chats_started FROM get_service_metrics(now() + interval '1 hour') WHERE scope <> 'team';
SELECT * FROM get_service_metrics(NULL);
SELECT * FROM get_service_metrics(now(), '00000000-0000-0000-0000-0000000000ff');

-- The invariants and the monitoring agree with the tables (no output: all hold).
\i tests/invariants.sql

\c :home
DROP DATABASE chat_assign_routing;

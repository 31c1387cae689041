-- Included four times by security_search_path.sql: every function and view of the
-- extension (in schema :ext) called by :caller (NONE: the superuser; mallory: the role that
-- made the look-alikes, with no privilege on any table) under search_path :caller_path,
-- then what was stored and returned, checked against the real tables, and the count of
-- look-alike calls and rows (both must stay as they were). Paths are relative to the
-- repository root, where scripts/regress.sh runs pg_regress.
SELECT :ext.start_chat('00000000-0000-0000-0000-0000000000f0', 'stuck') AS c_old \gset
UPDATE :ext.chats SET priority = -1, waiting_since = waiting_since - interval '2 hours',
    state_changed_at = state_changed_at - interval '2 hours' WHERE id = :'c_old';
SET ROLE :caller;
SET search_path = :caller_path;
SELECT create_operator('Ann') AS op \gset
SELECT start_chat('00000000-0000-0000-0000-0000000000a1', 'first') AS c1 \gset
SELECT start_chat('00000000-0000-0000-0000-0000000000a2', 'second') AS c2 \gset
SELECT assign_chat_to_operator(:'op') AS took_1 \gset
SELECT touch_operator_activity(:'op', :'c1') AS touched \gset
CREATE TEMP TABLE r_activity AS SELECT * FROM :ext.operator_activity;
SELECT operator_send_message(:'c1', :'op', 'reply') AS reply_id \gset
SELECT real_user_send_message(:'c1', 'thanks') AS user_msg_id \gset
SELECT assign_chat_to_operator(:'op') AS took_2 \gset
SELECT assign_chat_to_operator(:'op');
SELECT release_and_reassign_chat(:'c2') AS released \gset
SELECT assign_chat_to_operator(:'op') AS took_3 \gset
CREATE TEMP TABLE r_idle AS SELECT * FROM release_idle_assignments('1 microsecond');
SELECT assign_chat_to_operator(:'op') AS took_4 \gset
SELECT set_operator_active(:'op', false) AS deactivated \gset
SELECT assign_chat_to_operator(:'op');
SELECT set_operator_active(:'op', true) AS reactivated \gset
CREATE TEMP TABLE r_stuck AS SELECT * FROM detect_stuck_chats(1);
CREATE TEMP TABLE r_status AS SELECT * FROM get_assignment_queue_status();
CREATE TEMP TABLE r_summary AS SELECT * FROM chat_state_summary;
CREATE TEMP TABLE r_stats AS SELECT * FROM operator_assignment_stats;
CREATE TEMP TABLE r_events AS SELECT * FROM read_chat_events(0, 1000);
SELECT prune_chat_events() AS pruned \gset
SELECT complete_chat(:'c1') AS done_1, complete_chat(:'c2') AS done_2,
       complete_chat(:'c_old') AS done_old \gset
RESET ROLE;
RESET search_path;
SELECT * FROM (VALUES
    ('assign took c1', :'took_1' = :'c1'),
    ('heartbeat accepted', :'touched'),
    ('assign took c2', :'took_2' = :'c2'),
    ('release done', :'released'),
    ('assign took c2 back', :'took_3' = :'c2'),
    ('assign took c2 after idle release', :'took_4' = :'c2'),
    ('deactivated', :'deactivated'),
    ('reactivated', :'reactivated'),
    ('completed all three', :'done_1' AND :'done_2' AND :'done_old')) AS t (check_name, ok);
SELECT CASE m.chat_id WHEN :'c1' THEN 'c1' WHEN :'c2' THEN 'c2' END AS chat, m.sender_type,
       m.operator_id = :'op' AS by_op, m.content, m.id IN (:reply_id, :user_msg_id) AS id_returned
FROM :ext.messages m WHERE m.chat_id IN (:'c1', :'c2') ORDER BY m.id;
SELECT CASE a.chat_id WHEN :'c1' THEN 'c1' WHEN :'c2' THEN 'c2' END AS chat,
       a.operator_id = :'op' AS by_op, a.release_reason
FROM :ext.chat_assignments a WHERE a.chat_id IN (:'c1', :'c2') ORDER BY a.id;
SELECT chat_id = :'c2' AS c2, operator_id = :'op' AS by_op, idle_seconds > 0 AS idle FROM r_idle;
SELECT chat_id = :'c_old' AS c_old, chat_state, hours_in_state >= 2 AS two_hours,
       assigned_operator_id, last_operator_id, operator_name FROM r_stuck;
SELECT waiting_count, assigned_count, waiting_reply_count, oldest_waiting_seconds >= 7200 AS oldest_2h,
       avg_waiting_seconds > 0 AS avg_set, active_operators, busy_operators, available_operators
FROM r_status;
SELECT chat_state, chat_count FROM r_summary ORDER BY chat_state;
SELECT total_assignments, released_assignments, active_assignments FROM r_stats WHERE operator_id = :'op';
SELECT chat_id = :'c1' AS c1, operator_id = :'op' AS by_op, last_activity_at > now() - interval '1 minute' AS fresh
FROM r_activity;
-- every event of c1 and c2, in id order, exactly as the table has them; none pruned
SELECT CASE e.chat_id WHEN :'c1' THEN 'c1' WHEN :'c2' THEN 'c2' END AS chat, e.old_state, e.new_state,
       e.operator_id = :'op' AS by_op, e.reason
FROM r_events e WHERE e.chat_id IN (:'c1', :'c2') ORDER BY e.id;
SELECT (SELECT array_agg(id ORDER BY id) FROM r_events)
       = (SELECT array_agg(id ORDER BY id) FROM :ext.chat_events WHERE id <= (SELECT max(id) FROM r_events))
       AS events_match_table, :pruned AS pruned;
SELECT (SELECT count(*) FROM attacker.calls) AS trap_calls, sum(row_count) AS lookalike_rows
FROM lookalike_rows;
DROP TABLE r_idle, r_stuck, r_status, r_summary, r_stats, r_activity, r_events;

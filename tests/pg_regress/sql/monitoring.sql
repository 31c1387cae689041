-- Monitoring functions and views: their shape and the counts of the flow so far.
\set VERBOSITY sqlstate
SELECT chat_state, chat_count, oldest_state_changed_at IS NOT NULL AS has_oldest
FROM chat_state_summary;
SELECT waiting_count, assigned_count, waiting_reply_count,
       oldest_waiting_seconds >= 0 AS has_oldest, avg_waiting_seconds >= 0 AS has_avg,
       active_operators, busy_operators, available_operators
FROM get_assignment_queue_status();
SELECT operator_name, is_active, total_assignments, released_assignments, active_assignments,
       avg_handling_seconds >= 0 AS has_avg
FROM operator_assignment_stats ORDER BY operator_name;
-- Nothing has been stuck for an hour; backdate two chats and they appear, oldest first.
SELECT count(*) FROM detect_stuck_chats();
UPDATE chats SET state_changed_at = now() - interval '5 hours'
WHERE real_user_id = '00000000-0000-0000-0000-000000000004';
UPDATE chats SET state_changed_at = now() - interval '3 hours'
WHERE real_user_id = '00000000-0000-0000-0000-000000000005';
SELECT real_user_id, chat_state, round(hours_in_state) AS hours, operator_name
FROM detect_stuck_chats(p_hours => 2);
SELECT count(*) FROM detect_stuck_chats(4.5);
-- With chat_assign.events off, the calls' statements insert no event and leave the fold row
-- alone (the trigger for events written from outside the calls sees no row): the calls of
-- a cycle do not all update, and queue on, one row. The totals still follow the chats.
SET chat_assign.events = off;
SELECT xmin::text AS fold_xmin, (SELECT count(*) FROM chat_events) AS events_before
FROM chat_state_fold \gset
SELECT create_operator('Events off') AS off_op \gset
SELECT start_chat('00000000-0000-0000-0000-0000000000e0', 'No events') IS NOT NULL AS started;
SELECT assign_chat_to_operator(:'off_op') AS off_chat \gset
SELECT operator_send_message(:'off_chat', :'off_op', 'Hi') IS NOT NULL AS replied;
SELECT real_user_send_message(:'off_chat', 'Thanks') IS NOT NULL AS answered;
SELECT xmin::text = :'fold_xmin' AS fold_row_untouched,
       (SELECT count(*) FROM chat_events) = :events_before AS no_events
FROM chat_state_fold;
RESET chat_assign.events;
\i tests/invariants.sql

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

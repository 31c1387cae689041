-- (a) Sets up :idle assigned chats whose operators went quiet 10 minutes ago, through the
-- extension's own API: :idle_ops extra operators of capacity :cap each take :cap chats
-- with assign_chat_to_operator(), then their heartbeats (and assignment times) are
-- backdated by 10 minutes. The cycle operators hold nothing at this point.
\set ON_ERROR_STOP on
SELECT count(create_operator('Idle operator ' || g, :cap)) AS idle_operators
FROM generate_series(1, :idle_ops) AS g;
SELECT count(assign_chat_to_operator(o.id)) AS assigned
FROM operators o CROSS JOIN generate_series(1, :cap) AS g
WHERE o.name LIKE 'Idle operator %';
BEGIN;
UPDATE chat_assignments SET last_activity_at = last_activity_at - interval '10 minutes' WHERE released_at IS NULL;
UPDATE chat_assignments SET assigned_at = assigned_at - interval '10 minutes' WHERE released_at IS NULL;
UPDATE chats SET assigned_at = assigned_at - interval '10 minutes',
                 state_changed_at = state_changed_at - interval '10 minutes'
WHERE chat_state = 'assigned';
COMMIT;
VACUUM ANALYZE chat_assignments;
VACUUM ANALYZE chats;

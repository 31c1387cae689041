-- One line per data table of chat_assign: name, row count and the md5 of all its rows in a
-- fixed order. Equal output of two databases means equal data. The running per-state
-- totals behind the monitoring (chat_state_totals: derived from chats, rebuilt by a
-- restore) are compared the same way. The columns are spelled out: those every release has
-- first, so that a database before and after ALTER EXTENSION UPDATE compares equal (0.3.0
-- moved the heartbeat onto the open assignment and made operator_activity a view of it,
-- gave chats and messages an idempotency_key, added teams, presence and transfers, and
-- when each chat was first assigned and answered), then what 0.3.0 added.
SELECT 'operators' AS data, count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, name, is_active, max_concurrent_chats, last_assigned_at, created_at FROM operators) t
UNION ALL
SELECT 'chats', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, real_user_id, chat_state, assigned_operator_id, last_operator_id, operator_replied_at,
             assigned_at, waiting_since, state_changed_at, priority, is_active, created_at,
             last_message_at FROM chats) t
UNION ALL
SELECT 'messages', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, chat_id, sender_type, operator_id, content, created_at FROM messages) t
UNION ALL
SELECT 'chat_assignments', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, chat_id, operator_id, assigned_at, released_at, release_reason FROM chat_assignments) t
UNION ALL
SELECT 'operator_activity', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT chat_id, operator_id, last_activity_at FROM operator_activity) t
UNION ALL
SELECT 'chat_state_totals', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT chat_state, chat_count, changed_epoch, queue_count, waiting_epoch FROM chat_state_totals) t;

-- What 0.3.0 added, unless the psql variable every_release is set: 004_upgrade.pl sets it
-- to compare a database of an older release with itself after ALTER EXTENSION UPDATE.
\if :{?every_release}
\else
SELECT 'operators (presence)' AS data, count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, status, status_changed_at FROM operators) t
UNION ALL
SELECT 'chats (team, idempotency key, service metrics)', count(*),
       md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, team_id, idempotency_key, first_assigned_at, first_response_at, idle_releases FROM chats) t
UNION ALL
SELECT 'messages (idempotency key)', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text))
FROM (SELECT id, idempotency_key FROM messages) t
UNION ALL
SELECT 'teams', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM teams t
UNION ALL
SELECT 'team_members', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM team_members t
UNION ALL
SELECT 'chat_transfers', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM chat_transfers t
UNION ALL
SELECT 'chat_events', count(*), md5(string_agg(t::text, E'\n' ORDER BY t::text)) FROM chat_events t;
\endif

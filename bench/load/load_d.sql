-- (d) the PL/pgSQL peer (bench/peer): the same tables and columns as (a), filled the same way
-- (the state a queue of n chats that each got one start_chat() would be in).
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO operators (id, name, is_active, max_concurrent_chats, created_at)
SELECT id, name, true, 1, :'t0'::timestamptz - interval '30 days' FROM bench_ops ORDER BY k;

INSERT INTO chats (id, real_user_id, chat_state, waiting_since, state_changed_at,
                   priority, is_active, created_at, last_message_at)
SELECT id, real_user_id, 'waiting_assignment', ts, ts, 0, true, ts, ts
FROM bench_src ORDER BY i;

INSERT INTO messages (chat_id, sender_type, content, created_at)
SELECT id, 'real_user', 'Hello, I need help with my order #' || i, ts
FROM bench_src ORDER BY i;
COMMIT;
DROP TABLE bench_src;
DROP TABLE bench_ops;

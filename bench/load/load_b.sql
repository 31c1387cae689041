-- (b) the PL/pgSQL design apps ran before this extension (bench/plpgsql): its tables after migrations 001-016, the same rows.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO operators (id, name, is_active, max_concurrent_chats, created_at)
SELECT id, name, true, 1, :'t0'::timestamptz - interval '30 days' FROM bench_ops ORDER BY k;

INSERT INTO chats (id, real_user_id, chat_state, is_active, created_at, last_message_at)
SELECT id, real_user_id, 'waiting_assignment', true, ts, ts
FROM bench_src ORDER BY i;

INSERT INTO messages (id, chat_id, sender_type, content, created_at)
SELECT md5('msg-' || i)::uuid, id, 'real_user', 'Hello, I need help with my order #' || i, ts
FROM bench_src ORDER BY i;
COMMIT;
DROP TABLE bench_src;
DROP TABLE bench_ops;

-- (c) the floor: the same rows in a bare table.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO operators (id, name, created_at)
SELECT id, name, :'t0'::timestamptz - interval '30 days' FROM bench_ops ORDER BY k;

INSERT INTO chats (n, id, real_user_id, chat_state, state_changed_at, created_at)
SELECT i, id, real_user_id, 'waiting_assignment', ts, ts
FROM bench_src ORDER BY i;

INSERT INTO messages (chat_id, sender_type, content, created_at)
SELECT id, 'real_user', 'Hello, I need help with my order #' || i, ts
FROM bench_src ORDER BY i;
COMMIT;
DROP TABLE bench_src;
DROP TABLE bench_ops;

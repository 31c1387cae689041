-- An app database of bench/plpgsql's shape at scale, for timing import_app_tables: :n chats,
-- :per messages each (alternately the user's and the operator's), :k operators, one
-- released assignment per chat that an operator answered, and an open assignment with its
-- heartbeat for one chat in a thousand (each operator holds at most one per :k thousand
-- chats). Runs after bench/plpgsql/*.sql (schema public).
-- States: 6 in 10 completed, 2 in 10 waiting for the user, 1 in 10 waiting, the rest
-- (chats whose number ends in 999) assigned.
SET synchronous_commit = off;
INSERT INTO public.operators (id, name, max_concurrent_chats, created_at)
SELECT md5('op-' || k)::uuid, 'operator ' || k, 2, now() - interval '90 days'
FROM generate_series(1, :k) AS k;

INSERT INTO public.chats (id, real_user_id, assigned_operator_id, is_active, created_at, last_message_at,
                          chat_state, last_operator_id, operator_replied_at)
SELECT md5('chat-' || i)::uuid, md5('user-' || i)::uuid,
       CASE WHEN state = 'assigned' THEN op END,
       state <> 'completed',
       t0, t0 + (:per - 1) * interval '1 min',
       state, op,
       CASE WHEN state <> 'assigned' THEN t0 + (:per - 2) * interval '1 min' END
FROM (SELECT i, md5('op-' || (1 + CASE WHEN i % 1000 = 999 THEN i / 1000 ELSE i END % :k))::uuid AS op,
             now() - interval '30 days' + i * interval '2 s' AS t0,
             CASE WHEN i % 1000 = 999 THEN 'assigned'
                  WHEN i % 10 < 6 THEN 'completed'
                  WHEN i % 10 < 8 THEN 'waiting_real_user_reply'
                  ELSE 'waiting_assignment' END AS state
      FROM generate_series(1, :n) AS i) AS s;

INSERT INTO public.messages (chat_id, sender_type, operator_id, content, created_at)
SELECT md5('chat-' || i)::uuid,
       CASE WHEN j % 2 = 0 THEN 'real_user' ELSE 'operator' END,
       CASE WHEN j % 2 = 1 THEN md5('op-' || (1 + CASE WHEN i % 1000 = 999 THEN i / 1000 ELSE i END % :k))::uuid END,
       CASE WHEN j % 2 = 0 THEN 'Hello, I have a question about order ' || i
            ELSE 'Thanks for waiting, let me check order ' || i END,
       now() - interval '30 days' + i * interval '2 s' + j * interval '1 min'
FROM generate_series(1, :n) AS i, generate_series(0, :per - 1) AS j;

INSERT INTO public.chat_assignments (chat_id, operator_id, assigned_at, released_at, release_reason)
SELECT c.id, c.last_operator_id, c.created_at + interval '30 s', c.operator_replied_at, 'operator_replied'
FROM public.chats c WHERE c.chat_state <> 'assigned'
UNION ALL
SELECT c.id, c.assigned_operator_id, c.last_message_at, NULL, NULL
FROM public.chats c WHERE c.chat_state = 'assigned';

INSERT INTO public.operator_activity (operator_id, chat_id, last_activity_at)
SELECT c.assigned_operator_id, c.id, c.last_message_at
FROM public.chats c WHERE c.chat_state = 'assigned';
VACUUM ANALYZE;

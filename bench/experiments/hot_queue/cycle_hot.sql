\set op :client_id + 1
\if :step = 0
BEGIN;
SELECT is_active, max_concurrent_chats, held FROM operators WHERE id = md5('op-' || :op::int)::uuid FOR NO KEY UPDATE;
WITH q AS (DELETE FROM chat_queue WHERE ctid = (SELECT ctid FROM chat_queue
             WHERE queue_key = '00000000-0000-0000-0000-000000000000'
               AND (SELECT held < max_concurrent_chats FROM operators WHERE id = md5('op-' || :op::int)::uuid)
             ORDER BY priority DESC, waiting_since, chat_id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING chat_id),
chat AS (UPDATE chats c SET chat_state = 'assigned', assigned_operator_id = md5('op-' || :op::int)::uuid, last_operator_id = md5('op-' || :op::int)::uuid,
         assigned_at = now(), state_changed_at = now() FROM q WHERE c.id = q.chat_id RETURNING c.id),
a AS (INSERT INTO chat_assignments (chat_id, operator_id, assigned_at, last_activity_at) SELECT id, md5('op-' || :op::int)::uuid, now(), now() FROM chat),
o AS (UPDATE operators SET last_assigned_at = now(), held = held + 1 WHERE id = md5('op-' || :op::int)::uuid AND EXISTS (SELECT 1 FROM chat)),
e AS (INSERT INTO chat_events (chat_id, old_state, new_state, operator_id, reason) SELECT id, 'waiting_assignment', 'assigned', md5('op-' || :op::int)::uuid, 'assigned' FROM chat)
SELECT id AS chat FROM chat \gset
COMMIT;
\set step 1
\elif :step = 1
BEGIN;
SELECT chat_state FROM chats WHERE id = :chat FOR NO KEY UPDATE;
WITH msg AS (INSERT INTO messages (chat_id, sender_type, operator_id, content) VALUES (:chat, 'operator', md5('op-' || :op::int)::uuid, 'Thanks for waiting! Let me check that for you.') RETURNING id),
r AS (UPDATE chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = 'operator_replied' WHERE id = (SELECT max(id) FROM chat_assignments WHERE chat_id = :chat) AND released_at IS NULL),
c AS (UPDATE chats SET chat_state = 'waiting_real_user_reply', assigned_operator_id = NULL, last_operator_id = md5('op-' || :op::int)::uuid, operator_replied_at = now(), state_changed_at = now(), last_message_at = now() WHERE id = :chat),
o AS (UPDATE operators SET held = held - 1 WHERE id = md5('op-' || :op::int)::uuid),
e AS (INSERT INTO chat_events (chat_id, old_state, new_state, operator_id, reason) VALUES (:chat, 'assigned', 'waiting_real_user_reply', md5('op-' || :op::int)::uuid, 'operator_replied'))
SELECT id FROM msg;
COMMIT;
\set step 2
\else
BEGIN;
SELECT chat_state FROM chats WHERE id = :chat FOR NO KEY UPDATE;
WITH msg AS (INSERT INTO messages (chat_id, sender_type, content) VALUES (:chat, 'real_user', 'Great, thank you. One more question...') RETURNING id),
c AS (UPDATE chats SET chat_state = 'waiting_assignment', waiting_since = now(), state_changed_at = now(), last_message_at = now() WHERE id = :chat
      RETURNING priority, waiting_since, last_operator_id),
q AS (INSERT INTO chat_queue SELECT :chat, '00000000-0000-0000-0000-000000000000', priority, waiting_since, last_operator_id FROM c),
e AS (INSERT INTO chat_events (chat_id, old_state, new_state, operator_id, reason) VALUES (:chat, 'waiting_real_user_reply', 'waiting_assignment', NULL, 'real_user_message'))
SELECT id FROM msg;
COMMIT;
\set step 0
\endif

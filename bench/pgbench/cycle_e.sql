-- (e) the write floor: the rows one cycle of the contract writes, into chat_assign's own
-- tables (bench/write_floor/schema.sql), each step ONE plain SQL statement sent by the
-- client, shaped like the functions' statements (src/store/queries.rs): the claim takes
-- the queue's first unlocked chat (SKIP LOCKED), assigns it, opens the assignment, sets
-- the operator's last_assigned_at and held_chat_ids and writes the event; the reply stores
-- the message, releases the assignment, frees the chat and writes the event; the user's
-- reply stores the message, puts the chat back in the queue and writes the event. Nothing
-- else: no function call, no lock or validation statement, no capacity check, no
-- avoid-same-operator, no idempotency, no queue heads, no event-id floor. What a cycle costs on
-- this machine when nothing but its rows is written: the ceiling of any implementation
-- that writes them through these indexes.
--
-- The steps and the per-client step variable are those of cycle_a.sql (see there).
\set op :client_id + 1
\if :step = 0
WITH pick AS (
    SELECT id, state_changed_at, waiting_since, team_id FROM chats
    WHERE coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid) = '00000000-0000-0000-0000-000000000000'::uuid
      AND chat_state = 'waiting_assignment' AND is_active
    ORDER BY coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid), priority DESC, waiting_since, id
    LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED),
chat AS (
    UPDATE chats c SET chat_state = 'assigned', assigned_operator_id = md5('op-' || :op::int)::uuid,
        last_operator_id = md5('op-' || :op::int)::uuid, assigned_at = now(), state_changed_at = now(),
        first_assigned_at = least(c.first_assigned_at, now())
    FROM pick WHERE c.id = pick.id RETURNING c.id),
assignment AS (
    INSERT INTO chat_assignments (chat_id, operator_id, assigned_at, last_activity_at)
    SELECT id, md5('op-' || :op::int)::uuid, now(), now() FROM chat),
operator AS (
    UPDATE operators SET last_assigned_at = now(), held_chat_ids = ARRAY(SELECT id FROM chat)
    WHERE id = md5('op-' || :op::int)::uuid AND EXISTS (SELECT 1 FROM chat)),
event AS (
    INSERT INTO chat_events (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since)
    SELECT pick.id, 'waiting_assignment', 'assigned', md5('op-' || :op::int)::uuid, pick.team_id, 'manual', now(),
           pick.state_changed_at, pick.waiting_since FROM pick JOIN chat ON chat.id = pick.id)
SELECT id AS chat FROM chat \gset
\set step 1
\elif :step = 1
WITH msg AS (
    INSERT INTO messages (chat_id, sender_type, operator_id, content)
    VALUES (:chat::uuid, 'operator', md5('op-' || :op::int)::uuid, 'Thanks for waiting! Let me check that for you.')),
released AS (
    UPDATE chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = 'operator_replied'
    WHERE id = (SELECT max(id) FROM chat_assignments WHERE chat_id = :chat::uuid) AND released_at IS NULL),
chat AS (
    UPDATE chats SET chat_state = 'waiting_real_user_reply', assigned_operator_id = NULL,
        last_operator_id = md5('op-' || :op::int)::uuid, operator_replied_at = now(),
        first_response_at = least(first_response_at, now()), state_changed_at = now(), last_message_at = now()
    WHERE id = :chat::uuid RETURNING id, team_id)
INSERT INTO chat_events (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since)
SELECT id, 'assigned', 'waiting_real_user_reply', md5('op-' || :op::int)::uuid, team_id, 'operator_replied', now(), now(), NULL
FROM chat;
\set step 2
\else
WITH msg AS (
    INSERT INTO messages (chat_id, sender_type, content) VALUES (:chat::uuid, 'real_user', 'Great, thank you. One more question...')),
chat AS (
    UPDATE chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL, is_active = true,
        waiting_since = now(), state_changed_at = now(), last_message_at = now()
    WHERE id = :chat::uuid RETURNING id, team_id, last_operator_id)
INSERT INTO chat_events (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since)
SELECT id, 'waiting_real_user_reply', 'waiting_assignment', last_operator_id, team_id, 'real_user_message', now(), now(), now()
FROM chat;
\set step 0
\endif

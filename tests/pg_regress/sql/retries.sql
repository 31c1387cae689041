-- Retries are safe: start_chat, real_user_send_message and operator_send_message with
-- p_idempotency_key. A call repeated with the same key (per real user for start_chat, per
-- chat and sender for messages) returns the original result and writes nothing.
-- Self-contained: its own database.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_retries;
\c chat_assign_retries
CREATE EXTENSION chat_assign;
CREATE TEMP VIEW written AS
SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM chat_assignments) AS assignments, (SELECT count(*) FROM chat_events) AS events,
       (SELECT string_agg(chat_state::text, ',' ORDER BY created_at) FROM chats) AS states;
SELECT create_operator('Ann') AS ann \gset
SELECT create_operator('Bo') AS bo \gset

-- start_chat: the same key for the same user is the same chat; another user's is not.
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'Hi', 'open-1') AS chat \gset
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'Hi', 'open-1') = :'chat' AS same_chat;
SELECT start_chat(p_real_user_id => '00000000-0000-0000-0000-000000000001', p_content => 'Hi (retry)',
                  p_idempotency_key => 'open-1') = :'chat' AS same_chat_named;
SELECT start_chat('00000000-0000-0000-0000-000000000002', 'Hi', 'open-1') <> :'chat' AS other_user_other_chat;
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'Hi', 'open-2') <> :'chat' AS other_key_other_chat;
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'Hi') <> :'chat' AS no_key_new_chat;
SELECT * FROM written;

-- real_user_send_message: the same key in the same chat is the same message.
SELECT real_user_send_message(:'chat', 'More', 'msg-1') AS m1 \gset
SELECT real_user_send_message(:'chat', 'More', 'msg-1') = :m1 AS same_message;
SELECT * FROM written;

-- operator_send_message: Ann takes the chat and answers; the retry of her answer, after the
-- user answered in between (the chat is back in the queue, where a new reply by Ann would
-- be refused), returns her message and writes nothing.
SELECT assign_chat_to_operator(:'ann') = :'chat' AS ann_takes;
SELECT operator_send_message(:'chat', :'ann', 'Hello!', 'reply-1') AS r1 \gset
SELECT real_user_send_message(:'chat', 'Thanks', 'msg-2') IS NOT NULL AS user_answered;
SELECT * FROM written;
SELECT operator_send_message(:'chat', :'ann', 'Hello!', 'reply-1') = :r1 AS same_reply;
SELECT * FROM written;
-- Without the key that call is refused now, as before.
SELECT operator_send_message(:'chat', :'ann', 'Hello!');
-- Keys are per sender: Bo's 'reply-1' is not Ann's (and Bo may not write here: 55000).
SELECT operator_send_message(:'chat', :'bo', 'Hello!', 'reply-1');
-- The user's 'msg-1' is not an operator's, nor the other way round.
SELECT assign_chat_to_operator(:'ann') IS NOT NULL AS ann_takes_again;
SELECT operator_send_message(c.id, :'ann', 'again', 'msg-1') <> :m1 AS operator_key_apart
FROM chats c WHERE c.chat_state = 'assigned';
SELECT * FROM written;

-- Keys must say something and are at most 200 characters.
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Hi', '');
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Hi', E'\u200B');
SELECT real_user_send_message(:'chat', 'x', repeat('k', 201));
SELECT real_user_send_message(:'chat', 'x', repeat('k', 200)) IS NOT NULL AS key_of_200_ok;
-- Argument errors come first, even for a key seen before.
SELECT real_user_send_message(:'chat', '', 'msg-1');
SELECT real_user_send_message('00000000-0000-0000-0000-0000000000ff', 'x', 'msg-1');

-- The unique indexes are the backstop: a second row with a used key is refused.
INSERT INTO messages (chat_id, sender_type, content, idempotency_key)
VALUES (:'chat', 'real_user', 'direct', 'msg-1');

\c :home
DROP DATABASE chat_assign_retries;

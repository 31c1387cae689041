-- The error table (docs/api.md, "Errors"). Each failing call is followed by a check that nothing changed.
\set VERBOSITY sqlstate
SELECT id AS op FROM operators WHERE name = 'Alice' \gset
SELECT id AS other FROM operators WHERE name = 'Bob' \gset
SELECT id AS chat FROM chats WHERE real_user_id = '00000000-0000-0000-0000-000000000002' \gset
CREATE TEMP VIEW fp AS
SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM chat_assignments) AS assignments,
       (SELECT count(*) FROM chat_assignments WHERE released_at IS NULL) AS open,
       (SELECT count(*) FROM operators) AS operators,
       (SELECT string_agg(chat_state::text, ',' ORDER BY real_user_id) FROM chats) AS states;
SELECT * FROM fp;

-- 22004: a required argument is NULL (not a silent NULL result)
SELECT start_chat(NULL, 'x');
SELECT start_chat('00000000-0000-0000-0000-000000000009', NULL);
SELECT real_user_send_message(NULL, 'x');
SELECT operator_send_message(:'chat', NULL, 'x');
SELECT assign_chat_to_operator(NULL);
SELECT release_and_reassign_chat(NULL);
SELECT release_and_reassign_chat(:'chat', NULL);
SELECT touch_operator_activity(NULL, :'chat');
SELECT complete_chat(NULL);
SELECT create_operator(NULL);
SELECT set_operator_active(:'op', NULL);
SELECT * FROM detect_stuck_chats(NULL);
SELECT * FROM fp;

-- 22023: blank content, non-positive hours or interval, capacity < 1
SELECT start_chat('00000000-0000-0000-0000-000000000009', '');
SELECT start_chat('00000000-0000-0000-0000-000000000009', E' \t\n ');
SELECT real_user_send_message(:'chat', '   ');
SELECT operator_send_message(:'chat', :'op', '');
SELECT create_operator('   ');
SELECT create_operator('Dave', 0);
SELECT * FROM detect_stuck_chats(0);
SELECT * FROM detect_stuck_chats(-2);
SELECT * FROM release_idle_assignments('0');
SELECT * FROM release_idle_assignments('-1 hour');
-- Text made only of characters that show nothing: zero-width space, byte-order mark,
-- zero-width joiner, control characters, a no-break space.
SELECT start_chat('00000000-0000-0000-0000-000000000009', E'\u200B\uFEFF');
SELECT real_user_send_message(:'chat', E'\u200D\x01\x7F');
SELECT operator_send_message(:'chat', :'op', E'\u00A0\u2060\t');
SELECT create_operator(E'\uFEFF');
SELECT release_and_reassign_chat(:'chat', E'\u200B');
-- Ages past 100 years (the time they name is out of range): 22023, not 22008.
SELECT * FROM release_idle_assignments('100000000 years');
SELECT * FROM release_idle_assignments('101 years');
SELECT * FROM detect_stuck_chats(1e8);
SELECT * FROM detect_stuck_chats(864001);
SELECT count(*) FROM detect_stuck_chats(864000) AS at_the_limit;
SELECT count(*) FROM release_idle_assignments('100 years') AS at_the_limit;
-- Longer than the limits (chat_assign.max_*_length; superuser settings).
SET chat_assign.max_message_length = 10;
SET chat_assign.max_reason_length = 5;
SET chat_assign.max_name_length = 3;
SELECT start_chat('00000000-0000-0000-0000-000000000009', 'eleven char');
SELECT real_user_send_message(:'chat', repeat('x', 11));
SELECT operator_send_message(:'chat', :'op', repeat('é', 11));
SELECT release_and_reassign_chat(:'chat', 'sixsix');
SELECT create_operator('Dave');
SELECT * FROM fp;
-- At the limit, in characters (not bytes): stored.
BEGIN;
SELECT real_user_send_message(:'chat', repeat('é', 10)) IS NOT NULL AS ten_characters_stored;
ROLLBACK;
RESET chat_assign.max_message_length;
RESET chat_assign.max_reason_length;
RESET chat_assign.max_name_length;
SELECT name, setting, context FROM pg_settings WHERE name LIKE 'chat_assign.max_%' ORDER BY 1;

-- P0002: unknown chat or operator
SELECT real_user_send_message('00000000-0000-0000-0000-0000000000ff', 'x');
SELECT operator_send_message('00000000-0000-0000-0000-0000000000ff', :'op', 'x');
SELECT operator_send_message(:'chat', '00000000-0000-0000-0000-0000000000ee', 'x');
SELECT assign_chat_to_operator('00000000-0000-0000-0000-0000000000ee');
SELECT release_and_reassign_chat('00000000-0000-0000-0000-0000000000ff');
SELECT touch_operator_activity('00000000-0000-0000-0000-0000000000ee', :'chat');
SELECT complete_chat('00000000-0000-0000-0000-0000000000ff');
SELECT set_operator_active('00000000-0000-0000-0000-0000000000ee', true);
SELECT * FROM fp;

-- 55000: at capacity, inactive, not the assigned operator
SELECT start_chat('00000000-0000-0000-0000-000000000004', 'Need help') AS chat4 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000005', 'Me too') AS chat5 \gset
SELECT assign_chat_to_operator(:'op') IS NOT NULL AS got_one;
SELECT * FROM fp;
SELECT assign_chat_to_operator(:'op');
SELECT operator_send_message(:'chat4', :'other', 'not my chat');
SELECT operator_send_message(:'chat5', :'other', 'not my chat either');
SELECT set_operator_active(:'other', false);
SELECT assign_chat_to_operator(:'other');
SELECT set_operator_active(:'other', true);
SELECT * FROM fp;

-- Messages name the ids involved.
\set VERBOSITY default
SET chat_assign.max_message_length = 10;
SELECT start_chat('00000000-0000-0000-0000-000000000009', repeat('x', 100000));
RESET chat_assign.max_message_length;
-- What an error repeats of an argument is capped: an interval, a JWT claim of 1 MB.
SELECT * FROM release_idle_assignments('100000000 years 1 second');
SET chat_assign.operator_id_claim = 'sub';
SELECT set_config('request.jwt.claims', json_build_object('sub', repeat('7', 1000000))::text, false) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator('00000000-0000-0000-0000-0000000000ee');
RESET chat_assign.operator_id_claim;
SELECT set_config('request.jwt.claims', '', false) = '' AS claims_cleared;
SELECT assign_chat_to_operator('00000000-0000-0000-0000-0000000000ee');
SELECT operator_send_message('00000000-0000-0000-0000-0000000000ff', :'op', 'x');
SELECT create_operator('Dave', 0);
SELECT start_chat(NULL, 'x');

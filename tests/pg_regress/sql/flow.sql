-- The five-part testing checklist (Tests 1-5) as a client runs it: every statement its own
-- transaction, ids kept in psql variables, nothing random printed.
\set VERBOSITY sqlstate
SELECT create_operator('Alice') AS alice \gset
SELECT create_operator('Bob') AS bob \gset
SELECT create_operator(p_name => 'Carol', p_max_concurrent_chats => 2) AS carol \gset
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'Hi, my order is late') AS chat1 \gset
SELECT start_chat(p_real_user_id => '00000000-0000-0000-0000-000000000002', p_content => 'Refund please') AS chat2 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Where is my parcel?') AS chat3 \gset
CREATE TEMP VIEW v AS
SELECT CASE c.id WHEN :'chat1' THEN 'chat1' WHEN :'chat2' THEN 'chat2' WHEN :'chat3' THEN 'chat3' END AS chat,
       c.chat_state,
       CASE c.assigned_operator_id WHEN :'alice' THEN 'Alice' WHEN :'bob' THEN 'Bob' WHEN :'carol' THEN 'Carol' END AS holder,
       CASE c.last_operator_id WHEN :'alice' THEN 'Alice' WHEN :'bob' THEN 'Bob' WHEN :'carol' THEN 'Carol' END AS last_operator,
       (SELECT count(*) FROM messages m WHERE m.chat_id = c.id) AS messages
FROM chats c ORDER BY 1;

-- Test 1: normal flow
SELECT * FROM v;
SELECT assign_chat_to_operator(:'alice') = :'chat1' AS alice_gets_oldest;
SELECT * FROM v WHERE chat = 'chat1';
SELECT operator_send_message(:'chat1', :'alice', 'Sorry! Checking now.') IS NOT NULL AS replied;
SELECT * FROM v WHERE chat = 'chat1';
SELECT assign_chat_to_operator(:'alice') = :'chat2' AS alice_gets_a_different_chat;
SELECT real_user_send_message(:'chat1', 'Any news?') IS NOT NULL AS user_wrote;
SELECT * FROM v;

-- Test 2: same operator prevention. Alice answers chat2 and frees herself; chat1 waits and
-- was last handled by Alice, chat3 was handled by nobody.
SELECT operator_send_message(:'chat2', :'alice', 'Refund issued.') IS NOT NULL AS replied;
UPDATE chats SET waiting_since = waiting_since - interval '1 hour' WHERE id = :'chat1';
SELECT assign_chat_to_operator(:'alice') = :'chat3' AS alice_skips_her_own_chat;
SELECT assign_chat_to_operator(:'bob') = :'chat1' AS bob_gets_it;
SELECT * FROM v;

-- Test 3: idle detection. Bob goes quiet on chat1 for 6 minutes.
UPDATE chat_assignments SET last_activity_at = now() - interval '6 minutes' WHERE chat_id = :'chat1' AND released_at IS NULL;
SELECT chat_id = :'chat1' AS released_chat1, operator_id = :'bob' AS from_bob, idle_seconds >= 360 AS idle_6min
FROM release_idle_assignments();
SELECT * FROM v WHERE chat = 'chat1';
-- Carol takes it and replies; idle detection must then leave it alone.
SELECT assign_chat_to_operator(:'carol') = :'chat1' AS carol_gets_chat1;
SELECT touch_operator_activity(:'carol', :'chat1') AS heartbeat, touch_operator_activity(:'bob', :'chat1') AS not_bobs;
SELECT operator_send_message(:'chat1', :'carol', 'Your parcel ships today.') IS NOT NULL AS replied;
UPDATE chats SET operator_replied_at = now() - interval '1 hour' WHERE id = :'chat1';
SELECT count(*) AS released FROM release_idle_assignments('1 second');
SELECT * FROM v WHERE chat = 'chat1';

-- Test 4: manual unassignment. Alice holds chat3; the admin takes it away.
SELECT release_and_reassign_chat(:'chat3') AS unassigned;
SELECT release_reason FROM chat_assignments WHERE chat_id = :'chat3' ORDER BY id DESC LIMIT 1;
SELECT release_and_reassign_chat(:'chat3', 'again') AS nothing_to_unassign;
SELECT assign_chat_to_operator(:'bob') = :'chat3' AS bob_can_take_it;

-- Test 5: edge cases. The user writes while Bob works on chat3; Bob at capacity is refused.
SELECT real_user_send_message(:'chat3', 'Hello? Still there?') IS NOT NULL AS user_wrote;
SELECT * FROM v WHERE chat = 'chat3';
SELECT release_reason FROM chat_assignments WHERE chat_id = :'chat3' ORDER BY id DESC LIMIT 1;
SELECT assign_chat_to_operator(:'bob') = :'chat3' AS bob_takes_it_back;
SELECT assign_chat_to_operator(:'bob');
SELECT * FROM v WHERE chat = 'chat3';

-- Completing and reopening.
SELECT complete_chat(:'chat3') AS completed, complete_chat(:'chat3') AS already;
SELECT chat_state, is_active FROM chats WHERE id = :'chat3';
SELECT real_user_send_message(:'chat3', 'One more question') IS NOT NULL AS reopened;
SELECT chat_state, is_active FROM chats WHERE id = :'chat3';

-- Deactivation returns an operator's chats to the queue.
SELECT assign_chat_to_operator(:'carol') = :'chat3' AS carol_gets_chat3;
SELECT set_operator_active(:'carol', false) AS deactivated;
SELECT * FROM v WHERE chat = 'chat3';
SELECT release_reason FROM chat_assignments WHERE chat_id = :'chat3' ORDER BY id DESC LIMIT 1;
SELECT set_operator_active(:'carol', true) AS reactivated;

-- Every assignment ever made, in order.
SELECT CASE a.chat_id WHEN :'chat1' THEN 'chat1' WHEN :'chat2' THEN 'chat2' ELSE 'chat3' END AS chat,
       o.name, a.released_at IS NOT NULL AS released, a.release_reason
FROM chat_assignments a JOIN operators o ON o.id = a.operator_id ORDER BY a.id;

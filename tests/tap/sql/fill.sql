-- Realistic data for the operations tests (tests/tap/t), made only with the functions
-- of the first release (0.1.0), so that the same script fills a database of any version.
-- Run with psql in autocommit mode (each call its own transaction, as apps make them).
--
-- Leaves: four operators (capacities 1-3, one deactivated); 14 chats in all four states,
-- one with a priority; messages from users and operators (quotes, accents, newlines);
-- assignments released for every reason plus three open ones; the open ones' heartbeats
-- in operator_activity.
\set ON_ERROR_STOP 1
\set QUIET 1

SELECT create_operator('Alice Martin', 2) AS alice,
       create_operator('Bob O''Neil') AS bob,
       create_operator('Chloé Dubois', 3) AS chloe,
       create_operator('Dan (night shift)') AS dan \gset

SELECT count(start_chat(format('00000000-0000-4000-8000-%s', lpad(g::text, 12, '0'))::uuid,
                        format('Hello, this is user %s: my order #%s is late', g, 1000 + g)))
FROM generate_series(1, 14) AS g;

-- Bob takes a chat and goes quiet until the idle job releases it (idle_timeout).
SELECT assign_chat_to_operator(:'bob') AS bob_idle \gset
SELECT pg_sleep(0.05);
SELECT * FROM release_idle_assignments('10 milliseconds');

-- Alice answers one chat (operator_replied) and its user answers back; the user of her
-- other chat writes before she answers (real_user_message); she takes a third (open).
SELECT assign_chat_to_operator(:'alice') AS a1 \gset
SELECT assign_chat_to_operator(:'alice') AS a2 \gset
SELECT touch_operator_activity(:'alice', :'a1');
SELECT operator_send_message(:'a1', :'alice', 'Let me check "that" for you… one moment');
SELECT operator_send_message(:'a1', :'alice', 'Found it: it left the depot today.');
SELECT real_user_send_message(:'a1', E'Thanks!\nWhen will it arrive?');
SELECT touch_operator_activity(:'alice', :'a2');
SELECT real_user_send_message(:'a2', 'Are you still there?');
SELECT assign_chat_to_operator(:'alice') AS a3 \gset

-- Bob answers a chat that then waits for its user, and takes the next one (open).
SELECT assign_chat_to_operator(:'bob') AS b1 \gset
SELECT operator_send_message(:'b1', :'bob', 'Hi! Could you send me the order number?');
SELECT assign_chat_to_operator(:'bob') AS b2 \gset

-- Chloé takes three: one goes back by an admin (manual_unassign), one is completed
-- (completed), one is escalated with an own reason; she then takes another (open).
SELECT assign_chat_to_operator(:'chloe') AS c1 \gset
SELECT assign_chat_to_operator(:'chloe') AS c2 \gset
SELECT assign_chat_to_operator(:'chloe') AS c3 \gset
SELECT release_and_reassign_chat(:'c2');
SELECT complete_chat(:'c3');
SELECT release_and_reassign_chat(:'c1', 'escalated to billing');
SELECT assign_chat_to_operator(:'chloe') AS c4 \gset
SELECT touch_operator_activity(:'chloe', :'c4');

-- Dan's shift ends while he holds a chat (operator_inactive).
SELECT assign_chat_to_operator(:'dan') AS d1 \gset
SELECT set_operator_active(:'dan', false);

-- A waiting chat is closed; the completed one is reopened by its user; a user writes
-- again while waiting (keeps the place); an app raises a chat's priority.
SELECT complete_chat(:'c2');
SELECT real_user_send_message(:'c3', 'Sorry, one more question about the invoice');
SELECT real_user_send_message(:'d1', 'Hello? Is anybody there?');
UPDATE chats SET priority = 5 WHERE id = :'bob_idle';

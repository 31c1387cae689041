-- Realistic data for the operations tests (tests/tap/t): 003_dump.pl dumps and restores it,
-- 007_standby.pl reads it on a replica. Made with the extension's functions, as an app
-- would (an older release's schema is filled by fill_direct.sql instead). Run with psql in
-- autocommit mode (each call its own transaction, as apps make them).
--
-- Leaves: six operators (capacities 1-3, one deactivated; online, away and offline); two
-- teams (routing manual and least_loaded) and their members; 21 chats in all four states,
-- seven of them in teams (three assigned by the least_loaded routing as they started
-- waiting, two waiting there because no member online has room), several with a priority;
-- messages from users and operators (quotes, accents, newlines); assignments released for
-- every reason plus open ones; the open ones' heartbeats in operator_activity; transfers to
-- an operator and to a team.
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

-- Teams. Billing is worked by hand (its members ask for chats); Tech support's routing is
-- least_loaded: a chat that starts waiting there is given at once to the member with the
-- most room. Chloé is in both.
SELECT create_team('Billing') AS billing \gset
SELECT create_team('Tech support', 'least_loaded') AS tech \gset
SELECT create_operator('Eve Nakamura', 2) AS eve,
       create_operator('Frank Li') AS frank \gset
SELECT add_team_member(:'billing', :'alice'), add_team_member(:'billing', :'chloe'),
       add_team_member(:'billing', :'frank'), add_team_member(:'tech', :'chloe'),
       add_team_member(:'tech', :'eve');

-- Chats opened in a team, some with a priority. Billing's wait for a member to ask. Tech
-- support's are assigned as they start (auto_assigned): the crash to Eve (2 free, as
-- Chloé, and never assigned before), the password question to Chloé (now the one with
-- the most room).
SELECT start_chat('00000000-0000-4000-8000-000000000015', 'I was charged twice for order #2015', NULL, :'billing', 5) AS t1 \gset
SELECT start_chat('00000000-0000-4000-8000-000000000016', 'Can I get a refund for order #2016?', p_team_id => :'billing') AS t2 \gset
SELECT start_chat('00000000-0000-4000-8000-000000000017', 'The app crashes when I log in', NULL, :'tech', 2) AS t3 \gset
SELECT start_chat('00000000-0000-4000-8000-000000000018', 'How do I reset my password?', p_team_id => :'tech') AS t4 \gset
SELECT start_chat('00000000-0000-4000-8000-000000000019', 'Where is my invoice?', p_team_id => :'billing') AS t5 \gset

-- Transfers: Eve's crash goes to Chloé, who hands it back to Eve; Eve works on it
-- (heartbeat) and then steps away (she keeps the chat).
SELECT transfer_chat(:'t3', p_to_operator_id => :'chloe');
SELECT transfer_chat(:'t3', p_to_operator_id => :'eve', p_reason => 'crash expert');
SELECT touch_operator_activity(:'eve', :'t3');
SELECT set_operator_status(:'eve', 'away');

-- Chloé takes the invoice question, then leaves Billing: it goes back to Billing's queue
-- (removed_from_team).
SELECT transfer_chat(:'t5', p_to_operator_id => :'chloe');
SELECT remove_team_member(:'billing', :'chloe');

-- The refund needs a fix first: it moves to Tech support's queue, where it is given at once
-- to Chloé, the only member online (Eve is away); Chloé is then at capacity (3 of 3).
SELECT transfer_chat(:'t2', p_to_team_id => :'tech', p_reason => 'refund needs a fix first');

-- Two more Tech support chats wait: no member online has room. An app raises one's
-- priority.
SELECT start_chat('00000000-0000-4000-8000-000000000020', 'Sync is stuck since this morning', p_team_id => :'tech') AS t6 \gset
SELECT start_chat('00000000-0000-4000-8000-000000000021', 'The app logs me out all the time', p_team_id => :'tech') AS t7 \gset
SELECT set_chat_priority(:'t7', 1);

-- Frank is given the double charge, then goes offline: it is back in the queue, keeping its
-- place (operator_offline).
SELECT transfer_chat(:'t1', p_to_operator_id => :'frank');
SELECT set_operator_status(:'frank', 'offline');

-- operators.held_chat_ids: every chat an operator holds (and perhaps some it no longer
-- holds), which assignment reads for its capacity check instead of counting the operator's
-- chats through idx_chats_assigned_operator (sql/references.sql says why). Every way of
-- giving an operator a chat must leave the chat there, or a later assignment would let the
-- operator exceed its capacity: the calls (assignment, transfer), an app's direct write
-- (INSERT or UPDATE of chats), with change events on and off. A claim writes back only what
-- is still held; ids listed twice count once.
-- Self-contained: its own database.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_held;
\c chat_assign_held
CREATE EXTENSION chat_assign;
SET chat_assign.avoid_same_operator = off;
SELECT create_operator('Ada') AS ada \gset
SELECT create_operator('Bob', 2) AS bob \gset
CREATE TEMP VIEW held AS
SELECT o.name, cardinality(o.held_chat_ids) AS listed,
       (SELECT count(*) FROM chats c WHERE c.assigned_operator_id = o.id) AS holds,
       (SELECT count(*) FROM chats c WHERE c.assigned_operator_id = o.id
                                        AND NOT (c.id = ANY (o.held_chat_ids))) AS missing
FROM operators o ORDER BY o.name;

-- An app's direct INSERT of a chat already assigned (with its open assignment, as an app
-- that writes around the API must): the chat is listed, so Ada (capacity 1) is full.
BEGIN;
INSERT INTO chats (id, real_user_id, chat_state, assigned_operator_id, last_operator_id, assigned_at,
                   first_assigned_at)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-000000000001',
        'assigned', :'ada', :'ada', now(), now());
INSERT INTO chat_assignments (chat_id, operator_id) VALUES ('00000000-0000-0000-0000-0000000000c1', :'ada');
COMMIT;
SELECT * FROM held;
SELECT start_chat('00000000-0000-0000-0000-000000000002', 'Hello') AS waiting \gset
SELECT assign_chat_to_operator(:'ada');

-- An app's direct UPDATE that gives the waiting chat to Bob: listed; Bob (capacity 2) takes
-- one more and is then full.
BEGIN;
UPDATE chats SET chat_state = 'assigned', assigned_operator_id = :'bob', last_operator_id = :'bob',
                 assigned_at = now(), first_assigned_at = now()
WHERE id = :'waiting';
INSERT INTO chat_assignments (chat_id, operator_id) VALUES (:'waiting', :'bob');
COMMIT;
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Hello') AS third \gset
SELECT start_chat('00000000-0000-0000-0000-000000000004', 'Hello') AS fourth \gset
SELECT assign_chat_to_operator(:'bob') = :'third' AS bob_took_third;
SELECT assign_chat_to_operator(:'bob');
SELECT * FROM held;

-- Released chats stay listed until the operator's next assignment, which drops them.
SELECT operator_send_message('00000000-0000-0000-0000-0000000000c1', :'ada', 'Done') > 0 AS ada_replied;
SELECT * FROM held;
SELECT assign_chat_to_operator(:'ada') = :'fourth' AS ada_took_fourth;
SELECT * FROM held;

-- A transfer to an operator lists the chat (and drops Bob's released ones as a claim does).
SELECT operator_send_message(:'waiting', :'bob', 'Done') > 0 AS bob_replied;
SELECT operator_send_message(:'third', :'bob', 'Done') > 0 AS bob_replied;
SELECT transfer_chat(:'fourth', p_to_operator_id => :'bob') AS moved;
SELECT * FROM held;

-- An id listed twice counts once: Bob (capacity 2, one chat) still has room.
UPDATE operators SET held_chat_ids = held_chat_ids || held_chat_ids WHERE id = :'bob';
SELECT start_chat('00000000-0000-0000-0000-000000000005', 'Hello') AS fifth \gset
SELECT assign_chat_to_operator(:'bob') = :'fifth' AS bob_took_fifth;
SELECT * FROM held;

-- With change events off the calls list their chats the same way: nothing listed
-- twice, nothing missing.
SET chat_assign.events = off;
SELECT operator_send_message(:'fourth', :'bob', 'Done') > 0 AS bob_replied;
SELECT start_chat('00000000-0000-0000-0000-000000000006', 'Hello') AS sixth \gset
SELECT assign_chat_to_operator(:'bob') = :'sixth' AS bob_took_sixth;
SELECT * FROM held;
RESET chat_assign.events;

\i tests/invariants.sql
\c :home
DROP DATABASE chat_assign_held;

-- References without foreign keys: what the foreign keys of messages, chat_assignments and
-- chats.last_operator_id did for writers other than the functions (docs/api.md, "References").
-- Deleting chats deletes their messages and assignments; deleting an operator, or changing a
-- chat's or an operator's id, that rows still name is refused with 23503, and changes nothing.
-- Self-contained: its own database.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_references;
\c chat_assign_references
CREATE EXTENSION chat_assign;
CREATE TEMP VIEW written AS
SELECT (SELECT count(*) FROM operators) AS operators, (SELECT count(*) FROM chats) AS chats,
       (SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM chat_assignments) AS assignments;
SELECT create_operator('Ann') AS ann \gset
SELECT create_operator('Bo') AS bo \gset
SELECT create_operator('Cy (never assigned)') AS cy \gset
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'First') AS c1 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000002', 'Second') AS c2 \gset
SELECT assign_chat_to_operator(:'ann') = :'c1' AS ann_has_c1;
SELECT operator_send_message(:'c1', :'ann', 'Hello') IS NOT NULL AS answered;
SELECT real_user_send_message(:'c1', 'Thanks') IS NOT NULL AS user_answered;
SELECT assign_chat_to_operator(:'bo') = :'c2' AS bo_has_c2;
SELECT * FROM written;

-- An operator named by a chat, a message or an assignment cannot be deleted, nor re-keyed.
DELETE FROM operators WHERE id = :'ann';
DELETE FROM operators WHERE id = :'bo';
UPDATE operators SET id = gen_random_uuid() WHERE id = :'bo';
UPDATE operators SET id = gen_random_uuid();
SELECT * FROM written;
-- The message names the table it found first, and the id (here replaced by the name).
\set VERBOSITY default
DO $$
DECLARE
    hint text;
BEGIN
    DELETE FROM operators WHERE name IN ('Ann', 'Cy (never assigned)');
EXCEPTION WHEN foreign_key_violation THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '% (hint: %)', replace(SQLERRM, (SELECT id::text FROM operators WHERE name = 'Ann'), '<Ann>'), hint;
END
$$;
\set VERBOSITY sqlstate
-- One nobody names can.
DELETE FROM operators WHERE id = :'cy' RETURNING name;
UPDATE operators SET name = 'Ann B.' WHERE id = :'ann' RETURNING name;

-- A chat's id cannot change while its messages and assignments name it.
UPDATE chats SET id = gen_random_uuid() WHERE id = :'c1';
-- Deleting chats deletes their messages and assignments, nothing else.
DELETE FROM chats WHERE id = :'c1';
SELECT * FROM written;
SELECT count(*) AS messages_of_c1 FROM messages WHERE chat_id = :'c1';
SELECT count(*) AS assignments_of_c1 FROM chat_assignments WHERE chat_id = :'c1';
-- TRUNCATE: operators that rows name cannot be emptied; chats empty their messages and
-- assignments with them (as TRUNCATE ... CASCADE did).
TRUNCATE operators;
SELECT * FROM written;
TRUNCATE chats;
SELECT * FROM written;
-- Now that no row names them, the operators can go.
DELETE FROM operators;
SELECT * FROM written;
-- The calls go on as before, on an empty database.
SELECT create_operator('Dee') AS dee \gset
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Third') AS c3 \gset
SELECT assign_chat_to_operator(:'dee') = :'c3' AS dee_has_c3;
-- Every invariant holds (no row lists a violation).
\i tests/invariants.sql

\c :home
DROP DATABASE chat_assign_references;

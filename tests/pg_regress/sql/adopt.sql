-- Moving an existing app onto the extension (docs/adopting.md): an app database built from the migrations apps ran before this extension (bench/plpgsql), with data in every state
-- and the messes its old code left; then install beside it, import (refused, then
-- repaired), switch the app's calls, run the app's own calls, roll back. Self-contained: its
-- own databases, dropped at the end.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_adopt;
\c chat_assign_adopt
\i tests/pg_regress/sql/include/legacy_app.sql
-- The app's own role and grants, the way a Supabase app has them: it calls the functions
-- (the app took EXECUTE away from everyone else on one of them), reads chats and the summary.
CREATE ROLE adopt_app NOLOGIN;
REVOKE EXECUTE ON FUNCTION public.assign_chat_to_operator(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.assign_chat_to_operator(uuid) TO adopt_app;
GRANT SELECT, UPDATE ON public.chats TO adopt_app;
GRANT SELECT ON public.chat_state_summary TO adopt_app;

-- The app as it is, table by table (every column), to compare with later.
CREATE FUNCTION pg_temp.app_fingerprint() RETURNS TABLE (t text, n bigint, md5 text) LANGUAGE sql AS $$
    SELECT 'operators', count(*), md5(string_agg(o::text, '|' ORDER BY o.id)) FROM public.operators o
    UNION ALL SELECT 'chats', count(*), md5(string_agg(c::text, '|' ORDER BY c.id)) FROM public.chats c
    UNION ALL SELECT 'messages', count(*), md5(string_agg(m::text, '|' ORDER BY m.id)) FROM public.messages m
    UNION ALL SELECT 'chat_assignments', count(*), md5(string_agg(a::text, '|' ORDER BY a.id)) FROM public.chat_assignments a
    UNION ALL SELECT 'operator_activity', count(*), md5(string_agg(h::text, '|' ORDER BY h.chat_id)) FROM public.operator_activity h
    UNION ALL SELECT 'functions', count(*), md5(string_agg(pg_get_functiondef(p.oid), '|' ORDER BY p.proname))
      FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
$$;
CREATE TEMP TABLE app_before AS SELECT * FROM pg_temp.app_fingerprint();
SELECT t, n FROM app_before;

-- Into public, the extension's names collide with the app's: refused, nothing installed.
CREATE EXTENSION chat_assign;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'chat_assign';
-- Beside it, in its own schema.
CREATE SCHEMA chat_assign;
CREATE EXTENSION chat_assign SCHEMA chat_assign;
-- The app's own functions still answer its calls.
SELECT assign_chat_to_operator('0a000000-0000-0000-0000-000000000004');

-- Bad arguments.
\set VERBOSITY sqlstate
SELECT * FROM chat_assign.import_app_tables(NULL);
SELECT * FROM chat_assign.import_app_tables('public', NULL);
SELECT * FROM chat_assign.import_app_tables('no_such_schema');
SELECT * FROM chat_assign.import_app_tables('chat_assign');
CREATE SCHEMA empty_app;
SELECT * FROM chat_assign.import_app_tables('empty_app');
DROP SCHEMA empty_app;
\set VERBOSITY default

-- The messes, named rule by rule; nothing is written.
SELECT * FROM chat_assign.import_app_tables('public');
SELECT (SELECT count(*) FROM chat_assign.operators) + (SELECT count(*) FROM chat_assign.chats)
     + (SELECT count(*) FROM chat_assign.messages) + (SELECT count(*) FROM chat_assign.chat_assignments)
     + (SELECT count(*) FROM chat_assign.imported_ids) + (SELECT count(*) FROM chat_assign.app_imports)
       AS rows_written;

-- With the repair rules.
SELECT * FROM chat_assign.import_app_tables('public', p_repair => true);
SELECT app_schema, repaired, backup_schema FROM chat_assign.app_imports;

-- Every row accounted for. Operators are copied as they were.
SELECT (SELECT md5(string_agg(concat_ws(',', id, name, is_active, max_concurrent_chats, last_assigned_at, created_at), '|' ORDER BY id)) FROM public.operators)
     = (SELECT md5(string_agg(concat_ws(',', id, name, is_active, max_concurrent_chats, last_assigned_at, created_at), '|' ORDER BY id)) FROM chat_assign.operators)
       AS operators_equal;
-- Chats: all but the one the capacity rule sent back to the queue keep their state.
SELECT c.id, a.chat_state AS app_state, c.chat_state, c.assigned_operator_id = a.assigned_operator_id AS same_holder
FROM chat_assign.chats c JOIN public.chats a USING (id)
WHERE c.chat_state::text <> a.chat_state OR c.assigned_operator_id IS DISTINCT FROM a.assigned_operator_id
   OR c.real_user_id <> a.real_user_id OR c.created_at <> a.created_at
   OR c.last_message_at IS DISTINCT FROM a.last_message_at OR c.is_active <> a.is_active;
-- Messages and assignments through the id map: the app's ids all resolve, to the same rows.
SELECT count(*) AS app_messages,
       count(i.id) AS mapped,
       count(*) FILTER (WHERE (m.chat_id, m.sender_type, m.operator_id, m.content, m.created_at)
                              IS NOT DISTINCT FROM (x.chat_id, x.sender_type, x.operator_id, x.content, x.created_at)) AS equal
FROM public.messages m
LEFT JOIN chat_assign.imported_ids i ON i.table_name = 'messages' AND i.app_id = m.id::text
LEFT JOIN chat_assign.messages x ON x.id = i.id;
SELECT count(*) AS app_assignments,
       count(i.id) AS mapped,
       count(*) FILTER (WHERE (a.chat_id, a.operator_id, a.assigned_at, a.released_at, a.release_reason)
                              IS NOT DISTINCT FROM (x.chat_id, x.operator_id, x.assigned_at, x.released_at, x.release_reason)) AS equal,
       count(*) FILTER (WHERE x.release_reason = 'import_repair') AS released_by_repair
FROM public.chat_assignments a
LEFT JOIN chat_assign.imported_ids i ON i.table_name = 'chat_assignments' AND i.app_id = a.id::text
LEFT JOIN chat_assign.chat_assignments x ON x.id = i.id;
-- Heartbeats carried over to the assignments that hold them.
SELECT h.chat_id, h.last_activity_at = x.last_activity_at AS carried
FROM public.operator_activity h
JOIN chat_assign.operator_activity x USING (chat_id, operator_id)
ORDER BY h.chat_id;
-- The invariants and the monitoring agree with the tables (no output: all hold).
SET search_path = chat_assign;
\i tests/invariants.sql
RESET search_path;
-- Numbering goes on after the imported ids.
SELECT (SELECT max(id) FROM chat_assign.messages) = 15 AS messages_numbered,
       (SELECT max(id) FROM chat_assign.chat_assignments) = 9 AS assignments_numbered;

-- A second import is refused.
\set VERBOSITY sqlstate
SELECT * FROM chat_assign.import_app_tables('public', true);
-- Until the switch, the app is untouched.
SELECT b.t, a.n = b.n AND a.md5 = b.md5 AS untouched
FROM app_before b JOIN pg_temp.app_fingerprint() a USING (t) ORDER BY b.t;

-- The switch: refused before an import (of another schema) and for the extension's own.
SELECT * FROM chat_assign.switch_app_calls('pg_catalog');
SELECT * FROM chat_assign.switch_app_calls('chat_assign');
SELECT * FROM chat_assign.restore_app_calls('public');
\set VERBOSITY default
SELECT * FROM chat_assign.switch_app_calls('public');
\set VERBOSITY sqlstate
SELECT * FROM chat_assign.switch_app_calls('public');
\set VERBOSITY default

-- Every function of the extension's API (all but the adoption functions, the CHECK
-- constraints' functions and the triggers)
-- has its thin function in public, with the same parameters (none missing: no rows).
SELECT e.proname AS missing
FROM pg_depend d JOIN pg_proc e ON e.oid = d.objid
WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chat_assign')
  AND e.prorettype <> 'trigger'::regtype
  AND e.proname NOT IN ('import_app_tables', 'switch_app_calls', 'restore_app_calls',
                        'chats_state_consistent', 'messages_valid',
                        'chat_assignments_release_valid')
  AND NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
                    AND p.proname = e.proname
                    AND pg_get_function_arguments(p.oid) = pg_get_function_arguments(e.oid))
ORDER BY 1;

-- The thin functions run with the caller's rights, their search_path pinned.
SELECT p.proname, p.prosecdef, p.proconfig
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1;

-- The app's grants came along; on the function the app restricted, only its role.
SELECT p.proname, a.grantee::regrole AS grantee, a.privilege_type
FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
WHERE p.pronamespace = 'public'::regnamespace AND a.grantee <> p.proowner ORDER BY 1, 2, 3;
SELECT c.relname, a.grantee::regrole AS grantee, a.privilege_type
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
WHERE c.relnamespace = 'public'::regnamespace AND a.grantee <> c.relowner ORDER BY 1, 2, 3;

-- The app's calls, unchanged, as the app's role from search_path public (as PostgREST calls
-- them), once the DBA gave it the extension's grants (docs/security.md, "Roles and grants").
GRANT USAGE ON SCHEMA chat_assign TO adopt_app;
GRANT EXECUTE ON FUNCTION chat_assign.start_chat(uuid, text, text, uuid, integer), chat_assign.real_user_send_message(uuid, text, text),
    chat_assign.assign_chat_to_operator(uuid), chat_assign.operator_send_message(uuid, uuid, text, text),
    chat_assign.release_and_reassign_chat(uuid, text), chat_assign.get_assignment_queue_status(),
    chat_assign.detect_stuck_chats(numeric) TO adopt_app;
GRANT SELECT ON chat_assign.chat_state_summary, chat_assign.chats TO adopt_app;
SET ROLE adopt_app;
SET search_path = public;
-- Carol (capacity 2) holds c7 and takes the chat that waits longest, c1.
SELECT assign_chat_to_operator(p_operator_id => '0a000000-0000-0000-0000-000000000003');
SELECT waiting_count, assigned_count, waiting_reply_count, active_operators, busy_operators, available_operators
FROM get_assignment_queue_status();
SELECT chat_id, chat_state, operator_name FROM detect_stuck_chats(1);
SELECT chat_state, chat_count FROM chat_state_summary;
-- A full cycle through the app's call names: an admin unassigns c1 (it keeps its place);
-- Carol answers c7 and asks again: not c1 (she held it last) but the next, c2; she answers,
-- the user answers; a new user writes.
SELECT release_and_reassign_chat('c1000000-0000-0000-0000-000000000001', 'manual_unassign') AS unassigned;
SELECT operator_send_message('c1000000-0000-0000-0000-000000000007', '0a000000-0000-0000-0000-000000000003', 'Fixed your login') > 15 AS replied;
SELECT assign_chat_to_operator('0a000000-0000-0000-0000-000000000003') AS carol_takes \gset
SELECT :'carol_takes' AS carol_takes;
SELECT operator_send_message(:'carol_takes', '0a000000-0000-0000-0000-000000000003', 'Checking your order') > 15 AS replied;
SELECT real_user_send_message(:'carol_takes', 'Thanks!') > 15 AS user_answered;
SELECT start_chat('e0000000-0000-0000-0000-0000000000aa', 'New here') AS new_chat \gset
SELECT CASE WHEN id = :'new_chat' THEN 'the new chat' ELSE id::text END AS chat, chat_state, last_operator_id
FROM chats WHERE id IN ('c1000000-0000-0000-0000-000000000001', :'carol_takes', :'new_chat') ORDER BY 1;
-- Writing the tables behind the calls' backs is refused, whatever the app's old grants.
UPDATE chats SET chat_state = 'assigned' WHERE id = :'new_chat';
RESET ROLE;
RESET search_path;
SET search_path = chat_assign;
\i tests/invariants.sql
RESET search_path;

-- Rollback: the app's objects come back as they were at the switch, the backup schema goes.
SELECT count(*) AS objects FROM chat_assign.restore_app_calls('public');
SELECT b.t, a.n = b.n AND a.md5 = b.md5 AS as_before
FROM app_before b JOIN pg_temp.app_fingerprint() a USING (t) ORDER BY b.t;
SELECT count(*) AS backup_schemas FROM pg_namespace WHERE nspname = 'public_before_chat_assign';
-- The app's own functions answer again (its own: Dave is inactive).
SELECT assign_chat_to_operator('0a000000-0000-0000-0000-000000000004');
-- Switch again, and back: repeatable.
SELECT count(*) AS objects FROM chat_assign.switch_app_calls('public');
SELECT count(*) AS objects FROM chat_assign.restore_app_calls('public');

\c :home
DROP DATABASE chat_assign_adopt;
DROP ROLE adopt_app;

-- Rows from before migration 014 (no chat_state, no last_operator_id): states are derived
-- the way 014's backfill did, and what 016 would have refused is repaired.
CREATE DATABASE chat_assign_adopt_legacy;
\c chat_assign_adopt_legacy
\i bench/plpgsql/001_base_schema.sql
INSERT INTO public.operators (id, name, max_concurrent_chats) VALUES
    ('0b000000-0000-0000-0000-000000000001', 'Erin', 1),
    ('0b000000-0000-0000-0000-000000000002', '  ', 0);
INSERT INTO public.chats (id, real_user_id, assigned_operator_id, is_active, created_at) VALUES
    ('c2000000-0000-0000-0000-000000000001', 'e1000000-0000-0000-0000-000000000001', NULL, true, now() - interval '1 hour'),
    ('c2000000-0000-0000-0000-000000000002', 'e1000000-0000-0000-0000-000000000002', '0b000000-0000-0000-0000-000000000001', true, now() - interval '50 min'),
    ('c2000000-0000-0000-0000-000000000003', 'e1000000-0000-0000-0000-000000000003', NULL, false, now() - interval '2 days');
INSERT INTO public.messages (chat_id, sender_type, operator_id, content) VALUES
    ('c2000000-0000-0000-0000-000000000001', 'real_user', NULL, 'hello'),
    ('c2000000-0000-0000-0000-000000000002', 'real_user', NULL, 'help'),
    ('c2000000-0000-0000-0000-000000000003', 'real_user', NULL, '   ');
INSERT INTO public.chat_assignments (chat_id, operator_id, assigned_at, released_at, release_reason) VALUES
    ('c2000000-0000-0000-0000-000000000003', '0b000000-0000-0000-0000-000000000001', now() - interval '2 days', now() - interval '1 day', NULL);
CREATE SCHEMA ca;
CREATE EXTENSION chat_assign SCHEMA ca;
-- Imported by a role that is not a superuser: the app's owner, given what the import
-- writes.
CREATE ROLE adopt_legacy_owner NOLOGIN;
ALTER TABLE public.operators OWNER TO adopt_legacy_owner;
ALTER TABLE public.chats OWNER TO adopt_legacy_owner;
ALTER TABLE public.messages OWNER TO adopt_legacy_owner;
ALTER TABLE public.chat_assignments OWNER TO adopt_legacy_owner;
ALTER TABLE public.operator_activity OWNER TO adopt_legacy_owner;
GRANT USAGE ON SCHEMA ca TO adopt_legacy_owner;
GRANT EXECUTE ON FUNCTION ca.import_app_tables(name, boolean) TO adopt_legacy_owner;
GRANT SELECT, INSERT, UPDATE ON ca.operators, ca.chats, ca.messages, ca.chat_assignments,
                                ca.imported_ids, ca.app_imports TO adopt_legacy_owner;
GRANT USAGE, UPDATE ON SEQUENCE ca.messages_id_seq, ca.chat_assignments_id_seq TO adopt_legacy_owner;
SET ROLE adopt_legacy_owner;
\set VERBOSITY sqlstate
SELECT * FROM ca.import_app_tables('public');
\set VERBOSITY default
SELECT * FROM ca.import_app_tables('public', true);
RESET ROLE;
SELECT c.id, c.chat_state, c.assigned_operator_id IS NOT NULL AS held, c.is_active
FROM ca.chats c ORDER BY c.id;
SELECT name, max_concurrent_chats FROM ca.operators ORDER BY name;
SELECT release_reason FROM ca.chat_assignments ORDER BY id;
SET search_path = ca;
\i tests/invariants.sql
RESET search_path;
\c :home
DROP DATABASE chat_assign_adopt_legacy;
DROP ROLE adopt_legacy_owner;

-- A database with an unrelated `messages` table of its own: the extension installs in its
-- own schema and leaves that table alone.
CREATE DATABASE chat_assign_adopt_other;
\c chat_assign_adopt_other
CREATE TABLE public.messages (id serial PRIMARY KEY, subject text, body text);
INSERT INTO public.messages (subject, body) VALUES ('newsletter', 'hello');
CREATE EXTENSION chat_assign;
CREATE SCHEMA chat;
CREATE EXTENSION chat_assign SCHEMA chat;
SELECT chat.create_operator('Frank') AS frank \gset
SELECT chat.start_chat('e2000000-0000-0000-0000-000000000001', 'hi') IS NOT NULL AS started;
SELECT chat.assign_chat_to_operator(:'frank') IS NOT NULL AS assigned;
SELECT * FROM public.messages;
SELECT count(*) AS chat_messages FROM chat.messages;
\c :home
DROP DATABASE chat_assign_adopt_other;

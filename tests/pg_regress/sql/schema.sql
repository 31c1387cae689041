-- Installing into a schema of one's choosing, look-alike objects that must not be used,
-- and DROP EXTENSION removing everything.
\set VERBOSITY sqlstate
-- Use the functions first, so this session has kept plans that point at the public tables.
SELECT create_operator('Zed') IS NOT NULL AS zed;
SELECT count(*) > 0 AS has_chats FROM chats;
DROP EXTENSION chat_assign;
SELECT count(*) AS leftover_tables FROM pg_class
WHERE relname IN ('chats', 'operators', 'messages', 'chat_assignments', 'operator_activity');
SELECT count(*) AS leftover_types FROM pg_type WHERE typname = 'chat_state';
CREATE SCHEMA support;
CREATE EXTENSION chat_assign SCHEMA support;
SELECT nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'chat_assign';
SELECT count(*) AS objects_outside_support FROM pg_depend d
JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chat_assign')
  AND c.relnamespace <> 'support'::regnamespace;
-- Not relocatable once installed.
ALTER EXTENSION chat_assign SET SCHEMA public;
-- A look-alike table in public, first on the search_path, must not be used.
CREATE TABLE public.chats (id uuid, chat_state text);
CREATE TABLE public.operators (id uuid, is_active boolean, max_concurrent_chats int);
SET search_path = public;
SELECT support.create_operator('Eve') AS eve \gset
SELECT support.start_chat('00000000-0000-0000-0000-000000000010', 'Hello from a schema') AS c \gset
SELECT support.assign_chat_to_operator(:'eve') = :'c' AS assigned;
SELECT support.operator_send_message(:'c', :'eve', 'Hi!') IS NOT NULL AS replied;
SELECT chat_state FROM support.chats WHERE id = :'c';
SELECT count(*) AS lookalike_rows FROM public.chats;
SELECT chat_state, chat_count FROM support.chat_state_summary;
SELECT waiting_count, waiting_reply_count, active_operators FROM support.get_assignment_queue_status();
RESET search_path;
DROP TABLE public.chats, public.operators;
DROP EXTENSION chat_assign;
DROP SCHEMA support;

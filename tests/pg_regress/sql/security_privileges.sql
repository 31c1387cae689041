-- Nothing of the extension reaches application roles through default privileges (as
-- Supabase sets them up on public), and a role allowed to write chats.priority directly
-- needs no grant on the extension's derived tables (the totals trigger runs as its owner).
-- Runs in a database of its own and drops it (and its roles) at the end.
\set VERBOSITY sqlstate
\set regress_db :DBNAME
CREATE DATABASE chat_assign_sec_privileges;
\c chat_assign_sec_privileges
CREATE ROLE anon NOLOGIN;
CREATE ROLE app_writer NOLOGIN;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon;
-- The trap works: an ordinary function and table created now go to anon.
CREATE FUNCTION public.plain() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE TABLE public.plain_table (id int);
SELECT has_function_privilege('anon', 'public.plain()', 'EXECUTE') AS plain_function,
       has_table_privilege('anon', 'public.plain_table', 'SELECT') AS plain_table;
DROP FUNCTION public.plain();
DROP TABLE public.plain_table;

CREATE EXTENSION chat_assign;
-- Every function, table, view and sequence of the extension: what anon or PUBLIC may do.
SELECT p.proname AS object, 'function' AS kind,
       has_function_privilege('anon', p.oid, 'EXECUTE') AS anon,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
               WHERE a.grantee = 0) AS public
FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chat_assign')
UNION ALL
SELECT c.relname, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' ELSE 'sequence' END,
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('anon', c.oid, 'USAGE, SELECT, UPDATE')
            ELSE has_table_privilege('anon', c.oid,
                     'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') END,
       EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0)
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'S')
ORDER BY 2, 1;
SET ROLE anon;
SELECT start_chat(gen_random_uuid(), 'hi');
SELECT count(*) FROM chats;
SELECT nextval('messages_id_seq');
RESET ROLE;

-- A role that may only re-prioritise chats does so; the monitoring totals follow.
GRANT UPDATE (priority), SELECT (id, priority) ON chats TO app_writer;
SELECT start_chat('00000000-0000-0000-0000-0000000000c1', 'urgent') AS c \gset
SET ROLE app_writer;
UPDATE chats SET priority = 5 WHERE id = :'c';
SELECT count(*) FROM chat_state_deltas;
RESET ROLE;
SELECT priority FROM chats WHERE id = :'c';
SELECT chat_state, chat_count FROM chat_state_summary;

\c :regress_db
DROP DATABASE chat_assign_sec_privileges;
DROP ROLE anon, app_writer;

-- Look-alike tables, functions and operators placed ahead of the extension's schema in
-- search_path are never used by the extension: not when a superuser calls it with such a
-- search_path, and not when the untrusted role that made them calls it (the functions run
-- as their owner). Each look-alike function or operator records its use in attacker.calls;
-- the look-alike tables hold decoy rows a wrong read would show. Every function and view
-- is used, with the extension in public, then in schema chat.
-- Runs in a database of its own and drops it (and its role) at the end.
\set VERBOSITY sqlstate
\set regress_db :DBNAME
CREATE DATABASE chat_assign_sec_search_path;
\c chat_assign_sec_search_path
\set ext public
CREATE EXTENSION chat_assign SCHEMA :ext;
-- The queue is taken by priority, then age: each scenario's low-priority chat waiting for
-- two hours stays in the queue for detect_stuck_chats.
SET chat_assign.avoid_same_operator = off;

-- mallory may create objects in schema attacker (and temporary ones), nothing more; it may
-- call every function and read the two monitoring views.
CREATE ROLE mallory NOLOGIN;
CREATE SCHEMA attacker;
GRANT USAGE, CREATE ON SCHEMA attacker TO mallory;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA :ext TO mallory;
GRANT SELECT ON :ext.chat_state_summary, :ext.operator_assignment_stats, :ext.operator_activity TO mallory;

SET ROLE mallory;
CREATE TABLE attacker.calls (what text NOT NULL);
-- Tables named like the extension's, with its columns, and decoy rows: a waiting chat of
-- priority 1000 that an assignment would take first, an operator, a queue of 1000.
CREATE TABLE attacker.operators (id uuid, name text, is_active boolean,
    max_concurrent_chats integer, last_assigned_at timestamptz, created_at timestamptz);
CREATE TABLE attacker.chats (id uuid, real_user_id uuid, chat_state text,
    assigned_operator_id uuid, last_operator_id uuid, operator_replied_at timestamptz,
    assigned_at timestamptz, waiting_since timestamptz, state_changed_at timestamptz,
    priority integer, is_active boolean, created_at timestamptz, last_message_at timestamptz);
CREATE TABLE attacker.messages (id bigint, chat_id uuid, sender_type text, operator_id uuid,
    content text, created_at timestamptz);
CREATE TABLE attacker.chat_assignments (id bigint, chat_id uuid, operator_id uuid,
    assigned_at timestamptz, released_at timestamptz, release_reason text);
CREATE TABLE attacker.operator_activity (chat_id uuid, operator_id uuid,
    last_activity_at timestamptz);
CREATE TABLE attacker.chat_state_deltas (chat_state text, chat_count bigint,
    changed_epoch numeric, queue_count bigint, waiting_epoch numeric);
CREATE TABLE attacker.chat_state_totals (chat_state text, ord bigint, chat_count bigint,
    changed_epoch numeric, queue_count bigint, waiting_epoch numeric);
INSERT INTO attacker.operators
VALUES ('dddddddd-0000-0000-0000-000000000001', 'decoy', true, 1000, NULL, '2020-01-01');
INSERT INTO attacker.chats
VALUES ('dddddddd-0000-0000-0000-000000000002', 'dddddddd-0000-0000-0000-000000000003',
        'waiting_assignment', NULL, NULL, NULL, NULL, '2020-01-01', '2020-01-01', 1000, true,
        '2020-01-01', '2020-01-01');
INSERT INTO attacker.chat_state_totals VALUES ('waiting_assignment', 1, 1000, 0, 1000, 0);
-- The same as temporary tables: pg_temp is searched first for tables unless the
-- search_path names it.
CREATE TEMP TABLE operators AS TABLE attacker.operators;
CREATE TEMP TABLE chats AS TABLE attacker.chats;
CREATE TEMP TABLE messages AS TABLE attacker.messages;
CREATE TEMP TABLE chat_assignments AS TABLE attacker.chat_assignments;
CREATE TEMP TABLE operator_activity AS TABLE attacker.operator_activity;
CREATE TEMP TABLE chat_state_deltas AS TABLE attacker.chat_state_deltas;
CREATE TEMP TABLE chat_state_totals AS TABLE attacker.chat_state_totals;
CREATE TEMP VIEW lookalike_rows (lookalike, row_count) AS
          SELECT 'attacker.operators', count(*) FROM attacker.operators
UNION ALL SELECT 'attacker.chats', count(*) FROM attacker.chats
UNION ALL SELECT 'attacker.messages', count(*) FROM attacker.messages
UNION ALL SELECT 'attacker.chat_assignments', count(*) FROM attacker.chat_assignments
UNION ALL SELECT 'attacker.operator_activity', count(*) FROM attacker.operator_activity
UNION ALL SELECT 'attacker.chat_state_deltas', count(*) FROM attacker.chat_state_deltas
UNION ALL SELECT 'attacker.chat_state_totals', count(*) FROM attacker.chat_state_totals
UNION ALL SELECT 'pg_temp.operators', count(*) FROM pg_temp.operators
UNION ALL SELECT 'pg_temp.chats', count(*) FROM pg_temp.chats
UNION ALL SELECT 'pg_temp.messages', count(*) FROM pg_temp.messages
UNION ALL SELECT 'pg_temp.chat_assignments', count(*) FROM pg_temp.chat_assignments
UNION ALL SELECT 'pg_temp.operator_activity', count(*) FROM pg_temp.operator_activity
UNION ALL SELECT 'pg_temp.chat_state_deltas', count(*) FROM pg_temp.chat_state_deltas
UNION ALL SELECT 'pg_temp.chat_state_totals', count(*) FROM pg_temp.chat_state_totals;
-- Functions, an aggregate and operators the extension's SQL could resolve to: each one
-- logs its use and then does what the built-in does, so a hijack would not show otherwise.
CREATE FUNCTION attacker.now() RETURNS timestamptz LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('now()'); SELECT pg_catalog.now() $$;
CREATE FUNCTION attacker.gen_random_uuid() RETURNS uuid LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('gen_random_uuid()'); SELECT pg_catalog.gen_random_uuid() $$;
CREATE FUNCTION attacker.btrim(text) RETURNS text LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('btrim(text)'); SELECT pg_catalog.btrim($1) $$;
CREATE FUNCTION attacker.random() RETURNS double precision LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('random()'); SELECT pg_catalog.random() $$;
CREATE FUNCTION attacker.make_interval(secs double precision) RETURNS interval LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('make_interval(secs)'); SELECT pg_catalog.make_interval(secs => secs) $$;
CREATE FUNCTION attacker.count_step(bigint, uuid) RETURNS bigint LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('count(uuid)'); SELECT $1 OPERATOR(pg_catalog.+) 1 $$;
CREATE AGGREGATE attacker.count(uuid) (SFUNC = attacker.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION attacker.eq(uuid, uuid) RETURNS boolean LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('uuid = uuid'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR attacker.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = attacker.eq);
CREATE FUNCTION attacker.eq(text, text) RETURNS boolean LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('text = text'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR attacker.= (LEFTARG = text, RIGHTARG = text, FUNCTION = attacker.eq);
-- An exact match for the state type, which beats the built-in anyenum = anyenum wherever
-- schema attacker is on the search_path.
CREATE FUNCTION attacker.eq(:ext.chat_state, :ext.chat_state) RETURNS boolean LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('chat_state = chat_state'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR attacker.= (LEFTARG = :ext.chat_state, RIGHTARG = :ext.chat_state, FUNCTION = attacker.eq);
RESET ROLE;

-- The traps work: SQL that names these objects unqualified reaches them. With
-- attacker, public the tables, count(uuid) and chat_state = chat_state are reached (pg_catalog,
-- searched first when not named, hides the rest); with attacker, pg_catalog, public all are.
SET search_path = attacker, :ext;
SELECT count(id) AS decoy_chats FROM chats;
SELECT 'assigned'::chat_state = 'assigned' AS enum_equal;
SET search_path = attacker, pg_catalog, :ext;
SELECT now() IS NOT NULL AS now, gen_random_uuid() = gen_random_uuid() AS uuids_equal,
       btrim(' x ') = 'x' AS trimmed, random() < 1 AS random,
       make_interval(secs => 1) AS one_second;
RESET search_path;
SELECT what, count(*) FROM attacker.calls GROUP BY what ORDER BY what;
TRUNCATE attacker.calls;

-- ======== Extension in public. A superuser calls everything with search_path attacker, public.
\set caller NONE
\set caller_path 'attacker, ' :ext
\i tests/pg_regress/sql/include/call_everything.sql

-- ======== Extension in public. mallory, with no privilege on any table, calls everything
-- with search_path attacker, pg_catalog, public and its temporary look-alikes.
\set caller mallory
\set caller_path 'attacker, pg_catalog, ' :ext
\i tests/pg_regress/sql/include/call_everything.sql

-- ======== The same with the extension in schema chat. The state-type operator depends on
-- the extension's type: it goes first and comes back for the new type.
DROP OPERATOR attacker.= (:ext.chat_state, :ext.chat_state);
DROP FUNCTION attacker.eq(:ext.chat_state, :ext.chat_state);
DROP EXTENSION chat_assign;
\set ext chat
CREATE SCHEMA :ext;
CREATE EXTENSION chat_assign SCHEMA :ext;
GRANT USAGE ON SCHEMA :ext TO mallory;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA :ext TO mallory;
GRANT SELECT ON :ext.chat_state_summary, :ext.operator_assignment_stats, :ext.operator_activity TO mallory;
SET ROLE mallory;
CREATE FUNCTION attacker.eq(:ext.chat_state, :ext.chat_state) RETURNS boolean LANGUAGE sql
AS $$ INSERT INTO attacker.calls VALUES ('chat_state = chat_state'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR attacker.= (LEFTARG = :ext.chat_state, RIGHTARG = :ext.chat_state, FUNCTION = attacker.eq);
RESET ROLE;
SET search_path = attacker, :ext;
SELECT 'assigned'::chat_state = 'assigned' AS enum_equal;
RESET search_path;
SELECT what, count(*) FROM attacker.calls GROUP BY what ORDER BY what;
TRUNCATE attacker.calls;

-- A superuser calls everything with search_path attacker, chat.
\set caller NONE
\set caller_path 'attacker, ' :ext
\i tests/pg_regress/sql/include/call_everything.sql

-- mallory calls everything with search_path attacker, pg_catalog, chat.
\set caller mallory
\set caller_path 'attacker, pg_catalog, ' :ext
\i tests/pg_regress/sql/include/call_everything.sql

-- Every look-alike still holds exactly its decoy rows, and no look-alike function ran.
SELECT * FROM lookalike_rows;
SELECT count(*) AS trap_calls FROM attacker.calls;

\c :regress_db
DROP DATABASE chat_assign_sec_search_path;
DROP ROLE mallory;

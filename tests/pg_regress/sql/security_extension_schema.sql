-- The functions run as their owner (SECURITY DEFINER, a superuser). A role that may CREATE
-- in the extension's own schema (here public, where PostgreSQL 15 lets only the database
-- owner create, unless a DBA grants more) plants functions and operators there that would
-- beat the built-ins by a closer type match: `=` and `<>` for chat_state (the built-in is
-- for anyenum) and count(uuid) (the built-in is count("any")). None of them may ever run inside the extension: the
-- functions' search_path is pg_catalog, pg_temp and every statement names the extension's
-- objects by schema. Each trap records who ran it in eve_calls.
-- Runs in a database of its own and drops it (and its role) at the end.
\set VERBOSITY sqlstate
\set regress_db :DBNAME
CREATE DATABASE chat_assign_sec_ext_schema;
\c chat_assign_sec_ext_schema
CREATE EXTENSION chat_assign;
CREATE ROLE eve NOLOGIN;
GRANT CREATE ON SCHEMA public TO eve;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO eve;
GRANT SELECT ON chat_state_summary, operator_assignment_stats TO eve;

SET ROLE eve;
CREATE TABLE public.eve_calls (what text NOT NULL, run_as name NOT NULL);
CREATE FUNCTION public.eve_state_eq(a chat_state, b chat_state) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.eve_calls VALUES ('chat_state =', current_user);
    RETURN a::text = b::text;
END $$;
CREATE FUNCTION public.eve_state_ne(a chat_state, b chat_state) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.eve_calls VALUES ('chat_state <>', current_user);
    RETURN a::text <> b::text;
END $$;
CREATE OPERATOR public.= (LEFTARG = chat_state, RIGHTARG = chat_state, FUNCTION = public.eve_state_eq);
CREATE OPERATOR public.<> (LEFTARG = chat_state, RIGHTARG = chat_state, FUNCTION = public.eve_state_ne);
CREATE FUNCTION public.eve_count_step(n bigint, v uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.eve_calls VALUES ('count(uuid)', current_user);
    RETURN coalesce(n, 0) + 1;
END $$;
CREATE AGGREGATE public.count(uuid) (SFUNC = public.eve_count_step, STYPE = bigint, INITCOND = '0');
-- The traps work: SQL that looks them up in public gets them.
SELECT 'assigned'::chat_state = 'assigned'::chat_state AS eq,
       'assigned'::chat_state <> 'completed'::chat_state AS ne,
       count(gen_random_uuid()) AS counted;
SELECT what, run_as FROM public.eve_calls ORDER BY what;
DELETE FROM public.eve_calls;
RESET ROLE;

-- Every function and view, as the superuser and as eve, with public on the search_path.
SELECT create_operator('Ann', 2) AS ann \gset
SELECT create_operator('Bob') AS bob \gset
SELECT start_chat('00000000-0000-0000-0000-00000000000a', 'first') AS c1 \gset
SELECT start_chat('00000000-0000-0000-0000-00000000000b', 'second') AS c2 \gset
SELECT assign_chat_to_operator(:'ann') = :'c1' AS ann_got_c1;
SELECT touch_operator_activity(:'ann', :'c1') AS touched;
SELECT operator_send_message(:'c1', :'ann', 'hello') > 0 AS replied;
SELECT real_user_send_message(:'c1', 'thanks') > 0 AS user_wrote;
SELECT assign_chat_to_operator(:'bob') = :'c2' AS bob_got_c2;
SELECT count(*) AS idle_released FROM release_idle_assignments('1 microsecond');
SET ROLE eve;
SELECT assign_chat_to_operator(:'bob') IS NOT NULL AS bob_got_another;
SELECT release_and_reassign_chat(:'c1') AS admin_release;
SELECT set_operator_active(:'bob', false) AS bob_off;
SELECT complete_chat(:'c2') AS completed;
SELECT waiting_count, assigned_count, waiting_reply_count, active_operators
FROM get_assignment_queue_status();
SELECT count(*) AS stuck FROM detect_stuck_chats(0.0001);
SELECT chat_state, chat_count FROM chat_state_summary;
SELECT operator_name, total_assignments FROM operator_assignment_stats ORDER BY 1;
RESET ROLE;

-- None of the traps ran, for either caller.
SELECT count(*) AS trap_calls FROM public.eve_calls;

\c :regress_db
DROP DATABASE chat_assign_sec_ext_schema;
DROP ROLE eve;

-- The scheduled idle job as docs/operations.md documents it (the block in
-- tests/pg_regress/sql/include/idle_job.sql, which scripts/check_readme_grants.sh holds
-- equal to the docs' block), run in a database whose owner is not a superuser and planted
-- functions named like the extension's where a job could find them: on the job role's
-- "$user" schema and beside the extension in public. The job must release the idle chat
-- through the extension's function, run nothing planted, and hand the owner no privilege.
-- Self-contained: its own database and roles, dropped at the end.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE ROLE idle_db_owner NOLOGIN;
CREATE DATABASE chat_assign_idle_job OWNER idle_db_owner;
\c chat_assign_idle_job
CREATE EXTENSION chat_assign;
SELECT create_operator('Ann') AS ann \gset
SELECT start_chat('00000000-0000-0000-0000-00000000000a', 'hello') AS chat \gset
SELECT assign_chat_to_operator(:'ann') = :'chat' AS assigned;
UPDATE chat_assignments SET last_activity_at = now() - interval '1 hour' WHERE chat_id = :'chat';

-- A stand-in for pg_cron: runs the job's command at once, as the role it names.
CREATE SCHEMA cron;
CREATE FUNCTION cron.schedule_in_database(job_name text, schedule text, command text,
                                          database text, username text)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SET ROLE %I', username);
    EXECUTE command;
    RESET ROLE;
    RESET search_path;
    RETURN 1;
END
$$;

-- The owner plants look-alikes: in public (which it owns, like every database owner) and
-- in a schema named like the job's role (first on the default search_path, "$user").
SET ROLE idle_db_owner;
CREATE TABLE public.planted_calls (who name, at timestamptz DEFAULT now());
GRANT INSERT ON public.planted_calls TO PUBLIC;
CREATE FUNCTION public.release_idle_assignments()
RETURNS TABLE (chat_id uuid, operator_id uuid, idle_seconds float8) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_calls (who) VALUES (current_user);
    EXECUTE 'ALTER ROLE idle_db_owner SUPERUSER';
    RETURN;
END
$$;
CREATE FUNCTION public.release_idle_assignments(p text)
RETURNS TABLE (chat_id uuid, operator_id uuid, idle_seconds float8) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_calls (who) VALUES (current_user);
    RETURN;
END
$$;
RESET ROLE;
CREATE SCHEMA chat_idle_job AUTHORIZATION idle_db_owner;
SET ROLE idle_db_owner;
CREATE FUNCTION chat_idle_job.release_idle_assignments(p_idle_after interval DEFAULT NULL)
RETURNS TABLE (chat_id uuid, operator_id uuid, idle_seconds float8) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_calls (who) VALUES (current_user);
    RETURN;
END
$$;
RESET ROLE;

-- The documented recipe, word for word: the role, its grants, the scheduled command.
\i tests/pg_regress/sql/include/idle_job.sql

SELECT chat_state FROM chats WHERE id = :'chat';
SELECT release_reason FROM chat_assignments WHERE chat_id = :'chat';
SELECT count(*) AS planted_calls FROM public.planted_calls;
SELECT rolsuper AS owner_became_superuser FROM pg_roles WHERE rolname = 'idle_db_owner';
-- The job role can do nothing else.
SET ROLE chat_idle_job;
SELECT start_chat('00000000-0000-0000-0000-00000000000b', 'hi');
SELECT count(*) FROM chats;
RESET ROLE;

-- An unqualified call is what the planted zero-argument function breaks (42725, ambiguous);
-- the typed one is not.
SELECT count(*) FROM release_idle_assignments();
SELECT count(*) FROM release_idle_assignments(NULL::interval);

\c :home
DROP DATABASE chat_assign_idle_job;
DROP ROLE chat_idle_job;
DROP ROLE idle_db_owner;

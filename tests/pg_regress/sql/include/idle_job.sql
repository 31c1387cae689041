CREATE ROLE chat_idle_job LOGIN;  -- authenticate it like any login (password, or a pg_ident map)
GRANT USAGE ON SCHEMA public TO chat_idle_job;
GRANT EXECUTE ON FUNCTION public.release_idle_assignments(interval) TO chat_idle_job;
SELECT cron.schedule_in_database('chat-assign-idle', '30 seconds',
    'SET search_path = pg_catalog, pg_temp; SELECT count(*) FROM public.release_idle_assignments(NULL::interval)',
    'app', 'chat_idle_job');

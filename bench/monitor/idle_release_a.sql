-- (a) The idle-detection job releasing every chat idle for more than 5 minutes, timed
-- once (it changes the data). One TSV line: impl, phase, call, ms, ms, ms, rows released;
-- then a check line: chats still assigned (must be 0).
\set ON_ERROR_STOP on
SELECT 'a', :'phase', 'release_idle_assignments(''5 minutes'')', round(median_ms::numeric, 2),
       round(min_ms::numeric, 2), round(max_ms::numeric, 2), row_count
FROM bench.time_query('SELECT * FROM public.release_idle_assignments(''5 minutes'')', 1, false);

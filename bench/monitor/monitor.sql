-- The three monitoring calls, timed (5 runs after one warm-up). One TSV line each:
-- impl, phase, call, median_ms, min_ms, max_ms, rows. psql variables: impl, phase.
-- The same calls exist in (a) (the extension) and (b) (bench/plpgsql/016_*.sql).
\set ON_ERROR_STOP on
SELECT :'impl', :'phase', 'get_assignment_queue_status()', round(median_ms::numeric, 2),
       round(min_ms::numeric, 2), round(max_ms::numeric, 2), row_count
FROM bench.time_query('SELECT * FROM public.get_assignment_queue_status()', 5);
SELECT :'impl', :'phase', 'detect_stuck_chats(1)', round(median_ms::numeric, 2),
       round(min_ms::numeric, 2), round(max_ms::numeric, 2), row_count
FROM bench.time_query('SELECT * FROM public.detect_stuck_chats(1)', 5);
SELECT :'impl', :'phase', 'chat_state_summary', round(median_ms::numeric, 2),
       round(min_ms::numeric, 2), round(max_ms::numeric, 2), row_count
FROM bench.time_query('SELECT * FROM public.chat_state_summary', 5);

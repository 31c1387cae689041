-- (b) The plan of the PL/pgSQL design's queue query (bench/plpgsql) at the largest queue (auto_explain, nested
-- statements of the PL/pgSQL function), in a rolled-back transaction.
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
\echo '### (b) assign_chat_to_operator (one call, rolled back)'
BEGIN;
SELECT assign_chat_to_operator(md5('op-1')::uuid);
ROLLBACK;

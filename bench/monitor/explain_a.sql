-- (a) The plans the extension's own SPI statements get at the largest queue, captured with
-- auto_explain (nested statements, ANALYZE, BUFFERS) and sent to this client as NOTICEs.
-- Assignments run in rolled-back transactions, so nothing changes.
LOAD 'auto_explain';
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
\echo '### (a) assign_chat_to_operator: first call of a backend (custom plan)'
SET auto_explain.log_min_duration = 0;
BEGIN;
SELECT assign_chat_to_operator(md5('op-1')::uuid);
ROLLBACK;
-- Calls 2-6 unlogged: PostgreSQL's plan cache tries 5 custom plans before it may switch
-- to a generic plan, which is what every later call in a pgbench run uses.
SET auto_explain.log_min_duration = -1;
BEGIN; SELECT assign_chat_to_operator(md5('op-1')::uuid); ROLLBACK;
BEGIN; SELECT assign_chat_to_operator(md5('op-1')::uuid); ROLLBACK;
BEGIN; SELECT assign_chat_to_operator(md5('op-1')::uuid); ROLLBACK;
BEGIN; SELECT assign_chat_to_operator(md5('op-1')::uuid); ROLLBACK;
BEGIN; SELECT assign_chat_to_operator(md5('op-1')::uuid); ROLLBACK;
\echo '### (a) assign_chat_to_operator: 7th call of the backend (the plan every later call uses)'
SET auto_explain.log_min_duration = 0;
BEGIN;
SELECT assign_chat_to_operator(md5('op-1')::uuid);
ROLLBACK;
\echo '### (a) get_assignment_queue_status()'
SELECT * FROM get_assignment_queue_status();
\echo '### (a) detect_stuck_chats(1)'
SELECT count(*) FROM detect_stuck_chats(1);
\echo '### (a) chat_state_summary'
SELECT * FROM chat_state_summary;

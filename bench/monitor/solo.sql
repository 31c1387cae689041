-- The avoid-same-operator fallback at the largest queue, for (a) and (d) (psql variables:
-- impl, phase): an operator ("Solo", capacity 100) for whom every waiting chat is one they
-- handled last, as in a one-operator shift where every user answer brings the operator's own
-- chat back. A claim that first looks for "a chat last handled by someone else" and then
-- falls back finds nothing in the first branch and may read the whole queue before the
-- fallback takes the head. Timed with chat_assign.avoid_same_operator on (the default; the
-- peer (d) reads the same setting) and off, 5 assignments each after one warm-up; run last,
-- as it rewrites last_operator_id of every waiting chat.
\set ON_ERROR_STOP on
SELECT create_operator('Solo', 100) AS solo \gset
UPDATE chats SET last_operator_id = :'solo' WHERE chat_state = 'waiting_assignment';
VACUUM ANALYZE chats;
SELECT :'impl', :'phase', 'assign_chat_to_operator(own chats only, avoid_same_operator=on)',
       round(median_ms::numeric, 2), round(min_ms::numeric, 2), round(max_ms::numeric, 2), row_count
FROM bench.time_query(format('SELECT assign_chat_to_operator(%L)', :'solo'), 5);
SET chat_assign.avoid_same_operator = off;
SELECT :'impl', :'phase', 'assign_chat_to_operator(own chats only, avoid_same_operator=off)',
       round(median_ms::numeric, 2), round(min_ms::numeric, 2), round(max_ms::numeric, 2), row_count
FROM bench.time_query(format('SELECT assign_chat_to_operator(%L)', :'solo'), 5);

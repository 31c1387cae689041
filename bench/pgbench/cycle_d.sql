-- (d) the PL/pgSQL peer (bench/peer): one live-chat cycle, as three transactions (autocommit statements).
--
-- Client c is operator c+1 (-D step=0). Each pgbench "transaction" is ONE step of the
-- cycle, taken in order by a per-client state variable: step 0 the operator takes the
-- next chat, step 1 answers it, step 2 the real user answers (which puts the chat back at
-- the end of the queue, so the queue size stays N). pgbench's per-transaction log then
-- holds each step's latency on its own line: transaction number t of a client (pgbench
-- numbers them from 1) is step (t - 1) mod 3, so the assign latencies are exactly those
-- lines, measured on every assignment of the very run whose cycles/s is reported.
\set op :client_id + 1
\if :step = 0
SELECT assign_chat_to_operator(md5('op-' || :op::int)::uuid) AS chat \gset
\set step 1
\elif :step = 1
SELECT operator_send_message(:chat, md5('op-' || :op::int)::uuid, 'Thanks for waiting! Let me check that for you.');
\set step 2
\else
SELECT real_user_send_message(:chat, 'Great, thank you. One more question...');
\set step 0
\endif

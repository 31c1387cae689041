-- (b) the PL/pgSQL design apps ran before this extension (bench/plpgsql): one live-chat cycle, as three
-- transactions (autocommit statements). Same structure as cycle_a.sql, same calls.
--
-- Client c is operator c+1 (-D step=0). Each pgbench "transaction" is ONE step of the
-- cycle, taken in order by a per-client state variable: step 0 the operator takes the
-- next chat, step 1 answers it, step 2 the real user answers (which puts the chat back in
-- the queue, so the queue size stays N). Transaction number t of a client is step
-- (t - 1) mod 3 in pgbench's per-transaction log.
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

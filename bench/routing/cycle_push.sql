-- (a) chat_assign in a pushed team: one live-chat cycle as three transactions, where no one
-- asks for a chat. Client c is operator c+1 (-D step=0). Step 0: the operator looks at the
-- chat it was given (a read; only when it holds none does it ask: bench_routing.sh gives
-- every operator a chat before each run, as the steady state has);
-- step 1 answers it, which frees the operator and pulls the next waiting chat of the team
-- in the same call; step 2 the user answers, which puts the chat back in the queue and
-- pushes it to a member with room, if any. Same three steps, and the same chats, as
-- bench/pgbench/cycle_a.sql, so the two measure the same work one way and the other.
\set op :client_id + 1
\if :step = 0
SELECT coalesce((SELECT c.id FROM chats c
                  WHERE c.assigned_operator_id = md5('op-' || :op::int)::uuid
                    AND c.chat_state = 'assigned' LIMIT 1),
                assign_chat_to_operator(md5('op-' || :op::int)::uuid)) AS chat \gset
\set step 1
\elif :step = 1
SELECT operator_send_message(:chat, md5('op-' || :op::int)::uuid, 'Thanks for waiting! Let me check that for you.');
\set step 2
\else
SELECT real_user_send_message(:chat, 'Great, thank you. One more question...');
\set step 0
\endif

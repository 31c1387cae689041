-- (c) the floor: three single-row UPDATE commits per cycle, same step structure as
-- cycle_a.sql (one pgbench transaction per step, step = transaction number mod 3).
-- Client c owns chats n = c+1, c+1+C, c+1+2C, ... (-D nclients=C -D per=floor(N/C)) and
-- picks one of its own at random each cycle, so no two clients ever touch the same row.
\set op :client_id + 1
\if :step = 0
\set chat random(0, :per - 1) * :nclients + :client_id + 1
UPDATE chats SET chat_state = 'assigned', assigned_operator_id = md5('op-' || :op::int)::uuid, state_changed_at = now() WHERE n = :chat;
\set step 1
\elif :step = 1
UPDATE chats SET chat_state = 'waiting_real_user_reply', assigned_operator_id = NULL, last_operator_id = md5('op-' || :op::int)::uuid, state_changed_at = now() WHERE n = :chat;
\set step 2
\else
UPDATE chats SET chat_state = 'waiting_assignment', state_changed_at = now() WHERE n = :chat;
\set step 0
\endif

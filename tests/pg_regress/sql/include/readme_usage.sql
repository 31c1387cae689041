SELECT create_operator('Alice') AS alice \gset
SELECT start_chat(p_real_user_id => 'b1b2c3d4-0000-0000-0000-000000000001',
                  p_content      => 'Hi, my order is late') AS chat \gset

SELECT assign_chat_to_operator(p_operator_id => :'alice');        -- the chat's id (or NULL)
SELECT touch_operator_activity(:'alice', :'chat');                -- heartbeat while typing
SELECT operator_send_message(:'chat', :'alice', 'Checking now!'); -- Alice is free again
SELECT real_user_send_message(:'chat', 'Thanks, any news?');      -- back in the queue

-- idle detection: the background worker does this for you, or a scheduled job (docs/operations.md
-- says how to run one safely: a dedicated role, never a superuser):
SELECT * FROM release_idle_assignments();

-- change events, exactly once: keep the last id you processed (LISTEN chat_assign to be
-- woken when there are new ones)
SELECT * FROM read_chat_events(p_after_id => 0, p_limit => 100);
SELECT prune_chat_events();                                       -- retention by hand (the worker does it)

-- teams, presence, transfers, queue position:
SELECT create_team('Billing') AS billing \gset
SELECT add_team_member(:'billing', :'alice');                     -- Alice takes Billing's chats
SELECT start_chat('b1b2c3d4-0000-0000-0000-000000000002', 'Charged twice!',
                  p_team_id => :'billing', p_priority => 5) AS billing_chat \gset
SELECT * FROM get_queue_position(:'billing_chat');                -- 1, 0 ahead, an estimate
SELECT set_chat_priority(:'billing_chat', 10);                    -- its place among the waiting chats
SELECT transfer_chat(:'billing_chat', p_to_operator_id => :'alice');  -- only an online member with room
SELECT set_operator_status(:'alice', 'away');                     -- keeps her chats; 'offline' releases them
SELECT create_team('Sales', 'least_loaded') AS sales \gset
SELECT start_chat(gen_random_uuid(), 'A quote?', p_team_id => :'sales');  -- given at once to the member with most room (none yet: it waits)
SELECT set_team_routing(:'billing', 'round_robin');               -- Billing's chats pushed in turn from now on
SELECT remove_team_member(:'billing', :'alice');                  -- her Billing chats go back to its queue

-- watching the queue:
SELECT * FROM chat_state_summary;
SELECT * FROM get_assignment_queue_status();
SELECT * FROM detect_stuck_chats(1);
SELECT * FROM operator_assignment_stats;
SELECT * FROM team_queue_status;                                  -- per team: waiting, online, available
SELECT * FROM get_service_metrics();                              -- last 24 h: first response, wait, transfers
SELECT * FROM worker_status();                                    -- the background worker's passes and last error

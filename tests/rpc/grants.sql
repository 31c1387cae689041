-- the app's backend acting for real users
CREATE ROLE chat_app NOLOGIN;
GRANT EXECUTE ON FUNCTION start_chat(uuid, text, text, uuid, integer),
                          real_user_send_message(uuid, text, text), complete_chat(uuid),
                          get_queue_position(uuid) TO chat_app;
-- operators (a support-desk UI)
CREATE ROLE chat_operator NOLOGIN;
GRANT EXECUTE ON FUNCTION assign_chat_to_operator(uuid), operator_send_message(uuid, uuid, text, text),
                          touch_operator_activity(uuid, uuid), set_operator_status(uuid, text)
                          TO chat_operator;
GRANT SELECT ON chats, messages TO chat_operator;
-- admins / supervisors
CREATE ROLE chat_admin NOLOGIN;
GRANT EXECUTE ON FUNCTION release_and_reassign_chat(uuid, text), complete_chat(uuid),
                          create_operator(text, integer), set_operator_active(uuid, boolean),
                          release_idle_assignments(interval), get_assignment_queue_status(),
                          detect_stuck_chats(numeric), read_chat_events(bigint, integer),
                          prune_chat_events(), worker_status(),
                          create_team(text, text), set_team_routing(uuid, text),
                          add_team_member(uuid, uuid), remove_team_member(uuid, uuid),
                          set_operator_status(uuid, text), transfer_chat(uuid, uuid, uuid, text),
                          set_chat_priority(uuid, integer), get_queue_position(uuid),
                          get_service_metrics(timestamp with time zone, uuid) TO chat_admin;
GRANT SELECT ON operators, chats, messages, chat_assignments, operator_activity,
                chat_state_summary, operator_assignment_stats,
                teams, team_members, chat_transfers, team_queue_status TO chat_admin;

-- The roles and grants docs/security.md ("Roles and grants") documents (the same statements as
-- tests/rpc/grants.sql), what each role can and cannot do, and the operator claim.
-- Runs in a database of its own and drops it (and the roles) at the end.
\set VERBOSITY sqlstate
\set regress_db :DBNAME
CREATE DATABASE chat_assign_sec_grants;
\c chat_assign_sec_grants
CREATE EXTENSION chat_assign;

-- the docs' block, verbatim.
\i tests/rpc/grants.sql

-- A role nobody granted anything.
CREATE ROLE nobody NOLOGIN;

-- Every function of the extension: the API ones run as their owner (the superuser who ran
-- CREATE EXTENSION) under a fixed search_path; PUBLIC may execute none but the CHECK
-- constraints' functions (pure functions of their arguments, run by whoever writes a table);
-- each role exactly what the block granted.
SELECT p.proname, p.prosecdef AS definer, pg_get_userbyid(p.proowner) AS owner, p.proconfig,
       has_function_privilege('nobody', p.oid, 'EXECUTE') AS nobody,
       has_function_privilege('chat_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('chat_operator', p.oid, 'EXECUTE') AS operator,
       has_function_privilege('chat_admin', p.oid, 'EXECUTE') AS admin
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chat_assign') AND d.deptype = 'e'
ORDER BY p.proname;
-- Every table, view and sequence: who may read it; nobody may write any.
CREATE TEMP VIEW ext_relations AS
SELECT c.oid, c.relname, c.relkind
FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chat_assign') AND d.deptype = 'e';
SELECT relname, relkind,
       has_table_privilege('nobody', oid, 'SELECT') AS nobody,
       has_table_privilege('chat_app', oid, 'SELECT') AS app,
       has_table_privilege('chat_operator', oid, 'SELECT') AS operator,
       has_table_privilege('chat_admin', oid, 'SELECT') AS admin
FROM ext_relations ORDER BY relkind, relname;
SELECT count(*) AS write_privileges
FROM ext_relations,
     unnest(ARRAY['nobody', 'chat_app', 'chat_operator', 'chat_admin']) AS r (role),
     unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p (privilege)
WHERE has_table_privilege(role, oid, privilege)
   OR (relkind = 'S' AND has_sequence_privilege(role, oid, 'USAGE, UPDATE'));

-- nobody: 42501 on every function, table and view.
SET ROLE nobody;
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'Hello');
SELECT real_user_send_message('00000000-0000-0000-0000-00000000dead', 'Hello');
SELECT complete_chat('00000000-0000-0000-0000-00000000dead');
SELECT assign_chat_to_operator('00000000-0000-0000-0000-00000000dead');
SELECT operator_send_message('00000000-0000-0000-0000-00000000dead', '00000000-0000-0000-0000-00000000dead', 'Hi');
SELECT touch_operator_activity('00000000-0000-0000-0000-00000000dead', '00000000-0000-0000-0000-00000000dead');
SELECT release_and_reassign_chat('00000000-0000-0000-0000-00000000dead');
SELECT create_operator('Nobody');
SELECT set_operator_active('00000000-0000-0000-0000-00000000dead', false);
SELECT * FROM release_idle_assignments();
SELECT * FROM get_assignment_queue_status();
SELECT * FROM detect_stuck_chats();
SELECT count(*) FROM operators;
SELECT count(*) FROM chats;
SELECT count(*) FROM messages;
SELECT count(*) FROM chat_assignments;
SELECT count(*) FROM operator_activity;
SELECT count(*) FROM chat_state_deltas;
SELECT count(*) FROM chat_state_totals;
SELECT count(*) FROM chat_state_summary;
SELECT count(*) FROM operator_assignment_stats;
RESET ROLE;

-- chat_admin creates the operators.
SET ROLE chat_admin;
SELECT create_operator('Olga') AS olga \gset
SELECT create_operator('Pete') AS pete \gset
RESET ROLE;

-- chat_app starts chats and writes as the user, with no privilege on any table (the
-- functions run as their owner); everything else is refused.
SET ROLE chat_app;
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'My order is late') AS chat1 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000002', 'Refund please') AS chat2 \gset
SELECT real_user_send_message(:'chat1', 'Anyone there?') > 0 AS user_wrote;
SELECT assign_chat_to_operator(:'olga');
SELECT operator_send_message(:'chat1', :'olga', 'Hi');
SELECT touch_operator_activity(:'olga', :'chat1');
SELECT release_and_reassign_chat(:'chat1');
SELECT create_operator('Mallory');
SELECT set_operator_active(:'olga', false);
SELECT * FROM release_idle_assignments();
SELECT * FROM get_assignment_queue_status();
SELECT * FROM detect_stuck_chats();
SELECT count(*) FROM chats;
SELECT count(*) FROM messages;
SELECT count(*) FROM chat_state_summary;
RESET ROLE;

-- chat_operator takes a chat, sends heartbeats, reads chats and messages, replies.
SET ROLE chat_operator;
SELECT assign_chat_to_operator(:'olga') = :'chat1' AS olga_took_chat1;
SELECT touch_operator_activity(:'olga', :'chat1') AS heartbeat;
SELECT chat_state, assigned_operator_id = :'olga' AS olgas FROM chats WHERE id = :'chat1';
SELECT sender_type, content FROM messages WHERE chat_id = :'chat1' ORDER BY id;
SELECT operator_send_message(:'chat1', :'olga', 'Checking now') > 0 AS replied;
SELECT assign_chat_to_operator(:'pete') = :'chat2' AS pete_took_chat2;
-- ... and nothing else: no admin functions, no app functions, no direct writes, no other tables.
SELECT release_and_reassign_chat(:'chat2');
SELECT create_operator('Mallory');
SELECT set_operator_active(:'olga', false);
SELECT complete_chat(:'chat1');
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Hello');
SELECT real_user_send_message(:'chat1', 'Hello');
SELECT * FROM get_assignment_queue_status();
INSERT INTO chats (real_user_id) VALUES ('00000000-0000-0000-0000-000000000003');
UPDATE chats SET priority = 5 WHERE id = :'chat2';
DELETE FROM chats WHERE id = :'chat2';
INSERT INTO messages (chat_id, sender_type, operator_id, content)
VALUES (:'chat2', 'operator', :'pete', 'forged');
SELECT count(*) FROM chat_assignments;
SELECT count(*) FROM operator_activity;
SELECT count(*) FROM operators;
SELECT count(*) FROM chat_state_summary;
RESET ROLE;

-- chat_admin releases, (de)activates, runs idle release, monitors, completes, reads all.
SET ROLE chat_admin;
SELECT release_and_reassign_chat(:'chat2', 'shift change') AS released;
SELECT set_operator_active(:'pete', false) AS pete_off;
SELECT set_operator_active(:'pete', true) AS pete_on;
SELECT count(*) AS idle_released FROM release_idle_assignments('1 hour');
SELECT waiting_count, assigned_count, waiting_reply_count, active_operators, busy_operators,
       available_operators FROM get_assignment_queue_status();
SELECT count(*) AS stuck FROM detect_stuck_chats(1);
SELECT chat_state, chat_count FROM chat_state_summary;
SELECT operator_name, total_assignments, released_assignments, active_assignments
FROM operator_assignment_stats ORDER BY operator_name;
SELECT (SELECT count(*) FROM operators) AS operators, (SELECT count(*) FROM chats) AS chats,
       (SELECT count(*) FROM messages) AS messages,
       (SELECT count(*) FROM chat_assignments) AS assignments,
       (SELECT count(*) FROM operator_activity) AS activity;
SELECT release_reason FROM chat_assignments WHERE chat_id = :'chat2';
SELECT complete_chat(:'chat2') AS completed;
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'Hello');
UPDATE chats SET priority = 5 WHERE id = :'chat1';
RESET ROLE;
-- chat_app completes a chat too.
SET ROLE chat_app;
SELECT complete_chat(:'chat1') AS completed;
RESET ROLE;

-- ======== Operator identity: with chat_assign.operator_id_claim = 'sub' (the default) the
-- three operator functions, in a call that carries request.jwt.claims, accept only the
-- operator named by its "sub" claim. Only a superuser sets the claim name.
SET chat_assign.operator_id_claim = 'sub';
SET ROLE chat_operator;
SET chat_assign.operator_id_claim = '';
RESET chat_assign.operator_id_claim;
SELECT set_config('chat_assign.operator_id_claim', '', false);
SHOW chat_assign.operator_id_claim;
RESET ROLE;
SET ROLE chat_app;
SELECT start_chat('00000000-0000-0000-0000-000000000004', 'Claims test') AS chat3 \gset
RESET ROLE;
-- Everything the functions write, to show that refused calls write nothing.
CREATE TEMP VIEW fingerprint AS
SELECT md5(string_agg(r, ',' ORDER BY r)) AS rows
FROM (SELECT c::text FROM chats c UNION ALL SELECT m::text FROM messages m
      UNION ALL SELECT a::text FROM chat_assignments a UNION ALL SELECT t::text FROM operator_activity t
      UNION ALL SELECT o::text FROM operators o) AS x (r);
SELECT rows AS before FROM fingerprint \gset
SET ROLE chat_operator;
\set claims_olga '{"sub": "' :olga '", "role": "chat_operator"}'
\set claims_pete '{"sub": "' :pete '", "role": "chat_operator"}'
-- No claims in this session at all: a direct SQL connection, whose role is its identity,
-- is not checked (Olga holds no chat: false, nothing written).
SELECT touch_operator_activity(:'olga', :'chat3') AS no_claims_not_checked;
-- Claims without "sub", "sub" not a string or null, not JSON, not an object: 42501.
BEGIN;
SELECT set_config('request.jwt.claims', '{"role": "chat_operator"}', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": 42}', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": null}', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "' || :'olga', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '["' || :'olga' || '"]', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "not-a-uuid"}', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
-- Claims left over from earlier transactions are gone (the setting is empty now, which is
-- no claims: not checked).
SELECT current_setting('request.jwt.claims', true) AS claims;
SELECT touch_operator_activity(:'olga', :'chat3') AS empty_claims_not_checked;
-- Pete's claims, Olga's id: 42501 for all three, whether or not the call could succeed.
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_pete', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_pete', true) IS NOT NULL AS claims_set;
SELECT operator_send_message(:'chat1', :'olga', 'Not me');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_pete', true) IS NOT NULL AS claims_set;
SELECT touch_operator_activity(:'olga', :'chat3');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_pete', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator('00000000-0000-0000-0000-00000000dead');
ROLLBACK;
-- A NULL operator is reported first: 22004, claims or not.
SELECT assign_chat_to_operator(NULL);
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_pete', true) IS NOT NULL AS claims_set;
SELECT operator_send_message(:'chat1', NULL, 'Hi');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_pete', true) IS NOT NULL AS claims_set;
SELECT touch_operator_activity(NULL, :'chat3');
ROLLBACK;
RESET ROLE;
SELECT rows = :'before' AS nothing_written FROM fingerprint;
-- Olga's own claims: assign, heartbeat and reply go through (the uuid in any case).
SET ROLE chat_operator;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_olga', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga') = :'chat3' AS olga_took_chat3;
COMMIT;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "' || upper(:'olga') || '"}', true) IS NOT NULL AS claims_set;
SELECT touch_operator_activity(:'olga', :'chat3') AS heartbeat;
COMMIT;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_olga', true) IS NOT NULL AS claims_set;
SELECT operator_send_message(:'chat3', :'olga', 'Hello from Olga') > 0 AS replied;
COMMIT;
RESET ROLE;
-- Functions other than the three ignore the claim.
SET ROLE chat_app;
SELECT real_user_send_message(:'chat3', 'Thanks') > 0 AS user_wrote;
RESET ROLE;
-- Another claim name.
SET chat_assign.operator_id_claim = 'operator_id';
SET ROLE chat_operator;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "' || :'olga' || '", "operator_id": "' || :'pete' || '"}', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'olga');
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "' || :'olga' || '", "operator_id": "' || :'pete' || '"}', true) IS NOT NULL AS claims_set;
SELECT assign_chat_to_operator(:'pete') = :'chat3' AS pete_took_chat3;
COMMIT;
RESET ROLE;
-- Back to the default ('sub'); a session without claims is not checked.
RESET chat_assign.operator_id_claim;
SHOW chat_assign.operator_id_claim;
SET ROLE chat_operator;
SELECT touch_operator_activity(:'pete', :'chat3') AS heartbeat_without_claims;
RESET ROLE;
-- Turned off explicitly (a superuser's opt-out): claims are not read, so Olga's JWT may act
-- as Pete.
SET chat_assign.operator_id_claim = '';
SET ROLE chat_operator;
BEGIN;
SELECT set_config('request.jwt.claims', :'claims_olga', true) IS NOT NULL AS claims_set;
SELECT touch_operator_activity(:'pete', :'chat3') AS heartbeat_with_the_check_off;
ROLLBACK;
RESET ROLE;
RESET chat_assign.operator_id_claim;

-- Set for the database, as deployments do: a session where the library is not loaded yet
-- takes chat_operator's SET as a placeholder, which loading the library then refuses.
ALTER DATABASE chat_assign_sec_grants SET chat_assign.operator_id_claim = 'sub';
\c chat_assign_sec_grants
SET ROLE chat_operator;
SET chat_assign.operator_id_claim = '';
SELECT set_config('request.jwt.claims', :'claims_olga', false) IS NOT NULL AS claims_set;
SELECT touch_operator_activity(:'pete', :'chat3');
SHOW chat_assign.operator_id_claim;
RESET ROLE;

\c :regress_db
DROP DATABASE chat_assign_sec_grants;
DROP ROLE chat_app, chat_operator, chat_admin, nobody;

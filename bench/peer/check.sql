-- Sanity check of the peer (d): a full cycle, the error SQLSTATEs, capacity, the monitoring
-- calls. Run in an empty database after 001_schema.sql and 002_functions.sql:
--   psql -X -v ON_ERROR_STOP=1 -d DB -f bench/peer/check.sql
-- Prints "peer check: N passed, M failed" and exits non-zero (ON_ERROR_STOP) when M > 0.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE TEMP TABLE ck (n serial, what text, ok boolean);
-- expect_error(sql, sqlstate): true when the statement fails with that SQLSTATE.
CREATE FUNCTION pg_temp.err(p_sql text, p_state text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE p_sql;
    RETURN false;
EXCEPTION WHEN others THEN
    IF SQLSTATE <> p_state THEN RAISE NOTICE '% -> % (%), wanted %', p_sql, SQLSTATE, SQLERRM, p_state; END IF;
    RETURN SQLSTATE = p_state;
END $$;

SELECT create_operator('Alice') AS alice, create_operator('Bob', 2) AS bob \gset
SELECT start_chat(md5('u1')::uuid, 'hello') AS c1 \gset
SELECT pg_sleep(0.01) \gset
SELECT start_chat(md5('u2')::uuid, 'hi there') AS c2 \gset
INSERT INTO ck (what, ok) SELECT 'start: waiting', chat_state = 'waiting_assignment' FROM chats WHERE id = :'c1';
-- full cycle
SELECT assign_chat_to_operator(:'alice') AS got \gset
INSERT INTO ck (what, ok) VALUES ('assign takes the oldest', :'got' = :'c1');
INSERT INTO ck (what, ok) SELECT 'assigned row', chat_state = 'assigned' AND assigned_operator_id = :'alice'
  AND (SELECT count(*) FROM chat_assignments WHERE chat_id = :'c1' AND released_at IS NULL) = 1
  AND EXISTS (SELECT 1 FROM operator_activity WHERE chat_id = :'c1') FROM chats WHERE id = :'c1';
INSERT INTO ck (what, ok) VALUES ('at capacity: 55000', pg_temp.err(format('SELECT assign_chat_to_operator(%L)', :'alice'), '55000'));
INSERT INTO ck (what, ok) VALUES ('touch', touch_operator_activity(:'alice', :'c1'));
INSERT INTO ck (what, ok) VALUES ('touch other chat: false', NOT touch_operator_activity(:'alice', :'c2'));
INSERT INTO ck (what, ok) VALUES ('reply by another operator: 55000', pg_temp.err(format('SELECT operator_send_message(%L, %L, %L)', :'c1', :'bob', 'x'), '55000'));
INSERT INTO ck (what, ok) SELECT 'operator reply', operator_send_message(:'c1', :'alice', 'how can I help?') > 0;
INSERT INTO ck (what, ok) SELECT 'waiting reply', chat_state = 'waiting_real_user_reply' AND operator_replied_at IS NOT NULL
  AND assigned_operator_id IS NULL AND last_operator_id = :'alice'
  AND NOT EXISTS (SELECT 1 FROM chat_assignments WHERE chat_id = :'c1' AND released_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM operator_activity WHERE chat_id = :'c1') FROM chats WHERE id = :'c1';
INSERT INTO ck (what, ok) SELECT 'follow-up', operator_send_message(:'c1', :'alice', 'still there?') > 0;
INSERT INTO ck (what, ok) SELECT 'user reply', real_user_send_message(:'c1', 'yes') > 0;
INSERT INTO ck (what, ok) SELECT 'back in queue', chat_state = 'waiting_assignment' FROM chats WHERE id = :'c1';
-- avoid same operator: alice gets c2 (older c1 was hers), then bob gets c1
INSERT INTO ck (what, ok) VALUES ('avoid same operator', assign_chat_to_operator(:'alice') = :'c2');
INSERT INTO ck (what, ok) VALUES ('bob takes c1', assign_chat_to_operator(:'bob') = :'c1');
INSERT INTO ck (what, ok) VALUES ('empty queue: NULL', assign_chat_to_operator(:'bob') IS NULL);
INSERT INTO ck (what, ok) VALUES ('release', release_and_reassign_chat(:'c1'));
INSERT INTO ck (what, ok) VALUES ('release again: false', NOT release_and_reassign_chat(:'c1'));
INSERT INTO ck (what, ok) SELECT 'release reason', release_reason = 'manual_unassign' FROM chat_assignments WHERE chat_id = :'c1' ORDER BY id DESC LIMIT 1;
-- capacity 2 for bob
SELECT start_chat(md5('u3')::uuid, 'third') AS c3 \gset
INSERT INTO ck (what, ok) VALUES ('bob 1 of 2', assign_chat_to_operator(:'bob') IS NOT NULL);
INSERT INTO ck (what, ok) VALUES ('bob 2 of 2', assign_chat_to_operator(:'bob') IS NOT NULL);
INSERT INTO ck (what, ok) VALUES ('bob at capacity', pg_temp.err(format('SELECT assign_chat_to_operator(%L)', :'bob'), '55000'));
-- idle release
UPDATE operator_activity SET last_activity_at = now() - interval '10 minutes' WHERE operator_id = :'bob';
INSERT INTO ck (what, ok) SELECT 'idle release', count(*) = 2 FROM release_idle_assignments('5 minutes');
INSERT INTO ck (what, ok) SELECT 'idle released', count(*) = 0 FROM chats WHERE assigned_operator_id = :'bob';
-- deactivate
INSERT INTO ck (what, ok) VALUES ('bob takes one', assign_chat_to_operator(:'bob') IS NOT NULL);
INSERT INTO ck (what, ok) VALUES ('deactivate', set_operator_active(:'bob', false));
INSERT INTO ck (what, ok) SELECT 'deactivate released', count(*) = 0 FROM chats WHERE assigned_operator_id = :'bob';
INSERT INTO ck (what, ok) VALUES ('inactive: 55000', pg_temp.err(format('SELECT assign_chat_to_operator(%L)', :'bob'), '55000'));
-- complete and reopen
INSERT INTO ck (what, ok) VALUES ('complete', complete_chat(:'c1'));
INSERT INTO ck (what, ok) VALUES ('complete again: false', NOT complete_chat(:'c1'));
INSERT INTO ck (what, ok) SELECT 'completed inactive', chat_state = 'completed' AND NOT is_active FROM chats WHERE id = :'c1';
INSERT INTO ck (what, ok) SELECT 'reopen', real_user_send_message(:'c1', 'again') > 0;
INSERT INTO ck (what, ok) SELECT 'reopened', chat_state = 'waiting_assignment' AND is_active FROM chats WHERE id = :'c1';
-- errors
INSERT INTO ck (what, ok) VALUES
  ('null operator: 22004', pg_temp.err('SELECT assign_chat_to_operator(NULL)', '22004')),
  ('null content: 22004', pg_temp.err(format('SELECT real_user_send_message(%L, NULL)', :'c1'), '22004')),
  ('blank content: 22023', pg_temp.err(format('SELECT start_chat(%L, %L)', md5('u9'), '  '), '22023')),
  ('capacity 0: 22023', pg_temp.err('SELECT create_operator(''x'', 0)', '22023')),
  ('hours 0: 22023', pg_temp.err('SELECT * FROM detect_stuck_chats(0)', '22023')),
  ('interval 0: 22023', pg_temp.err('SELECT * FROM release_idle_assignments(''0 s'')', '22023')),
  ('unknown chat: P0002', pg_temp.err(format('SELECT real_user_send_message(%L, %L)', md5('nope'), 'x'), 'P0002')),
  ('unknown operator: P0002', pg_temp.err(format('SELECT assign_chat_to_operator(%L)', md5('nope')), 'P0002')),
  ('unknown operator reply: P0002', pg_temp.err(format('SELECT operator_send_message(%L, %L, %L)', :'c1', md5('nope'), 'x'), 'P0002')),
  ('unknown chat complete: P0002', pg_temp.err(format('SELECT complete_chat(%L)', md5('nope')), 'P0002'));
-- monitoring
INSERT INTO ck (what, ok) SELECT 'queue status', waiting_count = 2 AND assigned_count = 1 AND active_operators = 1
  AND busy_operators = 1 AND available_operators = 0
  FROM get_assignment_queue_status();
INSERT INTO ck (what, ok) SELECT 'state summary', count(*) = 4 FROM chat_state_summary;
INSERT INTO ck (what, ok) SELECT 'stats', count(*) = 2 FROM operator_assignment_stats;
INSERT INTO ck (what, ok) SELECT 'stuck', count(*) = 0 FROM detect_stuck_chats(1);
-- invariant 1 and 3 over everything above
INSERT INTO ck (what, ok) SELECT 'invariant 1', bool_and((c.chat_state = 'assigned') = (a.n = 1)) FROM chats c
  LEFT JOIN LATERAL (SELECT count(*) AS n FROM chat_assignments WHERE chat_id = c.id AND released_at IS NULL) a ON true;
SELECT * FROM ck WHERE ok IS NOT TRUE;
SELECT format('peer check: %s passed, %s failed', count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok IS NOT TRUE)) AS result,
       bool_and(ok IS TRUE) AS all_ok FROM ck \gset
\echo :result
\if :all_ok
\else
DO $$ BEGIN RAISE EXCEPTION 'peer check failed'; END $$;
\endif

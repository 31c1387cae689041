-- Teams, presence, transfers and queue positions: every function, every error (SQLSTATE),
-- and what they write (the chats, the assignments, the transfer history, the events).
-- Self-contained: its own database.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_teams;
\c chat_assign_teams
CREATE EXTENSION chat_assign;
-- Names instead of ids in what is printed.
CREATE TEMP VIEW who AS
SELECT id, name FROM operators UNION ALL SELECT id, name FROM teams;
CREATE TEMP VIEW chat_list AS
SELECT u.label, c.chat_state, o.name AS holder, t.name AS team, c.priority
FROM chats c
JOIN (VALUES ('00000000-0000-0000-0000-000000000001'::uuid, 'c1'),
             ('00000000-0000-0000-0000-000000000002', 'c2'),
             ('00000000-0000-0000-0000-000000000003', 'c3'),
             ('00000000-0000-0000-0000-000000000004', 'c4')) AS u (user_id, label)
  ON u.user_id = c.real_user_id
LEFT JOIN operators o ON o.id = c.assigned_operator_id
LEFT JOIN teams t ON t.id = c.team_id
ORDER BY u.label;

-- ---------------------------------------------------------------- teams
SELECT create_team('Billing') AS billing \gset
SELECT create_team('Tech', 'manual') AS tech \gset
SELECT name, routing FROM teams ORDER BY name;
SELECT create_team('Billing');                       -- another team has the name
SELECT create_team(' ');                             -- blank
SELECT create_team(NULL);
SELECT create_team('Sales', 'random');               -- no such routing
SELECT create_team('Sales', NULL);
SELECT set_team_routing(:'tech', 'least_loaded') AS changed;
SELECT set_team_routing(:'tech', 'manual') AS changed_back;
SELECT set_team_routing(:'billing', 'round_robin') AS changed;
SELECT set_team_routing(:'billing', 'round_robin') AS changed_again;
SELECT set_team_routing(:'billing', 'manual') AS changed_back;
SELECT set_team_routing('00000000-0000-0000-0000-0000000000ff', 'manual');
SELECT set_team_routing(:'billing', 'fastest');
SELECT set_team_routing(NULL, 'manual');

-- ---------------------------------------------------------------- members
SELECT create_operator('Ann', 2) AS ann \gset
SELECT create_operator('Bo') AS bo \gset
SELECT create_operator('Cy') AS cy \gset
SELECT add_team_member(:'billing', :'ann') AS joined;
SELECT add_team_member(:'billing', :'ann') AS joined_again;
SELECT add_team_member(:'tech', :'bo') AS joined;
SELECT add_team_member('00000000-0000-0000-0000-0000000000ff', :'ann');
SELECT add_team_member(:'billing', '00000000-0000-0000-0000-0000000000ff');
SELECT add_team_member(NULL, :'ann');
SELECT add_team_member(:'billing', NULL);
SELECT t.name AS team, o.name AS operator FROM team_members m
JOIN teams t ON t.id = m.team_id JOIN operators o ON o.id = m.operator_id ORDER BY 1, 2;
-- team_count: 0 only for an operator of no team (Cy), which claims through the statement
-- that reads no team table.
SELECT name, team_count FROM operators ORDER BY name;

-- ---------------------------------------------------------------- chats in teams, priority
SELECT start_chat('00000000-0000-0000-0000-000000000001', 'About my bill', p_team_id => :'billing') AS c1 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000002', 'It crashes', p_team_id => :'tech') AS c2 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000003', 'A question') AS c3 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000004', 'Charged twice!', NULL, :'billing', 5) AS c4 \gset
SELECT start_chat('00000000-0000-0000-0000-000000000005', 'x', p_team_id => '00000000-0000-0000-0000-0000000000ff');
SELECT start_chat('00000000-0000-0000-0000-000000000005', 'x', p_priority => NULL);
SELECT * FROM chat_list;

-- Positions count within the chat's own queue: c4 (priority 5) is ahead of c1 in Billing;
-- c3 is alone among the chats without a team. No assignment yet: no estimate.
SELECT * FROM get_queue_position(:'c1');
SELECT * FROM get_queue_position(:'c4');
SELECT * FROM get_queue_position(:'c3');
SELECT * FROM get_queue_position('00000000-0000-0000-0000-0000000000ff');
SELECT * FROM get_queue_position(NULL);
SELECT set_chat_priority(:'c1', 10) AS changed;
SELECT set_chat_priority(:'c1', 10) AS changed_again;
SELECT * FROM get_queue_position(:'c1');
SELECT set_chat_priority('00000000-0000-0000-0000-0000000000ff', 1);
SELECT set_chat_priority(:'c1', NULL);

-- ---------------------------------------------------------------- who takes what
-- Cy is in no team: only chats without one. Bo: Tech's and those without a team. Ann:
-- Billing's, highest priority first.
SELECT assign_chat_to_operator(:'cy') = :'c3' AS cy_takes_c3;
SELECT operator_send_message(:'c3', :'cy', 'Sure') IS NOT NULL AS cy_answers;
SELECT assign_chat_to_operator(:'cy') IS NULL AS nothing_for_cy;
SELECT assign_chat_to_operator(:'bo') = :'c2' AS bo_takes_c2;
SELECT assign_chat_to_operator(:'ann') = :'c1' AS ann_takes_c1;
SELECT * FROM chat_list;
-- Not waiting: no position. c4 now has an estimate (Billing was served a moment ago).
SELECT * FROM get_queue_position(:'c1');
SELECT queue_position, waiting_ahead, estimated_wait_seconds >= 0 AS estimated
FROM get_queue_position(:'c4');

-- ---------------------------------------------------------------- presence
SELECT set_operator_status(:'ann', 'busy');
SELECT set_operator_status(:'ann', NULL);
SELECT set_operator_status(NULL, 'away');
SELECT set_operator_status('00000000-0000-0000-0000-0000000000ff', 'away');
-- Away keeps the chats; an away operator who asks is back online.
SELECT set_operator_status(:'ann', 'away') AS previous;
SELECT set_operator_status(:'ann', 'away') AS previous;
SELECT * FROM chat_list;
-- Coming back moves the operator's row: the claim still stamps last_assigned_at (round robin
-- and away_after read it).
UPDATE operators SET last_assigned_at = NULL WHERE id = :'ann';
SELECT assign_chat_to_operator(:'ann') = :'c4' AS ann_back_takes_c4;
SELECT status, last_assigned_at IS NOT NULL AS stamped FROM operators WHERE id = :'ann';
-- Offline releases every chat, each keeping its place (waiting_since), and refuses a claim.
SELECT waiting_since AS c1_since FROM chats WHERE id = :'c1' \gset
SELECT set_operator_status(:'ann', 'offline') AS previous;
SELECT * FROM chat_list;
SELECT waiting_since = :'c1_since' AS c1_kept_its_place FROM chats WHERE id = :'c1';
SELECT assign_chat_to_operator(:'ann');
SELECT set_operator_status(:'ann', 'online') AS previous;

-- ---------------------------------------------------------------- transfers
-- To a team: Bo's Tech chat goes back to the queue, in Billing, keeping its place.
SELECT waiting_since AS c2_since FROM chats WHERE id = :'c2' \gset
SELECT transfer_chat(:'c2', p_to_team_id => :'billing', p_reason => 'billing question') AS moved;
SELECT waiting_since = :'c2_since' AS c2_kept_its_place FROM chats WHERE id = :'c2';
SELECT transfer_chat(:'c2', p_to_team_id => :'billing') AS moved_again;   -- already waiting there
-- To an operator: a member of the chat's team, online, active, with room.
SELECT transfer_chat(:'c2', p_to_operator_id => :'bo');                   -- not in Billing
SELECT transfer_chat(:'c2', p_to_operator_id => :'ann') AS to_ann;
SELECT transfer_chat(:'c2', p_to_operator_id => :'ann') AS to_ann_again;  -- hers already
SELECT assign_chat_to_operator(:'ann') = :'c1' AS ann_takes_c1;
SELECT transfer_chat(:'c4', p_to_operator_id => :'ann');                  -- at capacity
SELECT add_team_member(:'billing', :'bo') AS bo_joins_billing;
SELECT set_operator_status(:'bo', 'away') AS previous;
SELECT transfer_chat(:'c4', p_to_operator_id => :'bo');                   -- not online
SELECT set_operator_status(:'bo', 'online') AS previous;
SELECT set_operator_active(:'bo', false) AS deactivated;
SELECT transfer_chat(:'c4', p_to_operator_id => :'bo');                   -- inactive
SELECT set_operator_active(:'bo', true) AS activated;
-- A chat waiting for its user's reply goes to an operator, assigned.
SELECT transfer_chat(:'c3', p_to_operator_id => :'bo', p_reason => 'follow-up') AS c3_to_bo;
-- Arguments.
SELECT transfer_chat(:'c4');                                              -- no target
SELECT transfer_chat(:'c4', :'bo', :'billing');                           -- two targets
SELECT transfer_chat(:'c4', p_to_team_id => :'tech', p_reason => ' ');
SELECT transfer_chat(NULL, p_to_team_id => :'tech');
SELECT transfer_chat(:'c4', p_to_team_id => :'tech', p_reason => NULL);
SELECT transfer_chat('00000000-0000-0000-0000-0000000000ff', p_to_team_id => :'tech');
SELECT transfer_chat(:'c4', p_to_team_id => '00000000-0000-0000-0000-0000000000ff');
SELECT transfer_chat(:'c4', p_to_operator_id => '00000000-0000-0000-0000-0000000000ff');
-- A completed chat goes nowhere.
SELECT complete_chat(:'c3') AS completed;
SELECT transfer_chat(:'c3', p_to_team_id => :'tech') AS moved;
SELECT * FROM chat_list;
-- The history: who had it (operator, team) and where it went, and why.
SELECT f.name AS from_operator, ft.name AS from_team, t.name AS to_operator, tt.name AS to_team, x.reason
FROM chat_transfers x
LEFT JOIN who f ON f.id = x.from_operator_id LEFT JOIN who ft ON ft.id = x.from_team_id
LEFT JOIN who t ON t.id = x.to_operator_id LEFT JOIN who tt ON tt.id = x.to_team_id
ORDER BY x.id;

-- ---------------------------------------------------------------- leaving a team
-- Ann holds c1 and c2, both Billing's: leaving Billing releases them.
SELECT remove_team_member(:'billing', :'ann') AS left_billing;
SELECT remove_team_member(:'billing', :'ann') AS left_again;
SELECT remove_team_member('00000000-0000-0000-0000-0000000000ff', :'ann');
SELECT remove_team_member(:'billing', '00000000-0000-0000-0000-0000000000ff');
SELECT remove_team_member(:'billing', NULL);
SELECT team_count AS ann_team_count FROM operators WHERE id = :'ann';
SELECT * FROM chat_list;
SELECT assign_chat_to_operator(:'ann') IS NULL AS nothing_for_ann;
SELECT release_reason, count(*) FROM chat_assignments GROUP BY 1 ORDER BY 1;

-- ---------------------------------------------------------------- events and monitoring
SELECT e.old_state, e.new_state, o.name AS operator, t.name AS team, e.reason
FROM chat_events e LEFT JOIN who o ON o.id = e.operator_id LEFT JOIN who t ON t.id = e.team_id
ORDER BY e.id;
SELECT team_name, routing, waiting, assigned, eligible, online, available,
       oldest_waiting_seconds >= 0 AS has_oldest
FROM team_queue_status;

-- ---------------------------------------------------------------- references
-- A team that chats name cannot be deleted or re-keyed; one without chats can, and its
-- memberships go with it.
DELETE FROM teams WHERE id = :'billing';
UPDATE teams SET id = gen_random_uuid() WHERE id = :'tech';
TRUNCATE teams CASCADE;
SELECT create_team('Empty') AS empty \gset
SELECT add_team_member(:'empty', :'cy') AS joined;
SELECT team_count AS cy_team_count FROM operators WHERE id = :'cy';
DELETE FROM teams WHERE id = :'empty';
SELECT count(*) AS memberships_of_cy FROM team_members WHERE operator_id = :'cy';
-- Memberships deleted with their team leave the count high (sql/references.sql says why):
-- Cy claims through the statement that reads the team tables, and gets the chat without
-- a team all the same; a membership written directly raises the count of its operator.
SELECT team_count AS cy_team_count_after FROM operators WHERE id = :'cy';
SELECT start_chat('00000000-0000-0000-0000-0000000000c9', 'For anyone') AS c9 \gset
SELECT assign_chat_to_operator(:'cy') = :'c9' AS cy_takes_it;
SELECT operator_send_message(:'c9', :'cy', 'Done') IS NOT NULL AS cy_answers;
UPDATE operators SET team_count = 0 WHERE id = :'cy';
SELECT create_team('Direct') AS direct \gset
INSERT INTO team_members (operator_id, team_id) VALUES (:'cy', :'direct');
SELECT team_count AS cy_team_count_direct FROM operators WHERE id = :'cy';
DELETE FROM team_members WHERE team_id = :'direct';
DELETE FROM teams WHERE id = :'direct';
-- An operator's memberships go with it; an operator that memberships name keeps its id.
SELECT create_operator('Dee') AS dee \gset
SELECT add_team_member(:'tech', :'dee') AS joined;
UPDATE operators SET id = gen_random_uuid() WHERE id = :'dee';
DELETE FROM operators WHERE id = :'dee';
SELECT count(*) AS memberships_of_dee FROM team_members WHERE operator_id = :'dee';
-- The reserved key of the queue without a team is no team's id.
INSERT INTO teams (id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'Nil');

-- The invariants and the monitoring agree with the tables (no output: all hold).
\i tests/invariants.sql

\c :home
DROP DATABASE chat_assign_teams;

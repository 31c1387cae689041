-- One database of the teams benchmark (scripts/bench_teams.sh): :n waiting chats spread
-- evenly over :teams teams (0: all without a team), :ops operators (ids md5('op-' || k), as
-- bench/pgbench/cycle_a.sql calls them), each a member of :per teams (operator k of teams
-- k, k + 1, ... modulo :teams). Chats arrive over the last :n * 3 ms, in id order of their
-- arrival; each queue holds every :teams-th of them.
\set ON_ERROR_STOP 1
CREATE EXTENSION chat_assign;
INSERT INTO teams (name) SELECT 'team ' || t FROM generate_series(1, :teams) AS t;
CREATE TEMP TABLE team_list AS
SELECT row_number() OVER (ORDER BY name) AS n, id FROM teams;
INSERT INTO operators (id, name, max_concurrent_chats)
SELECT md5('op-' || k)::uuid, 'operator ' || k, 1 FROM generate_series(1, :ops) AS k;
INSERT INTO team_members (operator_id, team_id)
SELECT md5('op-' || k)::uuid, t.id
FROM generate_series(1, :ops) AS k
CROSS JOIN generate_series(0, :per - 1) AS j
JOIN team_list t ON t.n = (k - 1 + j) % greatest(:teams, 1) + 1
WHERE :teams > 0;
INSERT INTO chats (id, real_user_id, chat_state, waiting_since, state_changed_at, created_at,
                   last_message_at, team_id)
SELECT md5('chat-' || i)::uuid, md5('user-' || i)::uuid, 'waiting_assignment', at, at, at, at,
       (SELECT t.id FROM team_list t WHERE t.n = i % greatest(:teams, 1) + 1)
FROM (SELECT i, now() - (:n - i) * interval '3 ms' AS at FROM generate_series(1, :n) AS i) AS s;
INSERT INTO messages (chat_id, sender_type, content, created_at)
SELECT id, 'real_user', 'Hello, I need help with my order.', created_at FROM chats;
VACUUM ANALYZE;

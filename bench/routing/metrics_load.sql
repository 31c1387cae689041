-- get_service_metrics at scale (scripts/bench_routing.sh): :n chats in 50 teams, :recent of
-- them started in the last 24 hours and the rest over the 30 days before; each was
-- assigned (0–2 minutes after it started) and answered (10 s – 5 min later; one in ten
-- never, and completed: abandoned); one assignment per chat of the last 24 hours (2% of them
-- released for idleness) and a transfer for one in twenty of those chats.
\set ON_ERROR_STOP 1
CREATE EXTENSION chat_assign;
INSERT INTO teams (name) SELECT 'team ' || t FROM generate_series(1, 50) AS t;
CREATE TEMP TABLE team_list AS SELECT row_number() OVER (ORDER BY name) AS n, id FROM teams;
INSERT INTO operators (id, name, max_concurrent_chats)
SELECT md5('op-' || k)::uuid, 'operator ' || k, 3 FROM generate_series(1, 200) AS k;
SELECT setseed(0.7);
INSERT INTO chats (id, real_user_id, chat_state, is_active, waiting_since, state_changed_at,
                   created_at, last_message_at, team_id, last_operator_id,
                   first_assigned_at, first_response_at, operator_replied_at)
SELECT md5('chat-' || i)::uuid, md5('user-' || i)::uuid, 'completed', false, at, at, at, at,
       (SELECT t.id FROM team_list t WHERE t.n = i % 50 + 1),
       md5('op-' || (i % 200 + 1))::uuid,
       at + random() * interval '2 minutes',
       CASE WHEN i % 10 = 0 THEN NULL ELSE at + interval '2 minutes' + (10 + random() * 290) * interval '1 second' END,
       CASE WHEN i % 10 = 0 THEN NULL ELSE at + interval '7 minutes' END
FROM (SELECT i, CASE WHEN i > :n - :recent
                     THEN now() - (:n - i) * (interval '24 hours' / :recent)
                     ELSE now() - interval '24 hours' - (:n - :recent - i) * (interval '30 days' / (:n - :recent))
                END AS at
      FROM generate_series(1, :n) AS i) AS s
ORDER BY i;
INSERT INTO chat_assignments (chat_id, operator_id, assigned_at, released_at, release_reason, last_activity_at)
SELECT c.id, c.last_operator_id, c.first_assigned_at, c.first_assigned_at + interval '8 minutes',
       CASE WHEN random() < 0.02 THEN 'idle_timeout' ELSE 'operator_replied' END, c.first_assigned_at
FROM chats c WHERE c.created_at > now() - interval '24 hours' ORDER BY c.first_assigned_at;
-- Each chat counts its idle releases, as the release statement does.
UPDATE chats c SET idle_releases = 1
FROM chat_assignments a WHERE a.chat_id = c.id AND a.release_reason = 'idle_timeout';
INSERT INTO chat_transfers (chat_id, from_operator_id, from_team_id, to_team_id, reason, transferred_at)
SELECT c.id, c.last_operator_id, c.team_id, (SELECT t.id FROM team_list t WHERE t.n = 1), 'transfer',
       c.first_assigned_at + interval '1 minute'
FROM chats c WHERE c.created_at > now() - interval '24 hours' AND random() < 0.05
ORDER BY c.first_assigned_at;
VACUUM ANALYZE;

-- Monitoring views. Stored parsed at CREATE EXTENSION time, so they always read the
-- extension's own tables whatever the caller's search_path.

-- One row per state, all four, zeros included: how many chats, since when the oldest has
-- been in that state, and how long they have been there on average. Counts and averages
-- come from the running totals (sql/state_totals.sql); the oldest is one index probe per
-- state: no scan of the chats, however many there are.
CREATE VIEW chat_state_summary AS
SELECT t.chat_state,
       t.chat_count,
       o.oldest                                             AS oldest_state_changed_at,
       CASE WHEN t.chat_count > 0
            THEN round(extract(epoch FROM now()) - t.changed_epoch / t.chat_count, 1)
            ELSE 0
       END                                                  AS avg_seconds_in_state
FROM chat_state_totals t
LEFT JOIN LATERAL (SELECT min(c.state_changed_at) AS oldest
                   FROM chats c WHERE c.chat_state = t.chat_state) AS o ON true
ORDER BY t.ord;

-- Per operator over the last 24 hours (plus any assignment still open, however old):
-- assignments taken, released, still active, and the average time from assignment to release.
-- The last 24 hours come through the BRIN index on assigned_at; the open assignments older
-- than that through the assigned chats (a handful) and each one's newest assignment, not a
-- scan of the whole history.
CREATE VIEW operator_assignment_stats AS
WITH recent AS (
    SELECT ca.operator_id, ca.assigned_at, ca.released_at
    FROM chat_assignments ca
    WHERE ca.assigned_at > now() - interval '24 hours'
    UNION ALL
    SELECT ca.operator_id, ca.assigned_at, ca.released_at
    FROM chats c
    JOIN chat_assignments ca
      ON ca.id = (SELECT max(l.id) FROM chat_assignments l WHERE l.chat_id = c.id)
     AND ca.released_at IS NULL
    WHERE c.assigned_operator_id IS NOT NULL
      AND ca.assigned_at <= now() - interval '24 hours'
)
SELECT o.id                                                         AS operator_id,
       o.name                                                       AS operator_name,
       o.is_active,
       o.max_concurrent_chats,
       count(r.operator_id)                                         AS total_assignments,
       count(r.released_at)                                         AS released_assignments,
       count(r.operator_id) FILTER (WHERE r.released_at IS NULL)    AS active_assignments,
       round(avg(extract(epoch FROM r.released_at - r.assigned_at)), 1)
                                                                    AS avg_handling_seconds
FROM operators o
LEFT JOIN recent r ON r.operator_id = o.id
GROUP BY o.id, o.name, o.is_active, o.max_concurrent_chats;

-- The heartbeats of the assigned operators: one row per open assignment. Until 0.3 this was
-- a table whose rows were inserted and deleted with every assignment; the heartbeat now
-- lives on the open assignment row (chat_assignments.last_activity_at). Found through the
-- assigned chats (no index covers released_at, so that releases stay HOT updates). Read
-- only: a heartbeat is touch_operator_activity(), or an UPDATE of chat_assignments.
CREATE VIEW operator_activity AS
SELECT ca.operator_id, ca.chat_id, ca.last_activity_at
FROM chats c
JOIN chat_assignments ca
  ON ca.id = (SELECT max(l.id) FROM chat_assignments l WHERE l.chat_id = c.id)
 AND ca.released_at IS NULL
WHERE c.assigned_operator_id IS NOT NULL;

-- One row per queue: each team's, and the one of chats without a team (team_id NULL): how
-- many chats wait in it and since when the oldest, how many of its chats are assigned, and
-- who may take them: eligible operators (the team's members; everyone for chats without a
-- team), how many of those are online and active, and how many of those have room for
-- another chat. The waiting count and oldest wait read the queue's part of the queue index
-- (index-only where the visibility map allows): the cost grows with the waiting chats,
-- about 100 ms per million; get_assignment_queue_status() answers the totals from the
-- running totals instead.
CREATE VIEW team_queue_status AS
WITH queues AS (
    SELECT NULL::uuid AS team_id, NULL::text AS team_name, NULL::text AS routing,
           '00000000-0000-0000-0000-000000000000'::uuid AS k
    UNION ALL
    SELECT t.id, t.name, t.routing, t.id FROM teams t
),
-- Each operator once: online (and active), and with room for another chat. Counted per
-- queue by a join, not per queue and operator: the plan's estimate stays small while the
-- small tables have no statistics yet (which would otherwise make every read JIT-compile).
operator_load AS MATERIALIZED (
    SELECT o.id, o.is_active AND o.status = 'online' AS online,
           o.max_concurrent_chats > (SELECT count(*) FROM chats c
                                     WHERE c.assigned_operator_id = o.id) AS has_room
    FROM operators o
),
team_load AS (
    SELECT m.team_id, count(*) AS eligible,
           count(*) FILTER (WHERE l.online) AS online,
           count(*) FILTER (WHERE l.online AND l.has_room) AS available
    FROM team_members m JOIN operator_load l ON l.id = m.operator_id
    GROUP BY m.team_id
),
everyone AS (
    SELECT count(*) AS eligible,
           count(*) FILTER (WHERE l.online) AS online,
           count(*) FILTER (WHERE l.online AND l.has_room) AS available
    FROM operator_load l
)
SELECT q.team_id,
       q.team_name,
       q.routing,
       w.waiting,
       round(extract(epoch FROM now() - w.oldest), 1)::float8            AS oldest_waiting_seconds,
       (SELECT count(*) FROM chats c
         WHERE c.assigned_operator_id IS NOT NULL
           AND coalesce(c.team_id, '00000000-0000-0000-0000-000000000000'::uuid) = q.k)
                                                                          AS assigned,
       CASE WHEN q.team_id IS NULL THEN a.eligible ELSE coalesce(t.eligible, 0) END AS eligible,
       CASE WHEN q.team_id IS NULL THEN a.online ELSE coalesce(t.online, 0) END     AS online,
       CASE WHEN q.team_id IS NULL THEN a.available ELSE coalesce(t.available, 0) END AS available
FROM queues q
CROSS JOIN LATERAL (
    SELECT count(*) AS waiting, min(c.waiting_since) AS oldest
    FROM chats c
    WHERE coalesce(c.team_id, '00000000-0000-0000-0000-000000000000'::uuid) = q.k
      AND c.chat_state = 'waiting_assignment' AND c.is_active
) AS w
LEFT JOIN team_load t ON t.team_id = q.team_id
CROSS JOIN everyone a
ORDER BY q.team_name NULLS FIRST;

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
CREATE VIEW operator_assignment_stats AS
SELECT o.id                                                         AS operator_id,
       o.name                                                       AS operator_name,
       o.is_active,
       o.max_concurrent_chats,
       count(ca.id)                                                 AS total_assignments,
       count(ca.released_at)                                        AS released_assignments,
       count(ca.id) FILTER (WHERE ca.released_at IS NULL)           AS active_assignments,
       round(avg(extract(epoch FROM ca.released_at - ca.assigned_at)), 1)
                                                                    AS avg_handling_seconds
FROM operators o
LEFT JOIN chat_assignments ca
       ON ca.operator_id = o.id
      AND (ca.assigned_at > now() - interval '24 hours' OR ca.released_at IS NULL)
GROUP BY o.id, o.name, o.is_active, o.max_concurrent_chats;

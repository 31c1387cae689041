-- Monitoring views. Stored parsed at CREATE EXTENSION time, so they always read the
-- extension's own tables whatever the caller's search_path.

-- One row per state, all four, zeros included: how many chats, since when the oldest has
-- been in that state, and how long they have been there on average.
CREATE VIEW chat_state_summary AS
SELECT s.state                                              AS chat_state,
       count(c.id)                                          AS chat_count,
       min(c.state_changed_at)                              AS oldest_state_changed_at,
       coalesce(round(avg(extract(epoch FROM now() - c.state_changed_at)), 1), 0)
                                                            AS avg_seconds_in_state
FROM unnest(enum_range(NULL::chat_state)) WITH ORDINALITY AS s (state, ord)
LEFT JOIN chats c ON c.chat_state = s.state
GROUP BY s.state, s.ord
ORDER BY s.ord;

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

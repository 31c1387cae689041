-- The invariants of the contract (docs/api.md), and the agreement of the monitoring with the
-- tables, as violation counts in one statement (one snapshot). Prints only what is violated:
-- no rows means everything holds. The one definition every test layer uses: the operations
-- suite and pg_regress run this file, #[pg_test] and the stress test include it, the
-- isolation specs read it through a view (tests/isolation/fixture.sql). Unqualified: it reads
-- the extension's tables through the caller's search_path.
SELECT check_name || ': ' || violations
FROM (VALUES
  ('inv1: assigned <=> assigned_operator_id not null',
   (SELECT count(*) FROM chats
     WHERE (chat_state = 'assigned') <> (assigned_operator_id IS NOT NULL))),
  ('inv1: assigned => exactly one open assignment, of that operator',
   (SELECT count(*) FROM chats c
     WHERE c.chat_state = 'assigned'
       AND (SELECT count(*) FROM chat_assignments a
             WHERE a.chat_id = c.id AND a.released_at IS NULL
               AND a.operator_id = c.assigned_operator_id) <> 1)),
  ('inv1: open assignment => chat assigned',
   (SELECT count(*) FROM chat_assignments a JOIN chats c ON c.id = a.chat_id
     WHERE a.released_at IS NULL AND c.chat_state <> 'assigned')),
  ('inv2: waiting_real_user_reply => operator_replied_at',
   (SELECT count(*) FROM chats
     WHERE chat_state = 'waiting_real_user_reply' AND operator_replied_at IS NULL)),
  ('inv3: open assignments <= max_concurrent_chats',
   (SELECT count(*) FROM operators o
     WHERE (SELECT count(*) FROM chat_assignments a
             WHERE a.operator_id = o.id AND a.released_at IS NULL) > o.max_concurrent_chats)),
  ('inv4: completed => not is_active, no open assignment',
   (SELECT count(*) FROM chats c
     WHERE c.chat_state = 'completed'
       AND (c.is_active OR EXISTS (SELECT 1 FROM chat_assignments a
                                    WHERE a.chat_id = c.id AND a.released_at IS NULL)))),
  ('heartbeats exactly for the open assignments',
   (SELECT count(*) FROM operator_activity oa FULL JOIN
           (SELECT chat_id, operator_id FROM chat_assignments WHERE released_at IS NULL) a
           USING (chat_id, operator_id)
     WHERE oa.chat_id IS NULL OR a.chat_id IS NULL)),
  ('at most one open assignment per chat',
   (SELECT count(*) FROM (SELECT chat_id FROM chat_assignments WHERE released_at IS NULL
                          GROUP BY chat_id HAVING count(*) > 1) AS twice)),
  ('monitoring: the running totals (counts and time sums per state) equal a full scan',
   (SELECT count(*) FROM chat_state_totals t
     WHERE t.chat_count <> (SELECT count(*) FROM chats c WHERE c.chat_state = t.chat_state)
        OR coalesce(t.changed_epoch, 0) <> coalesce((SELECT sum(extract(epoch FROM c.state_changed_at))
                                                    FROM chats c WHERE c.chat_state = t.chat_state), 0)
        OR t.queue_count <> (SELECT count(*) FROM chats c WHERE c.chat_state = t.chat_state
                                AND c.chat_state = 'waiting_assignment' AND c.is_active)
        OR coalesce(t.waiting_epoch, 0) <> coalesce((SELECT sum(extract(epoch FROM c.waiting_since))
                                                    FROM chats c WHERE c.chat_state = t.chat_state
                                                      AND c.chat_state = 'waiting_assignment'
                                                      AND c.is_active), 0))),
  ('references: every message, assignment and last operator names a row that exists',
   (SELECT count(*) FROM messages m
     WHERE NOT EXISTS (SELECT FROM chats c WHERE c.id = m.chat_id)
        OR (m.operator_id IS NOT NULL
            AND NOT EXISTS (SELECT FROM operators o WHERE o.id = m.operator_id)))
   + (SELECT count(*) FROM chat_assignments a
       WHERE NOT EXISTS (SELECT FROM chats c WHERE c.id = a.chat_id)
          OR NOT EXISTS (SELECT FROM operators o WHERE o.id = a.operator_id))
   + (SELECT count(*) FROM chats c
       WHERE c.last_operator_id IS NOT NULL
         AND NOT EXISTS (SELECT FROM operators o WHERE o.id = c.last_operator_id))),
  ('teams: a chat of a team is assigned only to a member of that team',
   (SELECT count(*) FROM chats c
     WHERE c.chat_state = 'assigned' AND c.team_id IS NOT NULL
       AND NOT EXISTS (SELECT FROM team_members m
                        WHERE m.team_id = c.team_id AND m.operator_id = c.assigned_operator_id))),
  ('operators: every chat an operator holds is in its held_chat_ids',
   (SELECT count(*) FROM chats c JOIN operators o ON o.id = c.assigned_operator_id
     WHERE NOT (c.id = ANY (o.held_chat_ids)))),
  ('teams: an operator with memberships has a team_count',
   (SELECT count(*) FROM operators o
     WHERE o.team_count = 0 AND EXISTS (SELECT FROM team_members m WHERE m.operator_id = o.id))),
  ('presence: no chat is assigned to an offline operator',
   (SELECT count(*) FROM chats c JOIN operators o ON o.id = c.assigned_operator_id
     WHERE c.chat_state = 'assigned' AND o.status = 'offline')),
  ('teams: every chat''s team exists',
   (SELECT count(*) FROM chats c
     WHERE c.team_id IS NOT NULL AND NOT EXISTS (SELECT FROM teams t WHERE t.id = c.team_id))),
  ('monitoring: team_queue_status counts = the tables',
   (SELECT count(*) FROM team_queue_status q
     WHERE q.waiting <> (SELECT count(*) FROM chats c
                          WHERE c.team_id IS NOT DISTINCT FROM q.team_id
                            AND c.chat_state = 'waiting_assignment' AND c.is_active)
        OR q.assigned <> (SELECT count(*) FROM chats c
                           WHERE c.team_id IS NOT DISTINCT FROM q.team_id
                             AND c.chat_state = 'assigned'))
   + abs((SELECT count(*) FROM team_queue_status) - 1 - (SELECT count(*) FROM teams))),
  -- The least times: each row's time is its transaction's start, not the order of writing.
  ('service metrics: each chat''s first assignment, first reply and idle releases = its history',
   (SELECT count(*) FROM chats c
     WHERE c.first_assigned_at IS DISTINCT FROM
             (SELECT min(a.assigned_at) FROM chat_assignments a WHERE a.chat_id = c.id)
        OR c.first_response_at IS DISTINCT FROM
             (SELECT min(m.created_at) FROM messages m
               WHERE m.chat_id = c.id AND m.sender_type = 'operator')
        OR c.idle_releases <> (SELECT count(*) FROM chat_assignments a
                                WHERE a.chat_id = c.id AND a.release_reason = 'idle_timeout'))),
  ('released assignments have a reason and a time after the assignment',
   (SELECT count(*) FROM chat_assignments
     WHERE (released_at IS NULL) <> (release_reason IS NULL) OR released_at < assigned_at)),
  ('monitoring: chat_state_summary has the four states with the counts of chats',
   (SELECT count(*) FROM (SELECT s.chat_state, s.chat_count FROM chat_state_summary s
                          EXCEPT ALL
                          SELECT e.state, (SELECT count(*) FROM chats c WHERE c.chat_state = e.state)
                          FROM unnest(enum_range(NULL::chat_state)) AS e (state)) AS d)
   + abs((SELECT count(*) FROM chat_state_summary) - 4)),
  ('monitoring: get_assignment_queue_status counts = the tables',
   (SELECT (q.waiting_count <> (SELECT count(*) FROM chats
                                 WHERE chat_state = 'waiting_assignment' AND is_active))::int
         + (q.assigned_count <> (SELECT count(*) FROM chats WHERE chat_state = 'assigned'))::int
         + (q.waiting_reply_count <> (SELECT count(*) FROM chats
                                       WHERE chat_state = 'waiting_real_user_reply'))::int
         + (q.active_operators <> o.active)::int
         + (q.busy_operators <> o.busy)::int
         + (q.available_operators <> o.active - o.busy)::int
    FROM get_assignment_queue_status() q,
         (SELECT count(*) FILTER (WHERE op.is_active) AS active,
                 count(*) FILTER (WHERE op.is_active
                                    AND (SELECT count(*) FROM chat_assignments a
                                          WHERE a.operator_id = op.id AND a.released_at IS NULL)
                                        >= op.max_concurrent_chats) AS busy
          FROM operators op) o))
) AS v (check_name, violations)
WHERE violations <> 0;

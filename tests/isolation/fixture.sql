-- The fixture every isolation spec of tests/isolation/specs uses (not the events specs,
-- which set up their own), created once in the test database by scripts/isolation.sh
-- before the specs run; each spec's teardown truncates the tables. Lookups by name and
-- number, chats at fixed ids, a view of every chat and one of the invariants; for the races
-- of teams, presence and transfers, views that name teams, transfers and change events.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS chat_assign;

CREATE FUNCTION iso_op(p_name text) RETURNS uuid LANGUAGE sql
  AS $$ SELECT id FROM operators WHERE name = p_name $$;
CREATE FUNCTION iso_chat(p_n int) RETURNS uuid LANGUAGE sql IMMUTABLE
  AS $$ SELECT ('c0000000-0000-0000-0000-' || lpad(p_n::text, 12, '0'))::uuid $$;
CREATE FUNCTION iso_label(p_chat uuid) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT CASE WHEN p_chat IS NULL THEN 'none'
                    WHEN p_chat::text LIKE 'c0000000-0000-0000-0000-%'
                    THEN 'chat' || ltrim(right(p_chat::text, 12), '0')
                    ELSE 'unexpected chat' END $$;
CREATE FUNCTION iso_team(p_name text) RETURNS uuid LANGUAGE sql
  AS $$ SELECT id FROM teams WHERE name = p_name $$;
-- start_chat() for real user n (in the team named p_team, if given), then the chat (its
-- first message and its chat_started event too) moved to the fixed id iso_chat(n), so
-- that ids in error messages are deterministic.
CREATE FUNCTION iso_start_chat(p_n int, p_content text, p_team text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v_team uuid := iso_team(p_team);
  v_new uuid;
BEGIN
  IF p_team IS NOT NULL AND v_team IS NULL THEN
    RAISE EXCEPTION 'iso_start_chat: no team named %', p_team;
  END IF;
  v_new := start_chat(('00000000-0000-0000-0000-' || lpad(p_n::text, 12, '0'))::uuid, p_content,
                      p_team_id => v_team);
  INSERT INTO chats
    SELECT (jsonb_populate_record(c, jsonb_build_object('id', iso_chat(p_n)))).*
    FROM chats c WHERE c.id = v_new;
  UPDATE messages SET chat_id = iso_chat(p_n) WHERE chat_id = v_new;
  UPDATE chat_events SET chat_id = iso_chat(p_n) WHERE chat_id = v_new;
  DELETE FROM chats WHERE id = v_new;
  RETURN iso_label(iso_chat(p_n));
END $$;

CREATE VIEW iso_chats AS
SELECT iso_label(c.id) AS chat,
       c.chat_state, c.is_active,
       (SELECT name FROM operators WHERE id = c.assigned_operator_id) AS assigned_to,
       (SELECT count(*) FROM chat_assignments a
         WHERE a.chat_id = c.id AND a.released_at IS NULL) AS open_asg,
       (SELECT string_agg(o.name || ':' || coalesce(a.release_reason, 'open'), ' ' ORDER BY a.id)
          FROM chat_assignments a JOIN operators o ON o.id = a.operator_id
         WHERE a.chat_id = c.id) AS assignments,
       (SELECT string_agg(m.content, ' | ' ORDER BY m.id)
          FROM messages m WHERE m.chat_id = c.id) AS messages
FROM chats c
ORDER BY c.id;

-- Chats with their team, for the races of teams, presence and transfers: who holds each
-- one and who last did (the operator a follow-up may come from while it waits for its
-- user), its team, and whether it still has the place in the queue it started with
-- (first_place: start_chat sets waiting_since and created_at to the same now(); a release,
-- a transfer or going offline keeps waiting_since, a user's message on a chat that was not
-- waiting starts a new one).
CREATE VIEW iso_team_chats AS
SELECT iso_label(c.id) AS chat,
       c.chat_state,
       (SELECT name FROM operators WHERE id = c.assigned_operator_id) AS holder,
       (SELECT name FROM operators WHERE id = c.last_operator_id) AS last_op,
       (SELECT name FROM teams WHERE id = c.team_id) AS team,
       c.waiting_since = c.created_at AS first_place,
       (SELECT string_agg(o.name || ':' || coalesce(a.release_reason, 'open'), ' ' ORDER BY a.id)
          FROM chat_assignments a JOIN operators o ON o.id = a.operator_id
         WHERE a.chat_id = c.id) AS assignments,
       (SELECT string_agg(m.content, ' | ' ORDER BY m.id)
          FROM messages m WHERE m.chat_id = c.id) AS messages
FROM chats c
ORDER BY c.id;

-- The transfer history (chat_transfers) with names.
CREATE VIEW iso_transfers AS
SELECT iso_label(x.chat_id) AS chat,
       (SELECT name FROM operators WHERE id = x.from_operator_id) AS from_op,
       (SELECT name FROM teams WHERE id = x.from_team_id) AS from_team,
       (SELECT name FROM operators WHERE id = x.to_operator_id) AS to_op,
       (SELECT name FROM teams WHERE id = x.to_team_id) AS to_team,
       x.reason
FROM chat_transfers x
ORDER BY x.id;

-- The change events (chat_events) with names, in id order; ids themselves are left out
-- (a rolled-back call uses some up).
CREATE VIEW iso_chat_events AS
SELECT iso_label(e.chat_id) AS chat, e.old_state, e.new_state,
       (SELECT name FROM operators WHERE id = e.operator_id) AS operator,
       (SELECT name FROM teams WHERE id = e.team_id) AS team,
       e.reason
FROM chat_events e
ORDER BY e.id;

-- The invariants as tests/invariants.sql defines them (read into :invariants by
-- scripts/isolation.sh): 'all hold', or the checks violated with their counts.
CREATE VIEW iso_invariants AS
SELECT coalesce(string_agg(v.violated, '; ' ORDER BY v.violated), 'all hold') AS invariants
FROM (:invariants) AS v (violated);

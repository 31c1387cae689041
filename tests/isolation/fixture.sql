-- The fixture every isolation spec of tests/isolation/specs uses (not the events specs,
-- which set up their own), created once in the test database by scripts/isolation.sh
-- before the specs run; each spec's teardown truncates the tables. Lookups by name and
-- number, chats at fixed ids, a view of every chat and one of the invariants.
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
-- start_chat() for real user n, then the chat (and its first message) moved to
-- the fixed id iso_chat(n), so that ids in error messages are deterministic.
CREATE FUNCTION iso_start_chat(p_n int, p_content text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v_new uuid := start_chat(('00000000-0000-0000-0000-' || lpad(p_n::text, 12, '0'))::uuid, p_content);
BEGIN
  INSERT INTO chats
    SELECT (jsonb_populate_record(c, jsonb_build_object('id', iso_chat(p_n)))).*
    FROM chats c WHERE c.id = v_new;
  UPDATE messages SET chat_id = iso_chat(p_n) WHERE chat_id = v_new;
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


-- The invariants as tests/invariants.sql defines them (read into :invariants by
-- scripts/isolation.sh): 'all hold', or the checks violated with their counts.
CREATE VIEW iso_invariants AS
SELECT coalesce(string_agg(v.violated, '; ' ORDER BY v.violated), 'all hold') AS invariants
FROM (:invariants) AS v (violated);

-- (d) the PL/pgSQL peer: the twelve API functions and two views (0.2 contract).
-- Lock order everywhere: operator row, then chat row(s); the claim never waits on a chat.
-- SQLSTATEs: 22004 NULL argument, 22023 bad value, P0002 unknown id, 55000 wrong state.

-- Closes the chat's open assignment and its heartbeat (the chat row is locked by the caller).
CREATE FUNCTION public._release_open(p_chat_id uuid, p_reason text) RETURNS void
LANGUAGE sql SET search_path = public AS $$
    UPDATE chat_assignments SET released_at = now(), release_reason = p_reason
     WHERE chat_id = p_chat_id AND released_at IS NULL;
    DELETE FROM operator_activity WHERE chat_id = p_chat_id;
$$;

CREATE FUNCTION public.start_chat(p_real_user_id uuid, p_content text) RETURNS uuid
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_chat uuid;
BEGIN
    IF p_real_user_id IS NULL OR p_content IS NULL THEN
        RAISE EXCEPTION 'p_real_user_id and p_content are required' USING ERRCODE = '22004'; END IF;
    IF btrim(p_content) = '' THEN RAISE EXCEPTION 'p_content is blank' USING ERRCODE = '22023'; END IF;
    INSERT INTO chats (real_user_id, chat_state, waiting_since, state_changed_at, last_message_at)
    VALUES (p_real_user_id, 'waiting_assignment', now(), now(), now()) RETURNING id INTO v_chat;
    INSERT INTO messages (chat_id, sender_type, content) VALUES (v_chat, 'real_user', p_content);
    RETURN v_chat;
END $$;

CREATE FUNCTION public.real_user_send_message(p_chat_id uuid, p_content text) RETURNS bigint
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_state chat_state; v_msg bigint;
BEGIN
    IF p_chat_id IS NULL OR p_content IS NULL THEN
        RAISE EXCEPTION 'p_chat_id and p_content are required' USING ERRCODE = '22004'; END IF;
    IF btrim(p_content) = '' THEN RAISE EXCEPTION 'p_content is blank' USING ERRCODE = '22023'; END IF;
    -- The common case first, in one statement: no open assignment to release.
    UPDATE chats SET chat_state = 'waiting_assignment', is_active = true, waiting_since = now(),
                     state_changed_at = now(), last_message_at = now()
     WHERE id = p_chat_id AND chat_state IN ('waiting_real_user_reply', 'completed');
    IF NOT FOUND THEN
        SELECT chat_state INTO v_state FROM chats WHERE id = p_chat_id FOR NO KEY UPDATE;
        IF NOT FOUND THEN RAISE EXCEPTION 'chat % not found', p_chat_id USING ERRCODE = 'P0002'; END IF;
        IF v_state = 'waiting_assignment' THEN          -- keeps its place in the queue
            UPDATE chats SET last_message_at = now() WHERE id = p_chat_id;
        ELSE                                            -- assigned, or changed since the UPDATE
            PERFORM _release_open(p_chat_id, 'real_user_message');
            UPDATE chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL, is_active = true,
                             waiting_since = now(), state_changed_at = now(), last_message_at = now()
             WHERE id = p_chat_id;
        END IF;
    END IF;
    INSERT INTO messages (chat_id, sender_type, content) VALUES (p_chat_id, 'real_user', p_content)
    RETURNING id INTO v_msg;
    RETURN v_msg;
END $$;

CREATE FUNCTION public.operator_send_message(p_chat_id uuid, p_operator_id uuid, p_content text) RETURNS bigint
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE c record; v_msg bigint;
BEGIN
    IF p_chat_id IS NULL OR p_operator_id IS NULL OR p_content IS NULL THEN
        RAISE EXCEPTION 'p_chat_id, p_operator_id and p_content are required' USING ERRCODE = '22004'; END IF;
    IF btrim(p_content) = '' THEN RAISE EXCEPTION 'p_content is blank' USING ERRCODE = '22023'; END IF;
    -- The assigned operator answers: one UPDATE checks and changes the chat.
    UPDATE chats SET chat_state = 'waiting_real_user_reply', assigned_operator_id = NULL,
                     last_operator_id = p_operator_id, operator_replied_at = now(),
                     state_changed_at = now(), last_message_at = now()
     WHERE id = p_chat_id AND chat_state = 'assigned' AND assigned_operator_id = p_operator_id;
    IF FOUND THEN
        UPDATE chat_assignments SET released_at = now(), release_reason = 'operator_replied'
         WHERE chat_id = p_chat_id AND released_at IS NULL;
        DELETE FROM operator_activity WHERE chat_id = p_chat_id AND operator_id = p_operator_id;
    ELSE
        SELECT chat_state, last_operator_id INTO c FROM chats WHERE id = p_chat_id FOR NO KEY UPDATE;
        IF NOT FOUND THEN RAISE EXCEPTION 'chat % not found', p_chat_id USING ERRCODE = 'P0002'; END IF;
        IF c.chat_state = 'waiting_real_user_reply' AND c.last_operator_id = p_operator_id THEN
            UPDATE chats SET last_message_at = now() WHERE id = p_chat_id;     -- a follow-up
        ELSIF NOT EXISTS (SELECT 1 FROM operators WHERE id = p_operator_id) THEN
            RAISE EXCEPTION 'operator % not found', p_operator_id USING ERRCODE = 'P0002';
        ELSE
            RAISE EXCEPTION 'chat % is not assigned to operator %', p_chat_id, p_operator_id
                USING ERRCODE = '55000';
        END IF;
    END IF;
    INSERT INTO messages (chat_id, sender_type, operator_id, content)
    VALUES (p_chat_id, 'operator', p_operator_id, p_content) RETURNING id INTO v_msg;
    RETURN v_msg;
END $$;

CREATE FUNCTION public.assign_chat_to_operator(p_operator_id uuid) RETURNS uuid
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE o record; v_open int; v_chat uuid;
BEGIN
    IF p_operator_id IS NULL THEN RAISE EXCEPTION 'p_operator_id is required' USING ERRCODE = '22004'; END IF;
    -- The operator row lock serialises this operator's claims: the capacity check holds.
    SELECT is_active, max_concurrent_chats INTO o FROM operators WHERE id = p_operator_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'operator % not found', p_operator_id USING ERRCODE = 'P0002'; END IF;
    IF NOT o.is_active THEN RAISE EXCEPTION 'operator % is inactive', p_operator_id USING ERRCODE = '55000'; END IF;
    SELECT count(*) INTO v_open FROM chat_assignments WHERE operator_id = p_operator_id AND released_at IS NULL;
    IF v_open >= o.max_concurrent_chats THEN
        RAISE EXCEPTION 'operator % already has an active assignment (% of %)', p_operator_id, v_open,
            o.max_concurrent_chats USING ERRCODE = '55000';
    END IF;
    IF coalesce(current_setting('chat_assign.avoid_same_operator', true), '') NOT IN ('off', 'false', '0') THEN
        SELECT id INTO v_chat FROM chats
         WHERE chat_state = 'waiting_assignment' AND is_active
           AND last_operator_id IS DISTINCT FROM p_operator_id
         ORDER BY priority DESC, waiting_since, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
    END IF;
    IF v_chat IS NULL THEN
        SELECT id INTO v_chat FROM chats
         WHERE chat_state = 'waiting_assignment' AND is_active
         ORDER BY priority DESC, waiting_since, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        IF v_chat IS NULL THEN RETURN NULL; END IF;
    END IF;
    UPDATE chats SET chat_state = 'assigned', assigned_operator_id = p_operator_id,
                     last_operator_id = p_operator_id, assigned_at = now(), state_changed_at = now()
     WHERE id = v_chat;
    INSERT INTO chat_assignments (chat_id, operator_id) VALUES (v_chat, p_operator_id);
    INSERT INTO operator_activity (chat_id, operator_id) VALUES (v_chat, p_operator_id)
        ON CONFLICT (chat_id, operator_id) DO UPDATE SET last_activity_at = now();
    UPDATE operators SET last_assigned_at = now() WHERE id = p_operator_id;
    RETURN v_chat;
END $$;

CREATE FUNCTION public.release_and_reassign_chat(p_chat_id uuid, p_reason text DEFAULT 'manual_unassign')
RETURNS boolean LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_state chat_state;
BEGIN
    IF p_chat_id IS NULL OR p_reason IS NULL THEN
        RAISE EXCEPTION 'p_chat_id and p_reason are required' USING ERRCODE = '22004'; END IF;
    IF btrim(p_reason) = '' THEN RAISE EXCEPTION 'p_reason is blank' USING ERRCODE = '22023'; END IF;
    SELECT chat_state INTO v_state FROM chats WHERE id = p_chat_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'chat % not found', p_chat_id USING ERRCODE = 'P0002'; END IF;
    IF v_state <> 'assigned' THEN RETURN false; END IF;
    PERFORM _release_open(p_chat_id, p_reason);
    UPDATE chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL,   -- keeps waiting_since
                     state_changed_at = now() WHERE id = p_chat_id;
    RETURN true;
END $$;

CREATE FUNCTION public.touch_operator_activity(p_operator_id uuid, p_chat_id uuid) RETURNS boolean
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    IF p_operator_id IS NULL OR p_chat_id IS NULL THEN
        RAISE EXCEPTION 'p_operator_id and p_chat_id are required' USING ERRCODE = '22004'; END IF;
    UPDATE operator_activity SET last_activity_at = now() WHERE chat_id = p_chat_id AND operator_id = p_operator_id;
    IF FOUND THEN RETURN true; END IF;
    IF NOT EXISTS (SELECT 1 FROM operators WHERE id = p_operator_id) THEN
        RAISE EXCEPTION 'operator % not found', p_operator_id USING ERRCODE = 'P0002'; END IF;
    IF NOT EXISTS (SELECT 1 FROM chats WHERE id = p_chat_id) THEN
        RAISE EXCEPTION 'chat % not found', p_chat_id USING ERRCODE = 'P0002'; END IF;
    RETURN false;
END $$;

CREATE FUNCTION public.release_idle_assignments(p_idle_after interval DEFAULT NULL)
RETURNS TABLE (chat_id uuid, operator_id uuid, idle_seconds float8)
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_after interval := coalesce(p_idle_after,
            coalesce(nullif(current_setting('chat_assign.idle_timeout', true), ''), '5 min')::interval);
        r record;
BEGIN
    IF v_after <= interval '0' THEN RAISE EXCEPTION 'p_idle_after must be positive' USING ERRCODE = '22023'; END IF;
    FOR r IN SELECT c.id, a.operator_id AS op, a.last_activity_at
               FROM operator_activity a JOIN chats c ON c.id = a.chat_id
              WHERE a.last_activity_at < now() - v_after
                AND c.chat_state = 'assigned' AND c.assigned_operator_id = a.operator_id
              FOR NO KEY UPDATE OF c SKIP LOCKED
    LOOP
        PERFORM _release_open(r.id, 'idle_timeout');
        UPDATE chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL, state_changed_at = now()
         WHERE id = r.id;
        chat_id := r.id; operator_id := r.op;
        idle_seconds := extract(epoch FROM now() - r.last_activity_at);
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION public.complete_chat(p_chat_id uuid) RETURNS boolean
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_state chat_state;
BEGIN
    IF p_chat_id IS NULL THEN RAISE EXCEPTION 'p_chat_id is required' USING ERRCODE = '22004'; END IF;
    SELECT chat_state INTO v_state FROM chats WHERE id = p_chat_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'chat % not found', p_chat_id USING ERRCODE = 'P0002'; END IF;
    IF v_state = 'completed' THEN RETURN false; END IF;
    IF v_state = 'assigned' THEN PERFORM _release_open(p_chat_id, 'completed'); END IF;
    UPDATE chats SET chat_state = 'completed', assigned_operator_id = NULL, is_active = false,
                     state_changed_at = now() WHERE id = p_chat_id;
    RETURN true;
END $$;

CREATE FUNCTION public.create_operator(p_name text, p_max_concurrent_chats int DEFAULT 1) RETURNS uuid
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_id uuid;
BEGIN
    IF p_name IS NULL OR p_max_concurrent_chats IS NULL THEN
        RAISE EXCEPTION 'p_name and p_max_concurrent_chats are required' USING ERRCODE = '22004'; END IF;
    IF btrim(p_name) = '' OR p_max_concurrent_chats < 1 THEN
        RAISE EXCEPTION 'blank name or capacity % < 1', p_max_concurrent_chats USING ERRCODE = '22023'; END IF;
    INSERT INTO operators (name, max_concurrent_chats) VALUES (p_name, p_max_concurrent_chats) RETURNING id INTO v_id;
    RETURN v_id;
END $$;

CREATE FUNCTION public.set_operator_active(p_operator_id uuid, p_is_active boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE v_was boolean; r record;
BEGIN
    IF p_operator_id IS NULL OR p_is_active IS NULL THEN
        RAISE EXCEPTION 'p_operator_id and p_is_active are required' USING ERRCODE = '22004'; END IF;
    SELECT is_active INTO v_was FROM operators WHERE id = p_operator_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'operator % not found', p_operator_id USING ERRCODE = 'P0002'; END IF;
    IF v_was = p_is_active THEN RETURN false; END IF;
    UPDATE operators SET is_active = p_is_active WHERE id = p_operator_id;
    IF NOT p_is_active THEN
        FOR r IN SELECT id FROM chats WHERE assigned_operator_id = p_operator_id ORDER BY id FOR NO KEY UPDATE LOOP
            PERFORM _release_open(r.id, 'operator_inactive');
            UPDATE chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL, state_changed_at = now()
             WHERE id = r.id;
        END LOOP;
    END IF;
    RETURN true;
END $$;

CREATE FUNCTION public.get_assignment_queue_status()
RETURNS TABLE (waiting_count bigint, assigned_count bigint, waiting_reply_count bigint,
               oldest_waiting_seconds float8, avg_waiting_seconds float8,
               active_operators bigint, busy_operators bigint, available_operators bigint)
LANGUAGE sql STABLE SET search_path = public AS $$
    SELECT w.n, (SELECT count(*) FROM chats WHERE chat_state = 'assigned'),
           (SELECT count(*) FROM chats WHERE chat_state = 'waiting_real_user_reply'),
           w.oldest, w.avg, o.active, o.busy, o.active - o.busy
    FROM (SELECT count(*) AS n, extract(epoch FROM now() - min(waiting_since))::float8 AS oldest,
                 avg(extract(epoch FROM now() - waiting_since))::float8 AS avg
            FROM chats WHERE chat_state = 'waiting_assignment' AND is_active) w,
         (SELECT count(*) AS active,
                 count(*) FILTER (WHERE (SELECT count(*) FROM chat_assignments ca
                                          WHERE ca.operator_id = op.id AND ca.released_at IS NULL)
                                        >= op.max_concurrent_chats) AS busy
            FROM operators op WHERE op.is_active) o;
$$;

CREATE FUNCTION public.detect_stuck_chats(p_hours numeric DEFAULT 1)
RETURNS TABLE (chat_id uuid, chat_state text, real_user_id uuid, state_changed_at timestamptz,
               hours_in_state numeric, assigned_operator_id uuid, last_operator_id uuid, operator_name text)
LANGUAGE plpgsql STABLE SET search_path = public AS $$
BEGIN
    IF p_hours IS NULL THEN RAISE EXCEPTION 'p_hours is required' USING ERRCODE = '22004'; END IF;
    IF p_hours <= 0 THEN RAISE EXCEPTION 'p_hours must be positive' USING ERRCODE = '22023'; END IF;
    RETURN QUERY
    SELECT c.id, c.chat_state::text, c.real_user_id, c.state_changed_at,
           round((extract(epoch FROM now() - c.state_changed_at) / 3600)::numeric, 2),
           c.assigned_operator_id, c.last_operator_id, o.name
      FROM chats c LEFT JOIN operators o ON o.id = coalesce(c.assigned_operator_id, c.last_operator_id)
     WHERE c.chat_state IN ('waiting_assignment', 'assigned') AND c.is_active
       AND c.state_changed_at < now() - make_interval(secs => p_hours::float8 * 3600)
     ORDER BY c.state_changed_at, c.id;
END $$;

CREATE VIEW public.chat_state_summary AS
SELECT s.chat_state, count(c.id) AS chat_count, min(c.state_changed_at) AS oldest_state_changed_at,
       coalesce(round(avg(extract(epoch FROM now() - c.state_changed_at)), 1), 0) AS avg_seconds_in_state
  FROM unnest(enum_range(NULL::chat_state)) AS s(chat_state)
  LEFT JOIN chats c ON c.chat_state = s.chat_state
 GROUP BY s.chat_state ORDER BY s.chat_state;

CREATE VIEW public.operator_assignment_stats AS
SELECT o.id AS operator_id, o.name AS operator_name, o.is_active, o.max_concurrent_chats,
       count(ca.id) AS total_assignments, count(ca.released_at) AS released_assignments,
       count(ca.id) FILTER (WHERE ca.released_at IS NULL) AS active_assignments,
       round(avg(extract(epoch FROM ca.released_at - ca.assigned_at)), 1) AS avg_handling_seconds
  FROM operators o
  LEFT JOIN chat_assignments ca ON ca.operator_id = o.id
       AND (ca.assigned_at > now() - interval '24 hours' OR ca.released_at IS NULL)
 GROUP BY o.id, o.name, o.is_active, o.max_concurrent_chats;

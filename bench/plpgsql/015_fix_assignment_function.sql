-- (b) baseline: supabase/migrations/015_fix_assignment_function.sql, as the app's design describes it,
-- plus the two message paths the app's API routes perform (app/api/operator/messages and
-- app/api/messages), written here as PL/pgSQL functions so that (b) does the same state
-- changes as (a) in one round trip per step (the routes would need several; this is
-- generous to (b)).
--
-- "assign_chat_to_operator(p_operator_id UUID)
--  - Now checks chat_state = 'waiting_assignment' instead of just assigned_operator_id IS NULL
--  - Prevents same operator from getting the same chat repeatedly
--  - Updates chat_state to 'assigned' when assigning
--  - Sets last_operator_id for tracking"
-- "Operator with active assignment tries to get another -> Rejected with error"
-- "Multiple operators request assignment simultaneously -> Only one gets the chat (row locking)"
--
-- The queue query is the design under test: the ORDER BY that pushes the operator's own
-- last chat to the back is an expression over every waiting row, so no index can supply
-- that order and every call reads and sorts the whole queue before FOR UPDATE SKIP LOCKED
-- LIMIT 1 can take the first row. (CASE rather than a bare `last_operator_id =
-- p_operator_id`, whose NULL for never-handled chats would sort them last.)

CREATE OR REPLACE FUNCTION public.assign_chat_to_operator(p_operator_id uuid)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public
AS $$
DECLARE
    v_chat_id uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM operators WHERE id = p_operator_id AND is_active) THEN
        RAISE EXCEPTION 'Operator % not found or inactive', p_operator_id;
    END IF;

    IF EXISTS (SELECT 1 FROM chats
               WHERE assigned_operator_id = p_operator_id AND chat_state = 'assigned') THEN
        RAISE EXCEPTION 'Operator % already has an active assignment', p_operator_id;
    END IF;

    SELECT id INTO v_chat_id
    FROM chats
    WHERE chat_state = 'waiting_assignment'
      AND is_active = true
    ORDER BY CASE WHEN last_operator_id = p_operator_id THEN 1 ELSE 0 END,
             created_at ASC
    LIMIT 1
    FOR UPDATE SKIP LOCKED;

    IF v_chat_id IS NULL THEN
        RETURN NULL;
    END IF;

    UPDATE chats
       SET assigned_operator_id = p_operator_id,
           chat_state = 'assigned',
           last_operator_id = p_operator_id
     WHERE id = v_chat_id;

    INSERT INTO chat_assignments (chat_id, operator_id, assigned_at)
    VALUES (v_chat_id, p_operator_id, now());

    INSERT INTO operator_activity (operator_id, chat_id, last_activity_at)
    VALUES (p_operator_id, v_chat_id, now())
    ON CONFLICT (operator_id, chat_id) DO UPDATE SET last_activity_at = EXCLUDED.last_activity_at;

    UPDATE operators SET last_assigned_at = now() WHERE id = p_operator_id;

    RETURN v_chat_id;
END;
$$;

-- "release_and_reassign_chat(p_chat_id UUID, p_reason TEXT) - Updates chat_state to
--  'waiting_assignment' when releasing"
CREATE OR REPLACE FUNCTION public.release_and_reassign_chat(p_chat_id uuid, p_reason text DEFAULT 'manual_unassign')
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public
AS $$
BEGIN
    UPDATE chat_assignments
       SET released_at = now(), release_reason = p_reason
     WHERE chat_id = p_chat_id AND released_at IS NULL;

    DELETE FROM operator_activity WHERE chat_id = p_chat_id;

    UPDATE chats
       SET assigned_operator_id = NULL,
           chat_state = 'waiting_assignment'
     WHERE id = p_chat_id AND chat_state = 'assigned';

    RETURN FOUND;
END;
$$;

-- app/api/operator/messages/route.ts: "When operator sends message, chat state changes to
-- 'waiting_real_user_reply'; Sets operator_replied_at timestamp; Unassigns operator so they
-- can get new chats; Removes operator activity record."
CREATE OR REPLACE FUNCTION public.operator_send_message(p_chat_id uuid, p_operator_id uuid, p_content text)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public
AS $$
DECLARE
    v_assigned uuid;
    v_message_id uuid;
BEGIN
    SELECT assigned_operator_id INTO v_assigned FROM chats WHERE id = p_chat_id FOR UPDATE;
    IF v_assigned IS DISTINCT FROM p_operator_id THEN
        RAISE EXCEPTION 'Chat % is not assigned to operator %', p_chat_id, p_operator_id;
    END IF;

    INSERT INTO messages (chat_id, sender_type, operator_id, content)
    VALUES (p_chat_id, 'operator', p_operator_id, p_content)
    RETURNING id INTO v_message_id;

    UPDATE chats
       SET chat_state = 'waiting_real_user_reply',
           operator_replied_at = now(),
           assigned_operator_id = NULL,
           last_operator_id = p_operator_id,
           last_message_at = now()
     WHERE id = p_chat_id;

    UPDATE chat_assignments
       SET released_at = now(), release_reason = 'operator_replied'
     WHERE chat_id = p_chat_id AND released_at IS NULL;

    DELETE FROM operator_activity WHERE chat_id = p_chat_id;

    RETURN v_message_id;
END;
$$;

-- app/api/messages/route.ts: "When real user sends message, chat state changes to
-- 'waiting_assignment'; Makes chat assignable for operators; Clears any existing assignment
-- if present; Removes operator activity records."
CREATE OR REPLACE FUNCTION public.real_user_send_message(p_chat_id uuid, p_content text)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public
AS $$
DECLARE
    v_message_id uuid;
BEGIN
    PERFORM 1 FROM chats WHERE id = p_chat_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Chat % not found', p_chat_id;
    END IF;

    INSERT INTO messages (chat_id, sender_type, content)
    VALUES (p_chat_id, 'real_user', p_content)
    RETURNING id INTO v_message_id;

    UPDATE chats
       SET chat_state = 'waiting_assignment',
           assigned_operator_id = NULL,
           is_active = true,
           last_message_at = now()
     WHERE id = p_chat_id;

    UPDATE chat_assignments
       SET released_at = now(), release_reason = 'real_user_message'
     WHERE chat_id = p_chat_id AND released_at IS NULL;

    DELETE FROM operator_activity WHERE chat_id = p_chat_id;

    RETURN v_message_id;
END;
$$;

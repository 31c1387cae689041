-- (b) baseline: supabase/migrations/016_chat_state_verification.sql, as the app's design describes it.
--
-- "Constraints Added: Ensures assigned state always has an operator; Ensures
--  waiting_real_user_reply state has operator_replied_at timestamp.
--  Monitoring Tools: chat_state_summary view - Overview of all chat states;
--  get_assignment_queue_status() - Queue metrics; detect_stuck_chats(hours) - Find
--  problematic chats."
--
-- That schema has no state_changed_at; the time a chat last moved is approximated the
-- way the app can: its last message (or its creation).

ALTER TABLE public.chats
    ADD CONSTRAINT chk_assigned_has_operator
        CHECK (chat_state <> 'assigned' OR assigned_operator_id IS NOT NULL),
    ADD CONSTRAINT chk_waiting_reply_has_timestamp
        CHECK (chat_state <> 'waiting_real_user_reply' OR operator_replied_at IS NOT NULL);

CREATE OR REPLACE VIEW public.chat_state_summary AS
SELECT chat_state,
       count(*)                                                        AS chat_count,
       min(coalesce(last_message_at, created_at))                      AS oldest_in_state,
       round(avg(extract(epoch FROM now() - coalesce(last_message_at, created_at))), 1)
                                                                       AS avg_seconds_in_state
FROM public.chats
GROUP BY chat_state
ORDER BY chat_state;

CREATE OR REPLACE FUNCTION public.get_assignment_queue_status()
RETURNS TABLE (
    waiting_count          bigint,
    assigned_count         bigint,
    waiting_reply_count    bigint,
    oldest_waiting_seconds numeric,
    avg_waiting_seconds    numeric,
    active_operators       bigint,
    available_operators    bigint
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public
AS $$
BEGIN
    RETURN QUERY
    SELECT
        count(*) FILTER (WHERE c.chat_state = 'waiting_assignment'),
        count(*) FILTER (WHERE c.chat_state = 'assigned'),
        count(*) FILTER (WHERE c.chat_state = 'waiting_real_user_reply'),
        round(extract(epoch FROM now() - min(coalesce(c.last_message_at, c.created_at))
                      FILTER (WHERE c.chat_state = 'waiting_assignment')), 1),
        round(avg(extract(epoch FROM now() - coalesce(c.last_message_at, c.created_at)))
                  FILTER (WHERE c.chat_state = 'waiting_assignment'), 1),
        (SELECT count(*) FROM operators o WHERE o.is_active),
        (SELECT count(*) FROM operators o
          WHERE o.is_active
            AND NOT EXISTS (SELECT 1 FROM chats a
                             WHERE a.assigned_operator_id = o.id AND a.chat_state = 'assigned'))
    FROM chats c
    WHERE c.is_active = true;
END;
$$;

CREATE OR REPLACE FUNCTION public.detect_stuck_chats(p_hours integer DEFAULT 1)
RETURNS TABLE (
    chat_id          uuid,
    chat_state       text,
    real_user_id     uuid,
    stuck_since      timestamptz,
    hours_in_state   numeric,
    operator_id      uuid,
    operator_name    text
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public
AS $$
BEGIN
    RETURN QUERY
    SELECT c.id,
           c.chat_state,
           c.real_user_id,
           coalesce(c.last_message_at, c.created_at),
           round(extract(epoch FROM now() - coalesce(c.last_message_at, c.created_at)) / 3600, 2),
           coalesce(c.assigned_operator_id, c.last_operator_id),
           o.name
    FROM chats c
    LEFT JOIN operators o ON o.id = coalesce(c.assigned_operator_id, c.last_operator_id)
    WHERE c.is_active = true
      AND c.chat_state IN ('waiting_assignment', 'assigned')
      AND coalesce(c.last_message_at, c.created_at) < now() - make_interval(hours => p_hours)
    ORDER BY coalesce(c.last_message_at, c.created_at);
END;
$$;

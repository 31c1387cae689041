-- (b) baseline: supabase/migrations/014_chat_state_management.sql, as the app's design describes it.
--
-- "New Columns Added: chat_state, last_operator_id, operator_replied_at.
--  Indexes Created: idx_chats_waiting_assignment - Fast lookup of assignable chats,
--  idx_chats_last_operator - Efficient operator filtering,
--  idx_chats_operator_replied - Track operator response times."

ALTER TABLE public.chats
    ADD COLUMN IF NOT EXISTS chat_state text NOT NULL DEFAULT 'waiting_assignment'
        CHECK (chat_state IN ('waiting_assignment', 'assigned', 'waiting_real_user_reply', 'completed')),
    ADD COLUMN IF NOT EXISTS last_operator_id uuid REFERENCES public.operators (id),
    ADD COLUMN IF NOT EXISTS operator_replied_at timestamptz;

-- Backfill the state of existing chats from the old columns.
UPDATE public.chats
   SET chat_state = CASE
                        WHEN NOT is_active THEN 'completed'
                        WHEN assigned_operator_id IS NOT NULL THEN 'assigned'
                        ELSE 'waiting_assignment'
                    END;

-- "Assignment queries are faster (indexed state check)": the state, then the queue order
-- the app's own "Find Chats Waiting Too Long" query uses (created_at), over waiting chats.
CREATE INDEX IF NOT EXISTS idx_chats_waiting_assignment
    ON public.chats (chat_state, created_at)
    WHERE chat_state = 'waiting_assignment';
CREATE INDEX IF NOT EXISTS idx_chats_last_operator ON public.chats (last_operator_id);
CREATE INDEX IF NOT EXISTS idx_chats_operator_replied ON public.chats (operator_replied_at);

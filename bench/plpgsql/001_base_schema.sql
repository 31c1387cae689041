-- (b) baseline, part 1: the app's tables as they stood before migration 014.
--
-- The app's design document describes migrations 014-016 of a Supabase app but not
-- the earlier ones it alters. This file is the minimal "001-004" those migrations need,
-- written the way a Supabase migration would: uuid keys with gen_random_uuid(), text
-- columns, timestamptz defaults, plain b-tree indexes on every foreign key the app looks
-- up by. Same five tables and the same columns (where that design has them) as the extension,
-- so both implementations store the same rows.
--
-- Deliberately lean, to keep the baseline honest: no updated_at triggers, no RLS policies
-- (a superuser/owner bypasses them anyway), no extra indexes beyond the ones the app's
-- queries use.

CREATE TABLE IF NOT EXISTS public.operators (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 text        NOT NULL,
    is_active            boolean     NOT NULL DEFAULT true,
    max_concurrent_chats integer     NOT NULL DEFAULT 1,
    last_assigned_at     timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.chats (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    real_user_id         uuid        NOT NULL,
    assigned_operator_id uuid        REFERENCES public.operators (id),
    is_active            boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    last_message_at      timestamptz
);

CREATE TABLE IF NOT EXISTS public.messages (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    chat_id     uuid        NOT NULL REFERENCES public.chats (id) ON DELETE CASCADE,
    sender_type text        NOT NULL CHECK (sender_type IN ('real_user', 'operator')),
    operator_id uuid        REFERENCES public.operators (id),
    content     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.chat_assignments (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    chat_id        uuid        NOT NULL REFERENCES public.chats (id) ON DELETE CASCADE,
    operator_id    uuid        NOT NULL REFERENCES public.operators (id),
    assigned_at    timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    release_reason text
);

CREATE TABLE IF NOT EXISTS public.operator_activity (
    operator_id      uuid        NOT NULL REFERENCES public.operators (id) ON DELETE CASCADE,
    chat_id          uuid        NOT NULL REFERENCES public.chats (id) ON DELETE CASCADE,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_id, chat_id)
);

CREATE INDEX IF NOT EXISTS idx_chats_assigned_operator ON public.chats (assigned_operator_id);
CREATE INDEX IF NOT EXISTS idx_messages_chat_id ON public.messages (chat_id, created_at);
CREATE INDEX IF NOT EXISTS idx_chat_assignments_chat_id ON public.chat_assignments (chat_id);
CREATE INDEX IF NOT EXISTS idx_chat_assignments_operator_id ON public.chat_assignments (operator_id);
CREATE INDEX IF NOT EXISTS idx_operator_activity_chat_id ON public.operator_activity (chat_id);
CREATE INDEX IF NOT EXISTS idx_operator_activity_last ON public.operator_activity (last_activity_at);

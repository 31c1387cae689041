-- chat_assign schema: the state type, the tables, their constraints and indexes.
--
-- Runs inside CREATE EXTENSION, where search_path is the target schema (@extschema@),
-- so unqualified names below land there. Defaults, CHECKs and views are stored parsed,
-- bound to the objects that existed here and now: later look-alikes cannot hijack them.

CREATE TYPE chat_state AS ENUM (
    'waiting_assignment',       -- the real user wrote; the chat needs an operator
    'assigned',                 -- an operator is working on it
    'waiting_real_user_reply',  -- the operator answered; nobody needs to act until the user does
    'completed'                 -- ended; a new user message reopens it
);

CREATE TABLE operators (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 text        NOT NULL,
    is_active            boolean     NOT NULL DEFAULT true,
    max_concurrent_chats integer     NOT NULL DEFAULT 1,
    last_assigned_at     timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    -- Presence: only online (and active) operators are given chats. Operators start online,
    -- so an app that never sets a status sees no change.
    status               text        NOT NULL DEFAULT 'online',
    status_changed_at    timestamptz NOT NULL DEFAULT now(),
    -- 0 only for an operator of no team (an upper bound of its memberships, kept by a
    -- trigger on team_members and remove_team_member, sql/references.sql): a claim reads it
    -- under the operator's lock and, for 0, runs a statement that names no team table.
    team_count           integer     NOT NULL DEFAULT 0,
    -- Every chat the operator holds, and perhaps some it no longer does (a superset, kept
    -- by whatever gives it a chat: sql/references.sql): a claim counts the operator's chats
    -- by looking these up by id (src/store/queries.rs, open_count!).
    held_chat_ids        uuid[]      NOT NULL DEFAULT '{}',
    CONSTRAINT operators_name_not_blank CHECK (btrim(name) <> ''),
    CONSTRAINT operators_capacity_positive CHECK (max_concurrent_chats >= 1),
    CONSTRAINT operators_status_valid CHECK (status IN ('online', 'away', 'offline'))
);

-- Teams route chats: a chat with a team is given only to the team's members; a chat without
-- one to anyone. `routing` says how chats reach the members (`manual`: they ask). The nil
-- uuid is reserved: the queue index files chats without a team under it.
CREATE TABLE teams (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL,
    routing    text        NOT NULL DEFAULT 'manual',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT teams_name_unique UNIQUE (name),
    CONSTRAINT teams_valid CHECK (
        btrim(name) <> ''
        AND routing IN ('manual', 'least_loaded', 'round_robin')
        AND id <> '00000000-0000-0000-0000-000000000000')
);

-- Who may take a team's chats. Referenced without foreign keys, like everything that names
-- an operator (sql/references.sql): deleting a team or an operator deletes its memberships.
CREATE TABLE team_members (
    operator_id uuid        NOT NULL,
    team_id     uuid        NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_id, team_id)
);
CREATE INDEX idx_team_members_team ON team_members (team_id);

-- The row rules of the CHECK constraints below, as native functions (src/checks.rs; each
-- one's comment there holds the SQL expression it equals, NULL included). PostgreSQL parses
-- and compiles a CHECK's expression tree from its stored text in every statement that writes
-- the table: as SQL expressions these cost about a tenth of a chat's cycle, as one call over
-- the columns they read, a quarter of the text and nothing to evaluate. Pure functions of
-- their arguments, executable by anyone (sql/privileges.sql): a role the DBA lets write a
-- table needs them to pass its CHECK.
CREATE FUNCTION chats_state_consistent(
    chat_state, uuid, uuid, timestamptz, timestamptz, boolean, timestamptz)
RETURNS boolean LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chats_state_consistent';
CREATE FUNCTION messages_valid(text, uuid, text)
RETURNS boolean LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'messages_valid';
CREATE FUNCTION chat_assignments_release_valid(timestamptz, text, timestamptz)
RETURNS boolean LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'chat_assignments_release_valid';

CREATE TABLE chats (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    real_user_id         uuid        NOT NULL,
    chat_state           chat_state  NOT NULL DEFAULT 'waiting_assignment',
    -- Operators, referenced without a foreign key (sql/references.sql): assigned_operator_id
    -- always equals last_operator_id (the CHECK below).
    assigned_operator_id uuid,
    last_operator_id     uuid,
    operator_replied_at  timestamptz,
    assigned_at          timestamptz,
    waiting_since        timestamptz DEFAULT now(),
    state_changed_at     timestamptz NOT NULL DEFAULT now(),
    priority             integer     NOT NULL DEFAULT 0,
    is_active            boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    last_message_at      timestamptz,
    -- start_chat's p_idempotency_key: a retry of the call finds its chat (per user).
    idempotency_key      text,
    -- The team whose members may take the chat (NULL: anyone); referenced without a foreign
    -- key (sql/references.sql).
    team_id              uuid,
    -- Service metrics (get_service_metrics): when the chat was first assigned and first
    -- answered by an operator, and how often an operator lost it for idleness; written by
    -- the statements that assign, answer and release anyway, so that the metrics read one
    -- row per chat of their window and nothing else. The times are the least of its
    -- assignments' and operator messages' (each its transaction's start: one that waited
    -- for the chat's lock writes after one that started later), kept with least().
    first_assigned_at    timestamptz,
    first_response_at    timestamptz,
    idle_releases        integer     NOT NULL DEFAULT 0,
    -- What a row can say of the invariants, as ONE constraint (the function above):
    -- invariant 1, the half a row can say (assigned <=> an operator holds it, since a known
    -- time; the holder is the last operator); invariant 2; invariant 4, the row half ("no
    -- unreleased assignment" is kept by the functions); and a waiting chat has a
    -- waiting_since (the queue orders by it: without one it would sort last).
    CONSTRAINT chats_state_consistent CHECK (chats_state_consistent(
        chat_state, assigned_operator_id, last_operator_id, assigned_at, operator_replied_at,
        is_active, waiting_since))
);

CREATE TABLE messages (
    id          bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    -- A chat and an operator, referenced without foreign keys (sql/references.sql).
    chat_id     uuid        NOT NULL,
    sender_type text        NOT NULL,
    operator_id uuid,
    content     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The p_idempotency_key of the call that stored it: a retry finds it (per chat and sender).
    idempotency_key text,
    -- A known sender; an operator's message names its operator, a user's none; not blank.
    CONSTRAINT messages_valid CHECK (messages_valid(sender_type, operator_id, content))
);

-- One row per assignment, the full history. The open one (released_at IS NULL) also holds the
-- assigned operator's heartbeat (`last_activity_at`): a heartbeat is an update of a row the
-- assignment already wrote, not a second table whose rows are inserted and deleted every
-- cycle (`operator_activity` is a view over it, sql/views.sql). No index covers
-- released_at or last_activity_at, so a release and a heartbeat are HOT updates that write
-- no index entry. "At most one open assignment per chat" is kept by the functions under
-- the chat's row lock (the isolation and stress tests check it): a chat's open assignment
-- is its newest one. An operator's open assignments are found through
-- `idx_chats_assigned_operator`.
CREATE TABLE chat_assignments (
    id               bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    -- A chat and an operator, referenced without foreign keys (sql/references.sql).
    chat_id          uuid        NOT NULL,
    operator_id      uuid        NOT NULL,
    assigned_at      timestamptz NOT NULL DEFAULT now(),
    released_at      timestamptz,
    release_reason   text,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    -- Released with a reason, not before it was made.
    CONSTRAINT chat_assignments_release_valid CHECK (
        chat_assignments_release_valid(released_at, release_reason, assigned_at))
) WITH (fillfactor = 90);  -- room on the page for the HOT release and heartbeats

-- The queue, in exactly the order assign_chat_to_operator takes it: an index scan that
-- stops at the first unlocked row, so the cost of an assignment does not grow with the queue.
-- One queue per team, and one for chats without a team (filed under the nil uuid, so that
-- every queue is reached with `=`, which an index scan can also walk in order): a claim
-- reads the head of each queue the operator may take from, however many teams there are.
--
-- Every index on `chats` costs an entry in each UPDATE that changes the state (a state change
-- can never be HOT, the queue index's predicate names chat_state), so the other indexes are
-- partial where a partial one answers every query that uses it.
-- team_id itself is INCLUDEd so that get_queue_position's counts are index-only scans: the
-- planner serves a query from the index alone only when every column it names is in the
-- index, and a column inside an index expression does not count.
CREATE INDEX idx_chats_waiting_assignment
    ON chats ((coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid)),
              priority DESC, waiting_since, id)
    INCLUDE (team_id)
    WHERE chat_state = 'waiting_assignment' AND is_active;
-- The chats an operator holds: deactivation, idle detection, the capacity checks of
-- transfers and automatic assignment (a claim looks up the operator's held_chat_ids by id
-- instead: an old snapshot keeps every dead entry here readable). Statements
-- find assigned chats by `assigned_operator_id = x` or `IS NOT NULL` (the CHECK makes either
-- mean "assigned"), never by `chat_state = 'assigned'`: that would let the planner read them
-- through idx_chats_state_changed instead, which it does when ANALYZE saw few assigned chats,
-- and a count of one operator's chats then walks the entry of every chat assigned since the
-- oldest open snapshot (pg_test assigned_chats_are_found_by_operator).
CREATE INDEX idx_chats_assigned_operator ON chats (assigned_operator_id)
    WHERE assigned_operator_id IS NOT NULL;
-- Who last held each waiting chat, per queue: lets assignment tell in two index probes per
-- queue whether any waiting chat is someone else's (avoid_same_operator), instead of
-- walking the whole queue past the caller's own chats.
CREATE INDEX idx_chats_last_operator
    ON chats ((coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid)), last_operator_id)
    WHERE chat_state = 'waiting_assignment' AND is_active;
-- Monitoring: the oldest chat of each state (chat_state_summary), stuck chats oldest first.
-- Every state, so every state change writes an entry: a partial index over the states
-- detect_stuck_chats reads would spare the operator's reply its entry, but
-- chat_state_summary would then read every chat (290 ms at 1M, measured).
CREATE INDEX idx_chats_state_changed ON chats (chat_state, state_changed_at);

-- get_service_metrics reads the chats started in a window. Chats are inserted in created_at
-- order, so a BRIN index finds a recent window for almost nothing per insert (a chat's later
-- versions land in recent pages too, which a recent window reads anyway).
CREATE INDEX idx_chats_created_at ON chats USING brin (created_at);

CREATE INDEX idx_messages_chat ON messages (chat_id, created_at);

-- Idempotency keys: one call's result per key, per user (start_chat) and per chat and sender
-- (the messages). Partial: a call without a key writes no entry.
CREATE UNIQUE INDEX idx_chats_idempotency_key ON chats (real_user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX idx_messages_idempotency_key
    ON messages (chat_id, idempotency_key, sender_type, operator_id) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL;

-- A chat's assignments in the order they were made (history, the cascade of a chat's delete); the newest
-- is the open one, if any (src/store/queries.rs).
CREATE INDEX idx_chat_assignments_chat ON chat_assignments (chat_id, id);
-- operator_assignment_stats reads the last 24 hours of assignments. Rows arrive in
-- assigned_at order, so a BRIN index answers that at almost no cost per insert.
CREATE INDEX idx_chat_assignments_assigned_at ON chat_assignments USING brin (assigned_at);

-- Transfers, the full history: who had the chat (operator and team) and who has it after.
-- A log like chat_events (no foreign keys); deleting a chat deletes its transfers.
CREATE TABLE chat_transfers (
    id               bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    chat_id          uuid        NOT NULL,
    from_operator_id uuid,
    from_team_id     uuid,
    to_operator_id   uuid,
    to_team_id       uuid,
    reason           text        NOT NULL,
    transferred_at   timestamptz NOT NULL DEFAULT now(),
    -- To an operator (to_team_id: the chat's team, which stays) or to a team.
    CONSTRAINT chat_transfers_target CHECK (to_operator_id IS NOT NULL OR to_team_id IS NOT NULL)
);
CREATE INDEX idx_chat_transfers_chat ON chat_transfers (chat_id, id);
-- get_service_metrics counts the transfers of a window.
CREATE INDEX idx_chat_transfers_at ON chat_transfers USING brin (transferred_at);

-- Every assignment leaves a dead entry at the head of the queue index, and every cycle
-- rewrites a chat row; scans of the queue head slow down until vacuum
-- removes them. Vacuum these two by a small fixed amount of churn, not by the default 20%
-- of the table (200k dead rows before anything happens at a million chats).
ALTER TABLE chats SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                       autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE chat_assignments SET (autovacuum_vacuum_scale_factor = 0.01,
                                  autovacuum_vacuum_threshold = 1000,
                                  autovacuum_analyze_scale_factor = 0.02);

-- pg_dump keeps the rows of extension tables only when they are registered here.
SELECT pg_catalog.pg_extension_config_dump('operators', '');
SELECT pg_catalog.pg_extension_config_dump('chats', '');
SELECT pg_catalog.pg_extension_config_dump('messages', '');
SELECT pg_catalog.pg_extension_config_dump('chat_assignments', '');
SELECT pg_catalog.pg_extension_config_dump('messages_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('chat_assignments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('teams', '');
SELECT pg_catalog.pg_extension_config_dump('team_members', '');
SELECT pg_catalog.pg_extension_config_dump('chat_transfers', '');
SELECT pg_catalog.pg_extension_config_dump('chat_transfers_id_seq', '');

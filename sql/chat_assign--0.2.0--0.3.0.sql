-- chat_assign 0.2.0 -> 0.3.0
--
-- 0.3.0 makes change events a table and cuts what a state change writes:
-- * change events are rows of the new table `chat_events`, written in the changing
--   transaction, read with `read_chat_events(p_after_id, p_limit)` (exactly once for a
--   consumer that keeps its last id) or followed by logical replication. Calls no longer
--   send `NOTIFY chat_assign` with a JSON payload; the background worker sends at most one
--   wake-up per `chat_assign.notify_interval`, whose payload is the newest event id a
--   reader can get.
--   `chat_assign.notify` is accepted and ignored. LISTEN clients must change: see
--   CHANGELOG.md.
-- * the heartbeat moves onto the open assignment (`chat_assignments.last_activity_at`);
--   the table `operator_activity` becomes a read-only view with the same columns, and its
--   SELECT grants are carried over to the view. Its rows are copied first.
-- * indexes: `chats` keeps only partial indexes that each query needs (state changes can
--   never be HOT, so every index on chats is written by every change); `chat_assignments`
--   has no index over released_at (its release and heartbeats are HOT updates) and a BRIN
--   index on assigned_at for the 24-hour statistics.
--   A chat's open assignment is found as its newest (`idx_chat_assignments_chat` becomes
--   `(chat_id, id)`).
-- * the monitoring totals count the functions' changes from their events (folded by the
--   worker); the statement triggers on chats skip those writes and count all others.
-- * one CHECK per table instead of eleven, and a CHECK tying assigned_operator_id to
--   last_operator_id instead of its own foreign key.
-- * no foreign keys on messages, chat_assignments and chats.last_operator_id: every row the
--   functions write names a chat or an operator the call holds locked, and the checks
--   were a tenth of a cycle's CPU. Triggers keep the cascade of a chat's delete and
--   truncate and refuse (23503) deleting, truncating or re-keying an operator or a chat
--   that rows still name (sql/references.sql).
-- * every API function plans with `enable_seqscan = off`, `plan_cache_mode =
--   force_generic_plan` and `jit = off` (sql/privileges.sql says why).
-- * moving an existing app onto the extension: `import_app_tables`, `switch_app_calls`,
--   `restore_app_calls` and the tables `app_imports`, `imported_ids` (sql/import.sql).
-- * retries are safe: `start_chat`, `real_user_send_message` and `operator_send_message`
--   take a last parameter `p_idempotency_key` (columns `chats.idempotency_key`,
--   `messages.idempotency_key`, each with a partial unique index); the EXECUTE grants on
--   the old signatures are given on the new ones.
-- * new functions `read_chat_events`, `prune_chat_events` and `worker_status` (what the
--   background workers did, failures included); EXECUTE on them, and every
--   privilege on the new table and views, is revoked from everyone but the owner (grant
--   them as docs/security.md, "Roles and grants" says). Table-level INSERT, UPDATE, DELETE and
--   TRUNCATE grants on the tables are revoked (0.1.0 needed them; column grants are kept).
--   Grants on everything else are kept.
--
-- * teams, presence and transfers: tables `teams`, `team_members`, `chat_transfers`,
--   columns `operators.status`, `operators.status_changed_at`, `chats.team_id`; the queue
--   index and `idx_chats_last_operator` gain the queue's key first (one queue per team and
--   one for chats without a team); new functions `create_team`, `set_team_routing`,
--   `add_team_member`, `remove_team_member`, `set_operator_status`, `transfer_chat`,
--   `set_chat_priority`, `get_queue_position` and the view `team_queue_status`; `start_chat`
--   gains `p_team_id` and `p_priority` (its grants are kept, as for p_idempotency_key).
-- * automatic assignment and service metrics: teams whose routing is `least_loaded` or
--   `round_robin` (and chats without a team under `chat_assign.default_routing`) are given
--   to operators by the calls themselves; `get_service_metrics`, from the new columns
--   `chats.first_assigned_at`, `chats.first_response_at` and `chats.idle_releases` (filled
--   from the history here) and BRIN indexes on `chats.created_at` and `chat_transfers.transferred_at`.
--
-- Not released yet: this file may change until 0.3.0's install script is archived in
-- sql/released/ (and both are listed in SHA256SUMS); from then on, never edit it.

-- ------------------------------------------------------------ heartbeats onto assignments
ALTER TABLE chat_assignments ADD COLUMN last_activity_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE chat_assignments SET (fillfactor = 90);
UPDATE chat_assignments a
   SET last_activity_at = coalesce(
           (SELECT oa.last_activity_at FROM operator_activity oa
             WHERE oa.chat_id = a.chat_id AND oa.operator_id = a.operator_id),
           a.assigned_at)
 WHERE a.released_at IS NULL;

-- The old table goes; the view that replaces it is created below, and then given the SELECT
-- grants the table had. They wait in a setting local to this transaction, not in a
-- temporary table (that would leave a temporary schema behind in the database).
SELECT pg_catalog.set_config('chat_assign_upgrade.activity_grants', (
        SELECT coalesce(pg_catalog.string_agg(a.grantee::pg_catalog.text || ':' || a.is_grantable::pg_catalog.text, ','), '')
        FROM pg_catalog.pg_class c
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid OPERATOR(pg_catalog.=) '@extschema@.operator_activity'::pg_catalog.regclass
          AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
          AND a.grantee OPERATOR(pg_catalog.<>) c.relowner), true);

ALTER EXTENSION chat_assign DROP TABLE operator_activity;
DROP TABLE operator_activity;

-- ------------------------------------------------------------ indexes
DROP INDEX idx_chat_assignments_open_chat;
DROP INDEX idx_chat_assignments_open_operator;
DROP INDEX idx_chat_assignments_operator_time;
DROP INDEX idx_chat_assignments_chat;
CREATE INDEX idx_chat_assignments_chat ON chat_assignments (chat_id, id);
DROP INDEX idx_chats_operator_replied;
DROP INDEX idx_chats_assigned_operator;
DROP INDEX idx_chats_last_operator;
DROP INDEX idx_chats_waiting_assignment;
CREATE INDEX idx_chats_assigned_operator ON chats (assigned_operator_id)
    WHERE assigned_operator_id IS NOT NULL;
CREATE INDEX idx_chat_assignments_assigned_at ON chat_assignments USING brin (assigned_at);

-- ------------------------------------------------------------ change events
CREATE TABLE chat_events (
    -- CACHE 1 (the default): read_chat_events relies on no backend holding ids in reserve.
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id     uuid        NOT NULL,
    old_state   chat_state,             -- NULL when the change started the chat
    new_state   chat_state  NOT NULL,
    operator_id uuid,                   -- who takes, answers or loses the chat
    team_id     uuid,                   -- the chat's team (teams arrive in a later release)
    reason      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    -- For the monitoring totals (sql/state_totals.sql), not part of the event's meaning:
    since         timestamptz,          -- when the chat had entered old_state
    waiting_since timestamptz           -- its place in the queue, on the side of the change
                                        -- that is in the queue (NULL: neither side is)
);
ALTER TABLE chat_events SET (autovacuum_vacuum_threshold = 10000,
                             autovacuum_vacuum_scale_factor = 0,
                             autovacuum_vacuum_insert_threshold = 100000,
                             autovacuum_vacuum_insert_scale_factor = 0);
SELECT pg_catalog.pg_extension_config_dump('chat_events', '');
SELECT pg_catalog.pg_extension_config_dump('chat_events_id_seq', '');


-- ------------------------------------------------------------ monitoring totals from the events
-- The functions' own changes are counted by their events (sql/state_totals.sql); the
-- triggers keep counting every other write to chats. The deltas 0.2 wrote stay: no event
-- exists yet, so the fold starts at position 0.
-- How far the events are folded into chat_state_deltas: events with a larger id are added
-- by the readers. One row, locked (SKIP LOCKED) by whoever folds.
CREATE TABLE chat_state_fold (
    position bigint NOT NULL
);
INSERT INTO chat_state_fold VALUES (0);

CREATE OR REPLACE FUNCTION chats_track_state_totals() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- No chat is left, so no event up to now may count any more. TRUNCATE holds chats
        -- exclusively: every transaction that wrote an event (and so a chat) has ended.
        DELETE FROM @extschema@.chat_state_deltas;
        UPDATE @extschema@.chat_state_fold
           SET position = (SELECT coalesce(max(id), 0) FROM @extschema@.chat_events);
        RETURN NULL;
    END IF;

    -- PL/pgSQL plans a statement when it first runs it, so each branch may name only the
    -- transition tables its trigger defines.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO @extschema@.chat_state_deltas
        SELECT chat_state, count(*), sum(extract(epoch FROM state_changed_at)),
               count(*) FILTER (WHERE in_queue),
               coalesce(sum(extract(epoch FROM waiting_since)) FILTER (WHERE in_queue), 0)
        FROM (SELECT n.*, n.chat_state = 'waiting_assignment' AND n.is_active AS in_queue
              FROM new_rows n) AS d
        GROUP BY chat_state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO @extschema@.chat_state_deltas
        SELECT chat_state, -count(*), -sum(extract(epoch FROM state_changed_at)),
               -count(*) FILTER (WHERE in_queue),
               -coalesce(sum(extract(epoch FROM waiting_since)) FILTER (WHERE in_queue), 0)
        FROM (SELECT o.*, o.chat_state = 'waiting_assignment' AND o.is_active AS in_queue
              FROM old_rows o) AS d
        GROUP BY chat_state;
    ELSE
        -- An UPDATE: minus the old rows, plus the new ones; states whose totals did not
        -- move (a follow-up message, a priority change) append nothing.
        INSERT INTO @extschema@.chat_state_deltas
        SELECT chat_state, sum(sign), sum(sign * extract(epoch FROM state_changed_at)),
               coalesce(sum(sign) FILTER (WHERE in_queue), 0),
               coalesce(sum(sign * extract(epoch FROM waiting_since)) FILTER (WHERE in_queue), 0)
        FROM (SELECT o.chat_state, o.state_changed_at, o.waiting_since, -1 AS sign,
                     o.chat_state = 'waiting_assignment' AND o.is_active AS in_queue
              FROM old_rows o
              UNION ALL
              SELECT n.chat_state, n.state_changed_at, n.waiting_since, 1,
                     n.chat_state = 'waiting_assignment' AND n.is_active
              FROM new_rows n) AS d
        GROUP BY chat_state
        HAVING sum(sign) <> 0
            OR sum(sign * extract(epoch FROM state_changed_at)) <> 0
            OR coalesce(sum(sign) FILTER (WHERE in_queue), 0) <> 0
            OR coalesce(sum(sign * extract(epoch FROM waiting_since)) FILTER (WHERE in_queue), 0) <> 0;
    END IF;

    -- About one write in five hundred folds the committed deltas into one row per state,
    -- which keeps the table at a few hundred live rows whatever the write rate.
    -- (Under the fold row's lock, which only the owner can take: an advisory lock anyone
    -- can hold would let any role stop the folding.)
    IF random() < 0.002 THEN
        PERFORM 1 FROM @extschema@.chat_state_fold FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            WITH gone AS (DELETE FROM @extschema@.chat_state_deltas RETURNING *)
            INSERT INTO @extschema@.chat_state_deltas
            SELECT chat_state, sum(chat_count), sum(changed_epoch), sum(queue_count), sum(waiting_epoch)
            FROM gone GROUP BY chat_state;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER chats_state_totals_insert ON chats;
DROP TRIGGER chats_state_totals_update ON chats;
DROP TRIGGER chats_state_totals_delete ON chats;
DROP TRIGGER chats_state_totals_truncate ON chats;
-- The functions' own writes are counted by their events: the triggers do not even run for
-- them (the condition is checked once per statement, before the function is called).
CREATE TRIGGER chats_state_totals_insert AFTER INSERT ON chats
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_write', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_track_state_totals();
CREATE TRIGGER chats_state_totals_update AFTER UPDATE ON chats
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_write', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_track_state_totals();
CREATE TRIGGER chats_state_totals_delete AFTER DELETE ON chats
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_write', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_track_state_totals();
CREATE TRIGGER chats_state_totals_truncate AFTER TRUNCATE ON chats
    FOR EACH STATEMENT EXECUTE FUNCTION chats_track_state_totals();

-- TRUNCATE of the events (not the chats): the events not folded yet are gone, so the totals
-- are counted again from the chats themselves (a full scan, once).
CREATE FUNCTION chat_events_recount_totals() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM @extschema@.chat_state_deltas;
    INSERT INTO @extschema@.chat_state_deltas
    SELECT chat_state, count(*), sum(extract(epoch FROM state_changed_at)),
           count(*) FILTER (WHERE in_queue),
           coalesce(sum(extract(epoch FROM waiting_since)) FILTER (WHERE in_queue), 0)
    FROM (SELECT c.*, c.chat_state = 'waiting_assignment' AND c.is_active AS in_queue
          FROM @extschema@.chats c) AS d
    GROUP BY chat_state;
    UPDATE @extschema@.chat_state_fold SET position = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER chat_events_truncate_recount AFTER TRUNCATE ON chat_events
    FOR EACH STATEMENT EXECUTE FUNCTION chat_events_recount_totals();

-- Events written by anything but the functions (pg_restore copying the table back, a
-- superuser's INSERT) describe changes the chats' own triggers have already counted (the
-- restore of `chats` rebuilds the totals): the fold moves past them.
CREATE FUNCTION chat_events_skip_foreign() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A statement that inserted no event moves nothing: the calls' own statements write
    -- their event in a part that inserts no row when chat_assign.events is off (and then
    -- chat_assign.api_write is off too, so that the triggers on chats count their changes);
    -- without this, each of them would update the one fold row and wait for the others.
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;
    UPDATE @extschema@.chat_state_fold
       SET position = greatest(position, (SELECT coalesce(max(id), 0) FROM @extschema@.chat_events));
    RETURN NULL;
END
$$;
CREATE TRIGGER chat_events_insert_skip_foreign AFTER INSERT ON chat_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_write', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chat_events_skip_foreign();

-- What each event adds to the totals: minus one chat in the state it left (with the time it
-- had entered it), plus one in the state it entered (at the event's time), and the queue
-- side likewise when it has a place in the queue.
CREATE VIEW chat_state_event_deltas AS
SELECT e.id, d.chat_state, d.chats, d.changed, d.queued, d.waiting
FROM chat_events e
CROSS JOIN LATERAL (
    SELECT e.old_state, -1, -extract(epoch FROM e.since),
           CASE WHEN e.old_state = 'waiting_assignment' AND e.waiting_since IS NOT NULL THEN -1 ELSE 0 END,
           CASE WHEN e.old_state = 'waiting_assignment' THEN -coalesce(extract(epoch FROM e.waiting_since), 0) ELSE 0 END
    WHERE e.old_state IS NOT NULL
    UNION ALL
    SELECT e.new_state, 1, extract(epoch FROM e.at),
           CASE WHEN e.new_state = 'waiting_assignment' AND e.waiting_since IS NOT NULL THEN 1 ELSE 0 END,
           CASE WHEN e.new_state = 'waiting_assignment' THEN coalesce(extract(epoch FROM e.waiting_since), 0) ELSE 0 END
) AS d (chat_state, chats, changed, queued, waiting);

-- The totals as one row per state (all four), for the monitoring functions and views.
CREATE OR REPLACE VIEW chat_state_totals AS
SELECT s.state                                AS chat_state,
       s.ord,
       coalesce(t.chat_count, 0)::bigint      AS chat_count,
       t.changed_epoch,
       coalesce(t.queue_count, 0)::bigint     AS queue_count,
       t.waiting_epoch
FROM unnest(enum_range(NULL::chat_state)) WITH ORDINALITY AS s (state, ord)
LEFT JOIN (SELECT chat_state, sum(chat_count) AS chat_count, sum(changed_epoch) AS changed_epoch,
                  sum(queue_count) AS queue_count, sum(waiting_epoch) AS waiting_epoch
           FROM (SELECT chat_state, chat_count, changed_epoch, queue_count, waiting_epoch
                 FROM chat_state_deltas
                 UNION ALL  -- the events not folded yet
                 SELECT d.chat_state, d.chats, d.changed, d.queued, d.waiting
                 FROM chat_state_fold f
                 JOIN chat_state_event_deltas d ON d.id > f.position) AS parts
           GROUP BY chat_state) AS t
       ON t.chat_state = s.state;

-- ------------------------------------------------------------ references without foreign keys
-- As sql/references.sql says (a copy of it follows): the functions write only rows that name
-- a chat or an operator they hold; the foreign keys' checks per row go, what they did for
-- deletes, truncates and id changes stays, by triggers.
ALTER TABLE messages DROP CONSTRAINT messages_chat_id_fkey,
    DROP CONSTRAINT messages_operator_id_fkey;
ALTER TABLE chat_assignments DROP CONSTRAINT chat_assignments_chat_id_fkey,
    DROP CONSTRAINT chat_assignments_operator_id_fkey;
ALTER TABLE chats DROP CONSTRAINT chats_last_operator_id_fkey;

CREATE FUNCTION chats_delete_cascade() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        -- DELETE, not TRUNCATE: the statement that fired this may be truncating these too,
        -- and a table cannot be truncated twice in one statement. (Naming them in the same
        -- TRUNCATE is the fast way: these DELETEs then find nothing.)
        DELETE FROM @extschema@.messages;
        DELETE FROM @extschema@.chat_assignments;
        DELETE FROM @extschema@.chat_transfers;
    ELSE
        DELETE FROM @extschema@.messages m USING gone g WHERE m.chat_id OPERATOR(pg_catalog.=) g.id;
        DELETE FROM @extschema@.chat_assignments a USING gone g WHERE a.chat_id OPERATOR(pg_catalog.=) g.id;
        DELETE FROM @extschema@.chat_transfers t USING gone g WHERE t.chat_id OPERATOR(pg_catalog.=) g.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chats_delete_cascade AFTER DELETE ON chats
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION chats_delete_cascade();
-- TRUNCATE chats empties them too (as TRUNCATE ... CASCADE did; TRUNCATE fires no DELETE
-- trigger).
CREATE TRIGGER chats_truncate_cascade AFTER TRUNCATE ON chats
    FOR EACH STATEMENT EXECUTE FUNCTION chats_delete_cascade();

-- A DELETE or TRUNCATE of operators, or an UPDATE of a chat's or an operator's id, that would
-- leave rows referencing nothing: refused with 23503, as the foreign key did. (The checks read the
-- committed rows with a snapshot of their own, taken after any lock the statement waited for.)
CREATE FUNCTION refuse_dangling_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids           uuid[];
    one_id        uuid;
    referenced_by text;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        -- Every operator is gone: any name of one dangles.
        referenced_by := CASE
            WHEN EXISTS (SELECT FROM @extschema@.chats c WHERE c.last_operator_id IS NOT NULL) THEN 'chats'
            WHEN EXISTS (SELECT FROM @extschema@.messages m WHERE m.operator_id IS NOT NULL) THEN 'messages'
            WHEN EXISTS (SELECT FROM @extschema@.chat_assignments) THEN 'chat_assignments'
        END;
        IF referenced_by IS NOT NULL THEN
            RAISE EXCEPTION 'truncate on table "operators" would leave rows of "%" referencing operators',
                referenced_by
                USING ERRCODE = '23503',
                      HINT = 'Truncate chats first, in the same statement: TRUNCATE chats, operators.';
        END IF;
        DELETE FROM @extschema@.team_members;
        RETURN NULL;
    ELSIF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
        ids := ARRAY[OLD.id];
    ELSE
        SELECT pg_catalog.array_agg(g.id) INTO ids FROM gone g;
    END IF;
    FOREACH one_id IN ARRAY coalesce(ids, '{}') LOOP
        IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'operators' THEN
            referenced_by := CASE
                WHEN EXISTS (SELECT FROM @extschema@.chats c
                              WHERE c.last_operator_id OPERATOR(pg_catalog.=) one_id) THEN 'chats'
                WHEN EXISTS (SELECT FROM @extschema@.messages m
                              WHERE m.operator_id OPERATOR(pg_catalog.=) one_id) THEN 'messages'
                WHEN EXISTS (SELECT FROM @extschema@.chat_assignments a
                              WHERE a.operator_id OPERATOR(pg_catalog.=) one_id) THEN 'chat_assignments'
                WHEN TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
                     AND EXISTS (SELECT FROM @extschema@.team_members m
                                  WHERE m.operator_id OPERATOR(pg_catalog.=) one_id) THEN 'team_members'
            END;
            IF referenced_by IS NOT NULL THEN
                RAISE EXCEPTION '% on table "operators" would leave rows of "%" referencing id %',
                    pg_catalog.lower(TG_OP), referenced_by, one_id
                    USING ERRCODE = '23503',
                          HINT = 'Deactivate the operator instead (set_operator_active).';
            END IF;
        ELSE
            referenced_by := CASE
                WHEN EXISTS (SELECT FROM @extschema@.messages m
                              WHERE m.chat_id OPERATOR(pg_catalog.=) one_id) THEN 'messages'
                WHEN EXISTS (SELECT FROM @extschema@.chat_assignments a
                              WHERE a.chat_id OPERATOR(pg_catalog.=) one_id) THEN 'chat_assignments'
            END;
            IF referenced_by IS NOT NULL THEN
                RAISE EXCEPTION '% on table "%" would leave rows of "%" referencing id %',
                    pg_catalog.lower(TG_OP), TG_TABLE_NAME, referenced_by, one_id
                    USING ERRCODE = '23503';
            END IF;
        END IF;
    END LOOP;
    IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' AND TG_TABLE_NAME OPERATOR(pg_catalog.=) 'operators' THEN
        DELETE FROM @extschema@.team_members m
         WHERE m.operator_id OPERATOR(pg_catalog.=) ANY (ids);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER operators_delete_referenced AFTER DELETE ON operators
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_references();
CREATE TRIGGER operators_truncate_referenced AFTER TRUNCATE ON operators
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_references();
-- Row triggers (a column list cannot go with transition tables), AFTER: a BEFORE row
-- trigger would make every UPDATE fetch and lock the old row first. UPDATE OF id: the
-- functions never set id, so these never fire for them.
CREATE TRIGGER operators_update_referenced AFTER UPDATE OF id ON operators
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_dangling_references();
CREATE TRIGGER chats_update_referenced AFTER UPDATE OF id ON chats
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_dangling_references();

-- ------------------------------------------------------------ one key check per assignment
-- assigned_operator_id always equals last_operator_id, whose key is checked. And the CHECKs
-- of each table become one call of a native function (sql/schema.sql says why).
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
ALTER TABLE chats DROP CONSTRAINT chats_assigned_operator_id_fkey,
    DROP CONSTRAINT chats_assigned_has_operator,
    DROP CONSTRAINT chats_assigned_has_time,
    DROP CONSTRAINT chats_replied_has_time,
    DROP CONSTRAINT chats_completed_inactive,
    DROP CONSTRAINT chats_waiting_has_since,
    ADD CONSTRAINT chats_state_consistent CHECK (chats_state_consistent(
        chat_state, assigned_operator_id, last_operator_id, assigned_at, operator_replied_at,
        is_active, waiting_since));
ALTER TABLE messages DROP CONSTRAINT messages_sender_type_valid,
    DROP CONSTRAINT messages_operator_matches_sender,
    DROP CONSTRAINT messages_content_not_blank,
    ADD CONSTRAINT messages_valid CHECK (messages_valid(sender_type, operator_id, content));
ALTER TABLE chat_assignments DROP CONSTRAINT chat_assignments_release_has_reason,
    DROP CONSTRAINT chat_assignments_release_after_assign,
    ADD CONSTRAINT chat_assignments_release_valid CHECK (
        chat_assignments_release_valid(released_at, release_reason, assigned_at));

-- Reads them (the comments of sql/events.sql explain the three steps).
CREATE FUNCTION read_chat_events(p_after_id bigint DEFAULT 0, p_limit integer DEFAULT 1000)
RETURNS SETOF chat_events
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    newest  bigint;
    floor   bigint;
BEGIN
    IF p_after_id IS NULL THEN
        RAISE EXCEPTION 'p_after_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF p_limit IS NULL THEN
        RAISE EXCEPTION 'p_limit must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF p_limit < 1 THEN
        RAISE EXCEPTION 'p_limit must be at least 1, not %', p_limit USING ERRCODE = '22023';
    END IF;
    -- On a hot standby the primary's floor locks are not in pg_locks, and the sequence may
    -- be ahead of what was written: the horizon would not hold there.
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'read_chat_events runs on the primary, not on a standby'
            USING ERRCODE = '0A000';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'read_chat_events needs READ COMMITTED, not %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = '0A000',
                  HINT = 'Call it in its own transaction, or in a READ COMMITTED one.';
    END IF;

    SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END
      INTO newest FROM @extschema@.chat_events_id_seq s;

    SELECT min((l.classid::bigint << 32) | l.objid::bigint)
      INTO floor
      FROM pg_locks l
     WHERE l.locktype = 'advisory'
       AND l.objsubid = 25441
       AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());

    RETURN QUERY
        SELECT e.* FROM @extschema@.chat_events e
         WHERE e.id > p_after_id AND e.id <= least(newest, floor)
         ORDER BY e.id
         LIMIT p_limit;
END
$$;

CREATE FUNCTION prune_chat_events() RETURNS bigint
STRICT VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'prune_chat_events_wrapper';

CREATE FUNCTION worker_status() RETURNS TABLE (
    database text,
    started_at timestamp with time zone,
    idle_passes bigint,
    failed_passes bigint,
    last_pass_at timestamp with time zone,
    last_error text,
    last_error_at timestamp with time zone
)
STRICT VOLATILE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'worker_status_wrapper';

-- ------------------------------------------------------------ views
CREATE OR REPLACE VIEW operator_assignment_stats AS
WITH recent AS (
    SELECT ca.operator_id, ca.assigned_at, ca.released_at
    FROM chat_assignments ca
    WHERE ca.assigned_at > now() - interval '24 hours'
    UNION ALL
    SELECT ca.operator_id, ca.assigned_at, ca.released_at
    FROM chats c
    JOIN chat_assignments ca
      ON ca.id = (SELECT max(l.id) FROM chat_assignments l WHERE l.chat_id = c.id)
     AND ca.released_at IS NULL
    WHERE c.assigned_operator_id IS NOT NULL
      AND ca.assigned_at <= now() - interval '24 hours'
)
SELECT o.id                                                         AS operator_id,
       o.name                                                       AS operator_name,
       o.is_active,
       o.max_concurrent_chats,
       count(r.operator_id)                                         AS total_assignments,
       count(r.released_at)                                         AS released_assignments,
       count(r.operator_id) FILTER (WHERE r.released_at IS NULL)    AS active_assignments,
       round(avg(extract(epoch FROM r.released_at - r.assigned_at)), 1)
                                                                    AS avg_handling_seconds
FROM operators o
LEFT JOIN recent r ON r.operator_id = o.id
GROUP BY o.id, o.name, o.is_active, o.max_concurrent_chats;

CREATE VIEW operator_activity AS
SELECT ca.operator_id, ca.chat_id, ca.last_activity_at
FROM chats c
JOIN chat_assignments ca
  ON ca.id = (SELECT max(l.id) FROM chat_assignments l WHERE l.chat_id = c.id)
 AND ca.released_at IS NULL
WHERE c.assigned_operator_id IS NOT NULL;

-- ------------------------------------------------------------ idempotency keys
ALTER TABLE chats ADD COLUMN idempotency_key text;
ALTER TABLE messages ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX idx_chats_idempotency_key ON chats (real_user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX idx_messages_idempotency_key
    ON messages (chat_id, idempotency_key, sender_type, operator_id) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL;

-- start_chat, real_user_send_message and operator_send_message gain a last parameter,
-- p_idempotency_key. CREATE OR REPLACE cannot add one, so each is dropped and created
-- again; the EXECUTE grants a DBA gave on the old one are given on the new one at the end
-- of this script. They wait in a setting local to this transaction.
SELECT pg_catalog.set_config('chat_assign_upgrade.message_acls', (
    SELECT pg_catalog.json_object_agg(p.proname, coalesce(p.proacl::text, ''))::text
    FROM pg_catalog.pg_proc p
    WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
              '@extschema@.start_chat(uuid, text)'::pg_catalog.regprocedure,
              '@extschema@.real_user_send_message(uuid, text)'::pg_catalog.regprocedure,
              '@extschema@.operator_send_message(uuid, uuid, text)'::pg_catalog.regprocedure]::pg_catalog.oid[])),
    true);
DROP FUNCTION start_chat(uuid, text);
DROP FUNCTION real_user_send_message(uuid, text);
DROP FUNCTION operator_send_message(uuid, uuid, text);

CREATE FUNCTION start_chat(p_real_user_id uuid, p_content text, p_idempotency_key text DEFAULT NULL,
                           p_team_id uuid DEFAULT NULL, p_priority integer DEFAULT 0)
RETURNS uuid
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'start_chat_wrapper';

CREATE FUNCTION real_user_send_message(p_chat_id uuid, p_content text, p_idempotency_key text DEFAULT NULL)
RETURNS bigint
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'real_user_send_message_wrapper';

CREATE FUNCTION operator_send_message(p_chat_id uuid, p_operator_id uuid, p_content text,
                                      p_idempotency_key text DEFAULT NULL)
RETURNS bigint
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'operator_send_message_wrapper';

-- ------------------------------------------------------------ teams, presence, transfers
-- As sql/schema.sql, sql/references.sql and sql/views.sql (copies follow). Operators start
-- online, so an app that never sets a presence sees no change; every chat starts without a
-- team, in the queue anyone takes from.
ALTER TABLE operators
    ADD COLUMN status text NOT NULL DEFAULT 'online',
    ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN team_count integer NOT NULL DEFAULT 0,
    ADD COLUMN held_chat_ids uuid[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT operators_status_valid CHECK (status IN ('online', 'away', 'offline'));
-- Every chat each operator holds now (sql/schema.sql and sql/references.sql say why).
UPDATE operators o SET held_chat_ids = ARRAY(SELECT c.id FROM chats c WHERE c.assigned_operator_id = o.id)
WHERE EXISTS (SELECT 1 FROM chats c WHERE c.assigned_operator_id = o.id);
ALTER TABLE chats ADD COLUMN team_id uuid;
-- Service metrics: when each chat was first assigned and first answered, and how often it
-- was released for idleness, from the history the tables already hold (one pass over the
-- assignments and the operators' messages).
ALTER TABLE chats ADD COLUMN first_assigned_at timestamptz, ADD COLUMN first_response_at timestamptz,
                  ADD COLUMN idle_releases integer NOT NULL DEFAULT 0;
UPDATE chats c SET first_assigned_at = f.first_assigned_at, first_response_at = f.first_response_at,
                   idle_releases = f.idle_releases
FROM (SELECT c2.id, a.first_assigned_at, a.idle_releases,
             (SELECT min(m.created_at) FROM messages m
               WHERE m.chat_id = c2.id AND m.sender_type = 'operator') AS first_response_at
      FROM chats c2
      CROSS JOIN LATERAL (
          SELECT min(a.assigned_at) AS first_assigned_at,
                 count(*) FILTER (WHERE a.release_reason = 'idle_timeout')::integer AS idle_releases
          FROM chat_assignments a WHERE a.chat_id = c2.id) AS a) AS f
WHERE f.id = c.id
  AND (f.first_assigned_at IS NOT NULL OR f.first_response_at IS NOT NULL OR f.idle_releases > 0);
CREATE INDEX idx_chats_created_at ON chats USING brin (created_at);

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
-- operators.team_count: 0 only for an operator of no team. A claim reads it under the
-- operator's lock to run, for an operator of no team, a statement that names no team
-- table: a plan locks every relation it names, and a call that locks more than sixteen
-- leaves the backend's fast path for the shared lock table (src/store/queries.rs,
-- CLAIM_NEXT_CHAT_NO_TEAM). Every membership written (inserted, or moved to another
-- operator) raises its operator's count in the same transaction, so a claim never takes an
-- operator of a team for one of none; an update of the operator's row waits for a claim
-- that holds its lock, and a claim that waited reads the count this wrote. Only
-- remove_team_member lowers it, under the operator's lock. Memberships deleted with their
-- team, or by a direct DELETE or TRUNCATE, leave the count high (the operator then claims
-- through the statement that reads the team tables, as before): lowering it there would
-- lock operators while holding the lock on chats that a team's deletion takes, in the
-- opposite order of a claim, which locks its operator first. A restore that copies the
-- counts and then the memberships raises them again: high, never wrong.
CREATE FUNCTION team_members_count() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.operators o SET team_count = o.team_count OPERATOR(pg_catalog.+) g.n
    FROM (SELECT r.operator_id, pg_catalog.count(*) AS n FROM new_rows r GROUP BY r.operator_id) g
    WHERE o.id OPERATOR(pg_catalog.=) g.operator_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER team_members_count_insert AFTER INSERT ON team_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION team_members_count();
CREATE TRIGGER team_members_count_update AFTER UPDATE ON team_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION team_members_count();

-- operators.held_chat_ids: every chat the operator holds, and perhaps some it no longer
-- holds. A claim counts the operator's chats by looking these up by id instead of through
-- idx_chats_assigned_operator, whose dead entries (one per assignment until vacuum removes
-- them, and vacuum removes none while an old snapshot stays open) it would otherwise read
-- every time (src/store/queries.rs, open_count!). Whatever gives an operator a chat adds
-- the chat under the operator's lock: the functions in the same statement (a claim also
-- drops the ids it found released), and any other write (an app's direct UPDATE, a bulk
-- load, the import, a restore) through the triggers below. A release leaves the id: it
-- would have to lock the operator while holding the chat, the opposite order of a claim.
-- An app's direct write that gives a chat to an operator does take the operator's lock
-- after the chat's, so it waits for a call that holds that operator (a claim never waits
-- for a chat; a transfer of that very chat to that operator would, and PostgreSQL then
-- aborts one of the two, 40P01). A restore that copies the operators and then the chats
-- adds ids that are there already: the guard below skips them.
CREATE FUNCTION chats_note_holders() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Appends only (the newest row version, after any wait for the operator's lock): what
    -- this statement's snapshot says about the other ids must not drop one that a call
    -- which held the lock has just given.
    IF TG_OP = 'INSERT' THEN
        UPDATE @extschema@.operators o
           SET held_chat_ids = o.held_chat_ids OPERATOR(pg_catalog.||) g.ids
        FROM (SELECT n.assigned_operator_id AS operator_id, pg_catalog.array_agg(n.id) AS ids
              FROM new_rows n WHERE n.assigned_operator_id IS NOT NULL
              GROUP BY n.assigned_operator_id) g
        WHERE o.id OPERATOR(pg_catalog.=) g.operator_id
          AND NOT (g.ids OPERATOR(pg_catalog.<@) o.held_chat_ids);
    ELSE
        UPDATE @extschema@.operators o
           SET held_chat_ids = o.held_chat_ids OPERATOR(pg_catalog.||) g.ids
        FROM (SELECT n.assigned_operator_id AS operator_id, pg_catalog.array_agg(n.id) AS ids
              FROM new_rows n WHERE n.assigned_operator_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM old_rows r
                                WHERE r.id OPERATOR(pg_catalog.=) n.id
                                  AND r.assigned_operator_id OPERATOR(pg_catalog.=) n.assigned_operator_id)
              GROUP BY n.assigned_operator_id) g
        WHERE o.id OPERATOR(pg_catalog.=) g.operator_id
          AND NOT (g.ids OPERATOR(pg_catalog.<@) o.held_chat_ids);
    END IF;
    RETURN NULL;
END
$$;
-- The functions list their chats in the statement that gives them: the triggers do not
-- run for their writes (chat_assign.api_call is on for the length of every call, with
-- change events on or off).
CREATE TRIGGER chats_note_holders_insert AFTER INSERT ON chats
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_call', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_note_holders();
CREATE TRIGGER chats_note_holders_update AFTER UPDATE ON chats
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_call', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_note_holders();

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

-- The queue and who last held its chats, per queue (one per team, one without a team).
-- team_id itself is INCLUDEd so that get_queue_position's counts are index-only scans: the
-- planner serves a query from the index alone only when every column it names is in the
-- index, and a column inside an index expression does not count.
CREATE INDEX idx_chats_waiting_assignment
    ON chats ((coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid)),
              priority DESC, waiting_since, id)
    INCLUDE (team_id)
    WHERE chat_state = 'waiting_assignment' AND is_active;
CREATE INDEX idx_chats_last_operator
    ON chats ((coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid)), last_operator_id)
    WHERE chat_state = 'waiting_assignment' AND is_active;
SELECT pg_catalog.pg_extension_config_dump('teams', '');
SELECT pg_catalog.pg_extension_config_dump('team_members', '');
SELECT pg_catalog.pg_extension_config_dump('chat_transfers', '');
SELECT pg_catalog.pg_extension_config_dump('chat_transfers_id_seq', '');

-- Teams that chats or memberships name (see the head of this file).
CREATE FUNCTION refuse_dangling_team_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids           uuid[];
    named         uuid;
    referenced_by text := 'chats';
BEGIN
    LOCK TABLE @extschema@.chats IN SHARE MODE;
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        SELECT c.team_id INTO named FROM @extschema@.chats c WHERE c.team_id IS NOT NULL LIMIT 1;
    ELSE
        IF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
            ids := ARRAY[OLD.id];
        ELSE
            SELECT pg_catalog.array_agg(g.id) INTO ids FROM gone g;
        END IF;
        SELECT c.team_id INTO named FROM @extschema@.chats c
         WHERE c.team_id OPERATOR(pg_catalog.=) ANY (ids) LIMIT 1;
        IF named IS NULL AND TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
            SELECT m.team_id INTO named FROM @extschema@.team_members m
             WHERE m.team_id OPERATOR(pg_catalog.=) ANY (ids) LIMIT 1;
            referenced_by := 'team_members';
        END IF;
    END IF;
    IF named IS NOT NULL THEN
        RAISE EXCEPTION '% on table "teams" would leave rows of "%" referencing id %',
            pg_catalog.lower(TG_OP), referenced_by, named
            USING ERRCODE = '23503',
                  HINT = 'Transfer the team''s chats to another team first (transfer_chat).';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        DELETE FROM @extschema@.team_members;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        DELETE FROM @extschema@.team_members m WHERE m.team_id OPERATOR(pg_catalog.=) ANY (ids);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER teams_delete_referenced AFTER DELETE ON teams
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_team_references();
CREATE TRIGGER teams_truncate_referenced AFTER TRUNCATE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_team_references();
CREATE TRIGGER teams_update_referenced AFTER UPDATE OF id ON teams
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_dangling_team_references();

-- One row per queue: each team's, and the one of chats without a team (team_id NULL): how
-- many chats wait in it and since when the oldest, how many of its chats are assigned, and
-- who may take them: eligible operators (the team's members; everyone for chats without a
-- team), how many of those are online and active, and how many of those have room for
-- another chat. The waiting count and oldest wait read the queue's part of the queue index
-- (index-only where the visibility map allows): the cost grows with the waiting chats,
-- about 100 ms per million; get_assignment_queue_status() answers the totals from the
-- running totals instead.
CREATE VIEW team_queue_status AS
WITH queues AS (
    SELECT NULL::uuid AS team_id, NULL::text AS team_name, NULL::text AS routing,
           '00000000-0000-0000-0000-000000000000'::uuid AS k
    UNION ALL
    SELECT t.id, t.name, t.routing, t.id FROM teams t
),
-- Each operator once: online (and active), and with room for another chat. Counted per
-- queue by a join, not per queue and operator: the plan's estimate stays small while the
-- small tables have no statistics yet (which would otherwise make every read JIT-compile).
operator_load AS MATERIALIZED (
    SELECT o.id, o.is_active AND o.status = 'online' AS online,
           o.max_concurrent_chats > (SELECT count(*) FROM chats c
                                     WHERE c.assigned_operator_id = o.id) AS has_room
    FROM operators o
),
team_load AS (
    SELECT m.team_id, count(*) AS eligible,
           count(*) FILTER (WHERE l.online) AS online,
           count(*) FILTER (WHERE l.online AND l.has_room) AS available
    FROM team_members m JOIN operator_load l ON l.id = m.operator_id
    GROUP BY m.team_id
),
everyone AS (
    SELECT count(*) AS eligible,
           count(*) FILTER (WHERE l.online) AS online,
           count(*) FILTER (WHERE l.online AND l.has_room) AS available
    FROM operator_load l
)
SELECT q.team_id,
       q.team_name,
       q.routing,
       w.waiting,
       round(extract(epoch FROM now() - w.oldest), 1)::float8            AS oldest_waiting_seconds,
       (SELECT count(*) FROM chats c
         WHERE c.assigned_operator_id IS NOT NULL
           AND coalesce(c.team_id, '00000000-0000-0000-0000-000000000000'::uuid) = q.k)
                                                                          AS assigned,
       CASE WHEN q.team_id IS NULL THEN a.eligible ELSE coalesce(t.eligible, 0) END AS eligible,
       CASE WHEN q.team_id IS NULL THEN a.online ELSE coalesce(t.online, 0) END     AS online,
       CASE WHEN q.team_id IS NULL THEN a.available ELSE coalesce(t.available, 0) END AS available
FROM queues q
CROSS JOIN LATERAL (
    SELECT count(*) AS waiting, min(c.waiting_since) AS oldest
    FROM chats c
    WHERE coalesce(c.team_id, '00000000-0000-0000-0000-000000000000'::uuid) = q.k
      AND c.chat_state = 'waiting_assignment' AND c.is_active
) AS w
LEFT JOIN team_load t ON t.team_id = q.team_id
CROSS JOIN everyone a
ORDER BY q.team_name NULLS FIRST;

CREATE FUNCTION create_team(p_name text, p_routing text DEFAULT 'manual')
RETURNS uuid
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_team_wrapper';

CREATE FUNCTION set_team_routing(p_team_id uuid, p_routing text)
RETURNS boolean
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_team_routing_wrapper';

CREATE FUNCTION add_team_member(p_team_id uuid, p_operator_id uuid)
RETURNS boolean
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'add_team_member_wrapper';

CREATE FUNCTION remove_team_member(p_team_id uuid, p_operator_id uuid)
RETURNS boolean
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'remove_team_member_wrapper';

CREATE FUNCTION set_operator_status(p_operator_id uuid, p_status text)
RETURNS text
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_operator_status_wrapper';

CREATE FUNCTION transfer_chat(p_chat_id uuid, p_to_operator_id uuid DEFAULT NULL,
                              p_to_team_id uuid DEFAULT NULL, p_reason text DEFAULT 'transfer')
RETURNS boolean
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'transfer_chat_wrapper';

CREATE FUNCTION set_chat_priority(p_chat_id uuid, p_priority integer)
RETURNS boolean
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_chat_priority_wrapper';

CREATE FUNCTION get_service_metrics(p_since timestamptz DEFAULT now() - interval '24 hours',
                                    p_team_id uuid DEFAULT NULL)
RETURNS TABLE (scope text, team_id uuid, team_name text, chats_started bigint,
               first_response_p50 double precision, first_response_p90 double precision,
               wait_to_assignment_p50 double precision, wait_to_assignment_p90 double precision,
               transfers bigint, idle_releases bigint, abandoned bigint)
STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'get_service_metrics_wrapper';

CREATE FUNCTION get_queue_position(p_chat_id uuid)
RETURNS TABLE (queue_position integer, waiting_ahead integer, estimated_wait_seconds double precision)
STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'get_queue_position_wrapper';

-- ------------------------------------------------------------ moving an existing app onto the extension
-- As sql/import.sql.
-- Adoption: an app built from the migrations apps ran before this extension (bench/plpgsql:
-- its own operators, chats, messages,
-- chat_assignments and operator_activity tables and PL/pgSQL functions, usually in
-- `public`) moves onto the extension installed beside it (`CREATE EXTENSION chat_assign
-- SCHEMA chat_assign`) in three steps, each one transaction:
--   1. import_app_tables(schema): copies every row into the extension's tables. Reads the
--      app's tables only (under a SHARE lock: the app can read, not write, meanwhile).
--   2. switch_app_calls(schema): moves the app's tables, views and functions of the same
--      names into a backup schema and puts in their place read-only views over the
--      extension's tables and thin functions that call the extension's: the app's calls
--      (`SELECT assign_chat_to_operator(...)`, RPC through PostgREST) reach the extension
--      unchanged.
--   3. restore_app_calls(schema): the rollback of step 2; the app's objects go back exactly
--      as they were at the switch.
-- All three run with the caller's rights (a DBA who owns the app's objects; the superuser
-- who installed the extension), EXECUTE revoked from everyone else, with a pinned
-- search_path and every name of the app's quoted from the catalog.

-- What was imported from where, and what the switch put in the app's schema.
CREATE TABLE app_imports (
    app_schema    name        PRIMARY KEY,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    imported_by   name        NOT NULL DEFAULT current_user,
    repaired      bigint      NOT NULL DEFAULT 0,
    backup_schema name,       -- while switched: where the app's own objects wait
    switched_at   timestamptz,
    created       text[]      -- while switched: what the switch created (views, functions)
);

-- The extension numbers messages and assignments itself (bigint identity); an app's ids
-- (uuid in such apps) are kept here, so that what the app stored elsewhere still
-- finds its row: `SELECT id FROM imported_ids WHERE table_name = 'messages' AND app_id = $1`.
CREATE TABLE imported_ids (
    table_name text   NOT NULL,
    app_id     text   NOT NULL,
    id         bigint NOT NULL,
    PRIMARY KEY (table_name, app_id),
    CONSTRAINT imported_ids_table CHECK (table_name IN ('messages', 'chat_assignments'))
);

SELECT pg_catalog.pg_extension_config_dump('app_imports', '');
SELECT pg_catalog.pg_extension_config_dump('imported_ids', '');

-- Copies an app's rows into the extension's (empty) tables in one transaction and returns
-- one row per table. The app's tables need only the columns that hold data the extension
-- keeps: ids and references, a message's sender and content; every other column is read
-- when it exists (chat_state, last_operator_id, operator_replied_at, priority,
-- waiting_since, state_changed_at, ...) and derived when not (docs/adopting.md lists the derivations and the repair rules).
--
-- Rows that break an invariant are collected first, by rule; without p_repair any of them
-- refuses the whole import with 23514, naming the rule, the count and the first ids. With
-- p_repair each rule's repair is applied and counted in `repaired`.
CREATE FUNCTION import_app_tables(p_schema name, p_repair boolean DEFAULT false)
RETURNS TABLE (table_name text, imported bigint, repaired bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    app_oid   oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = p_schema);
    ext_oid   oid := (SELECT e.extnamespace FROM pg_extension e WHERE e.extname = 'chat_assign');
    app       text := quote_ident(p_schema);
    cols      text[];
    has_activity boolean;
    n_heartbeats bigint := 0;
    n_messages bigint;
    n_problems bigint;
    problems  text;
    before    text;
    t         text;
BEGIN
    IF p_schema IS NULL THEN
        RAISE EXCEPTION 'p_schema must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF p_repair IS NULL THEN
        RAISE EXCEPTION 'p_repair must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF app_oid IS NULL THEN
        RAISE EXCEPTION 'schema "%" does not exist', p_schema USING ERRCODE = '3F000';
    END IF;
    IF app_oid = ext_oid THEN
        RAISE EXCEPTION 'schema "%" is the extension''s own: the app''s tables must be in another schema', p_schema
            USING ERRCODE = '22023';
    END IF;
    SELECT format('from schema %I at %s', i.app_schema, i.imported_at) INTO before
      FROM @extschema@.app_imports i ORDER BY i.imported_at LIMIT 1;
    IF before IS NOT NULL THEN
        RAISE EXCEPTION 'the app''s tables were already imported (%)', before
            USING ERRCODE = '55000';
    END IF;
    FOREACH t IN ARRAY ARRAY['operators', 'chats', 'messages', 'chat_assignments'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class c
                        WHERE c.relnamespace = app_oid AND c.relname = t AND c.relkind IN ('r', 'p')) THEN
            RAISE EXCEPTION 'schema "%" has no table "%"', p_schema, t USING ERRCODE = '42P01';
        END IF;
    END LOOP;
    has_activity := EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = app_oid
                               AND c.relname = 'operator_activity' AND c.relkind IN ('r', 'p'));
    -- The app's columns, as 'table.column'.
    SELECT array_agg(c.relname || '.' || a.attname) INTO cols
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relnamespace = app_oid
       AND c.relname IN ('operators', 'chats', 'messages', 'chat_assignments', 'operator_activity');
    FOREACH t IN ARRAY ARRAY['operators.id', 'operators.name', 'chats.id', 'chats.real_user_id',
                             'messages.id', 'messages.chat_id', 'messages.sender_type',
                             'messages.content', 'chat_assignments.id', 'chat_assignments.chat_id',
                             'chat_assignments.operator_id'] LOOP
        IF NOT t = ANY (cols) THEN
            RAISE EXCEPTION 'the app''s table %.% has no column "%"', app, split_part(t, '.', 1),
                split_part(t, '.', 2) USING ERRCODE = '42703';
        END IF;
    END LOOP;

    -- The app writes nothing while its rows are read (its reads go on); nobody writes ours.
    EXECUTE format('LOCK TABLE %1$s.operators, %1$s.chats, %1$s.messages, %1$s.chat_assignments IN SHARE MODE', app);
    IF has_activity THEN
        EXECUTE format('LOCK TABLE %s.operator_activity IN SHARE MODE', app);
    END IF;
    LOCK TABLE @extschema@.operators, @extschema@.chats, @extschema@.messages,
               @extschema@.chat_assignments, @extschema@.app_imports IN EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM @extschema@.operators) OR EXISTS (SELECT 1 FROM @extschema@.chats)
       OR EXISTS (SELECT 1 FROM @extschema@.messages) OR EXISTS (SELECT 1 FROM @extschema@.chat_assignments) THEN
        RAISE EXCEPTION 'the extension''s tables already hold data: an import goes into a fresh install'
            USING ERRCODE = '55000';
    END IF;

    -- Work tables of an earlier import in this transaction that failed half-way (caught).
    FOREACH t IN ARRAY ARRAY['ca_problem', 'ca_operators', 'ca_chats', 'ca_assignments', 'ca_activity'] LOOP
        IF to_regclass('pg_temp.' || t) IS NOT NULL THEN
            EXECUTE format('DROP TABLE pg_temp.%I', t);
        END IF;
    END LOOP;
    CREATE TEMP TABLE ca_problem (rule text, table_name text, row_id text) ON COMMIT DROP;

    -- ---------------------------------------------------------------- operators
    EXECUTE format($q$
        CREATE TEMP TABLE ca_operators ON COMMIT DROP AS
        SELECT o.id::uuid AS id, o.name::text AS name,
               coalesce(%s, true) AS is_active, %s AS max_concurrent_chats,
               %s AS last_assigned_at, coalesce(%s, now()) AS created_at
        FROM %s.operators o$q$,
        CASE WHEN 'operators.is_active' = ANY (cols) THEN 'o.is_active::boolean' ELSE 'NULL::boolean' END,
        CASE WHEN 'operators.max_concurrent_chats' = ANY (cols) THEN 'o.max_concurrent_chats::integer' ELSE '1' END,
        CASE WHEN 'operators.last_assigned_at' = ANY (cols) THEN 'o.last_assigned_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'operators.created_at' = ANY (cols) THEN 'o.created_at::timestamptz' ELSE 'NULL::timestamptz' END,
        app);
    ALTER TABLE ca_operators ADD PRIMARY KEY (id);
    -- Rule operator_name_blank: named after its id.
    INSERT INTO ca_problem SELECT 'operator_name_blank', 'operators', o.id::text
      FROM ca_operators o WHERE o.name IS NULL OR btrim(o.name) = '';
    UPDATE ca_operators o SET name = 'operator ' || o.id WHERE o.name IS NULL OR btrim(o.name) = '';
    -- Rule operator_capacity: capacity 1.
    INSERT INTO ca_problem SELECT 'operator_capacity', 'operators', o.id::text
      FROM ca_operators o WHERE o.max_concurrent_chats IS NULL OR o.max_concurrent_chats < 1;
    UPDATE ca_operators o SET max_concurrent_chats = 1
     WHERE o.max_concurrent_chats IS NULL OR o.max_concurrent_chats < 1;

    -- ---------------------------------------------------------------- chats
    EXECUTE format($q$
        CREATE TEMP TABLE ca_chats ON COMMIT DROP AS
        SELECT c.id::uuid AS id, c.real_user_id::uuid AS real_user_id,
               %s AS app_state, %s AS assigned_operator_id, %s AS last_operator_id,
               %s AS operator_replied_at, coalesce(%s, true) AS is_active,
               coalesce(%s, now()) AS created_at, %s AS last_message_at,
               coalesce(%s, 0) AS priority, %s AS waiting_since, %s AS state_changed_at,
               NULL::@extschema@.chat_state AS chat_state, NULL::timestamptz AS assigned_at
        FROM %s.chats c$q$,
        CASE WHEN 'chats.chat_state' = ANY (cols) THEN 'c.chat_state::text' ELSE 'NULL::text' END,
        CASE WHEN 'chats.assigned_operator_id' = ANY (cols) THEN 'c.assigned_operator_id::uuid' ELSE 'NULL::uuid' END,
        CASE WHEN 'chats.last_operator_id' = ANY (cols) THEN 'c.last_operator_id::uuid' ELSE 'NULL::uuid' END,
        CASE WHEN 'chats.operator_replied_at' = ANY (cols) THEN 'c.operator_replied_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.is_active' = ANY (cols) THEN 'c.is_active::boolean' ELSE 'NULL::boolean' END,
        CASE WHEN 'chats.created_at' = ANY (cols) THEN 'c.created_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.last_message_at' = ANY (cols) THEN 'c.last_message_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.priority' = ANY (cols) THEN 'c.priority::integer' ELSE 'NULL::integer' END,
        CASE WHEN 'chats.waiting_since' = ANY (cols) THEN 'c.waiting_since::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.state_changed_at' = ANY (cols) THEN 'c.state_changed_at::timestamptz' ELSE 'NULL::timestamptz' END,
        app);
    ALTER TABLE ca_chats ADD PRIMARY KEY (id);
    -- The state: the app's own (migration 014 on), else derived from the columns before 014
    -- the way 014's backfill did. Rule chat_state_unknown: a state the extension does not
    -- have gets the derived one.
    IF 'chats.chat_state' = ANY (cols) THEN
        INSERT INTO ca_problem SELECT 'chat_state_unknown', 'chats', c.id::text FROM ca_chats c
         WHERE c.app_state IS NULL
            OR c.app_state NOT IN ('waiting_assignment', 'assigned', 'waiting_real_user_reply', 'completed');
    END IF;
    UPDATE ca_chats c SET chat_state = CASE
        WHEN c.app_state IN ('waiting_assignment', 'assigned', 'waiting_real_user_reply', 'completed')
            THEN c.app_state::@extschema@.chat_state
        WHEN NOT c.is_active THEN 'completed'
        WHEN c.assigned_operator_id IS NOT NULL THEN 'assigned'
        ELSE 'waiting_assignment' END;
    -- Rule chat_operator_missing: an operator id that names no operator is dropped.
    INSERT INTO ca_problem SELECT 'chat_operator_missing', 'chats', c.id::text FROM ca_chats c
     WHERE (c.assigned_operator_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.assigned_operator_id))
        OR (c.last_operator_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.last_operator_id));
    UPDATE ca_chats c SET assigned_operator_id = NULL
     WHERE c.assigned_operator_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.assigned_operator_id);
    UPDATE ca_chats c SET last_operator_id = NULL
     WHERE c.last_operator_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.last_operator_id);
    -- Rule chat_assigned_without_operator: back to the queue.
    INSERT INTO ca_problem SELECT 'chat_assigned_without_operator', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'assigned' AND c.assigned_operator_id IS NULL;
    UPDATE ca_chats c SET chat_state = 'waiting_assignment'
     WHERE c.chat_state = 'assigned' AND c.assigned_operator_id IS NULL;
    -- Rule chat_operator_not_assigned: a chat that is not assigned holds no operator (the
    -- one it named becomes its last operator, unless it has one).
    INSERT INTO ca_problem SELECT 'chat_operator_not_assigned', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state <> 'assigned' AND c.assigned_operator_id IS NOT NULL;
    UPDATE ca_chats c SET last_operator_id = coalesce(c.last_operator_id, c.assigned_operator_id),
                          assigned_operator_id = NULL
     WHERE c.chat_state <> 'assigned' AND c.assigned_operator_id IS NOT NULL;
    -- Rule chat_completed_active: a completed chat is inactive.
    INSERT INTO ca_problem SELECT 'chat_completed_active', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'completed' AND c.is_active;
    UPDATE ca_chats c SET is_active = false WHERE c.chat_state = 'completed' AND c.is_active;
    -- Rule chat_reply_time_missing: a chat waiting for the user's reply was answered at its
    -- last message (or, without one, when it started).
    INSERT INTO ca_problem SELECT 'chat_reply_time_missing', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'waiting_real_user_reply' AND c.operator_replied_at IS NULL;
    UPDATE ca_chats c SET operator_replied_at = coalesce(c.last_message_at, c.created_at)
     WHERE c.chat_state = 'waiting_real_user_reply' AND c.operator_replied_at IS NULL;
    -- Derived, not repaired: the holder of an assigned chat is its last operator; a chat
    -- waits (keeps its place in the queue) from its last message.
    UPDATE ca_chats c SET last_operator_id = c.assigned_operator_id
     WHERE c.chat_state = 'assigned' AND c.last_operator_id IS DISTINCT FROM c.assigned_operator_id;
    UPDATE ca_chats c SET waiting_since = coalesce(c.last_message_at, c.created_at)
     WHERE c.waiting_since IS NULL;

    -- ---------------------------------------------------------------- assignments
    EXECUTE format($q$
        CREATE TEMP TABLE ca_assignments ON COMMIT DROP AS
        SELECT a.id::text AS app_id, a.chat_id::uuid AS chat_id, a.operator_id::uuid AS operator_id,
               %s AS assigned_at, %s AS released_at, %s AS release_reason,
               NULL::timestamptz AS last_activity_at, false AS kept_open
        FROM %s.chat_assignments a$q$,
        CASE WHEN 'chat_assignments.assigned_at' = ANY (cols) THEN 'a.assigned_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chat_assignments.released_at' = ANY (cols) THEN 'a.released_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chat_assignments.release_reason' = ANY (cols) THEN 'a.release_reason::text' ELSE 'NULL::text' END,
        app);
    CREATE INDEX ON ca_assignments (chat_id);
    -- Rule assignment_reference_missing: an assignment of a chat or by an operator that does
    -- not exist is not imported.
    INSERT INTO ca_problem SELECT 'assignment_reference_missing', 'chat_assignments', a.app_id
      FROM ca_assignments a
     WHERE NOT EXISTS (SELECT 1 FROM ca_chats c WHERE c.id = a.chat_id)
        OR NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = a.operator_id);
    DELETE FROM ca_assignments a
     WHERE NOT EXISTS (SELECT 1 FROM ca_chats c WHERE c.id = a.chat_id)
        OR NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = a.operator_id);
    -- Rule assignment_times_invalid: no time of assignment (the chat's start), released
    -- before it was assigned (released then), released without a reason ('unknown') or a
    -- reason without a release (dropped).
    INSERT INTO ca_problem SELECT 'assignment_times_invalid', 'chat_assignments', a.app_id
      FROM ca_assignments a
     WHERE a.assigned_at IS NULL OR a.released_at < a.assigned_at
        OR (a.released_at IS NULL) <> (a.release_reason IS NULL);
    UPDATE ca_assignments a SET assigned_at = coalesce(a.released_at, c.created_at)
      FROM ca_chats c WHERE c.id = a.chat_id AND a.assigned_at IS NULL;
    UPDATE ca_assignments a SET released_at = a.assigned_at WHERE a.released_at < a.assigned_at;
    UPDATE ca_assignments a SET release_reason = CASE WHEN a.released_at IS NULL THEN NULL ELSE 'unknown' END
     WHERE (a.released_at IS NULL) <> (a.release_reason IS NULL);

    -- Rule operator_over_capacity: an operator holds at most max_concurrent_chats chats; it
    -- keeps those assigned to it last, the others go back to the queue.
    WITH held AS (
        SELECT c.id, c.assigned_operator_id, o.max_concurrent_chats AS cap,
               row_number() OVER (PARTITION BY c.assigned_operator_id
                                  ORDER BY (SELECT max(a.assigned_at) FROM ca_assignments a
                                             WHERE a.chat_id = c.id AND a.operator_id = c.assigned_operator_id
                                               AND a.released_at IS NULL) DESC NULLS LAST, c.id) AS rank
        FROM ca_chats c JOIN ca_operators o ON o.id = c.assigned_operator_id
        WHERE c.chat_state = 'assigned')
    INSERT INTO ca_problem SELECT 'operator_over_capacity', 'chats', h.id::text FROM held h WHERE h.rank > h.cap;
    UPDATE ca_chats c SET chat_state = 'waiting_assignment', assigned_operator_id = NULL
      FROM ca_problem p
     WHERE p.rule = 'operator_over_capacity' AND p.row_id = c.id::text;

    -- An assigned chat keeps one open assignment: its newest one by its operator.
    UPDATE ca_assignments a SET kept_open = true
     WHERE a.app_id IN (
        SELECT DISTINCT ON (a2.chat_id) a2.app_id
          FROM ca_assignments a2 JOIN ca_chats c ON c.id = a2.chat_id
         WHERE a2.released_at IS NULL AND c.chat_state = 'assigned'
           AND a2.operator_id = c.assigned_operator_id
         ORDER BY a2.chat_id, a2.assigned_at DESC, a2.app_id DESC);
    -- Rule assignment_open_twice (a second open assignment of an assigned chat) and rule
    -- assignment_left_open (an open assignment of a chat that is not assigned, or of
    -- another operator): released now, reason 'import_repair'.
    INSERT INTO ca_problem
    SELECT CASE WHEN c.chat_state = 'assigned' AND a.operator_id = c.assigned_operator_id
                THEN 'assignment_open_twice' ELSE 'assignment_left_open' END,
           'chat_assignments', a.app_id
      FROM ca_assignments a JOIN ca_chats c ON c.id = a.chat_id
     WHERE a.released_at IS NULL AND NOT a.kept_open;
    UPDATE ca_assignments a SET released_at = greatest(now(), a.assigned_at), release_reason = 'import_repair'
     WHERE a.released_at IS NULL AND NOT a.kept_open;
    -- Rule chat_assigned_without_assignment: the missing assignment is added, from the
    -- chat's last message (or its start).
    INSERT INTO ca_problem SELECT 'chat_assigned_without_assignment', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'assigned'
       AND NOT EXISTS (SELECT 1 FROM ca_assignments a WHERE a.chat_id = c.id AND a.kept_open);
    INSERT INTO ca_assignments (app_id, chat_id, operator_id, assigned_at, kept_open)
    SELECT NULL, c.id, c.assigned_operator_id, coalesce(c.last_message_at, c.created_at), true
      FROM ca_chats c
     WHERE c.chat_state = 'assigned'
       AND NOT EXISTS (SELECT 1 FROM ca_assignments a WHERE a.chat_id = c.id AND a.kept_open);

    -- ---------------------------------------------------------------- heartbeats
    IF has_activity THEN
        EXECUTE format($q$
            CREATE TEMP TABLE ca_activity ON COMMIT DROP AS
            SELECT h.operator_id::uuid AS operator_id, h.chat_id::uuid AS chat_id,
                   h.last_activity_at::timestamptz AS last_activity_at
            FROM %s.operator_activity h$q$, app);
        -- Rule activity_without_assignment: a heartbeat of an operator who does not hold
        -- the chat (a release that forgot it) is not imported.
        INSERT INTO ca_problem SELECT 'activity_without_assignment', 'operator_activity',
                                      h.operator_id || '/' || h.chat_id
          FROM ca_activity h
         WHERE NOT EXISTS (SELECT 1 FROM ca_assignments a
                            WHERE a.chat_id = h.chat_id AND a.operator_id = h.operator_id AND a.kept_open);
        UPDATE ca_assignments a SET last_activity_at = h.last_activity_at
          FROM (SELECT h2.chat_id, h2.operator_id, max(h2.last_activity_at) AS last_activity_at
                  FROM ca_activity h2 GROUP BY 1, 2) h
         WHERE a.kept_open AND a.chat_id = h.chat_id AND a.operator_id = h.operator_id;
        SELECT count(*) INTO n_heartbeats FROM ca_activity h
         WHERE EXISTS (SELECT 1 FROM ca_assignments a
                        WHERE a.chat_id = h.chat_id AND a.operator_id = h.operator_id AND a.kept_open);
    END IF;
    UPDATE ca_assignments a SET last_activity_at = coalesce(a.released_at, a.assigned_at)
     WHERE a.last_activity_at IS NULL;

    -- When the chat was assigned last, and since when it is in its state (the app kept
    -- neither): its newest assignment; the reply; its last message.
    UPDATE ca_chats c SET assigned_at = a.assigned_at
      FROM (SELECT a2.chat_id, max(a2.assigned_at) AS assigned_at FROM ca_assignments a2 GROUP BY 1) a
     WHERE a.chat_id = c.id;
    UPDATE ca_chats c SET state_changed_at = CASE c.chat_state
            WHEN 'assigned' THEN coalesce((SELECT a.assigned_at FROM ca_assignments a
                                            WHERE a.chat_id = c.id AND a.kept_open), c.assigned_at)
            WHEN 'waiting_real_user_reply' THEN c.operator_replied_at
            ELSE coalesce(c.last_message_at, c.created_at) END
     WHERE c.state_changed_at IS NULL;

    -- ---------------------------------------------------------------- messages
    -- Not staged (there may be many): checked in place, then copied.
    -- Rule message_reference_missing (a message of no chat, or by no operator) and rule
    -- message_invalid (a sender that is neither, an operator message without its operator
    -- or a user's with one, blank content): not imported.
    EXECUTE format($q$
        INSERT INTO ca_problem
        SELECT CASE WHEN c.id IS NULL OR (m.operator_id IS NOT NULL AND o.id IS NULL)
                    THEN 'message_reference_missing' ELSE 'message_invalid' END,
               'messages', m.id::text
          FROM %s.messages m
          LEFT JOIN ca_chats c ON c.id = m.chat_id::uuid
          LEFT JOIN ca_operators o ON o.id = %s
         WHERE c.id IS NULL OR (%2$s IS NOT NULL AND o.id IS NULL)
            OR NOT coalesce(m.sender_type::text IN ('real_user', 'operator')
                            AND (m.sender_type::text = 'operator') = (%2$s IS NOT NULL)
                            AND btrim(m.content::text) <> '', false)$q$,
        app,
        CASE WHEN 'messages.operator_id' = ANY (cols) THEN 'm.operator_id::uuid' ELSE 'NULL::uuid' END);

    -- ---------------------------------------------------------------- refuse, or write
    SELECT count(*) INTO n_problems FROM ca_problem;
    IF n_problems > 0 AND NOT p_repair THEN
        SELECT string_agg(format('%s: %s %s (%s%s)', r.rule, r.n,
                                 CASE WHEN r.n = 1 THEN 'row' ELSE 'rows' END, r.table_name,
                                 ', e.g. ' || r.sample), E'\n' ORDER BY r.rule)
          INTO problems
          FROM (SELECT p.rule, p.table_name, count(*) AS n,
                       string_agg(p.row_id, ', ' ORDER BY p.row_id) FILTER (WHERE p.k <= 3) AS sample
                  FROM (SELECT p2.*, row_number() OVER (PARTITION BY p2.rule ORDER BY p2.row_id) AS k
                          FROM ca_problem p2) p
                 GROUP BY p.rule, p.table_name) r;
        RAISE EXCEPTION '% rows of schema % break the extension''s invariants; nothing was imported',
            n_problems, app
            USING ERRCODE = '23514', DETAIL = problems,
                  HINT = 'Fix those rows, or call import_app_tables(..., p_repair => true) to apply the repair rule of each.';
    END IF;

    INSERT INTO @extschema@.operators (id, name, is_active, max_concurrent_chats, last_assigned_at, created_at)
    SELECT o.id, o.name, o.is_active, o.max_concurrent_chats, o.last_assigned_at, o.created_at
      FROM ca_operators o ORDER BY o.created_at, o.id;
    -- When each chat was first answered (its first operator message kept) and first assigned,
    -- and how often it was released for idleness: what get_service_metrics reads.
    EXECUTE format($q$
        CREATE TEMP TABLE ca_first_reply ON COMMIT DROP AS
        SELECT m.chat_id::uuid AS chat_id, min(coalesce(%2$s, now())) AS at
          FROM %1$s.messages m
         WHERE m.sender_type::text = 'operator'
           AND NOT EXISTS (SELECT 1 FROM ca_problem p
                            WHERE p.table_name = 'messages' AND p.row_id = m.id::text)
         GROUP BY 1$q$,
        app,
        CASE WHEN 'messages.created_at' = ANY (cols) THEN 'm.created_at::timestamptz' ELSE 'NULL::timestamptz' END);
    INSERT INTO @extschema@.chats (id, real_user_id, chat_state, assigned_operator_id, last_operator_id,
                                   operator_replied_at, assigned_at, waiting_since, state_changed_at,
                                   priority, is_active, created_at, last_message_at,
                                   first_assigned_at, first_response_at, idle_releases)
    SELECT c.id, c.real_user_id, c.chat_state, c.assigned_operator_id, c.last_operator_id,
           c.operator_replied_at, c.assigned_at, c.waiting_since, c.state_changed_at,
           c.priority, c.is_active, c.created_at, c.last_message_at,
           fa.at, fr.at, coalesce(fa.idle, 0)
      FROM ca_chats c
      LEFT JOIN (SELECT a.chat_id, min(a.assigned_at) AS at,
                        count(*) FILTER (WHERE a.release_reason = 'idle_timeout')::integer AS idle
                   FROM ca_assignments a GROUP BY a.chat_id) AS fa
             ON fa.chat_id = c.id
      LEFT JOIN ca_first_reply fr ON fr.chat_id = c.id
     ORDER BY c.created_at, c.id;

    -- The references of every assignment and message left were checked above, against the
    -- rows just written, and nothing can change either side meanwhile (the locks).

    -- A chat's open assignment is its newest (the functions find it as max(id)): the open
    -- ones are numbered after every released one, each group in time order.
    WITH numbered AS (
        SELECT a.*, row_number() OVER (ORDER BY a.kept_open, a.assigned_at, a.app_id) AS new_id
          FROM ca_assignments a),
    written AS (
        INSERT INTO @extschema@.chat_assignments (id, chat_id, operator_id, assigned_at, released_at,
                                                  release_reason, last_activity_at)
        SELECT n.new_id, n.chat_id, n.operator_id, n.assigned_at, n.released_at, n.release_reason,
               n.last_activity_at
          FROM numbered n)
    INSERT INTO @extschema@.imported_ids (table_name, app_id, id)
    SELECT 'chat_assignments', n.app_id, n.new_id FROM numbered n WHERE n.app_id IS NOT NULL;

    -- Messages numbered in the order they were written.
    EXECUTE format($q$
        WITH numbered AS (
            SELECT m.id::text AS app_id, m.chat_id::uuid AS chat_id, m.sender_type::text AS sender_type,
                   %2$s AS operator_id, m.content::text AS content, coalesce(%3$s, now()) AS created_at,
                   row_number() OVER (ORDER BY %3$s, m.id) AS new_id
              FROM %1$s.messages m
             WHERE NOT EXISTS (SELECT 1 FROM ca_problem p
                                WHERE p.table_name = 'messages' AND p.row_id = m.id::text)),
        written AS (
            INSERT INTO @extschema@.messages (id, chat_id, sender_type, operator_id, content, created_at)
            SELECT n.new_id, n.chat_id, n.sender_type, n.operator_id, n.content, n.created_at
              FROM numbered n)
        INSERT INTO @extschema@.imported_ids (table_name, app_id, id)
        SELECT 'messages', n.app_id, n.new_id FROM numbered n$q$,
        app,
        CASE WHEN 'messages.operator_id' = ANY (cols) THEN 'm.operator_id::uuid' ELSE 'NULL::uuid' END,
        CASE WHEN 'messages.created_at' = ANY (cols) THEN 'm.created_at::timestamptz' ELSE 'NULL::timestamptz' END);
    GET DIAGNOSTICS n_messages = ROW_COUNT;

    -- The identities go on after the ids written.
    PERFORM setval(pg_get_serial_sequence('@extschema@.messages', 'id'),
                   coalesce((SELECT max(m.id) FROM @extschema@.messages m), 0) + 1, false);
    PERFORM setval(pg_get_serial_sequence('@extschema@.chat_assignments', 'id'),
                   coalesce((SELECT max(a.id) FROM @extschema@.chat_assignments a), 0) + 1, false);

    INSERT INTO @extschema@.app_imports (app_schema, repaired) VALUES (p_schema, n_problems);

    RETURN QUERY
    SELECT s.t, s.imported, (SELECT count(DISTINCT p.row_id) FROM ca_problem p WHERE p.table_name = s.t)
      FROM (VALUES ('operators', (SELECT count(*) FROM ca_operators), 1),
                   ('chats', (SELECT count(*) FROM ca_chats), 2),
                   ('messages', n_messages, 3),
                   ('chat_assignments', (SELECT count(*) FROM ca_assignments), 4),
                   ('operator_activity', n_heartbeats, 5))
           AS s(t, imported, ord)
     ORDER BY s.ord;
END
$$;

-- After import_app_tables(p_schema): the app's calls go to the extension. In p_schema, the
-- app's tables and views named like the extension's (`relations` below) and its functions
-- named like the extension's API (`functions`, any signature) move to the schema `<p_schema>_before_chat_assign`,
-- untouched (data, grants, policies, triggers and definitions move with them); in their
-- place come
--   * views over the extension's tables and views (security_invoker: a caller reads only
--     what the extension's grants let it read; no one can write through them), and
--   * for every function of the extension an app calls, a function of the same name,
--     parameters, defaults and result that calls it: SECURITY INVOKER (it gives no right
--     the caller lacks), its search_path pinned, the extension's function named by schema
--     (a caller's search_path cannot redirect it).
-- Each carries the grants the app's object of that name had, so the app's roles call and
-- read what they did (they also need the extension's grants: docs/security.md, "Roles and grants").
-- Returns what it did, one row per object; objects of the app that still use the moved
-- tables (its other views, functions, foreign keys) are listed as 'still reads the old
-- table': they see the app's rows as they were at the switch.
CREATE FUNCTION switch_app_calls(p_schema name)
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    app_oid  oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = p_schema);
    ext_oid  oid := (SELECT e.extnamespace FROM pg_extension e WHERE e.extname = 'chat_assign');
    ext      text;
    backup   name;
    -- The extension's functions an app calls (every one but the adoption functions and the
    -- triggers: pg_regress adopt checks that none is missing) and its tables and views.
    functions name[] := ARRAY['start_chat', 'real_user_send_message', 'operator_send_message',
                              'assign_chat_to_operator', 'release_and_reassign_chat',
                              'touch_operator_activity', 'release_idle_assignments', 'complete_chat',
                              'create_operator', 'set_operator_active', 'get_assignment_queue_status',
                              'detect_stuck_chats', 'read_chat_events', 'prune_chat_events',
                              'worker_status', 'create_team', 'set_team_routing', 'add_team_member',
                              'remove_team_member', 'set_operator_status', 'transfer_chat',
                              'set_chat_priority', 'get_queue_position', 'get_service_metrics'];
    relations name[] := ARRAY['operators', 'chats', 'messages', 'chat_assignments', 'operator_activity',
                              'chat_state_summary', 'operator_assignment_stats', 'teams',
                              'team_members', 'chat_transfers', 'team_queue_status'];
    obj      record;
    g        record;
    moved    oid[] := '{}';
    made     text[] := '{}';
    args     text;
    body     text;
BEGIN
    IF p_schema IS NULL THEN
        RAISE EXCEPTION 'p_schema must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF app_oid IS NULL THEN
        RAISE EXCEPTION 'schema "%" does not exist', p_schema USING ERRCODE = '3F000';
    END IF;
    IF app_oid = ext_oid THEN
        RAISE EXCEPTION 'schema "%" is the extension''s own', p_schema USING ERRCODE = '22023';
    END IF;
    ext := quote_ident((SELECT n.nspname FROM pg_namespace n WHERE n.oid = ext_oid));
    backup := left(p_schema, 44) || '_before_chat_assign';
    PERFORM 1 FROM @extschema@.app_imports i WHERE i.app_schema = p_schema FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'nothing was imported from schema "%": run import_app_tables(%L) first', p_schema, p_schema
            USING ERRCODE = '55000';
    END IF;
    IF (SELECT i.backup_schema FROM @extschema@.app_imports i WHERE i.app_schema = p_schema) IS NOT NULL THEN
        RAISE EXCEPTION 'the calls of schema "%" are already switched', p_schema
            USING ERRCODE = '55000', HINT = 'restore_app_calls() switches them back.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = backup) THEN
        RAISE EXCEPTION 'schema "%" already exists', backup USING ERRCODE = '42P06';
    END IF;

    EXECUTE format('CREATE SCHEMA %I', backup);
    -- The app's own objects move aside, as they are.
    FOR obj IN
        SELECT c.oid, c.relname, c.relkind FROM pg_class c
         WHERE c.relnamespace = app_oid AND c.relname = ANY (relations)
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         ORDER BY c.relkind DESC, c.relname
    LOOP
        EXECUTE format('ALTER %s %I.%I SET SCHEMA %I',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       p_schema, obj.relname, backup);
        moved := moved || obj.oid;
        object := format('%I.%I', p_schema, obj.relname);
        action := format('moved to %I', backup);
        RETURN NEXT;
    END LOOP;
    FOR obj IN
        SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.prokind
          FROM pg_proc p
         WHERE p.pronamespace = app_oid AND p.proname = ANY (functions)
         ORDER BY p.proname, 3
    LOOP
        EXECUTE format('ALTER %s %I.%I(%s) SET SCHEMA %I',
                       CASE obj.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                       p_schema, obj.proname, obj.args, backup);
        moved := moved || obj.oid;
        object := format('%I.%I(%s)', p_schema, obj.proname, obj.args);
        action := format('moved to %I', backup);
        RETURN NEXT;
    END LOOP;

    -- Read-only views over the extension's tables and views.
    FOR obj IN
        SELECT c.relname FROM pg_class c
         WHERE c.relnamespace = ext_oid AND c.relname = ANY (relations)
         ORDER BY array_position(relations, c.relname)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = app_oid AND c.relname = obj.relname) THEN
            object := format('%I.%I', p_schema, obj.relname);
            action := 'left alone: the schema has another relation of that name';
            RETURN NEXT;
            CONTINUE;
        END IF;
        EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT * FROM %s.%I',
                       p_schema, obj.relname, ext, obj.relname);
        -- The grants the app's relation of that name had (reading through the view also
        -- takes the extension's grants; writing is refused by the extension's tables).
        FOR g IN
            SELECT a.privilege_type, a.grantee, a.is_grantable
              FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
             WHERE c.oid = ANY (moved) AND c.relname = obj.relname AND a.grantee <> c.relowner
        LOOP
            EXECUTE format('GRANT %s ON %I.%I TO %s%s', g.privilege_type, p_schema, obj.relname,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        made := made || format('VIEW %I.%I', p_schema, obj.relname);
        object := format('%I.%I', p_schema, obj.relname);
        action := format('view over %s.%I', ext, obj.relname);
        RETURN NEXT;
    END LOOP;

    -- Thin functions over the extension's.
    FOR obj IN
        SELECT p.oid, p.proname, p.proretset, p.provolatile, p.proargnames, p.proargmodes,
               p.pronargs, pg_get_function_arguments(p.oid) AS arguments,
               pg_get_function_result(p.oid) AS result,
               pg_get_function_identity_arguments(p.oid) AS identity
          FROM pg_proc p
         WHERE p.pronamespace = ext_oid AND p.proname = ANY (functions)
         ORDER BY array_position(functions, p.proname)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = app_oid AND p.proname = obj.proname) THEN
            object := format('%I.%I', p_schema, obj.proname);
            action := 'left alone: the schema has another function of that name';
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- The input parameters, by name, in order (OUT and TABLE columns are not passed).
        SELECT coalesce(string_agg(quote_ident(a.name), ', ' ORDER BY a.n), '') INTO args
          FROM unnest(obj.proargnames, coalesce(obj.proargmodes, array_fill('i'::"char", ARRAY[obj.pronargs])))
               WITH ORDINALITY AS a(name, mode, n)
         WHERE a.mode IN ('i', 'b', 'v');
        body := CASE WHEN obj.proretset
                     THEN format('SELECT * FROM %s.%I(%s)', ext, obj.proname, args)
                     ELSE format('SELECT %s.%I(%s)', ext, obj.proname, args) END;
        EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql %s SECURITY INVOKER '
                       'SET search_path = pg_catalog, pg_temp AS %L',
                       p_schema, obj.proname, obj.arguments, obj.result,
                       CASE obj.provolatile WHEN 's' THEN 'STABLE' WHEN 'i' THEN 'IMMUTABLE' ELSE 'VOLATILE' END,
                       body);
        EXECUTE format('COMMENT ON FUNCTION %I.%I(%s) IS %L', p_schema, obj.proname, obj.identity,
                       format('Calls %s.%I (switch_app_calls)', ext, obj.proname));
        -- EXECUTE as the app's function(s) of that name had it (unless they kept the default:
        -- everyone, as a new function has it).
        IF EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = ANY (moved) AND p.proname = obj.proname
                      AND p.proacl IS NOT NULL) THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %I.%I(%s) FROM PUBLIC', p_schema, obj.proname, obj.identity);
            FOR g IN
                SELECT DISTINCT a.privilege_type, a.grantee, a.is_grantable
                  FROM pg_proc p CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                 WHERE p.oid = ANY (moved) AND p.proname = obj.proname AND a.grantee <> p.proowner
            LOOP
                EXECUTE format('GRANT %s ON FUNCTION %I.%I(%s) TO %s%s', g.privilege_type, p_schema,
                               obj.proname, obj.identity,
                               CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                               CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END IF;
        made := made || format('FUNCTION %I.%I(%s)', p_schema, obj.proname, obj.identity);
        object := format('%I.%I(%s)', p_schema, obj.proname, obj.identity);
        action := format('calls %s.%I', ext, obj.proname);
        RETURN NEXT;
    END LOOP;

    -- What of the app still uses the tables that moved: views and functions that read them,
    -- foreign keys that point at them.
    FOR obj IN
        SELECT DISTINCT pg_describe_object(d.classid, d.objid, 0) AS what
          FROM pg_depend d
          LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
          LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
         WHERE d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass)
           AND d.refobjid = ANY (moved)
           AND d.deptype = 'n'
           AND CASE WHEN d.classid = 'pg_rewrite'::regclass THEN NOT r.ev_class = ANY (moved)
                    WHEN d.classid = 'pg_constraint'::regclass THEN k.contype = 'f' AND NOT k.conrelid = ANY (moved)
                    WHEN d.classid = 'pg_proc'::regclass THEN NOT d.objid = ANY (moved)
                    ELSE false END
         ORDER BY 1
    LOOP
        object := obj.what;
        action := format('still reads the old table (now in %I)', backup);
        RETURN NEXT;
    END LOOP;

    UPDATE @extschema@.app_imports i SET backup_schema = backup, switched_at = now(), created = made
     WHERE i.app_schema = p_schema;
END
$$;

-- The rollback of switch_app_calls(p_schema): what it created goes, the app's objects come
-- back from `<p_schema>_before_chat_assign` as they were at the switch, and that schema is
-- dropped. What was written through the extension since stays in the extension's tables
-- (the app's tables do not get it).
CREATE FUNCTION restore_app_calls(p_schema name)
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    switched record;
    backup_oid oid;
    obj      record;
    dropped  text;
BEGIN
    IF p_schema IS NULL THEN
        RAISE EXCEPTION 'p_schema must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT i.backup_schema, i.created INTO switched
      FROM @extschema@.app_imports i WHERE i.app_schema = p_schema AND i.backup_schema IS NOT NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the calls of schema "%" are not switched', p_schema USING ERRCODE = '55000';
    END IF;
    backup_oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = switched.backup_schema);
    IF backup_oid IS NULL THEN
        RAISE EXCEPTION 'schema "%" with the app''s objects is gone', switched.backup_schema
            USING ERRCODE = '3F000';
    END IF;
    -- What the switch made, newest first.
    FOREACH dropped IN ARRAY (SELECT array_agg(c ORDER BY n DESC)
                                FROM unnest(switched.created) WITH ORDINALITY AS u(c, n)) LOOP
        EXECUTE 'DROP ' || dropped;
        object := substr(dropped, strpos(dropped, ' ') + 1);
        action := 'dropped';
        RETURN NEXT;
    END LOOP;
    FOR obj IN
        SELECT c.relname, c.relkind FROM pg_class c
         WHERE c.relnamespace = backup_oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         ORDER BY c.relkind DESC, c.relname
    LOOP
        EXECUTE format('ALTER %s %I.%I SET SCHEMA %I',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       switched.backup_schema, obj.relname, p_schema);
        object := format('%I.%I', p_schema, obj.relname);
        action := 'moved back';
        RETURN NEXT;
    END LOOP;
    FOR obj IN
        SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.prokind
          FROM pg_proc p WHERE p.pronamespace = backup_oid ORDER BY 1, 2
    LOOP
        EXECUTE format('ALTER %s %I.%I(%s) SET SCHEMA %I',
                       CASE obj.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                       switched.backup_schema, obj.proname, obj.args, p_schema);
        object := format('%I.%I(%s)', p_schema, obj.proname, obj.args);
        action := 'moved back';
        RETURN NEXT;
    END LOOP;
    EXECUTE format('DROP SCHEMA %I', switched.backup_schema);
    UPDATE @extschema@.app_imports i SET backup_schema = NULL, switched_at = NULL, created = NULL
     WHERE i.app_schema = p_schema;
END
$$;

-- ------------------------------------------------------------ plans
-- The API functions plan with seq scans off (see sql/privileges.sql for why).
DO $$
DECLARE
    fn pg_catalog.regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::pg_catalog.regprocedure
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
        JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.deptype OPERATOR(pg_catalog.=) 'e'
          AND e.extname OPERATOR(pg_catalog.=) 'chat_assign'
          AND p.prorettype OPERATOR(pg_catalog.<>) 'pg_catalog.trigger'::pg_catalog.regtype
          AND p.prosecdef
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET enable_seqscan = off SET plan_cache_mode = force_generic_plan SET jit = off', fn);
    END LOOP;
END
$$;

-- ------------------------------------------------------------ privileges
-- The new objects: nothing for anyone but the owner (PUBLIC's EXECUTE on the functions,
-- and whatever default privileges handed out when they were created), as a fresh install
-- has it. Then the old table's SELECT grants on the view that replaces it.
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT pg_catalog.format('FUNCTION %s', p.oid::pg_catalog.regprocedure) AS object, a.grantee
        FROM pg_catalog.pg_proc p
        CROSS JOIN LATERAL pg_catalog.aclexplode(
            coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
        WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
                  '@extschema@.read_chat_events(bigint, integer)'::pg_catalog.regprocedure,
                  '@extschema@.prune_chat_events()'::pg_catalog.regprocedure,
                  '@extschema@.worker_status()'::pg_catalog.regprocedure,
                  '@extschema@.start_chat(uuid, text, text, uuid, integer)'::pg_catalog.regprocedure,
                  '@extschema@.create_team(text, text)'::pg_catalog.regprocedure,
                  '@extschema@.set_team_routing(uuid, text)'::pg_catalog.regprocedure,
                  '@extschema@.add_team_member(uuid, uuid)'::pg_catalog.regprocedure,
                  '@extschema@.remove_team_member(uuid, uuid)'::pg_catalog.regprocedure,
                  '@extschema@.set_operator_status(uuid, text)'::pg_catalog.regprocedure,
                  '@extschema@.transfer_chat(uuid, uuid, uuid, text)'::pg_catalog.regprocedure,
                  '@extschema@.set_chat_priority(uuid, integer)'::pg_catalog.regprocedure,
                  '@extschema@.get_queue_position(uuid)'::pg_catalog.regprocedure,
                  '@extschema@.get_service_metrics(timestamp with time zone, uuid)'::pg_catalog.regprocedure,
                  '@extschema@.refuse_dangling_team_references()'::pg_catalog.regprocedure,
                  '@extschema@.real_user_send_message(uuid, text, text)'::pg_catalog.regprocedure,
                  '@extschema@.operator_send_message(uuid, uuid, text, text)'::pg_catalog.regprocedure,
                  '@extschema@.chat_events_recount_totals()'::pg_catalog.regprocedure,
                  '@extschema@.chat_events_skip_foreign()'::pg_catalog.regprocedure,
                  '@extschema@.chats_delete_cascade()'::pg_catalog.regprocedure,
                  '@extschema@.refuse_dangling_references()'::pg_catalog.regprocedure,
                  '@extschema@.import_app_tables(name, boolean)'::pg_catalog.regprocedure,
                  '@extschema@.switch_app_calls(name)'::pg_catalog.regprocedure,
                  '@extschema@.restore_app_calls(name)'::pg_catalog.regprocedure,
                  '@extschema@.chats_state_consistent(@extschema@.chat_state, uuid, uuid, timestamp with time zone, timestamp with time zone, boolean, timestamp with time zone)'::pg_catalog.regprocedure,
                  '@extschema@.messages_valid(text, uuid, text)'::pg_catalog.regprocedure,
                  '@extschema@.chat_assignments_release_valid(timestamp with time zone, text, timestamp with time zone)'::pg_catalog.regprocedure,
                  '@extschema@.team_members_count()'::pg_catalog.regprocedure,
                  '@extschema@.chats_note_holders()'::pg_catalog.regprocedure]::pg_catalog.oid[])
          AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
        UNION
        SELECT pg_catalog.format(CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S'
                                      THEN 'SEQUENCE %s' ELSE 'TABLE %s' END,
                                 c.oid::pg_catalog.regclass), a.grantee
        FROM pg_catalog.pg_class c
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
                  '@extschema@.chat_events'::pg_catalog.regclass,
                  '@extschema@.chat_events_id_seq'::pg_catalog.regclass,
                  '@extschema@.operator_activity'::pg_catalog.regclass,
                  '@extschema@.chat_state_fold'::pg_catalog.regclass,
                  '@extschema@.chat_state_event_deltas'::pg_catalog.regclass,
                  '@extschema@.app_imports'::pg_catalog.regclass,
                  '@extschema@.imported_ids'::pg_catalog.regclass,
                  '@extschema@.teams'::pg_catalog.regclass,
                  '@extschema@.team_members'::pg_catalog.regclass,
                  '@extschema@.chat_transfers'::pg_catalog.regclass,
                  '@extschema@.chat_transfers_id_seq'::pg_catalog.regclass,
                  '@extschema@.team_queue_status'::pg_catalog.regclass]::pg_catalog.oid[])
          AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', grant_row.object,
            CASE WHEN grant_row.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_row.grantee)) END);
    END LOOP;
    FOR grant_row IN
        SELECT pg_catalog.split_part(g, ':', 1)::pg_catalog.oid AS grantee,
               pg_catalog.split_part(g, ':', 2)::pg_catalog.bool AS is_grantable
        FROM pg_catalog.unnest(pg_catalog.string_to_array(
                 pg_catalog.current_setting('chat_assign_upgrade.activity_grants'), ',')) AS g
        WHERE g OPERATOR(pg_catalog.<>) ''
    LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.operator_activity TO %s%s',
            CASE WHEN grant_row.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_row.grantee)) END,
            CASE WHEN grant_row.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;
-- The CHECK constraints' functions, as a fresh install grants them (sql/privileges.sql).
GRANT EXECUTE ON FUNCTION
    @extschema@.chats_state_consistent(@extschema@.chat_state, uuid, uuid, timestamptz, timestamptz, boolean, timestamptz),
    @extschema@.messages_valid(text, uuid, text),
    @extschema@.chat_assignments_release_valid(timestamptz, text, timestamptz)
TO PUBLIC;
-- Table-level writes (INSERT, UPDATE, DELETE, TRUNCATE on the extension's tables) by anyone
-- but the owner go: 0.1.0's functions ran with their caller's rights and needed them, and
-- they survived the update to 0.2.0; since 0.2.0 the functions run as their owner, and such
-- a grant only lets a role write around the state machine and the operator claim. Column
-- grants (an app's UPDATE (priority) ON chats) are kept: a table-level REVOKE takes them
-- too, so they are given back.
DO $$
DECLARE
    w record;
    regrants text[];
    regrant text;
BEGIN
    FOR w IN
        SELECT c.oid AS rel, a.grantee, a.privilege_type,
               CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                    ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END AS who
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND d.refobjid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
                                                 WHERE e.extname OPERATOR(pg_catalog.=) 'chat_assign')
          AND d.deptype OPERATOR(pg_catalog.=) 'e'
          AND c.relkind OPERATOR(pg_catalog.=) 'r'
          AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
          AND a.privilege_type OPERATOR(pg_catalog.=) ANY (ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'])
    LOOP
        SELECT pg_catalog.array_agg(pg_catalog.format('GRANT %s (%I) ON %s TO %s%s', w.privilege_type,
                   t.attname, w.rel::pg_catalog.regclass, w.who,
                   CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END))
          INTO regrants
          FROM pg_catalog.pg_attribute t
          CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) x
         WHERE t.attrelid OPERATOR(pg_catalog.=) w.rel
           AND x.grantee OPERATOR(pg_catalog.=) w.grantee
           AND x.privilege_type OPERATOR(pg_catalog.=) w.privilege_type;
        EXECUTE pg_catalog.format('REVOKE %s ON %s FROM %s', w.privilege_type,
                                  w.rel::pg_catalog.regclass, w.who);
        FOREACH regrant IN ARRAY coalesce(regrants, '{}') LOOP
            EXECUTE regrant;
        END LOOP;
        -- A REVOKE or GRANT in an extension script is recorded as the extension's initial
        -- privileges; the DBA's column grants are not the extension's, and a fresh install
        -- records none on its tables.
        DELETE FROM pg_catalog.pg_init_privs
         WHERE objoid OPERATOR(pg_catalog.=) w.rel
           AND classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass;
    END LOOP;
END
$$;

-- A GRANT inside an extension script is recorded as one of the extension's initial
-- privileges, which pg_dump leaves out (a restore would lose it). These are the DBA's
-- grants, not ours: forget the record, so that pg_dump dumps them like any grant and the
-- catalog equals a fresh install's (which has no initial privileges on this view).
DELETE FROM pg_catalog.pg_init_privs
 WHERE objoid OPERATOR(pg_catalog.=) '@extschema@.operator_activity'::pg_catalog.regclass
   AND classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass;

-- The EXECUTE grants the three functions that gained p_idempotency_key had (above). They are
-- the DBA's, not the extension's: its record of initial privileges stays what a fresh install
-- has, so that pg_dump dumps them like any grant.
DO $$
DECLARE
    f record;
    g record;
    fn pg_catalog.regprocedure;
    initial pg_catalog.aclitem[];
BEGIN
    FOR f IN SELECT j.key, j.value
             FROM pg_catalog.json_each_text(
                      pg_catalog.current_setting('chat_assign_upgrade.message_acls')::pg_catalog.json) j
    LOOP
        fn := CASE f.key
                  WHEN 'start_chat' THEN '@extschema@.start_chat(uuid, text, text, uuid, integer)'
                  WHEN 'real_user_send_message' THEN '@extschema@.real_user_send_message(uuid, text, text)'
                  ELSE '@extschema@.operator_send_message(uuid, uuid, text, text)' END::pg_catalog.regprocedure;
        SELECT p.proacl INTO initial FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) fn;
        FOR g IN
            SELECT a.grantee, a.privilege_type, a.is_grantable
            FROM pg_catalog.aclexplode(CASE WHEN f.value OPERATOR(pg_catalog.<>) ''
                                            THEN f.value::pg_catalog.aclitem[] END) a
            JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) fn
            WHERE a.grantee OPERATOR(pg_catalog.<>) p.proowner
        LOOP
            EXECUTE pg_catalog.format('GRANT %s ON FUNCTION %s TO %s%s', g.privilege_type, fn,
                CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END,
                CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        UPDATE pg_catalog.pg_init_privs SET initprivs = initial
         WHERE objoid OPERATOR(pg_catalog.=) fn
           AND classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND objsubid OPERATOR(pg_catalog.=) 0;
    END LOOP;
END
$$;

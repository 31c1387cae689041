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
-- * every API function plans with `enable_seqscan = off`, `plan_cache_mode =
--   force_generic_plan` and `jit = off` (sql/privileges.sql says why).
-- * new functions `read_chat_events` and `prune_chat_events`; EXECUTE on them, and every
--   privilege on the new table and views, is revoked from everyone but the owner (grant
--   them as README "Roles and grants" says). Grants on everything else are kept.
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
CREATE INDEX idx_chats_assigned_operator ON chats (assigned_operator_id)
    WHERE chat_state = 'assigned';
CREATE INDEX idx_chats_last_operator ON chats (last_operator_id)
    WHERE chat_state = 'waiting_assignment' AND is_active;
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
    UPDATE @extschema@.chat_state_fold
       SET position = greatest(position, (SELECT coalesce(max(id), 0) FROM @extschema@.chat_events));
    RETURN NULL;
END
$$;
CREATE TRIGGER chat_events_insert_skip_foreign AFTER INSERT ON chat_events
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

-- ------------------------------------------------------------ one key check per assignment
-- assigned_operator_id always equals last_operator_id, whose key is checked. And the CHECKs
-- of each table become one (PostgreSQL reads every CHECK back from text per statement).
ALTER TABLE chats DROP CONSTRAINT chats_assigned_operator_id_fkey,
    DROP CONSTRAINT chats_assigned_has_operator,
    DROP CONSTRAINT chats_assigned_has_time,
    DROP CONSTRAINT chats_replied_has_time,
    DROP CONSTRAINT chats_completed_inactive,
    DROP CONSTRAINT chats_waiting_has_since,
    ADD CONSTRAINT chats_state_consistent CHECK (
        (chat_state = 'assigned') = (assigned_operator_id IS NOT NULL)
        AND (assigned_operator_id IS NULL OR assigned_operator_id = last_operator_id)
        AND (chat_state <> 'assigned' OR assigned_at IS NOT NULL)
        AND (chat_state <> 'waiting_real_user_reply' OR operator_replied_at IS NOT NULL)
        AND (chat_state <> 'completed' OR NOT is_active)
        AND (chat_state <> 'waiting_assignment' OR waiting_since IS NOT NULL));
ALTER TABLE messages DROP CONSTRAINT messages_sender_type_valid,
    DROP CONSTRAINT messages_operator_matches_sender,
    DROP CONSTRAINT messages_content_not_blank,
    ADD CONSTRAINT messages_valid CHECK (
        sender_type IN ('real_user', 'operator')
        AND (sender_type = 'operator') = (operator_id IS NOT NULL)
        AND btrim(content) <> '');
ALTER TABLE chat_assignments DROP CONSTRAINT chat_assignments_release_has_reason,
    DROP CONSTRAINT chat_assignments_release_after_assign,
    ADD CONSTRAINT chat_assignments_release_valid CHECK (
        (released_at IS NULL) = (release_reason IS NULL)
        AND (released_at IS NULL OR released_at >= assigned_at));

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
    WHERE c.chat_state = 'assigned' AND c.assigned_operator_id IS NOT NULL
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
WHERE c.chat_state = 'assigned' AND c.assigned_operator_id IS NOT NULL;

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
                  '@extschema@.chat_events_recount_totals()'::pg_catalog.regprocedure,
                  '@extschema@.chat_events_skip_foreign()'::pg_catalog.regprocedure]::pg_catalog.oid[])
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
                  '@extschema@.chat_state_event_deltas'::pg_catalog.regclass]::pg_catalog.oid[])
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
-- A GRANT inside an extension script is recorded as one of the extension's initial
-- privileges, which pg_dump leaves out (a restore would lose it). These are the DBA's
-- grants, not ours: forget the record, so that pg_dump dumps them like any grant and the
-- catalog equals a fresh install's (which has no initial privileges on this view).
DELETE FROM pg_catalog.pg_init_privs
 WHERE objoid OPERATOR(pg_catalog.=) '@extschema@.operator_activity'::pg_catalog.regclass
   AND classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass;

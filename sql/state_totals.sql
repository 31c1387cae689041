-- Running totals per chat state, so that monitoring answers from a few hundred rows
-- instead of scanning the queue (a count over a million waiting chats takes ~100 ms even
-- as an index-only scan).
--
-- Per state: the number of chats, the sum of their `state_changed_at` (for the average time
-- in state) and, for chats in the queue (waiting_assignment and active), their number and
-- the sum of their `waiting_since`. They come from two sources that never overlap:
--
-- * The functions' own changes are the change events (sql/events.sql): each event says
--   which state a chat left and entered, when it had entered the old one (`since`) and its
--   place in the queue (`waiting_since`) on the queue side of the change. Nothing more is
--   written per change. Now and then the worker (or, without it, one call in a few hundred)
--   folds the events up to the horizon of read_chat_events into `chat_state_deltas` and
--   moves `chat_state_fold.position`; readers add the events after that position.
-- * Any other write to `chats` (an app's direct UPDATE, a bulk load, a DELETE, TRUNCATE) is
--   caught by the statement-level triggers below, which append its deltas per state. The
--   functions set the internal setting `chat_assign.api_write` for the length of a call, and
--   the triggers skip those writes: the events count them.
--
-- Appending never touches a row another transaction has written, so the totals add no
-- lock waits and no deadlocks to the hot path; a reader sums what its snapshot sees, which
-- is exactly the committed state of `chats`. The tables are derived data and deliberately
-- not registered for pg_dump: restoring `chats` runs the insert trigger and rebuilds them.

CREATE TABLE chat_state_deltas (
    chat_state    chat_state NOT NULL,
    chat_count    bigint     NOT NULL,
    changed_epoch numeric    NOT NULL,  -- sum of extract(epoch FROM state_changed_at)
    queue_count   bigint     NOT NULL,  -- chats of this state in the queue
    waiting_epoch numeric    NOT NULL   -- sum of extract(epoch FROM waiting_since) over those
);
-- How far the events are folded into chat_state_deltas: events with a larger id are added
-- by the readers. One row, locked (SKIP LOCKED) by whoever folds.
CREATE TABLE chat_state_fold (
    position bigint NOT NULL
);
INSERT INTO chat_state_fold VALUES (0);

-- Folding deletes rows all the time: vacuum it by row count, not by table fraction.
ALTER TABLE chat_state_deltas SET (autovacuum_vacuum_threshold = 2000,
                                   autovacuum_vacuum_scale_factor = 0,
                                   autovacuum_vacuum_insert_threshold = 2000,
                                   autovacuum_vacuum_insert_scale_factor = 0);

-- SECURITY DEFINER: a role allowed to write `chats` directly (say `UPDATE (priority)`)
-- needs no privilege on the derived table. It names that table by schema and looks nothing
-- up in the extension's schema (see src/store/queries.rs for why). A trigger function
-- cannot be called directly, and EXECUTE on it is revoked (sql/privileges.sql).
CREATE FUNCTION chats_track_state_totals() RETURNS trigger
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
CREATE VIEW chat_state_totals AS
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

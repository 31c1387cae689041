-- Running totals per chat state, so that monitoring answers from a few hundred rows
-- instead of scanning the queue (a count over a million waiting chats takes ~100 ms even
-- as an index-only scan).
--
-- Every statement that writes `chats` appends what it changed, per state, as deltas:
-- +1 / -1 chats, and the sums of `state_changed_at` (for the average time in state) and,
-- for chats in the queue (waiting_assignment and active), of `waiting_since`. Appending
-- never touches a row another transaction has written, so the totals add no lock waits
-- and no deadlocks to the hot path; a reader sums what its snapshot sees, which is exactly
-- the committed state of `chats`. Now and then a writer folds the committed deltas into
-- one row per state (under a try-advisory-lock, so folds never queue up).
--
-- The triggers see every write to `chats`, the extension's and anyone else's; TRUNCATE
-- empties the totals. The table is derived data and deliberately not registered for
-- pg_dump: restoring `chats` runs the insert trigger and rebuilds it.

CREATE TABLE chat_state_deltas (
    chat_state    chat_state NOT NULL,
    chat_count    bigint     NOT NULL,
    changed_epoch numeric    NOT NULL,  -- sum of extract(epoch FROM state_changed_at)
    queue_count   bigint     NOT NULL,  -- chats of this state in the queue
    waiting_epoch numeric    NOT NULL   -- sum of extract(epoch FROM waiting_since) over those
);
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
        DELETE FROM @extschema@.chat_state_deltas;
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
    IF random() < 0.002 AND pg_try_advisory_xact_lock(1667785076, 1952542829) THEN
        WITH gone AS (DELETE FROM @extschema@.chat_state_deltas RETURNING *)
        INSERT INTO @extschema@.chat_state_deltas
        SELECT chat_state, sum(chat_count), sum(changed_epoch), sum(queue_count), sum(waiting_epoch)
        FROM gone GROUP BY chat_state;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chats_state_totals_insert AFTER INSERT ON chats
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chats_track_state_totals();
CREATE TRIGGER chats_state_totals_update AFTER UPDATE ON chats
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chats_track_state_totals();
CREATE TRIGGER chats_state_totals_delete AFTER DELETE ON chats
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chats_track_state_totals();
CREATE TRIGGER chats_state_totals_truncate AFTER TRUNCATE ON chats
    FOR EACH STATEMENT EXECUTE FUNCTION chats_track_state_totals();

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
           FROM chat_state_deltas GROUP BY chat_state) AS t
       ON t.chat_state = s.state;

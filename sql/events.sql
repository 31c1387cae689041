-- Change events: one row per chat state change, written in the transaction that makes it, so
-- an event exists exactly when its change committed. Consumers read them with
-- read_chat_events (below), follow the table with logical replication (docs/operations.md), or are
-- woken by the worker's coalesced `NOTIFY chat_assign` and then read. No call sends a
-- NOTIFY itself: PostgreSQL serialises notifying commits cluster-wide, and a full
-- notification queue would fail the call.
--
-- No foreign keys: the log outlives what it describes, and a check per event would lock the
-- chat and operator rows once more. Old events are deleted by the worker or by
-- prune_chat_events() (chat_assign.event_retention).

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
-- Append-only, deleted from the head in batches: vacuum by row count.
ALTER TABLE chat_events SET (autovacuum_vacuum_threshold = 10000,
                             autovacuum_vacuum_scale_factor = 0,
                             autovacuum_vacuum_insert_threshold = 100000,
                             autovacuum_vacuum_insert_scale_factor = 0);

SELECT pg_catalog.pg_extension_config_dump('chat_events', '');
SELECT pg_catalog.pg_extension_config_dump('chat_events_id_seq', '');

-- Events with id > p_after_id in id order, at most p_limit, and only ids that no
-- transaction still running can precede. Ids are taken when a transaction writes its event,
-- but transactions commit in any order: id 11 may be visible while id 10's transaction is
-- still running. Every transaction that writes events first takes a shared advisory lock
-- (objsubid 25441) whose key is a number below every id it can take (src/store/events.rs,
-- hold_event_id_floor), and holds it until it ends. So this function reads, in this order
-- and each in its own statement:
--   1. the sequence: no id above it was taken before step 2;
--   2. the floors of the transactions still running (pg_locks);
--   3. with a snapshot taken after both, the events up to the smaller of the two.
-- Every id up to that horizon belongs to a transaction that had ended by step 2 (or was
-- never used), so it is in step 3's snapshot or will never be: a consumer that stores the
-- last id it got and passes it back never misses or repeats an event, across reconnects
-- and crashes.
--
-- Needs READ COMMITTED: under REPEATABLE READ the snapshot of step 3 would be the
-- transaction's, older than step 2. PL/pgSQL because each step is its own statement (its
-- own snapshot), and because it returns the table's own row type.
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

-- chat_assign 0.2.0 -> 0.3.0
--
-- 0.3.0 makes change events a table and cuts what a state change writes:
-- * change events are rows of the new table `chat_events`, written in the changing
--   transaction, read with `read_chat_events(p_after_id, p_limit)` (exactly once for a
--   consumer that keeps its last id) or followed by logical replication. Calls no longer
--   send `NOTIFY chat_assign` with a JSON payload; the background worker sends at most one
--   wake-up per `chat_assign.notify_interval`, whose payload is the newest event id.
--   `chat_assign.notify` is accepted and ignored. LISTEN clients must change: see
--   CHANGELOG.md.
-- * the heartbeat moves onto the open assignment (`chat_assignments.last_activity_at`);
--   the table `operator_activity` becomes a read-only view with the same columns, and its
--   SELECT grants are carried over to the view. Its rows are copied first.
-- * indexes: `chats` keeps only partial indexes that each query needs (state changes can
--   never be HOT, so every index on chats is written by every change); `chat_assignments`
--   has no index over released_at (its release and heartbeats are HOT updates) and a BRIN
--   index on assigned_at for the 24-hour statistics.
-- * new functions `read_chat_events` and `prune_chat_events`; EXECUTE on them, and every
--   privilege on the new table and view, is revoked from everyone but the owner (grant
--   them as README "Roles and grants" says). Grants on everything else are kept.
--
-- Released: never edit this file (sql/released/SHA256SUMS); ship a new one instead.

-- ------------------------------------------------------------ heartbeats onto assignments
ALTER TABLE chat_assignments ADD COLUMN last_activity_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE chat_assignments SET (fillfactor = 90);
UPDATE chat_assignments a
   SET last_activity_at = coalesce(
           (SELECT oa.last_activity_at FROM operator_activity oa
             WHERE oa.chat_id = a.chat_id AND oa.operator_id = a.operator_id),
           a.assigned_at)
 WHERE a.released_at IS NULL;

-- The SELECT grants on the old table, to give again on the view.
CREATE TEMPORARY TABLE chat_assign_activity_grants ON COMMIT DROP AS
SELECT a.grantee, a.is_grantable
FROM pg_catalog.pg_class c
CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
WHERE c.oid OPERATOR(pg_catalog.=) '@extschema@.operator_activity'::pg_catalog.regclass
  AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
  AND a.grantee OPERATOR(pg_catalog.<>) c.relowner;

ALTER EXTENSION chat_assign DROP TABLE operator_activity;
DROP TABLE operator_activity;

-- ------------------------------------------------------------ indexes
DROP INDEX idx_chat_assignments_open_chat;
DROP INDEX idx_chat_assignments_open_operator;
DROP INDEX idx_chat_assignments_operator_time;
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
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id     uuid        NOT NULL,
    old_state   chat_state,
    new_state   chat_state  NOT NULL,
    operator_id uuid,
    team_id     uuid,
    reason      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE chat_events SET (autovacuum_vacuum_threshold = 10000,
                             autovacuum_vacuum_scale_factor = 0,
                             autovacuum_vacuum_insert_threshold = 100000,
                             autovacuum_vacuum_insert_scale_factor = 0);
SELECT pg_catalog.pg_extension_config_dump('chat_events', '');
SELECT pg_catalog.pg_extension_config_dump('chat_events_id_seq', '');

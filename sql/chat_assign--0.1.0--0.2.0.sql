-- chat_assign 0.1.0 -> 0.2.0
--
-- 0.2.0 runs behind RPC layers as an application role, not as the owner:
-- * every API function becomes SECURITY DEFINER, so a role needs EXECUTE on a function and
--   no privilege on the tables behind it;
-- * functions run as their owner, so their search_path no longer includes the extension's
--   schema (a role allowed to CREATE there could plant an operator that would run as the
--   owner): it is `pg_catalog, pg_temp`, and the library and the trigger function name
--   the extension's objects by schema;
-- * the totals trigger function becomes SECURITY DEFINER, so roles allowed to write
--   `chats` directly need no grant on `chat_state_deltas`;
-- * every EXECUTE grant on the extension's functions to anyone but the owner is revoked,
--   PUBLIC's included: roles get exactly the grants README "Roles and grants" lists; grant
--   them after the update. Grants on tables are kept (a fresh 0.2.0 install revokes those
--   too, see sql/privileges.sql, because there they can only come from default privileges).
-- No table changes. The new settings (chat_assign.notify, chat_assign.operator_id_claim,
-- chat_assign.idle_check_interval, chat_assign.databases) and the idle worker live in the
-- library, which serves both versions.
--
-- Released: never edit this file (sql/released/SHA256SUMS); ship a new one instead.

ALTER FUNCTION assign_chat_to_operator(uuid) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION complete_chat(uuid) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION create_operator(text, integer) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION detect_stuck_chats(numeric) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION get_assignment_queue_status() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION operator_send_message(uuid, uuid, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION real_user_send_message(uuid, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION release_and_reassign_chat(uuid, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION release_idle_assignments(interval) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION set_operator_active(uuid, boolean) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION start_chat(uuid, text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION touch_operator_activity(uuid, uuid) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION chats_track_state_totals() RETURNS trigger
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

-- EXECUTE on a function changes meaning (it now runs as the owner), so every EXECUTE
-- grant to anyone but the owner goes, PUBLIC's included. Grants on tables keep their
-- meaning and stay.
DO $$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e
                WHERE e.extname OPERATOR(pg_catalog.=) 'chat_assign');
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, a.grantee
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
        CROSS JOIN LATERAL pg_catalog.aclexplode(
            coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND d.refobjid OPERATOR(pg_catalog.=) ext
          AND d.deptype OPERATOR(pg_catalog.=) 'e'
          AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', grant_row.fn,
            CASE WHEN grant_row.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_row.grantee)) END);
    END LOOP;
END
$$;

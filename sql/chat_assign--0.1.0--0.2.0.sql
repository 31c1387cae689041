-- chat_assign 0.1.0 -> 0.2.0
--
-- 0.2.0 runs behind RPC layers as an application role, not as the owner:
-- * every API function becomes SECURITY DEFINER (its search_path was already pinned), so
--   a role needs EXECUTE on a function and no privilege on the tables behind it;
-- * EXECUTE is revoked from PUBLIC on every function of the extension: roles get exactly
--   the grants README "Roles and grants" lists.
-- No table changes. The new settings (chat_assign.notify, chat_assign.operator_id_claim,
-- chat_assign.idle_check_interval, chat_assign.databases) and the idle worker live in the
-- library, which serves both versions.
--
-- Released: never edit this file (sql/released/SHA256SUMS); ship a new one instead.

ALTER FUNCTION assign_chat_to_operator(uuid) SECURITY DEFINER;
ALTER FUNCTION complete_chat(uuid) SECURITY DEFINER;
ALTER FUNCTION create_operator(text, integer) SECURITY DEFINER;
ALTER FUNCTION detect_stuck_chats(numeric) SECURITY DEFINER;
ALTER FUNCTION get_assignment_queue_status() SECURITY DEFINER;
ALTER FUNCTION operator_send_message(uuid, uuid, text) SECURITY DEFINER;
ALTER FUNCTION real_user_send_message(uuid, text) SECURITY DEFINER;
ALTER FUNCTION release_and_reassign_chat(uuid, text) SECURITY DEFINER;
ALTER FUNCTION release_idle_assignments(interval) SECURITY DEFINER;
ALTER FUNCTION set_operator_active(uuid, boolean) SECURITY DEFINER;
ALTER FUNCTION start_chat(uuid, text) SECURITY DEFINER;
ALTER FUNCTION touch_operator_activity(uuid, uuid) SECURITY DEFINER;

DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT d.objid::regprocedure
        FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'chat_assign')
          AND d.deptype = 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;
END
$$;

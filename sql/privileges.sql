-- Nothing of the extension is usable by PUBLIC: the DBA grants EXECUTE on the functions
-- a role needs (README "Roles and grants"). Postgres grants EXECUTE on every new function
-- to PUBLIC; the functions are SECURITY DEFINER, so that default would let any role that
-- can connect take chats and read what they return.
--
-- Runs last (finalize), so it sees every function the extension created, the generated
-- ones included, and a function added later cannot be forgotten here. The names come
-- from the catalog (regprocedure), not from input.
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

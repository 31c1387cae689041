-- Every statement the functions run is written to walk an index (the queue, a chat by id,
-- an operator by id, a chat's newest assignment); none is meant to read a table whole. But
-- PostgreSQL keeps one generic plan per statement per connection, made from the statistics
-- of the moment, and right after install (or in a benchmark's first minute) the tables are
-- empty and unanalysed: a plan that scans chat_assignments or operators looks cheapest
-- then and is kept until the next ANALYZE, while the table grows under it. So the API
-- functions plan with seq scans off, always with the generic plan (made once per
-- connection, not re-planned for the first five calls), and without JIT (the cost of a
-- plan that must still read a small table whole, like the fold's, would otherwise cross
-- jit_above_cost and compile code on every call). Function-level settings, restored when
-- the call returns; only for the API (the SECURITY DEFINER functions): not for triggers, nor
-- for the adoption functions (sql/import.sql), which read whole tables once.
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

-- Nothing of the extension is usable by anyone but its owner until the DBA grants it
-- (docs/security.md, "Roles and grants"). The functions are SECURITY DEFINER, so EXECUTE on one is
-- the power to change chats; PostgreSQL grants EXECUTE on every new function to PUBLIC, and
-- default privileges (`ALTER DEFAULT PRIVILEGES ... GRANT ALL ON FUNCTIONS / TABLES TO
-- anon, authenticated`, as Supabase sets up `public`) would hand the functions and the
-- tables to application roles the moment they are created. Every grant on the extension's
-- functions, tables, views and sequences to anyone but the owner is revoked here.
--
-- Runs last (finalize), so it sees every object the extension created, the generated
-- functions included; an upgrade script that adds objects must revoke the same way. The
-- names come from the catalog (regprocedure, regclass, quote_ident), not from input, and
-- every operator is spelled out because this runs as a superuser.
DO $$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e
                WHERE e.extname OPERATOR(pg_catalog.=) 'chat_assign');
    grant_row record;
BEGIN
    FOR grant_row IN
        WITH members AS (
            SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
            WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
              AND d.refobjid OPERATOR(pg_catalog.=) ext
              AND d.deptype OPERATOR(pg_catalog.=) 'e'),
        relations AS (
            SELECT m.objid AS oid FROM members m
            WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
            UNION  -- identity sequences belong to their table, not to the extension
            SELECT d.objid FROM pg_catalog.pg_depend d JOIN members m
                ON d.refobjid OPERATOR(pg_catalog.=) m.objid
               AND d.refclassid OPERATOR(pg_catalog.=) m.classid
            WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[]))
        SELECT pg_catalog.format('FUNCTION %s', p.oid::pg_catalog.regprocedure) AS object, a.grantee
        FROM members m
        JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) m.objid
        CROSS JOIN LATERAL pg_catalog.aclexplode(
            coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
        WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
        UNION
        SELECT pg_catalog.format(CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S'
                                      THEN 'SEQUENCE %s' ELSE 'TABLE %s' END,
                                 c.oid::pg_catalog.regclass), a.grantee
        FROM relations r
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.oid
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
        WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', grant_row.object,
            CASE WHEN grant_row.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grant_row.grantee)) END);
    END LOOP;
END
$$;

-- The CHECK constraints' functions (sql/schema.sql) compute a boolean from their arguments
-- and nothing else; a role the DBA lets write a table (an app's UPDATE (priority) ON chats)
-- must be able to call them, or its write fails the CHECK with a permission error.
GRANT EXECUTE ON FUNCTION
    chats_state_consistent(chat_state, uuid, uuid, timestamptz, timestamptz, boolean, timestamptz),
    messages_valid(text, uuid, text),
    chat_assignments_release_valid(timestamptz, text, timestamptz)
TO PUBLIC;

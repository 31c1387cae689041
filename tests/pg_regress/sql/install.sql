-- Installing the extension creates exactly its objects, in the chosen schema.
\set VERBOSITY sqlstate
CREATE EXTENSION chat_assign;
SELECT extname, extversion, extrelocatable, nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'chat_assign';
-- Every object the extension made, by kind (not the row and array types that come with
-- its tables, views and enum, which PostgreSQL 17 on also records as members).
SELECT pg_describe_object(d.classid, d.objid, 0) AS object
FROM pg_depend d
LEFT JOIN pg_type t ON d.classid = 'pg_type'::regclass AND t.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'chat_assign')
  AND d.deptype = 'e'
  AND NOT coalesce(t.typrelid <> 0 OR t.typcategory = 'A', false)
ORDER BY 1;
-- The function signatures are the API: names, parameter names, defaults.
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result, p.proisstrict AS strict, p.provolatile,
       p.proconfig
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
ORDER BY p.proname;
-- Data tables are registered for pg_dump.
SELECT c.relname
FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
JOIN pg_class c ON c.oid = cfg.oid
WHERE e.extname = 'chat_assign'
ORDER BY 1;
-- The settings exist once the library is loaded.
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'chat_assign.%' ORDER BY 1;

-- Everything in the current database that was made after initdb: per catalog, the rows
-- with an oid of a user object (>= 16384, FirstNormalObjectId), the names of the
-- relations, functions, types and schemas among them, and the bookkeeping rows without an
-- oid (dependencies, initial privileges, comments, shared dependencies of this database).
-- tests/tap/t/004_upgrade.pl takes it before CREATE EXTENSION and after DROP EXTENSION: equal output
-- means the drop left nothing behind. Run with psql (uses \gexec).
SELECT format($q$
SELECT entry FROM (
  %s
  UNION ALL SELECT 'relation ' || oid::regclass FROM pg_class WHERE oid >= 16384
  UNION ALL SELECT 'function ' || oid::regprocedure FROM pg_proc WHERE oid >= 16384
  UNION ALL SELECT 'type ' || oid::regtype FROM pg_type WHERE oid >= 16384
  UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE oid >= 16384
  UNION ALL SELECT 'pg_depend rows: ' || count(*) FROM pg_depend
  UNION ALL SELECT 'pg_init_privs rows: ' || count(*) FROM pg_init_privs
  UNION ALL SELECT 'pg_description rows: ' || count(*) FROM pg_description
  UNION ALL SELECT 'pg_shdepend rows of this database: ' || count(*) FROM pg_shdepend
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS objects (entry) ORDER BY entry
$q$, string_agg(format('SELECT %L || count(*) FROM %s WHERE oid >= 16384',
                       c.relname || ' rows of user objects: ', c.oid::regclass),
                E'\n  UNION ALL ' ORDER BY c.relname))
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'oid' AND NOT a.attisdropped
WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared
\gexec

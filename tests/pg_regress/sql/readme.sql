-- The README's "Using it" block (tests/pg_regress/sql/include/readme_usage.sql, which
-- scripts/check_readme_grants.sh holds equal to the README's block), run top to bottom in a
-- fresh database: every call in it must work as written. Its own output (ids, times) is
-- not printed; an error would be. Then what it left behind, and the invariants.
-- Self-contained: its own database, dropped at the end.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_readme;
\c chat_assign_readme
CREATE EXTENSION chat_assign;
\o /dev/null
\i tests/pg_regress/sql/include/readme_usage.sql
\o
SELECT (SELECT name FROM teams WHERE id = c.team_id) AS team, c.chat_state, c.priority,
       (SELECT name FROM operators WHERE id = c.last_operator_id) AS last_operator
FROM chats c ORDER BY c.created_at, c.id;
SELECT name, routing FROM teams ORDER BY name;
SELECT name, status FROM operators ORDER BY name;
\i tests/invariants.sql

\c :home
DROP DATABASE chat_assign_readme;

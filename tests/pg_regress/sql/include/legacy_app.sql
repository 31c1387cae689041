-- An app as it ran before this extension, in the current database: its tables and functions
-- (bench/plpgsql: the base schema and migrations 014-016, in schema public) and its rows,
-- messes included (legacy_app_data.sql). Used by pg_regress adopt, the RPC test's adopted
-- app and the demo. Paths are relative to the repository root.
SET client_min_messages = warning;
\i bench/plpgsql/001_base_schema.sql
\i bench/plpgsql/014_chat_state_management.sql
\i bench/plpgsql/015_fix_assignment_function.sql
\i bench/plpgsql/016_chat_state_verification.sql
\i tests/pg_regress/sql/include/legacy_app_data.sql
RESET client_min_messages;

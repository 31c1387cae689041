-- The CHECK constraints of chats, messages and chat_assignments call native functions
-- (src/checks.rs) instead of holding the rules as SQL expressions. Each function must give
-- exactly what the expression it replaces gives, NULL included (a CHECK passes on NULL):
-- compared here over every combination of NULL, matching and non-matching values. Then
-- direct writes that break a rule fail with the constraint's name, a value the function
-- reads from a compressed or out-of-line row is detoasted, and a role the DBA lets
-- write a column passes the CHECK.
-- Self-contained: its own database.
\set VERBOSITY sqlstate
SELECT current_database() AS home \gset
CREATE DATABASE chat_assign_checks;
\c chat_assign_checks
CREATE EXTENSION chat_assign;

-- chats: 5 states (NULL too) x 3 holders x 2 last operators x 2 x 2 x 3 x 2 = 720 rows.
WITH cases AS (
    SELECT s AS chat_state, h AS assigned_operator_id, l AS last_operator_id,
           a AS assigned_at, r AS operator_replied_at, act AS is_active, w AS waiting_since
    FROM unnest(enum_range(NULL::chat_state) || NULL::chat_state) s,
         unnest(ARRAY[NULL, '00000000-0000-0000-0000-00000000000a',
                      '00000000-0000-0000-0000-00000000000b']::uuid[]) h,
         unnest(ARRAY[NULL, '00000000-0000-0000-0000-00000000000a']::uuid[]) l,
         unnest(ARRAY[NULL, now()]::timestamptz[]) a,
         unnest(ARRAY[NULL, now()]::timestamptz[]) r,
         unnest(ARRAY[NULL, true, false]) act,
         unnest(ARRAY[NULL, now()]::timestamptz[]) w)
SELECT count(*) AS cases,
       count(*) FILTER (WHERE chats_state_consistent(chat_state, assigned_operator_id,
                                  last_operator_id, assigned_at, operator_replied_at,
                                  is_active, waiting_since)
           IS DISTINCT FROM (
               (chat_state = 'assigned') = (assigned_operator_id IS NOT NULL)
               AND (assigned_operator_id IS NULL OR assigned_operator_id = last_operator_id)
               AND (chat_state <> 'assigned' OR assigned_at IS NOT NULL)
               AND (chat_state <> 'waiting_real_user_reply' OR operator_replied_at IS NOT NULL)
               AND (chat_state <> 'completed' OR NOT is_active)
               AND (chat_state <> 'waiting_assignment' OR waiting_since IS NOT NULL))) AS differ,
       count(*) FILTER (WHERE chats_state_consistent(chat_state, assigned_operator_id,
                                  last_operator_id, assigned_at, operator_replied_at,
                                  is_active, waiting_since)) AS pass,
       count(*) FILTER (WHERE chats_state_consistent(chat_state, assigned_operator_id,
                                  last_operator_id, assigned_at, operator_replied_at,
                                  is_active, waiting_since) IS NULL) AS null_result
FROM cases;

-- messages: 5 senders x 2 operators x 9 contents (spaces only, tabs, multibyte, long).
WITH cases AS (
    SELECT s AS sender_type, o AS operator_id, c AS content
    FROM unnest(ARRAY[NULL, 'real_user', 'operator', 'bot', 'operator ']) s,
         unnest(ARRAY[NULL, '00000000-0000-0000-0000-00000000000a']::uuid[]) o,
         unnest(ARRAY[NULL, '', ' ', '   ', E'\t', ' x ', 'é', '  ' || repeat('ü', 5000),
                      repeat(' ', 3000)]) c)
SELECT count(*) AS cases,
       count(*) FILTER (WHERE messages_valid(sender_type, operator_id, content)
           IS DISTINCT FROM (
               sender_type IN ('real_user', 'operator')
               AND (sender_type = 'operator') = (operator_id IS NOT NULL)
               AND btrim(content) <> '')) AS differ,
       count(*) FILTER (WHERE messages_valid(sender_type, operator_id, content)) AS pass,
       count(*) FILTER (WHERE messages_valid(sender_type, operator_id, content) IS NULL) AS null_result
FROM cases;

-- chat_assignments: released before, at and after the assignment, or not; with and
-- without a reason; an assignment time or none.
WITH cases AS (
    SELECT rel AS released_at, why AS release_reason, a AS assigned_at
    FROM unnest(ARRAY[NULL, '2026-01-01 10:00', '2026-01-01 09:59:59.999999',
                      '2026-01-01 10:00:00.000001', '-infinity', 'infinity']::timestamptz[]) rel,
         unnest(ARRAY[NULL, 'operator_replied']) why,
         unnest(ARRAY[NULL, '2026-01-01 10:00', 'infinity']::timestamptz[]) a)
SELECT count(*) AS cases,
       count(*) FILTER (WHERE chat_assignments_release_valid(released_at, release_reason, assigned_at)
           IS DISTINCT FROM (
               (released_at IS NULL) = (release_reason IS NULL)
               AND (released_at IS NULL OR released_at >= assigned_at))) AS differ,
       count(*) FILTER (WHERE chat_assignments_release_valid(released_at, release_reason, assigned_at)) AS pass
FROM cases;

-- Direct writes that break a rule fail, naming the constraint.
SELECT create_operator('Ada') AS ada \gset
SELECT start_chat('00000000-0000-0000-0000-0000000000c1', 'Hello') AS c \gset
\set VERBOSITY terse
UPDATE chats SET chat_state = 'assigned' WHERE id = :'c';
UPDATE chats SET chat_state = 'completed' WHERE id = :'c';
UPDATE chats SET waiting_since = NULL WHERE id = :'c';
INSERT INTO messages (chat_id, sender_type, operator_id, content) VALUES (:'c', 'real_user', :'ada', 'hi');
INSERT INTO messages (chat_id, sender_type, content) VALUES (:'c', 'real_user', '   ');
SELECT assign_chat_to_operator(:'ada') = :'c' AS assigned;
UPDATE chat_assignments SET released_at = assigned_at - interval '1 second', release_reason = 'x'
WHERE chat_id = :'c';
UPDATE chat_assignments SET released_at = now() WHERE chat_id = :'c';
\set VERBOSITY sqlstate

-- Values the function reads back from the table: stored compressed, and out of line (rolled
-- back: a message written around the API would break the invariants checked below).
BEGIN;
INSERT INTO messages (chat_id, sender_type, operator_id, content)
VALUES (:'c', 'operator', :'ada', repeat('ok ', 100000)),
       (:'c', 'real_user', NULL, (SELECT string_agg(md5(i::text), '') || ' '
                                  FROM generate_series(1, 2000) i));
SELECT length(content) AS length, pg_column_size(content) < length(content) AS stored_smaller,
       messages_valid(sender_type, operator_id, content) AS valid,
       messages_valid(sender_type, NULL, content) AS valid_without_operator
FROM messages WHERE chat_id = :'c' AND length(content) > 10000 ORDER BY id;
ROLLBACK;

-- A role granted one column of chats writes it: the CHECK's function is open to it.
CREATE ROLE chat_checks_writer;
GRANT UPDATE (priority), SELECT (id, priority) ON chats TO chat_checks_writer;
SET ROLE chat_checks_writer;
UPDATE chats SET priority = 5 WHERE id = :'c';
RESET ROLE;
SELECT priority FROM chats WHERE id = :'c';

\i tests/invariants.sql
\c :home
DROP DATABASE chat_assign_checks;
DROP ROLE chat_checks_writer;

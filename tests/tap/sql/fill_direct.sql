-- Data for the upgrade tests (tests/tap/t/004_upgrade.pl) in a database that still has an older
-- release's schema (0.1.0 or 0.2.0), written straight into its tables: the installed
-- library is the current one, and it refuses to run against an older schema until
-- ALTER EXTENSION UPDATE (0A000, src/error.rs UpdatePending). Same tables in both
-- older releases: operators, chats, messages, chat_assignments, operator_activity.
--
-- Leaves: four operators (capacities 1-3, one inactive); chats in all four states, one with
-- a priority; messages from users and operators (quotes, accents, newlines); assignments
-- released for every reason plus three open ones with their heartbeats (one of them stale).
\set ON_ERROR_STOP 1
\set QUIET 1
BEGIN;
INSERT INTO operators (id, name, max_concurrent_chats, is_active, last_assigned_at) VALUES
    ('00000000-0000-4000-a000-000000000001', 'Alice Martin', 2, true, now() - interval '1 min'),
    ('00000000-0000-4000-a000-000000000002', 'Bob O''Neil', 1, true, now() - interval '2 min'),
    ('00000000-0000-4000-a000-000000000003', 'Chloé Dubois', 3, true, now() - interval '3 min'),
    ('00000000-0000-4000-a000-000000000004', 'Dan (night shift)', 1, false, now() - interval '4 min');
-- c1 assigned to Alice, c2 assigned to Chloé (stale heartbeat), c3 assigned to Bob,
-- c4 waiting for its user (Bob answered), c5 waiting (priority 5, released idle from Bob),
-- c6 waiting (released from Dan when he went inactive), c7 completed, c8 waiting (new).
INSERT INTO chats (id, real_user_id, chat_state, assigned_operator_id, last_operator_id,
                   operator_replied_at, assigned_at, waiting_since, state_changed_at, priority,
                   is_active, created_at, last_message_at)
SELECT format('00000000-0000-4000-8000-%s', lpad(n::text, 12, '0'))::uuid,
       format('00000000-0000-4000-9000-%s', lpad(n::text, 12, '0'))::uuid,
       s::chat_state, a::uuid, l::uuid, r, ass, w, now() - n * interval '1 min', p, act,
       now() - interval '1 hour', now() - n * interval '1 min'
FROM (VALUES
    (1, 'assigned', '00000000-0000-4000-a000-000000000001', '00000000-0000-4000-a000-000000000001', NULL::timestamptz, now() - interval '1 min', now() - interval '30 min', 0, true),
    (2, 'assigned', '00000000-0000-4000-a000-000000000003', '00000000-0000-4000-a000-000000000003', NULL, now() - interval '2 min', now() - interval '31 min', 0, true),
    (3, 'assigned', '00000000-0000-4000-a000-000000000002', '00000000-0000-4000-a000-000000000002', NULL, now() - interval '3 min', now() - interval '32 min', 0, true),
    (4, 'waiting_real_user_reply', NULL, '00000000-0000-4000-a000-000000000002', now() - interval '4 min', now() - interval '5 min', now() - interval '33 min', 0, true),
    (5, 'waiting_assignment', NULL, '00000000-0000-4000-a000-000000000002', NULL, now() - interval '6 min', now() - interval '34 min', 5, true),
    (6, 'waiting_assignment', NULL, '00000000-0000-4000-a000-000000000004', NULL, now() - interval '7 min', now() - interval '35 min', 0, true),
    (7, 'completed', NULL, '00000000-0000-4000-a000-000000000003', now() - interval '8 min', now() - interval '9 min', now() - interval '36 min', 0, false),
    (8, 'waiting_assignment', NULL, NULL, NULL, NULL, now() - interval '37 min', 0, true)
) AS v (n, s, a, l, r, ass, w, p, act);
INSERT INTO messages (chat_id, sender_type, operator_id, content, created_at)
SELECT c.id, 'real_user', NULL, format('Hello, this is user %s: my order #%s is late', n, 1000 + n), c.created_at
FROM generate_series(1, 8) AS n
JOIN chats c ON c.id = format('00000000-0000-4000-8000-%s', lpad(n::text, 12, '0'))::uuid;
INSERT INTO messages (chat_id, sender_type, operator_id, content) VALUES
    ('00000000-0000-4000-8000-000000000004', 'operator', '00000000-0000-4000-a000-000000000002', 'Let me check "that" for you… one moment'),
    ('00000000-0000-4000-8000-000000000007', 'operator', '00000000-0000-4000-a000-000000000003', E'Found it:\nit left the depot today.'),
    ('00000000-0000-4000-8000-000000000005', 'real_user', NULL, 'Are you still there?');
INSERT INTO chat_assignments (chat_id, operator_id, assigned_at, released_at, release_reason) VALUES
    ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-a000-000000000001', now() - interval '1 min', NULL, NULL),
    ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-a000-000000000003', now() - interval '2 min', NULL, NULL),
    ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-a000-000000000002', now() - interval '3 min', NULL, NULL),
    ('00000000-0000-4000-8000-000000000004', '00000000-0000-4000-a000-000000000002', now() - interval '5 min', now() - interval '4 min', 'operator_replied'),
    ('00000000-0000-4000-8000-000000000005', '00000000-0000-4000-a000-000000000002', now() - interval '20 min', now() - interval '6 min', 'idle_timeout'),
    ('00000000-0000-4000-8000-000000000006', '00000000-0000-4000-a000-000000000004', now() - interval '8 min', now() - interval '7 min', 'operator_inactive'),
    ('00000000-0000-4000-8000-000000000007', '00000000-0000-4000-a000-000000000003', now() - interval '9 min', now() - interval '8 min', 'completed'),
    ('00000000-0000-4000-8000-000000000008', '00000000-0000-4000-a000-000000000001', now() - interval '30 min', now() - interval '29 min', 'real_user_message'),
    ('00000000-0000-4000-8000-000000000008', '00000000-0000-4000-a000-000000000003', now() - interval '28 min', now() - interval '27 min', 'manual_unassign'),
    ('00000000-0000-4000-8000-000000000006', '00000000-0000-4000-a000-000000000001', now() - interval '26 min', now() - interval '25 min', 'escalated to billing');
INSERT INTO operator_activity (chat_id, operator_id, last_activity_at) VALUES
    ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-a000-000000000001', now() - interval '10 s'),
    ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-a000-000000000003', now() - interval '2 hours'),
    ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-a000-000000000002', now() - interval '20 s');
COMMIT;

-- Rows in every state, and the messes the app's old code left, for an app database built
-- from bench/plpgsql (the app's tables and migrations 014-016, in schema public). Ids are
-- fixed and readable: operators 0a.., chats c1.., messages and assignments by number.
-- Times are relative to now(): the stale heartbeat is hours old.
INSERT INTO public.operators (id, name, is_active, max_concurrent_chats, last_assigned_at, created_at) VALUES
    ('0a000000-0000-0000-0000-000000000001', 'Alice', true, 1, now() - interval '5 min', now() - interval '30 days'),
    ('0a000000-0000-0000-0000-000000000002', 'Bob',   true, 1, now() - interval '9 min', now() - interval '30 days'),
    ('0a000000-0000-0000-0000-000000000003', 'Carol', true, 2, now() - interval '3 hours', now() - interval '20 days'),
    ('0a000000-0000-0000-0000-000000000004', 'Dave',  false, 1, NULL, now() - interval '10 days');

-- c1 waits; c2 is Alice's; c3 waits for the user (Bob answered); c4 is completed;
-- c5 is Bob's, handed to him twice (two open assignments); c6 waits for the user but its
-- assignment was never released; c7 has been stuck with Carol for hours (valid, stale);
-- c8 is Alice's too (Alice's capacity is 1: over capacity); c9 waits, last handled by Bob.
INSERT INTO public.chats (id, real_user_id, assigned_operator_id, is_active, created_at, last_message_at,
                          chat_state, last_operator_id, operator_replied_at) VALUES
    ('c1000000-0000-0000-0000-000000000001', 'e0000000-0000-0000-0000-000000000001', NULL, true,
     now() - interval '50 min', now() - interval '40 min', 'waiting_assignment', NULL, NULL),
    ('c1000000-0000-0000-0000-000000000002', 'e0000000-0000-0000-0000-000000000002', '0a000000-0000-0000-0000-000000000001', true,
     now() - interval '45 min', now() - interval '30 min', 'assigned', '0a000000-0000-0000-0000-000000000001', NULL),
    ('c1000000-0000-0000-0000-000000000003', 'e0000000-0000-0000-0000-000000000003', NULL, true,
     now() - interval '44 min', now() - interval '20 min', 'waiting_real_user_reply', '0a000000-0000-0000-0000-000000000002', now() - interval '20 min'),
    ('c1000000-0000-0000-0000-000000000004', 'e0000000-0000-0000-0000-000000000004', NULL, false,
     now() - interval '2 days', now() - interval '1 day', 'completed', '0a000000-0000-0000-0000-000000000002', now() - interval '1 day'),
    ('c1000000-0000-0000-0000-000000000005', 'e0000000-0000-0000-0000-000000000005', '0a000000-0000-0000-0000-000000000002', true,
     now() - interval '40 min', now() - interval '15 min', 'assigned', '0a000000-0000-0000-0000-000000000002', NULL),
    ('c1000000-0000-0000-0000-000000000006', 'e0000000-0000-0000-0000-000000000006', NULL, true,
     now() - interval '39 min', now() - interval '10 min', 'waiting_real_user_reply', '0a000000-0000-0000-0000-000000000003', now() - interval '10 min'),
    ('c1000000-0000-0000-0000-000000000007', 'e0000000-0000-0000-0000-000000000007', '0a000000-0000-0000-0000-000000000003', true,
     now() - interval '5 hours', now() - interval '4 hours', 'assigned', '0a000000-0000-0000-0000-000000000003', NULL),
    ('c1000000-0000-0000-0000-000000000008', 'e0000000-0000-0000-0000-000000000008', '0a000000-0000-0000-0000-000000000001', true,
     now() - interval '35 min', now() - interval '6 min', 'assigned', '0a000000-0000-0000-0000-000000000001', NULL),
    ('c1000000-0000-0000-0000-000000000009', 'e0000000-0000-0000-0000-000000000009', NULL, true,
     now() - interval '30 min', now() - interval '25 min', 'waiting_assignment', '0a000000-0000-0000-0000-000000000002', now() - interval '28 min');

INSERT INTO public.messages (id, chat_id, sender_type, operator_id, content, created_at)
SELECT ('d0000000-0000-0000-0000-0000000000' || lpad(n::text, 2, '0'))::uuid, chat::uuid, sender,
       op::uuid, content, now() - ago::interval
FROM (VALUES
    (1,  'c1000000-0000-0000-0000-000000000001', 'real_user', NULL, 'Hi, my order is late', '50 min'),
    (2,  'c1000000-0000-0000-0000-000000000001', 'real_user', NULL, 'Hello?', '40 min'),
    (3,  'c1000000-0000-0000-0000-000000000002', 'real_user', NULL, 'Refund please', '45 min'),
    (4,  'c1000000-0000-0000-0000-000000000002', 'real_user', NULL, 'Order 1234', '30 min'),
    (5,  'c1000000-0000-0000-0000-000000000003', 'real_user', NULL, 'Where is my parcel?', '44 min'),
    (6,  'c1000000-0000-0000-0000-000000000003', 'operator', '0a000000-0000-0000-0000-000000000002', 'On its way', '20 min'),
    (7,  'c1000000-0000-0000-0000-000000000004', 'real_user', NULL, 'Cancel my account', '2 days'),
    (8,  'c1000000-0000-0000-0000-000000000004', 'operator', '0a000000-0000-0000-0000-000000000002', 'Done', '1 day'),
    (9,  'c1000000-0000-0000-0000-000000000005', 'real_user', NULL, 'Wrong size', '40 min'),
    (10, 'c1000000-0000-0000-0000-000000000006', 'real_user', NULL, 'Invoice?', '39 min'),
    (11, 'c1000000-0000-0000-0000-000000000006', 'operator', '0a000000-0000-0000-0000-000000000003', 'Sent it', '10 min'),
    (12, 'c1000000-0000-0000-0000-000000000007', 'real_user', NULL, 'Help with login', '5 hours'),
    (13, 'c1000000-0000-0000-0000-000000000008', 'real_user', NULL, 'Discount code?', '35 min'),
    (14, 'c1000000-0000-0000-0000-000000000009', 'real_user', NULL, 'Thanks, one more thing', '25 min'),
    (15, 'c1000000-0000-0000-0000-000000000009', 'operator', '0a000000-0000-0000-0000-000000000002', 'Sure', '28 min')
) AS m(n, chat, sender, op, content, ago);

INSERT INTO public.chat_assignments (id, chat_id, operator_id, assigned_at, released_at, release_reason)
SELECT ('a0000000-0000-0000-0000-0000000000' || lpad(n::text, 2, '0'))::uuid, chat::uuid, op::uuid,
       now() - assigned::interval, now() - released::interval, reason
FROM (VALUES
    (1, 'c1000000-0000-0000-0000-000000000002', '0a000000-0000-0000-0000-000000000001', '29 min', NULL, NULL),
    (2, 'c1000000-0000-0000-0000-000000000003', '0a000000-0000-0000-0000-000000000002', '40 min', '20 min', 'operator_replied'),
    (3, 'c1000000-0000-0000-0000-000000000004', '0a000000-0000-0000-0000-000000000002', '2 days', '1 day', 'operator_replied'),
    (4, 'c1000000-0000-0000-0000-000000000005', '0a000000-0000-0000-0000-000000000002', '14 min', NULL, NULL),
    (5, 'c1000000-0000-0000-0000-000000000005', '0a000000-0000-0000-0000-000000000002', '12 min', NULL, NULL),
    (6, 'c1000000-0000-0000-0000-000000000006', '0a000000-0000-0000-0000-000000000003', '30 min', NULL, NULL),
    (7, 'c1000000-0000-0000-0000-000000000007', '0a000000-0000-0000-0000-000000000003', '4 hours', NULL, NULL),
    (8, 'c1000000-0000-0000-0000-000000000008', '0a000000-0000-0000-0000-000000000001', '5 min', NULL, NULL),
    (9, 'c1000000-0000-0000-0000-000000000009', '0a000000-0000-0000-0000-000000000002', '29 min', '28 min', 'operator_replied')
) AS a(n, chat, op, assigned, released, reason);

-- Heartbeats: of the assigned chats, and one the old code forgot when Bob answered c3.
INSERT INTO public.operator_activity (operator_id, chat_id, last_activity_at) VALUES
    ('0a000000-0000-0000-0000-000000000001', 'c1000000-0000-0000-0000-000000000002', now() - interval '2 min'),
    ('0a000000-0000-0000-0000-000000000002', 'c1000000-0000-0000-0000-000000000005', now() - interval '1 min'),
    ('0a000000-0000-0000-0000-000000000003', 'c1000000-0000-0000-0000-000000000007', now() - interval '4 hours'),
    ('0a000000-0000-0000-0000-000000000001', 'c1000000-0000-0000-0000-000000000008', now() - interval '3 min'),
    ('0a000000-0000-0000-0000-000000000002', 'c1000000-0000-0000-0000-000000000003', now() - interval '21 min');

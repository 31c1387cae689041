-- The one data set every implementation is loaded from, built the same way in each database
-- (psql variables: n = chats, k = operators, t0 = the reference time, shared by the three
-- databases so that they hold identical rows).
--
-- Chat i (1..n) has a deterministic id, user and first-message time:
--   * the oldest 0.1% (at least one) have waited between 2 hours and 70 minutes: the chats
--     detect_stuck_chats(1) is there to find;
--   * the rest arrived evenly over the last 50 minutes.
-- Rows go in in arrival order (the heap is in queue order, as a real table would be).
\set ON_ERROR_STOP on
DROP TABLE IF EXISTS bench_src;
CREATE UNLOGGED TABLE bench_src AS
SELECT i,
       md5('chat-' || i)::uuid AS id,
       md5('user-' || i)::uuid AS real_user_id,
       CASE WHEN i <= s
            THEN :'t0'::timestamptz - interval '2 hours' + (i - 1) * (interval '50 minutes' / s)
            ELSE :'t0'::timestamptz - interval '50 minutes' + (i - s) * (interval '50 minutes' / greatest(:n - s, 1))
       END AS ts
FROM (SELECT greatest(1, :n / 1000) AS s) p,
     generate_series(1, :n) AS i
ORDER BY i;

DROP TABLE IF EXISTS bench_ops;
CREATE UNLOGGED TABLE bench_ops AS
SELECT k, md5('op-' || k)::uuid AS id, 'Operator ' || k AS name
FROM generate_series(1, :k) AS k;

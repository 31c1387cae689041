-- Times get_queue_position (scripts/bench_teams.sh) for the chat at each of the positions
-- :'positions' (a comma-separated list) of one queue: the first team's (by name), or the
-- queue without a team when the database has no team. :calls calls per position, in one
-- session; prints position asked, position answered (they must be equal), and the call's
-- p50 and p95 in milliseconds, measured in the server around each call.
\set ON_ERROR_STOP 1
CREATE TEMP TABLE position_times (asked int, answered int, ms float8);
DO $$
DECLARE
    queue uuid := (SELECT id FROM teams ORDER BY name LIMIT 1);
    asked int;
    chat uuid;
    answered int;
    t0 timestamptz;
BEGIN
    FOREACH asked IN ARRAY string_to_array(current_setting('bench.positions'), ',')::int[] LOOP
        SELECT c.id INTO chat FROM chats c
         WHERE c.team_id IS NOT DISTINCT FROM queue
           AND c.chat_state = 'waiting_assignment' AND c.is_active
         ORDER BY c.priority DESC, c.waiting_since, c.id
        OFFSET asked - 1 LIMIT 1;
        CONTINUE WHEN chat IS NULL;
        FOR i IN 1 .. current_setting('bench.calls')::int LOOP
            t0 := clock_timestamp();
            SELECT queue_position INTO answered FROM get_queue_position(chat);
            INSERT INTO position_times
            VALUES (asked, answered, extract(epoch FROM clock_timestamp() - t0) * 1000);
        END LOOP;
    END LOOP;
END
$$;
SELECT asked, min(answered) AS answered, max(answered) AS answered_max,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3) AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 3) AS p95_ms
FROM position_times GROUP BY asked ORDER BY asked;

-- What a push costs as a team grows (scripts/bench_routing.sh): a least_loaded team of
-- :members operators, each holding a chat and with room for many more (so every push
-- compares every member), then :starts chats started one at a time in that team, each
-- pushed to a member in the same call. Prints members|p50 ms per start (with its push)|
-- chats of the team assigned.
\set ON_ERROR_STOP 1
SELECT create_team('members ' || :members) AS team \gset
SELECT set_team_routing(:'team', 'least_loaded') \gset
INSERT INTO operators (id, name, max_concurrent_chats)
SELECT md5('members-' || :members || '-' || k)::uuid, 'member ' || k, 1000
FROM generate_series(1, :members) AS k;
INSERT INTO team_members (team_id, operator_id)
SELECT :'team', md5('members-' || :members || '-' || k)::uuid FROM generate_series(1, :members) AS k;
SELECT count(start_chat(gen_random_uuid(), 'warm-up', p_team_id => :'team'))
FROM generate_series(1, :members) \gset
VACUUM ANALYZE;
CREATE TEMP TABLE push_time (ms float8);
DO $$
DECLARE t0 timestamptz; team uuid := (SELECT id FROM teams WHERE name = 'members ' || current_setting('bench.members'));
BEGIN
    FOR i IN 1 .. current_setting('bench.starts')::int LOOP
        t0 := clock_timestamp();
        PERFORM start_chat(gen_random_uuid(), 'Hello', p_team_id => team);
        INSERT INTO push_time VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
END $$;
SELECT :members || '|' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2)
       || '|' || (SELECT count(*) FROM chats c JOIN teams t ON t.id = c.team_id
                  WHERE t.name = 'members ' || :members AND c.chat_state = 'assigned')
FROM push_time;

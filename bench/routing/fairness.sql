-- Fairness of a routing (scripts/bench_routing.sh): :ops operators of capacity :cap in a
-- team of their own with routing :'routing'; :n chats arrive one at a time, each in its own
-- transaction, and are given to a member by the routing; while more than :busy are open, one
-- chosen at random is answered and completed (the answer frees its operator, who pulls the
-- next waiting chat, if any). Prints how many chats each operator was given: min, max,
-- max/min.
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS chat_assign;
SELECT create_team('fair ' || :'routing' || ' ' || :busy, :'routing') AS team \gset
CREATE TEMP TABLE fair_ops AS
SELECT create_operator('fair ' || :'routing' || ' ' || :busy || ' ' || k, :cap) AS id FROM generate_series(1, :ops) AS k;
SELECT count(add_team_member(:'team', id)) AS members FROM fair_ops;
CREATE PROCEDURE pg_temp.drive(team uuid, n int, busy int)
LANGUAGE plpgsql AS $$
DECLARE
    chat uuid;
    holder uuid;
BEGIN
    PERFORM setseed(0.42);
    FOR i IN 1 .. n LOOP
        PERFORM start_chat(gen_random_uuid(), 'question ' || i, p_team_id => team);
        COMMIT;
        -- Keep about `busy` chats open: answer one, chosen at random, when there are more.
        WHILE (SELECT count(*) FROM chats c WHERE c.team_id = team AND c.chat_state = 'assigned') > busy LOOP
            SELECT c.id, c.assigned_operator_id INTO chat, holder FROM chats c
             WHERE c.team_id = team AND c.chat_state = 'assigned'
             ORDER BY random() LIMIT 1;
            PERFORM operator_send_message(chat, holder, 'answer');
            PERFORM complete_chat(chat);
            COMMIT;
        END LOOP;
    END LOOP;
END
$$;
CALL pg_temp.drive(:'team', :n, :busy);
SELECT :'routing' AS routing, min(n) AS min_chats, max(n) AS max_chats,
       round(max(n)::numeric / nullif(min(n), 0), 3) AS max_over_min,
       (SELECT count(*) FROM chat_events e WHERE e.team_id = :'team' AND e.reason = 'auto_assigned') AS auto_assigned
FROM (SELECT o.id, count(a.id) AS n FROM fair_ops o
      LEFT JOIN chat_assignments a ON a.operator_id = o.id GROUP BY o.id) AS per_operator;

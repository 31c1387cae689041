-- bench.time_query(sql, reps, warm_up): runs a query to the last row reps times inside the
-- server and reports the median, min and max wall time in ms and the rows of the last run.
-- Server-side timing (clock_timestamp around the full fetch), so it is the cost of the
-- call itself, not of psql or the socket. Kept in its own schema, apart from the
-- implementation's objects.
\set ON_ERROR_STOP on
CREATE SCHEMA IF NOT EXISTS bench;
CREATE OR REPLACE FUNCTION bench.time_query(p_sql text, p_reps int DEFAULT 5, p_warm_up boolean DEFAULT true)
RETURNS TABLE (median_ms float8, min_ms float8, max_ms float8, row_count bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t  timestamptz;
    ms float8[] := '{}';
    n  bigint := 0;
    r  record;
BEGIN
    IF p_warm_up THEN
        FOR r IN EXECUTE p_sql LOOP END LOOP;
    END IF;
    FOR i IN 1 .. p_reps LOOP
        n := 0;
        t := clock_timestamp();
        FOR r IN EXECUTE p_sql LOOP n := n + 1; END LOOP;
        ms := ms || (extract(epoch FROM clock_timestamp() - t) * 1000)::float8;
    END LOOP;
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), min(x), max(x)
      INTO median_ms, min_ms, max_ms
      FROM unnest(ms) AS x;
    row_count := n;
    RETURN NEXT;
END;
$$;

-- Adoption: an app built from the migrations apps ran before this extension (bench/plpgsql:
-- its own operators, chats, messages,
-- chat_assignments and operator_activity tables and PL/pgSQL functions, usually in
-- `public`) moves onto the extension installed beside it (`CREATE EXTENSION chat_assign
-- SCHEMA chat_assign`) in three steps, each one transaction:
--   1. import_app_tables(schema): copies every row into the extension's tables. Reads the
--      app's tables only (under a SHARE lock: the app can read, not write, meanwhile).
--   2. switch_app_calls(schema): moves the app's tables, views and functions of the same
--      names into a backup schema and puts in their place read-only views over the
--      extension's tables and thin functions that call the extension's: the app's calls
--      (`SELECT assign_chat_to_operator(...)`, RPC through PostgREST) reach the extension
--      unchanged.
--   3. restore_app_calls(schema): the rollback of step 2; the app's objects go back exactly
--      as they were at the switch.
-- All three run with the caller's rights (a DBA who owns the app's objects; the superuser
-- who installed the extension), EXECUTE revoked from everyone else, with a pinned
-- search_path and every name of the app's quoted from the catalog.

-- What was imported from where, and what the switch put in the app's schema.
CREATE TABLE app_imports (
    app_schema    name        PRIMARY KEY,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    imported_by   name        NOT NULL DEFAULT current_user,
    repaired      bigint      NOT NULL DEFAULT 0,
    backup_schema name,       -- while switched: where the app's own objects wait
    switched_at   timestamptz,
    created       text[]      -- while switched: what the switch created (views, functions)
);

-- The extension numbers messages and assignments itself (bigint identity); an app's ids
-- (uuid in such apps) are kept here, so that what the app stored elsewhere still
-- finds its row: `SELECT id FROM imported_ids WHERE table_name = 'messages' AND app_id = $1`.
CREATE TABLE imported_ids (
    table_name text   NOT NULL,
    app_id     text   NOT NULL,
    id         bigint NOT NULL,
    PRIMARY KEY (table_name, app_id),
    CONSTRAINT imported_ids_table CHECK (table_name IN ('messages', 'chat_assignments'))
);

SELECT pg_catalog.pg_extension_config_dump('app_imports', '');
SELECT pg_catalog.pg_extension_config_dump('imported_ids', '');

-- Copies an app's rows into the extension's (empty) tables in one transaction and returns
-- one row per table. The app's tables need only the columns that hold data the extension
-- keeps: ids and references, a message's sender and content; every other column is read
-- when it exists (chat_state, last_operator_id, operator_replied_at, priority,
-- waiting_since, state_changed_at, ...) and derived when not (docs/adopting.md lists the derivations and the repair rules).
--
-- Rows that break an invariant are collected first, by rule; without p_repair any of them
-- refuses the whole import with 23514, naming the rule, the count and the first ids. With
-- p_repair each rule's repair is applied and counted in `repaired`.
CREATE FUNCTION import_app_tables(p_schema name, p_repair boolean DEFAULT false)
RETURNS TABLE (table_name text, imported bigint, repaired bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    app_oid   oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = p_schema);
    ext_oid   oid := (SELECT e.extnamespace FROM pg_extension e WHERE e.extname = 'chat_assign');
    app       text := quote_ident(p_schema);
    cols      text[];
    has_activity boolean;
    n_heartbeats bigint := 0;
    n_messages bigint;
    n_problems bigint;
    problems  text;
    before    text;
    t         text;
BEGIN
    IF p_schema IS NULL THEN
        RAISE EXCEPTION 'p_schema must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF p_repair IS NULL THEN
        RAISE EXCEPTION 'p_repair must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF app_oid IS NULL THEN
        RAISE EXCEPTION 'schema "%" does not exist', p_schema USING ERRCODE = '3F000';
    END IF;
    IF app_oid = ext_oid THEN
        RAISE EXCEPTION 'schema "%" is the extension''s own: the app''s tables must be in another schema', p_schema
            USING ERRCODE = '22023';
    END IF;
    SELECT format('from schema %I at %s', i.app_schema, i.imported_at) INTO before
      FROM @extschema@.app_imports i ORDER BY i.imported_at LIMIT 1;
    IF before IS NOT NULL THEN
        RAISE EXCEPTION 'the app''s tables were already imported (%)', before
            USING ERRCODE = '55000';
    END IF;
    FOREACH t IN ARRAY ARRAY['operators', 'chats', 'messages', 'chat_assignments'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class c
                        WHERE c.relnamespace = app_oid AND c.relname = t AND c.relkind IN ('r', 'p')) THEN
            RAISE EXCEPTION 'schema "%" has no table "%"', p_schema, t USING ERRCODE = '42P01';
        END IF;
    END LOOP;
    has_activity := EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = app_oid
                               AND c.relname = 'operator_activity' AND c.relkind IN ('r', 'p'));
    -- The app's columns, as 'table.column'.
    SELECT array_agg(c.relname || '.' || a.attname) INTO cols
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.relnamespace = app_oid
       AND c.relname IN ('operators', 'chats', 'messages', 'chat_assignments', 'operator_activity');
    FOREACH t IN ARRAY ARRAY['operators.id', 'operators.name', 'chats.id', 'chats.real_user_id',
                             'messages.id', 'messages.chat_id', 'messages.sender_type',
                             'messages.content', 'chat_assignments.id', 'chat_assignments.chat_id',
                             'chat_assignments.operator_id'] LOOP
        IF NOT t = ANY (cols) THEN
            RAISE EXCEPTION 'the app''s table %.% has no column "%"', app, split_part(t, '.', 1),
                split_part(t, '.', 2) USING ERRCODE = '42703';
        END IF;
    END LOOP;

    -- The app writes nothing while its rows are read (its reads go on); nobody writes ours.
    EXECUTE format('LOCK TABLE %1$s.operators, %1$s.chats, %1$s.messages, %1$s.chat_assignments IN SHARE MODE', app);
    IF has_activity THEN
        EXECUTE format('LOCK TABLE %s.operator_activity IN SHARE MODE', app);
    END IF;
    LOCK TABLE @extschema@.operators, @extschema@.chats, @extschema@.messages,
               @extschema@.chat_assignments, @extschema@.app_imports IN EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM @extschema@.operators) OR EXISTS (SELECT 1 FROM @extschema@.chats)
       OR EXISTS (SELECT 1 FROM @extschema@.messages) OR EXISTS (SELECT 1 FROM @extschema@.chat_assignments) THEN
        RAISE EXCEPTION 'the extension''s tables already hold data: an import goes into a fresh install'
            USING ERRCODE = '55000';
    END IF;

    -- Work tables of an earlier import in this transaction that failed half-way (caught).
    FOREACH t IN ARRAY ARRAY['ca_problem', 'ca_operators', 'ca_chats', 'ca_assignments', 'ca_activity'] LOOP
        IF to_regclass('pg_temp.' || t) IS NOT NULL THEN
            EXECUTE format('DROP TABLE pg_temp.%I', t);
        END IF;
    END LOOP;
    CREATE TEMP TABLE ca_problem (rule text, table_name text, row_id text) ON COMMIT DROP;

    -- ---------------------------------------------------------------- operators
    EXECUTE format($q$
        CREATE TEMP TABLE ca_operators ON COMMIT DROP AS
        SELECT o.id::uuid AS id, o.name::text AS name,
               coalesce(%s, true) AS is_active, %s AS max_concurrent_chats,
               %s AS last_assigned_at, coalesce(%s, now()) AS created_at
        FROM %s.operators o$q$,
        CASE WHEN 'operators.is_active' = ANY (cols) THEN 'o.is_active::boolean' ELSE 'NULL::boolean' END,
        CASE WHEN 'operators.max_concurrent_chats' = ANY (cols) THEN 'o.max_concurrent_chats::integer' ELSE '1' END,
        CASE WHEN 'operators.last_assigned_at' = ANY (cols) THEN 'o.last_assigned_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'operators.created_at' = ANY (cols) THEN 'o.created_at::timestamptz' ELSE 'NULL::timestamptz' END,
        app);
    ALTER TABLE ca_operators ADD PRIMARY KEY (id);
    -- Rule operator_name_blank: named after its id.
    INSERT INTO ca_problem SELECT 'operator_name_blank', 'operators', o.id::text
      FROM ca_operators o WHERE o.name IS NULL OR btrim(o.name) = '';
    UPDATE ca_operators o SET name = 'operator ' || o.id WHERE o.name IS NULL OR btrim(o.name) = '';
    -- Rule operator_capacity: capacity 1.
    INSERT INTO ca_problem SELECT 'operator_capacity', 'operators', o.id::text
      FROM ca_operators o WHERE o.max_concurrent_chats IS NULL OR o.max_concurrent_chats < 1;
    UPDATE ca_operators o SET max_concurrent_chats = 1
     WHERE o.max_concurrent_chats IS NULL OR o.max_concurrent_chats < 1;

    -- ---------------------------------------------------------------- chats
    EXECUTE format($q$
        CREATE TEMP TABLE ca_chats ON COMMIT DROP AS
        SELECT c.id::uuid AS id, c.real_user_id::uuid AS real_user_id,
               %s AS app_state, %s AS assigned_operator_id, %s AS last_operator_id,
               %s AS operator_replied_at, coalesce(%s, true) AS is_active,
               coalesce(%s, now()) AS created_at, %s AS last_message_at,
               coalesce(%s, 0) AS priority, %s AS waiting_since, %s AS state_changed_at,
               NULL::@extschema@.chat_state AS chat_state, NULL::timestamptz AS assigned_at
        FROM %s.chats c$q$,
        CASE WHEN 'chats.chat_state' = ANY (cols) THEN 'c.chat_state::text' ELSE 'NULL::text' END,
        CASE WHEN 'chats.assigned_operator_id' = ANY (cols) THEN 'c.assigned_operator_id::uuid' ELSE 'NULL::uuid' END,
        CASE WHEN 'chats.last_operator_id' = ANY (cols) THEN 'c.last_operator_id::uuid' ELSE 'NULL::uuid' END,
        CASE WHEN 'chats.operator_replied_at' = ANY (cols) THEN 'c.operator_replied_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.is_active' = ANY (cols) THEN 'c.is_active::boolean' ELSE 'NULL::boolean' END,
        CASE WHEN 'chats.created_at' = ANY (cols) THEN 'c.created_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.last_message_at' = ANY (cols) THEN 'c.last_message_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.priority' = ANY (cols) THEN 'c.priority::integer' ELSE 'NULL::integer' END,
        CASE WHEN 'chats.waiting_since' = ANY (cols) THEN 'c.waiting_since::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chats.state_changed_at' = ANY (cols) THEN 'c.state_changed_at::timestamptz' ELSE 'NULL::timestamptz' END,
        app);
    ALTER TABLE ca_chats ADD PRIMARY KEY (id);
    -- The state: the app's own (migration 014 on), else derived from the columns before 014
    -- the way 014's backfill did. Rule chat_state_unknown: a state the extension does not
    -- have gets the derived one.
    IF 'chats.chat_state' = ANY (cols) THEN
        INSERT INTO ca_problem SELECT 'chat_state_unknown', 'chats', c.id::text FROM ca_chats c
         WHERE c.app_state IS NULL
            OR c.app_state NOT IN ('waiting_assignment', 'assigned', 'waiting_real_user_reply', 'completed');
    END IF;
    UPDATE ca_chats c SET chat_state = CASE
        WHEN c.app_state IN ('waiting_assignment', 'assigned', 'waiting_real_user_reply', 'completed')
            THEN c.app_state::@extschema@.chat_state
        WHEN NOT c.is_active THEN 'completed'
        WHEN c.assigned_operator_id IS NOT NULL THEN 'assigned'
        ELSE 'waiting_assignment' END;
    -- Rule chat_operator_missing: an operator id that names no operator is dropped.
    INSERT INTO ca_problem SELECT 'chat_operator_missing', 'chats', c.id::text FROM ca_chats c
     WHERE (c.assigned_operator_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.assigned_operator_id))
        OR (c.last_operator_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.last_operator_id));
    UPDATE ca_chats c SET assigned_operator_id = NULL
     WHERE c.assigned_operator_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.assigned_operator_id);
    UPDATE ca_chats c SET last_operator_id = NULL
     WHERE c.last_operator_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = c.last_operator_id);
    -- Rule chat_assigned_without_operator: back to the queue.
    INSERT INTO ca_problem SELECT 'chat_assigned_without_operator', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'assigned' AND c.assigned_operator_id IS NULL;
    UPDATE ca_chats c SET chat_state = 'waiting_assignment'
     WHERE c.chat_state = 'assigned' AND c.assigned_operator_id IS NULL;
    -- Rule chat_operator_not_assigned: a chat that is not assigned holds no operator (the
    -- one it named becomes its last operator, unless it has one).
    INSERT INTO ca_problem SELECT 'chat_operator_not_assigned', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state <> 'assigned' AND c.assigned_operator_id IS NOT NULL;
    UPDATE ca_chats c SET last_operator_id = coalesce(c.last_operator_id, c.assigned_operator_id),
                          assigned_operator_id = NULL
     WHERE c.chat_state <> 'assigned' AND c.assigned_operator_id IS NOT NULL;
    -- Rule chat_completed_active: a completed chat is inactive.
    INSERT INTO ca_problem SELECT 'chat_completed_active', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'completed' AND c.is_active;
    UPDATE ca_chats c SET is_active = false WHERE c.chat_state = 'completed' AND c.is_active;
    -- Rule chat_reply_time_missing: a chat waiting for the user's reply was answered at its
    -- last message (or, without one, when it started).
    INSERT INTO ca_problem SELECT 'chat_reply_time_missing', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'waiting_real_user_reply' AND c.operator_replied_at IS NULL;
    UPDATE ca_chats c SET operator_replied_at = coalesce(c.last_message_at, c.created_at)
     WHERE c.chat_state = 'waiting_real_user_reply' AND c.operator_replied_at IS NULL;
    -- Derived, not repaired: the holder of an assigned chat is its last operator; a chat
    -- waits (keeps its place in the queue) from its last message.
    UPDATE ca_chats c SET last_operator_id = c.assigned_operator_id
     WHERE c.chat_state = 'assigned' AND c.last_operator_id IS DISTINCT FROM c.assigned_operator_id;
    UPDATE ca_chats c SET waiting_since = coalesce(c.last_message_at, c.created_at)
     WHERE c.waiting_since IS NULL;

    -- ---------------------------------------------------------------- assignments
    EXECUTE format($q$
        CREATE TEMP TABLE ca_assignments ON COMMIT DROP AS
        SELECT a.id::text AS app_id, a.chat_id::uuid AS chat_id, a.operator_id::uuid AS operator_id,
               %s AS assigned_at, %s AS released_at, %s AS release_reason,
               NULL::timestamptz AS last_activity_at, false AS kept_open
        FROM %s.chat_assignments a$q$,
        CASE WHEN 'chat_assignments.assigned_at' = ANY (cols) THEN 'a.assigned_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chat_assignments.released_at' = ANY (cols) THEN 'a.released_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'chat_assignments.release_reason' = ANY (cols) THEN 'a.release_reason::text' ELSE 'NULL::text' END,
        app);
    CREATE INDEX ON ca_assignments (chat_id);
    -- Rule assignment_reference_missing: an assignment of a chat or by an operator that does
    -- not exist is not imported.
    INSERT INTO ca_problem SELECT 'assignment_reference_missing', 'chat_assignments', a.app_id
      FROM ca_assignments a
     WHERE NOT EXISTS (SELECT 1 FROM ca_chats c WHERE c.id = a.chat_id)
        OR NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = a.operator_id);
    DELETE FROM ca_assignments a
     WHERE NOT EXISTS (SELECT 1 FROM ca_chats c WHERE c.id = a.chat_id)
        OR NOT EXISTS (SELECT 1 FROM ca_operators o WHERE o.id = a.operator_id);
    -- Rule assignment_times_invalid: no time of assignment (the chat's start), released
    -- before it was assigned (released then), released without a reason ('unknown') or a
    -- reason without a release (dropped).
    INSERT INTO ca_problem SELECT 'assignment_times_invalid', 'chat_assignments', a.app_id
      FROM ca_assignments a
     WHERE a.assigned_at IS NULL OR a.released_at < a.assigned_at
        OR (a.released_at IS NULL) <> (a.release_reason IS NULL);
    UPDATE ca_assignments a SET assigned_at = coalesce(a.released_at, c.created_at)
      FROM ca_chats c WHERE c.id = a.chat_id AND a.assigned_at IS NULL;
    UPDATE ca_assignments a SET released_at = a.assigned_at WHERE a.released_at < a.assigned_at;
    UPDATE ca_assignments a SET release_reason = CASE WHEN a.released_at IS NULL THEN NULL ELSE 'unknown' END
     WHERE (a.released_at IS NULL) <> (a.release_reason IS NULL);

    -- Rule operator_over_capacity: an operator holds at most max_concurrent_chats chats; it
    -- keeps those assigned to it last, the others go back to the queue.
    WITH held AS (
        SELECT c.id, c.assigned_operator_id, o.max_concurrent_chats AS cap,
               row_number() OVER (PARTITION BY c.assigned_operator_id
                                  ORDER BY (SELECT max(a.assigned_at) FROM ca_assignments a
                                             WHERE a.chat_id = c.id AND a.operator_id = c.assigned_operator_id
                                               AND a.released_at IS NULL) DESC NULLS LAST, c.id) AS rank
        FROM ca_chats c JOIN ca_operators o ON o.id = c.assigned_operator_id
        WHERE c.chat_state = 'assigned')
    INSERT INTO ca_problem SELECT 'operator_over_capacity', 'chats', h.id::text FROM held h WHERE h.rank > h.cap;
    UPDATE ca_chats c SET chat_state = 'waiting_assignment', assigned_operator_id = NULL
      FROM ca_problem p
     WHERE p.rule = 'operator_over_capacity' AND p.row_id = c.id::text;

    -- An assigned chat keeps one open assignment: its newest one by its operator.
    UPDATE ca_assignments a SET kept_open = true
     WHERE a.app_id IN (
        SELECT DISTINCT ON (a2.chat_id) a2.app_id
          FROM ca_assignments a2 JOIN ca_chats c ON c.id = a2.chat_id
         WHERE a2.released_at IS NULL AND c.chat_state = 'assigned'
           AND a2.operator_id = c.assigned_operator_id
         ORDER BY a2.chat_id, a2.assigned_at DESC, a2.app_id DESC);
    -- Rule assignment_open_twice (a second open assignment of an assigned chat) and rule
    -- assignment_left_open (an open assignment of a chat that is not assigned, or of
    -- another operator): released now, reason 'import_repair'.
    INSERT INTO ca_problem
    SELECT CASE WHEN c.chat_state = 'assigned' AND a.operator_id = c.assigned_operator_id
                THEN 'assignment_open_twice' ELSE 'assignment_left_open' END,
           'chat_assignments', a.app_id
      FROM ca_assignments a JOIN ca_chats c ON c.id = a.chat_id
     WHERE a.released_at IS NULL AND NOT a.kept_open;
    UPDATE ca_assignments a SET released_at = greatest(now(), a.assigned_at), release_reason = 'import_repair'
     WHERE a.released_at IS NULL AND NOT a.kept_open;
    -- Rule chat_assigned_without_assignment: the missing assignment is added, from the
    -- chat's last message (or its start).
    INSERT INTO ca_problem SELECT 'chat_assigned_without_assignment', 'chats', c.id::text FROM ca_chats c
     WHERE c.chat_state = 'assigned'
       AND NOT EXISTS (SELECT 1 FROM ca_assignments a WHERE a.chat_id = c.id AND a.kept_open);
    INSERT INTO ca_assignments (app_id, chat_id, operator_id, assigned_at, kept_open)
    SELECT NULL, c.id, c.assigned_operator_id, coalesce(c.last_message_at, c.created_at), true
      FROM ca_chats c
     WHERE c.chat_state = 'assigned'
       AND NOT EXISTS (SELECT 1 FROM ca_assignments a WHERE a.chat_id = c.id AND a.kept_open);

    -- ---------------------------------------------------------------- heartbeats
    IF has_activity THEN
        EXECUTE format($q$
            CREATE TEMP TABLE ca_activity ON COMMIT DROP AS
            SELECT h.operator_id::uuid AS operator_id, h.chat_id::uuid AS chat_id,
                   h.last_activity_at::timestamptz AS last_activity_at
            FROM %s.operator_activity h$q$, app);
        -- Rule activity_without_assignment: a heartbeat of an operator who does not hold
        -- the chat (a release that forgot it) is not imported.
        INSERT INTO ca_problem SELECT 'activity_without_assignment', 'operator_activity',
                                      h.operator_id || '/' || h.chat_id
          FROM ca_activity h
         WHERE NOT EXISTS (SELECT 1 FROM ca_assignments a
                            WHERE a.chat_id = h.chat_id AND a.operator_id = h.operator_id AND a.kept_open);
        UPDATE ca_assignments a SET last_activity_at = h.last_activity_at
          FROM (SELECT h2.chat_id, h2.operator_id, max(h2.last_activity_at) AS last_activity_at
                  FROM ca_activity h2 GROUP BY 1, 2) h
         WHERE a.kept_open AND a.chat_id = h.chat_id AND a.operator_id = h.operator_id;
        SELECT count(*) INTO n_heartbeats FROM ca_activity h
         WHERE EXISTS (SELECT 1 FROM ca_assignments a
                        WHERE a.chat_id = h.chat_id AND a.operator_id = h.operator_id AND a.kept_open);
    END IF;
    UPDATE ca_assignments a SET last_activity_at = coalesce(a.released_at, a.assigned_at)
     WHERE a.last_activity_at IS NULL;

    -- When the chat was assigned last, and since when it is in its state (the app kept
    -- neither): its newest assignment; the reply; its last message.
    UPDATE ca_chats c SET assigned_at = a.assigned_at
      FROM (SELECT a2.chat_id, max(a2.assigned_at) AS assigned_at FROM ca_assignments a2 GROUP BY 1) a
     WHERE a.chat_id = c.id;
    UPDATE ca_chats c SET state_changed_at = CASE c.chat_state
            WHEN 'assigned' THEN coalesce((SELECT a.assigned_at FROM ca_assignments a
                                            WHERE a.chat_id = c.id AND a.kept_open), c.assigned_at)
            WHEN 'waiting_real_user_reply' THEN c.operator_replied_at
            ELSE coalesce(c.last_message_at, c.created_at) END
     WHERE c.state_changed_at IS NULL;

    -- ---------------------------------------------------------------- messages
    -- Not staged (there may be many): checked in place, then copied.
    -- Rule message_reference_missing (a message of no chat, or by no operator) and rule
    -- message_invalid (a sender that is neither, an operator message without its operator
    -- or a user's with one, blank content): not imported.
    EXECUTE format($q$
        INSERT INTO ca_problem
        SELECT CASE WHEN c.id IS NULL OR (m.operator_id IS NOT NULL AND o.id IS NULL)
                    THEN 'message_reference_missing' ELSE 'message_invalid' END,
               'messages', m.id::text
          FROM %s.messages m
          LEFT JOIN ca_chats c ON c.id = m.chat_id::uuid
          LEFT JOIN ca_operators o ON o.id = %s
         WHERE c.id IS NULL OR (%2$s IS NOT NULL AND o.id IS NULL)
            OR NOT coalesce(m.sender_type::text IN ('real_user', 'operator')
                            AND (m.sender_type::text = 'operator') = (%2$s IS NOT NULL)
                            AND btrim(m.content::text) <> '', false)$q$,
        app,
        CASE WHEN 'messages.operator_id' = ANY (cols) THEN 'm.operator_id::uuid' ELSE 'NULL::uuid' END);

    -- ---------------------------------------------------------------- refuse, or write
    SELECT count(*) INTO n_problems FROM ca_problem;
    IF n_problems > 0 AND NOT p_repair THEN
        SELECT string_agg(format('%s: %s %s (%s%s)', r.rule, r.n,
                                 CASE WHEN r.n = 1 THEN 'row' ELSE 'rows' END, r.table_name,
                                 ', e.g. ' || r.sample), E'\n' ORDER BY r.rule)
          INTO problems
          FROM (SELECT p.rule, p.table_name, count(*) AS n,
                       string_agg(p.row_id, ', ' ORDER BY p.row_id) FILTER (WHERE p.k <= 3) AS sample
                  FROM (SELECT p2.*, row_number() OVER (PARTITION BY p2.rule ORDER BY p2.row_id) AS k
                          FROM ca_problem p2) p
                 GROUP BY p.rule, p.table_name) r;
        RAISE EXCEPTION '% rows of schema % break the extension''s invariants; nothing was imported',
            n_problems, app
            USING ERRCODE = '23514', DETAIL = problems,
                  HINT = 'Fix those rows, or call import_app_tables(..., p_repair => true) to apply the repair rule of each.';
    END IF;

    INSERT INTO @extschema@.operators (id, name, is_active, max_concurrent_chats, last_assigned_at, created_at)
    SELECT o.id, o.name, o.is_active, o.max_concurrent_chats, o.last_assigned_at, o.created_at
      FROM ca_operators o ORDER BY o.created_at, o.id;
    -- When each chat was first answered (its first operator message kept) and first assigned,
    -- and how often it was released for idleness: what get_service_metrics reads.
    EXECUTE format($q$
        CREATE TEMP TABLE ca_first_reply ON COMMIT DROP AS
        SELECT m.chat_id::uuid AS chat_id, min(coalesce(%2$s, now())) AS at
          FROM %1$s.messages m
         WHERE m.sender_type::text = 'operator'
           AND NOT EXISTS (SELECT 1 FROM ca_problem p
                            WHERE p.table_name = 'messages' AND p.row_id = m.id::text)
         GROUP BY 1$q$,
        app,
        CASE WHEN 'messages.created_at' = ANY (cols) THEN 'm.created_at::timestamptz' ELSE 'NULL::timestamptz' END);
    INSERT INTO @extschema@.chats (id, real_user_id, chat_state, assigned_operator_id, last_operator_id,
                                   operator_replied_at, assigned_at, waiting_since, state_changed_at,
                                   priority, is_active, created_at, last_message_at,
                                   first_assigned_at, first_response_at, idle_releases)
    SELECT c.id, c.real_user_id, c.chat_state, c.assigned_operator_id, c.last_operator_id,
           c.operator_replied_at, c.assigned_at, c.waiting_since, c.state_changed_at,
           c.priority, c.is_active, c.created_at, c.last_message_at,
           fa.at, fr.at, coalesce(fa.idle, 0)
      FROM ca_chats c
      LEFT JOIN (SELECT a.chat_id, min(a.assigned_at) AS at,
                        count(*) FILTER (WHERE a.release_reason = 'idle_timeout')::integer AS idle
                   FROM ca_assignments a GROUP BY a.chat_id) AS fa
             ON fa.chat_id = c.id
      LEFT JOIN ca_first_reply fr ON fr.chat_id = c.id
     ORDER BY c.created_at, c.id;

    -- The references of every assignment and message left were checked above, against the
    -- rows just written, and nothing can change either side meanwhile (the locks).

    -- A chat's open assignment is its newest (the functions find it as max(id)): the open
    -- ones are numbered after every released one, each group in time order.
    WITH numbered AS (
        SELECT a.*, row_number() OVER (ORDER BY a.kept_open, a.assigned_at, a.app_id) AS new_id
          FROM ca_assignments a),
    written AS (
        INSERT INTO @extschema@.chat_assignments (id, chat_id, operator_id, assigned_at, released_at,
                                                  release_reason, last_activity_at)
        SELECT n.new_id, n.chat_id, n.operator_id, n.assigned_at, n.released_at, n.release_reason,
               n.last_activity_at
          FROM numbered n)
    INSERT INTO @extschema@.imported_ids (table_name, app_id, id)
    SELECT 'chat_assignments', n.app_id, n.new_id FROM numbered n WHERE n.app_id IS NOT NULL;

    -- Messages numbered in the order they were written.
    EXECUTE format($q$
        WITH numbered AS (
            SELECT m.id::text AS app_id, m.chat_id::uuid AS chat_id, m.sender_type::text AS sender_type,
                   %2$s AS operator_id, m.content::text AS content, coalesce(%3$s, now()) AS created_at,
                   row_number() OVER (ORDER BY %3$s, m.id) AS new_id
              FROM %1$s.messages m
             WHERE NOT EXISTS (SELECT 1 FROM ca_problem p
                                WHERE p.table_name = 'messages' AND p.row_id = m.id::text)),
        written AS (
            INSERT INTO @extschema@.messages (id, chat_id, sender_type, operator_id, content, created_at)
            SELECT n.new_id, n.chat_id, n.sender_type, n.operator_id, n.content, n.created_at
              FROM numbered n)
        INSERT INTO @extschema@.imported_ids (table_name, app_id, id)
        SELECT 'messages', n.app_id, n.new_id FROM numbered n$q$,
        app,
        CASE WHEN 'messages.operator_id' = ANY (cols) THEN 'm.operator_id::uuid' ELSE 'NULL::uuid' END,
        CASE WHEN 'messages.created_at' = ANY (cols) THEN 'm.created_at::timestamptz' ELSE 'NULL::timestamptz' END);
    GET DIAGNOSTICS n_messages = ROW_COUNT;

    -- The identities go on after the ids written.
    PERFORM setval(pg_get_serial_sequence('@extschema@.messages', 'id'),
                   coalesce((SELECT max(m.id) FROM @extschema@.messages m), 0) + 1, false);
    PERFORM setval(pg_get_serial_sequence('@extschema@.chat_assignments', 'id'),
                   coalesce((SELECT max(a.id) FROM @extschema@.chat_assignments a), 0) + 1, false);

    INSERT INTO @extschema@.app_imports (app_schema, repaired) VALUES (p_schema, n_problems);

    RETURN QUERY
    SELECT s.t, s.imported, (SELECT count(DISTINCT p.row_id) FROM ca_problem p WHERE p.table_name = s.t)
      FROM (VALUES ('operators', (SELECT count(*) FROM ca_operators), 1),
                   ('chats', (SELECT count(*) FROM ca_chats), 2),
                   ('messages', n_messages, 3),
                   ('chat_assignments', (SELECT count(*) FROM ca_assignments), 4),
                   ('operator_activity', n_heartbeats, 5))
           AS s(t, imported, ord)
     ORDER BY s.ord;
END
$$;

-- After import_app_tables(p_schema): the app's calls go to the extension. In p_schema, the
-- app's tables and views named like the extension's (`relations` below) and its functions
-- named like the extension's API (`functions`, any signature) move to the schema `<p_schema>_before_chat_assign`,
-- untouched (data, grants, policies, triggers and definitions move with them); in their
-- place come
--   * views over the extension's tables and views (security_invoker: a caller reads only
--     what the extension's grants let it read; no one can write through them), and
--   * for every function of the extension an app calls, a function of the same name,
--     parameters, defaults and result that calls it: SECURITY INVOKER (it gives no right
--     the caller lacks), its search_path pinned, the extension's function named by schema
--     (a caller's search_path cannot redirect it).
-- Each carries the grants the app's object of that name had, so the app's roles call and
-- read what they did (they also need the extension's grants: docs/security.md, "Roles and grants").
-- Returns what it did, one row per object; objects of the app that still use the moved
-- tables (its other views, functions, foreign keys) are listed as 'still reads the old
-- table': they see the app's rows as they were at the switch.
CREATE FUNCTION switch_app_calls(p_schema name)
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    app_oid  oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = p_schema);
    ext_oid  oid := (SELECT e.extnamespace FROM pg_extension e WHERE e.extname = 'chat_assign');
    ext      text;
    backup   name;
    -- The extension's functions an app calls (every one but the adoption functions and the
    -- triggers: pg_regress adopt checks that none is missing) and its tables and views.
    functions name[] := ARRAY['start_chat', 'real_user_send_message', 'operator_send_message',
                              'assign_chat_to_operator', 'release_and_reassign_chat',
                              'touch_operator_activity', 'release_idle_assignments', 'complete_chat',
                              'create_operator', 'set_operator_active', 'get_assignment_queue_status',
                              'detect_stuck_chats', 'read_chat_events', 'prune_chat_events',
                              'worker_status', 'create_team', 'set_team_routing', 'add_team_member',
                              'remove_team_member', 'set_operator_status', 'transfer_chat',
                              'set_chat_priority', 'get_queue_position', 'get_service_metrics'];
    relations name[] := ARRAY['operators', 'chats', 'messages', 'chat_assignments', 'operator_activity',
                              'chat_state_summary', 'operator_assignment_stats', 'teams',
                              'team_members', 'chat_transfers', 'team_queue_status'];
    obj      record;
    g        record;
    moved    oid[] := '{}';
    made     text[] := '{}';
    args     text;
    body     text;
BEGIN
    IF p_schema IS NULL THEN
        RAISE EXCEPTION 'p_schema must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF app_oid IS NULL THEN
        RAISE EXCEPTION 'schema "%" does not exist', p_schema USING ERRCODE = '3F000';
    END IF;
    IF app_oid = ext_oid THEN
        RAISE EXCEPTION 'schema "%" is the extension''s own', p_schema USING ERRCODE = '22023';
    END IF;
    ext := quote_ident((SELECT n.nspname FROM pg_namespace n WHERE n.oid = ext_oid));
    backup := left(p_schema, 44) || '_before_chat_assign';
    PERFORM 1 FROM @extschema@.app_imports i WHERE i.app_schema = p_schema FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'nothing was imported from schema "%": run import_app_tables(%L) first', p_schema, p_schema
            USING ERRCODE = '55000';
    END IF;
    IF (SELECT i.backup_schema FROM @extschema@.app_imports i WHERE i.app_schema = p_schema) IS NOT NULL THEN
        RAISE EXCEPTION 'the calls of schema "%" are already switched', p_schema
            USING ERRCODE = '55000', HINT = 'restore_app_calls() switches them back.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = backup) THEN
        RAISE EXCEPTION 'schema "%" already exists', backup USING ERRCODE = '42P06';
    END IF;

    EXECUTE format('CREATE SCHEMA %I', backup);
    -- The app's own objects move aside, as they are.
    FOR obj IN
        SELECT c.oid, c.relname, c.relkind FROM pg_class c
         WHERE c.relnamespace = app_oid AND c.relname = ANY (relations)
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         ORDER BY c.relkind DESC, c.relname
    LOOP
        EXECUTE format('ALTER %s %I.%I SET SCHEMA %I',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       p_schema, obj.relname, backup);
        moved := moved || obj.oid;
        object := format('%I.%I', p_schema, obj.relname);
        action := format('moved to %I', backup);
        RETURN NEXT;
    END LOOP;
    FOR obj IN
        SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.prokind
          FROM pg_proc p
         WHERE p.pronamespace = app_oid AND p.proname = ANY (functions)
         ORDER BY p.proname, 3
    LOOP
        EXECUTE format('ALTER %s %I.%I(%s) SET SCHEMA %I',
                       CASE obj.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                       p_schema, obj.proname, obj.args, backup);
        moved := moved || obj.oid;
        object := format('%I.%I(%s)', p_schema, obj.proname, obj.args);
        action := format('moved to %I', backup);
        RETURN NEXT;
    END LOOP;

    -- Read-only views over the extension's tables and views.
    FOR obj IN
        SELECT c.relname FROM pg_class c
         WHERE c.relnamespace = ext_oid AND c.relname = ANY (relations)
         ORDER BY array_position(relations, c.relname)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = app_oid AND c.relname = obj.relname) THEN
            object := format('%I.%I', p_schema, obj.relname);
            action := 'left alone: the schema has another relation of that name';
            RETURN NEXT;
            CONTINUE;
        END IF;
        EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT * FROM %s.%I',
                       p_schema, obj.relname, ext, obj.relname);
        -- The grants the app's relation of that name had (reading through the view also
        -- takes the extension's grants; writing is refused by the extension's tables).
        FOR g IN
            SELECT a.privilege_type, a.grantee, a.is_grantable
              FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
             WHERE c.oid = ANY (moved) AND c.relname = obj.relname AND a.grantee <> c.relowner
        LOOP
            EXECUTE format('GRANT %s ON %I.%I TO %s%s', g.privilege_type, p_schema, obj.relname,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                           CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        made := made || format('VIEW %I.%I', p_schema, obj.relname);
        object := format('%I.%I', p_schema, obj.relname);
        action := format('view over %s.%I', ext, obj.relname);
        RETURN NEXT;
    END LOOP;

    -- Thin functions over the extension's.
    FOR obj IN
        SELECT p.oid, p.proname, p.proretset, p.provolatile, p.proargnames, p.proargmodes,
               p.pronargs, pg_get_function_arguments(p.oid) AS arguments,
               pg_get_function_result(p.oid) AS result,
               pg_get_function_identity_arguments(p.oid) AS identity
          FROM pg_proc p
         WHERE p.pronamespace = ext_oid AND p.proname = ANY (functions)
         ORDER BY array_position(functions, p.proname)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = app_oid AND p.proname = obj.proname) THEN
            object := format('%I.%I', p_schema, obj.proname);
            action := 'left alone: the schema has another function of that name';
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- The input parameters, by name, in order (OUT and TABLE columns are not passed).
        SELECT coalesce(string_agg(quote_ident(a.name), ', ' ORDER BY a.n), '') INTO args
          FROM unnest(obj.proargnames, coalesce(obj.proargmodes, array_fill('i'::"char", ARRAY[obj.pronargs])))
               WITH ORDINALITY AS a(name, mode, n)
         WHERE a.mode IN ('i', 'b', 'v');
        body := CASE WHEN obj.proretset
                     THEN format('SELECT * FROM %s.%I(%s)', ext, obj.proname, args)
                     ELSE format('SELECT %s.%I(%s)', ext, obj.proname, args) END;
        EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql %s SECURITY INVOKER '
                       'SET search_path = pg_catalog, pg_temp AS %L',
                       p_schema, obj.proname, obj.arguments, obj.result,
                       CASE obj.provolatile WHEN 's' THEN 'STABLE' WHEN 'i' THEN 'IMMUTABLE' ELSE 'VOLATILE' END,
                       body);
        EXECUTE format('COMMENT ON FUNCTION %I.%I(%s) IS %L', p_schema, obj.proname, obj.identity,
                       format('Calls %s.%I (switch_app_calls)', ext, obj.proname));
        -- EXECUTE as the app's function(s) of that name had it (unless they kept the default:
        -- everyone, as a new function has it).
        IF EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = ANY (moved) AND p.proname = obj.proname
                      AND p.proacl IS NOT NULL) THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %I.%I(%s) FROM PUBLIC', p_schema, obj.proname, obj.identity);
            FOR g IN
                SELECT DISTINCT a.privilege_type, a.grantee, a.is_grantable
                  FROM pg_proc p CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                 WHERE p.oid = ANY (moved) AND p.proname = obj.proname AND a.grantee <> p.proowner
            LOOP
                EXECUTE format('GRANT %s ON FUNCTION %I.%I(%s) TO %s%s', g.privilege_type, p_schema,
                               obj.proname, obj.identity,
                               CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                               CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END IF;
        made := made || format('FUNCTION %I.%I(%s)', p_schema, obj.proname, obj.identity);
        object := format('%I.%I(%s)', p_schema, obj.proname, obj.identity);
        action := format('calls %s.%I', ext, obj.proname);
        RETURN NEXT;
    END LOOP;

    -- What of the app still uses the tables that moved: views and functions that read them,
    -- foreign keys that point at them.
    FOR obj IN
        SELECT DISTINCT pg_describe_object(d.classid, d.objid, 0) AS what
          FROM pg_depend d
          LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
          LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
         WHERE d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass)
           AND d.refobjid = ANY (moved)
           AND d.deptype = 'n'
           AND CASE WHEN d.classid = 'pg_rewrite'::regclass THEN NOT r.ev_class = ANY (moved)
                    WHEN d.classid = 'pg_constraint'::regclass THEN k.contype = 'f' AND NOT k.conrelid = ANY (moved)
                    WHEN d.classid = 'pg_proc'::regclass THEN NOT d.objid = ANY (moved)
                    ELSE false END
         ORDER BY 1
    LOOP
        object := obj.what;
        action := format('still reads the old table (now in %I)', backup);
        RETURN NEXT;
    END LOOP;

    UPDATE @extschema@.app_imports i SET backup_schema = backup, switched_at = now(), created = made
     WHERE i.app_schema = p_schema;
END
$$;

-- The rollback of switch_app_calls(p_schema): what it created goes, the app's objects come
-- back from `<p_schema>_before_chat_assign` as they were at the switch, and that schema is
-- dropped. What was written through the extension since stays in the extension's tables
-- (the app's tables do not get it).
CREATE FUNCTION restore_app_calls(p_schema name)
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    switched record;
    backup_oid oid;
    obj      record;
    dropped  text;
BEGIN
    IF p_schema IS NULL THEN
        RAISE EXCEPTION 'p_schema must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT i.backup_schema, i.created INTO switched
      FROM @extschema@.app_imports i WHERE i.app_schema = p_schema AND i.backup_schema IS NOT NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the calls of schema "%" are not switched', p_schema USING ERRCODE = '55000';
    END IF;
    backup_oid := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = switched.backup_schema);
    IF backup_oid IS NULL THEN
        RAISE EXCEPTION 'schema "%" with the app''s objects is gone', switched.backup_schema
            USING ERRCODE = '3F000';
    END IF;
    -- What the switch made, newest first.
    FOREACH dropped IN ARRAY (SELECT array_agg(c ORDER BY n DESC)
                                FROM unnest(switched.created) WITH ORDINALITY AS u(c, n)) LOOP
        EXECUTE 'DROP ' || dropped;
        object := substr(dropped, strpos(dropped, ' ') + 1);
        action := 'dropped';
        RETURN NEXT;
    END LOOP;
    FOR obj IN
        SELECT c.relname, c.relkind FROM pg_class c
         WHERE c.relnamespace = backup_oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         ORDER BY c.relkind DESC, c.relname
    LOOP
        EXECUTE format('ALTER %s %I.%I SET SCHEMA %I',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       switched.backup_schema, obj.relname, p_schema);
        object := format('%I.%I', p_schema, obj.relname);
        action := 'moved back';
        RETURN NEXT;
    END LOOP;
    FOR obj IN
        SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.prokind
          FROM pg_proc p WHERE p.pronamespace = backup_oid ORDER BY 1, 2
    LOOP
        EXECUTE format('ALTER %s %I.%I(%s) SET SCHEMA %I',
                       CASE obj.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                       switched.backup_schema, obj.proname, obj.args, p_schema);
        object := format('%I.%I(%s)', p_schema, obj.proname, obj.args);
        action := 'moved back';
        RETURN NEXT;
    END LOOP;
    EXECUTE format('DROP SCHEMA %I', switched.backup_schema);
    UPDATE @extschema@.app_imports i SET backup_schema = NULL, switched_at = NULL, created = NULL
     WHERE i.app_schema = p_schema;
END
$$;

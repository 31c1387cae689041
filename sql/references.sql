-- What the foreign keys of messages and chat_assignments (to chats and operators) and of
-- chats.last_operator_id (to operators) promised, kept without foreign keys.
--
-- A foreign key checks every referencing row written: a query per row that locks the row
-- it finds (FOR KEY SHARE). Every row the functions write references a row the call has
-- already locked or read under a lock that keeps it there: a message or assignment, the
-- chat the call holds FOR NO KEY UPDATE; an assignment's operator, the operator the claim
-- holds; a reply's operator, the chat's last operator (the chat is locked, and that
-- operator cannot be deleted while a committed row names it: below). Those checks were five
-- queries per cycle, about a tenth of its CPU (docs/performance.md). Only the functions and
-- the owner write these tables (sql/privileges.sql); `tests/invariants.sql` checks in every
-- test layer that no row references nothing.
--
-- What the foreign keys also did on the other side stays, by triggers that never fire for the
-- functions (they neither delete nor change ids): deleting or truncating chats deletes their
-- messages and assignments (ON DELETE CASCADE; statement triggers), and deleting or
-- truncating operators, or changing a chat's or an operator's id (row triggers on UPDATE OF
-- id), while committed rows name them is refused with 23503. Against the functions this is
-- race-free: a call holds the chat's lock, which a DELETE of the chat waits for (the cascade,
-- a new statement under READ COMMITTED, then sees the call's rows; under REPEATABLE READ the
-- DELETE fails to serialize against the call's update of the chat); an assignment is written
-- under the operator's lock; a reply's operator is the last operator of a committed chat row.
-- A chat's team (chats.team_id) is referenced the same way: deleting, truncating or
-- re-keying a team that chats name is refused with 23503. Memberships (team_members) go
-- with the team or the operator they name when it is deleted or truncated (re-keying one
-- that memberships name is refused); add_team_member holds the operator's and the team's
-- rows locked while it writes one, so a DELETE waits for it and then sees it. The functions write a team id only in a statement that finds the team
-- in its own snapshot (start_chat, transfer_chat); the trigger first locks chats in SHARE
-- mode, which waits for every transaction writing chats and makes any later one wait for the
-- DELETE: each such statement either committed before the check reads the chats, or takes
-- its snapshot after the DELETE committed and finds no team. Teams are deleted at an
-- admin's pace; the lock holds chat writes only for that moment.
--
-- What is no longer checked: a direct INSERT or UPDATE that names a missing chat or operator,
-- and a direct INSERT of a message racing a DELETE of its chat. Only the owner (and roles a
-- DBA gives write grants) can write these tables; tests/invariants.sql reports any such row.

CREATE FUNCTION chats_delete_cascade() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        -- DELETE, not TRUNCATE: the statement that fired this may be truncating these too,
        -- and a table cannot be truncated twice in one statement. (Naming them in the same
        -- TRUNCATE is the fast way: these DELETEs then find nothing.)
        DELETE FROM @extschema@.messages;
        DELETE FROM @extschema@.chat_assignments;
        DELETE FROM @extschema@.chat_transfers;
    ELSE
        DELETE FROM @extschema@.messages m USING gone g WHERE m.chat_id OPERATOR(pg_catalog.=) g.id;
        DELETE FROM @extschema@.chat_assignments a USING gone g WHERE a.chat_id OPERATOR(pg_catalog.=) g.id;
        DELETE FROM @extschema@.chat_transfers t USING gone g WHERE t.chat_id OPERATOR(pg_catalog.=) g.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chats_delete_cascade AFTER DELETE ON chats
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION chats_delete_cascade();
-- TRUNCATE chats empties them too (as TRUNCATE ... CASCADE did; TRUNCATE fires no DELETE
-- trigger).
CREATE TRIGGER chats_truncate_cascade AFTER TRUNCATE ON chats
    FOR EACH STATEMENT EXECUTE FUNCTION chats_delete_cascade();

-- A DELETE or TRUNCATE of operators, or an UPDATE of a chat's or an operator's id, that would
-- leave rows referencing nothing: refused with 23503, as the foreign key did. (The checks read the
-- committed rows with a snapshot of their own, taken after any lock the statement waited for.)
CREATE FUNCTION refuse_dangling_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids           uuid[];
    one_id        uuid;
    referenced_by text;
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        -- Every operator is gone: any name of one dangles.
        referenced_by := CASE
            WHEN EXISTS (SELECT FROM @extschema@.chats c WHERE c.last_operator_id IS NOT NULL) THEN 'chats'
            WHEN EXISTS (SELECT FROM @extschema@.messages m WHERE m.operator_id IS NOT NULL) THEN 'messages'
            WHEN EXISTS (SELECT FROM @extschema@.chat_assignments) THEN 'chat_assignments'
        END;
        IF referenced_by IS NOT NULL THEN
            RAISE EXCEPTION 'truncate on table "operators" would leave rows of "%" referencing operators',
                referenced_by
                USING ERRCODE = '23503',
                      HINT = 'Truncate chats first, in the same statement: TRUNCATE chats, operators.';
        END IF;
        DELETE FROM @extschema@.team_members;
        RETURN NULL;
    ELSIF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
        ids := ARRAY[OLD.id];
    ELSE
        SELECT pg_catalog.array_agg(g.id) INTO ids FROM gone g;
    END IF;
    FOREACH one_id IN ARRAY coalesce(ids, '{}') LOOP
        IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'operators' THEN
            referenced_by := CASE
                WHEN EXISTS (SELECT FROM @extschema@.chats c
                              WHERE c.last_operator_id OPERATOR(pg_catalog.=) one_id) THEN 'chats'
                WHEN EXISTS (SELECT FROM @extschema@.messages m
                              WHERE m.operator_id OPERATOR(pg_catalog.=) one_id) THEN 'messages'
                WHEN EXISTS (SELECT FROM @extschema@.chat_assignments a
                              WHERE a.operator_id OPERATOR(pg_catalog.=) one_id) THEN 'chat_assignments'
                WHEN TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
                     AND EXISTS (SELECT FROM @extschema@.team_members m
                                  WHERE m.operator_id OPERATOR(pg_catalog.=) one_id) THEN 'team_members'
            END;
            IF referenced_by IS NOT NULL THEN
                RAISE EXCEPTION '% on table "operators" would leave rows of "%" referencing id %',
                    pg_catalog.lower(TG_OP), referenced_by, one_id
                    USING ERRCODE = '23503',
                          HINT = 'Deactivate the operator instead (set_operator_active).';
            END IF;
        ELSE
            referenced_by := CASE
                WHEN EXISTS (SELECT FROM @extschema@.messages m
                              WHERE m.chat_id OPERATOR(pg_catalog.=) one_id) THEN 'messages'
                WHEN EXISTS (SELECT FROM @extschema@.chat_assignments a
                              WHERE a.chat_id OPERATOR(pg_catalog.=) one_id) THEN 'chat_assignments'
            END;
            IF referenced_by IS NOT NULL THEN
                RAISE EXCEPTION '% on table "%" would leave rows of "%" referencing id %',
                    pg_catalog.lower(TG_OP), TG_TABLE_NAME, referenced_by, one_id
                    USING ERRCODE = '23503';
            END IF;
        END IF;
    END LOOP;
    IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' AND TG_TABLE_NAME OPERATOR(pg_catalog.=) 'operators' THEN
        DELETE FROM @extschema@.team_members m
         WHERE m.operator_id OPERATOR(pg_catalog.=) ANY (ids);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER operators_delete_referenced AFTER DELETE ON operators
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_references();
CREATE TRIGGER operators_truncate_referenced AFTER TRUNCATE ON operators
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_references();
-- Row triggers (a column list cannot go with transition tables), AFTER: a BEFORE row
-- trigger would make every UPDATE fetch and lock the old row first. UPDATE OF id: the
-- functions never set id, so these never fire for them.
CREATE TRIGGER operators_update_referenced AFTER UPDATE OF id ON operators
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_dangling_references();
CREATE TRIGGER chats_update_referenced AFTER UPDATE OF id ON chats
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_dangling_references();

-- Teams that chats or memberships name (see the head of this file).
CREATE FUNCTION refuse_dangling_team_references() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids           uuid[];
    named         uuid;
    referenced_by text := 'chats';
BEGIN
    LOCK TABLE @extschema@.chats IN SHARE MODE;
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        SELECT c.team_id INTO named FROM @extschema@.chats c WHERE c.team_id IS NOT NULL LIMIT 1;
    ELSE
        IF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
            ids := ARRAY[OLD.id];
        ELSE
            SELECT pg_catalog.array_agg(g.id) INTO ids FROM gone g;
        END IF;
        SELECT c.team_id INTO named FROM @extschema@.chats c
         WHERE c.team_id OPERATOR(pg_catalog.=) ANY (ids) LIMIT 1;
        IF named IS NULL AND TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
            SELECT m.team_id INTO named FROM @extschema@.team_members m
             WHERE m.team_id OPERATOR(pg_catalog.=) ANY (ids) LIMIT 1;
            referenced_by := 'team_members';
        END IF;
    END IF;
    IF named IS NOT NULL THEN
        RAISE EXCEPTION '% on table "teams" would leave rows of "%" referencing id %',
            pg_catalog.lower(TG_OP), referenced_by, named
            USING ERRCODE = '23503',
                  HINT = 'Transfer the team''s chats to another team first (transfer_chat).';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        DELETE FROM @extschema@.team_members;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        DELETE FROM @extschema@.team_members m WHERE m.team_id OPERATOR(pg_catalog.=) ANY (ids);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER teams_delete_referenced AFTER DELETE ON teams
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_team_references();
CREATE TRIGGER teams_truncate_referenced AFTER TRUNCATE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_dangling_team_references();
CREATE TRIGGER teams_update_referenced AFTER UPDATE OF id ON teams
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_dangling_team_references();

-- operators.team_count: 0 only for an operator of no team. A claim reads it under the
-- operator's lock to run, for an operator of no team, a statement that names no team
-- table: a plan locks every relation it names, and a call that locks more than sixteen
-- leaves the backend's fast path for the shared lock table (src/store/queries.rs,
-- CLAIM_NEXT_CHAT_NO_TEAM). Every membership written (inserted, or moved to another
-- operator) raises its operator's count in the same transaction, so a claim never takes an
-- operator of a team for one of none; an update of the operator's row waits for a claim
-- that holds its lock, and a claim that waited reads the count this wrote. Only
-- remove_team_member lowers it, under the operator's lock. Memberships deleted with their
-- team, or by a direct DELETE or TRUNCATE, leave the count high (the operator then claims
-- through the statement that reads the team tables, as before): lowering it there would
-- lock operators while holding the lock on chats that a team's deletion takes, in the
-- opposite order of a claim, which locks its operator first. A restore that copies the
-- counts and then the memberships raises them again: high, never wrong.
CREATE FUNCTION team_members_count() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.operators o SET team_count = o.team_count OPERATOR(pg_catalog.+) g.n
    FROM (SELECT r.operator_id, pg_catalog.count(*) AS n FROM new_rows r GROUP BY r.operator_id) g
    WHERE o.id OPERATOR(pg_catalog.=) g.operator_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER team_members_count_insert AFTER INSERT ON team_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION team_members_count();
CREATE TRIGGER team_members_count_update AFTER UPDATE ON team_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION team_members_count();

-- operators.held_chat_ids: every chat the operator holds, and perhaps some it no longer
-- holds. A claim counts the operator's chats by looking these up by id instead of through
-- idx_chats_assigned_operator, whose dead entries (one per assignment until vacuum removes
-- them, and vacuum removes none while an old snapshot stays open) it would otherwise read
-- every time (src/store/queries.rs, open_count!). Whatever gives an operator a chat adds
-- the chat under the operator's lock: the functions in the same statement (a claim also
-- drops the ids it found released), and any other write (an app's direct UPDATE, a bulk
-- load, the import, a restore) through the triggers below. A release leaves the id: it
-- would have to lock the operator while holding the chat, the opposite order of a claim.
-- An app's direct write that gives a chat to an operator does take the operator's lock
-- after the chat's, so it waits for a call that holds that operator (a claim never waits
-- for a chat; a transfer of that very chat to that operator would, and PostgreSQL then
-- aborts one of the two, 40P01). A restore that copies the operators and then the chats
-- adds ids that are there already: the guard below skips them.
CREATE FUNCTION chats_note_holders() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Appends only (the newest row version, after any wait for the operator's lock): what
    -- this statement's snapshot says about the other ids must not drop one that a call
    -- which held the lock has just given.
    IF TG_OP = 'INSERT' THEN
        UPDATE @extschema@.operators o
           SET held_chat_ids = o.held_chat_ids OPERATOR(pg_catalog.||) g.ids
        FROM (SELECT n.assigned_operator_id AS operator_id, pg_catalog.array_agg(n.id) AS ids
              FROM new_rows n WHERE n.assigned_operator_id IS NOT NULL
              GROUP BY n.assigned_operator_id) g
        WHERE o.id OPERATOR(pg_catalog.=) g.operator_id
          AND NOT (g.ids OPERATOR(pg_catalog.<@) o.held_chat_ids);
    ELSE
        UPDATE @extschema@.operators o
           SET held_chat_ids = o.held_chat_ids OPERATOR(pg_catalog.||) g.ids
        FROM (SELECT n.assigned_operator_id AS operator_id, pg_catalog.array_agg(n.id) AS ids
              FROM new_rows n WHERE n.assigned_operator_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM old_rows r
                                WHERE r.id OPERATOR(pg_catalog.=) n.id
                                  AND r.assigned_operator_id OPERATOR(pg_catalog.=) n.assigned_operator_id)
              GROUP BY n.assigned_operator_id) g
        WHERE o.id OPERATOR(pg_catalog.=) g.operator_id
          AND NOT (g.ids OPERATOR(pg_catalog.<@) o.held_chat_ids);
    END IF;
    RETURN NULL;
END
$$;
-- The functions list their chats in the statement that gives them: the triggers do not
-- run for their writes (chat_assign.api_call is on for the length of every call, with
-- change events on or off).
CREATE TRIGGER chats_note_holders_insert AFTER INSERT ON chats
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_call', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_note_holders();
CREATE TRIGGER chats_note_holders_update AFTER UPDATE ON chats
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('chat_assign.api_call', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION chats_note_holders();

//! Every SQL statement the extension runs, and nothing else.
//!
//! The functions run as their owner (`SECURITY DEFINER`) under
//! `SET search_path = pg_catalog, pg_temp`, and every statement names the extension's own
//! objects as `@extschema@.name`; [`crate::store`] puts the schema in (quoted) when it
//! prepares the statement. So no name here is looked up in a schema anyone else can write
//! to: not in the caller's schemas (the search_path is fixed), not in `pg_temp` (never
//! searched for functions or operators, and our tables and type are qualified), and not in the
//! extension's own schema either. That last one matters: a role that may CREATE in that
//! schema (the database owner can, in `public`) could otherwise add an `=` for
//! `chat_state` or a `count(uuid)` that beats the built-in by a closer type match, and it
//! would run as the owner, a superuser. Inputs are always `$n` parameters.
//!
//! # Lock order (why no call sequence deadlocks)
//!
//! Every function takes row locks in this order and never the other way round:
//!
//! 1. `operators` row, `FOR NO KEY UPDATE` (assignment, (de)activation, presence,
//!    joining and leaving a team, a transfer to the operator): the mode its UPDATE takes
//!    anyway. A DELETE of the operator waits for it, so an assignment row written under it
//!    never names a deleted operator (sql/references.sql). Joining a team then locks the
//!    `teams` row `FOR KEY SHARE` (a DELETE of the team waits for it); nothing else locks teams.
//! 2. `chats` row(s), `FOR NO KEY UPDATE`. A function that waits locks one chat, except
//!    deactivation, going offline and leaving a team, which lock their operator's chats in id
//!    order; every chat lock that could be taken out of order (assignment, idle release)
//!    uses `SKIP LOCKED` and so does not wait (but see below for the one case where it does).
//! 3. `chat_assignments` rows of chats already locked in step 2 (the open one also holds
//!    the heartbeat).
//!
//! Automatic assignment takes an operator's lock after a chat's (a push from a call that
//! holds the chat, a pull for the operator a call freed): always with `SKIP LOCKED`, so it
//! never waits against the order above; what it passes by, the worker's pass assigns.
//!
//! `SKIP LOCKED` has one case in which it waits: the row version the statement sees was
//! being updated, that update commits just as the statement asks for the row, and someone
//! already holds the newer version; PostgreSQL then waits for that holder whatever the wait
//! policy (`heap_lock_updated_tuple`, "while locking updated version ... of tuple"). So every
//! part that takes locks against the order above runs in a subtransaction that this backend
//! checks for a deadlock first (`spi::in_subtransaction`): a push, a pull, the idle
//! release's scan and its `away` marking. Closing a cycle, such a part is undone and the
//! call goes on without it (the chat stays waiting; the worker's next pass gives it). The
//! calls that wait while holding several chats (deactivation, going offline, leaving a
//! team, step 2) give them back and start again after 50 ms, so a claim that waits that
//! way on one of them is not left in a cycle either (`operators::lock_operator_chats`).
//! The isolation spec `lock-waits-given-back` closes both kinds of cycle on purpose.
//!
//! Every chat lock is `FOR NO KEY UPDATE`, the mode an `UPDATE` of the row takes anyway, so a
//! transaction never upgrades a lock it holds (two sessions upgrading shared locks on one
//! row deadlock). The heartbeat takes the chat lock too before it touches the assignment row;
//! idle release locks chats and assignment rows with `SKIP LOCKED`, so a heartbeat in flight
//! makes idle release pass the chat by rather than release it under the operator's feet.
//!
//! An app's own write to `chats` (not a call) that gives a chat to an operator adds the chat
//! to the operator's `held_chat_ids` from a trigger (sql/references.sql), after the chat's
//! lock: against the order above. It waits only while a call holds that operator, and a
//! cycle closes only when that call then waits for a chat the write holds (a transfer of
//! that chat to that operator, say); PostgreSQL aborts one of the two (`40P01`).
//!
//! The promise covers each call in its own transaction, which is how apps and RPC layers
//! call them. A transaction that makes several calls holds the locks of the first while it
//! makes the next, like any SQL: replying in chat A then assigning, while an admin
//! deactivates the same operator, takes chat then operator and can deadlock; so can two
//! transactions that each reply in two chats in opposite orders. Postgres detects that and
//! aborts one (`40P01`); keep one call per transaction to avoid it.
//!
//! A chat's open assignment, if it has one, is its newest (`max(id)` through
//! `idx_chat_assignments_chat`): assignments of a chat are created one at a time under its
//! lock, each after the previous one was released. Statements find it that way, one index
//! probe, rather than by `released_at IS NULL`, which no index covers (so that releases stay
//! HOT updates) and which a generic plan made before any statistics turned into a scan of
//! the whole history.
//!
//! Statements that must see rows committed by the previous lock holder run *after* the
//! locking statement: under READ COMMITTED each SPI statement takes a fresh snapshot, so the
//! write that follows a lock wait sees everything the waited-for transaction committed.

use pgrx::pg_sys::{self, Oid};

/// A statement and the types of its parameters; prepared once per backend and kept.
pub struct Statement {
    pub sql: &'static str,
    pub args: &'static [Oid],
    /// Read-only statements run on the caller's snapshot (monitoring is `STABLE`); all
    /// others take a fresh snapshot per statement, which the lock-then-write pattern needs.
    pub read_only: bool,
}

const UUID: Oid = pg_sys::UUIDOID;
const TEXT: Oid = pg_sys::TEXTOID;
const INT4: Oid = pg_sys::INT4OID;
const BOOL: Oid = pg_sys::BOOLOID;
const FLOAT8: Oid = pg_sys::FLOAT8OID;
const INT8: Oid = pg_sys::INT8OID;
const UUID_ARRAY: Oid = pg_sys::UUIDARRAYOID;
const TID: Oid = pg_sys::TIDOID;
const TIMESTAMPTZ_ARRAY: Oid = pg_sys::TIMESTAMPTZARRAYOID;
const TIMESTAMPTZ: Oid = pg_sys::TIMESTAMPTZOID;
const INT4_ARRAY: Oid = pg_sys::INT4ARRAYOID;

/// The key under which the queue index files chats without a team (sql/schema.sql): every
/// queue, a team's or the one without a team, is `coalesce(team_id, <this>) = $k`.
macro_rules! no_team {
    () => {
        "'00000000-0000-0000-0000-000000000000'::uuid"
    };
}

/// Whether the operator `$op` (an SQL expression) is a member of a team whose chats are
/// pushed (routing not `manual`).
macro_rules! in_pushed_team {
    ($op:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM @extschema@.team_members m \
                     JOIN @extschema@.teams t ON t.id = m.team_id \
                     WHERE m.operator_id = ",
            $op,
            " AND t.routing <> 'manual')"
        )
    };
}

/// How many chats the operator `$op` (an SQL expression) holds, through
/// `idx_chats_assigned_operator`. Like every statement that looks for assigned chats, by
/// `assigned_operator_id` alone (the CHECK on chats makes it mean "assigned"): a
/// `chat_state = 'assigned'` term would let the planner take idx_chats_state_changed
/// instead (sql/schema.sql, at the index).
macro_rules! held_by {
    ($op:literal) => {
        concat!(
            "(SELECT count(*) FROM @extschema@.chats held \
              WHERE held.assigned_operator_id = ",
            $op,
            ")"
        )
    };
}

/// What a statement that gives operator `$op` (an SQL expression; its row is the one being
/// updated, locked since step 1) the chat `$1` writes as its `held_chat_ids`, before adding
/// `$1`: the ids there that are still its chats, each looked up by id (see `open_count!`).
macro_rules! still_held {
    ($op:literal) => {
        concat!(
            "ARRAY(SELECT DISTINCT u.id FROM unnest(held_chat_ids) AS u(id) \
                   WHERE u.id <> $1 \
                     AND (SELECT h.assigned_operator_id FROM @extschema@.chats h WHERE h.id = u.id) = ",
            $op,
            ")"
        )
    };
}

// ---------------------------------------------------------------- locks (steps 1 and 2)

/// Step 1. Serialises everything that decides what one operator may hold: assignment,
/// (de)activation, presence, memberships and transfers to it, so that two connections of
/// the same operator cannot both pass the capacity check, and no chat is given to an
/// operator who is going offline or leaving its team. Returns the row's `ctid` too, for the
/// claim's update of it, its presence, and whether it is a member of any team (which claim
/// statement to run: [`CLAIM_NEXT_CHAT_NO_TEAM`] for none), and the chats it may hold
/// (`held_chat_ids`: what the claim counts). `team_count` is 0 only for an
/// operator of no team: a membership's insert raises it in the same transaction (a trigger
/// that updates this row, so the locked row's count is current) and only leaving a team
/// through the API lowers it (sql/references.sql says why the other ways leave it high).
pub static LOCK_OPERATOR: Statement = Statement {
    sql: "SELECT is_active, max_concurrent_chats, ctid, status, team_count > 0, \
                 held_chat_ids \
          FROM @extschema@.operators WHERE id = $1 FOR NO KEY UPDATE",
    args: &[UUID],
    read_only: false,
};

/// Step 2 for one chat: its state, who holds or last held it, since when it is in its state
/// and its place in the queue (if active): what its change event needs.
pub static LOCK_CHAT: Statement = Statement {
    sql: "SELECT chat_state::text, assigned_operator_id, last_operator_id, state_changed_at, \
                 CASE WHEN is_active THEN waiting_since END, team_id \
          FROM @extschema@.chats WHERE id = $1 FOR NO KEY UPDATE",
    args: &[UUID],
    read_only: false,
};

/// Step 2 for one chat an operator acts on: locked only when it is this operator's ($2):
/// assigned to it, or waiting for the user's reply to its answer. A chat the operator may not
/// act on is neither returned nor locked (a failed call's locks would last until its
/// transaction ends); [`PEEK_CHAT_FOR_OPERATOR`] then tells why. Such a chat's operator
/// exists (it is the chat's last operator, which cannot be deleted while a chat names it).
pub static LOCK_CHAT_FOR_OPERATOR: Statement = Statement {
    sql: "SELECT c.chat_state::text, c.assigned_operator_id, c.last_operator_id, c.state_changed_at, \
                 CASE WHEN c.is_active THEN c.waiting_since END, c.team_id \
          FROM @extschema@.chats c \
          WHERE c.id = $1 \
            AND ((c.chat_state = 'assigned' AND c.assigned_operator_id = $2) \
                 OR (c.chat_state = 'waiting_real_user_reply' AND c.last_operator_id = $2)) \
          FOR NO KEY UPDATE OF c",
    args: &[UUID, UUID],
    read_only: false,
};

/// Why [`LOCK_CHAT_FOR_OPERATOR`] found nothing: the chat's state and who holds or last held
/// it, and whether the operator exists. No lock.
pub static PEEK_CHAT_FOR_OPERATOR: Statement = Statement {
    sql: "SELECT c.chat_state::text, c.assigned_operator_id, c.last_operator_id, \
                 EXISTS (SELECT 1 FROM @extschema@.operators WHERE id = $2) \
          FROM @extschema@.chats c WHERE c.id = $1",
    args: &[UUID, UUID],
    read_only: true,
};

/// Step 2 for deactivation, going offline and leaving a team: every chat the operator ($1)
/// holds (of team `$2`; NULL: of any team or none), in id order.
pub static LOCK_OPERATOR_CHATS: Statement = Statement {
    sql: "SELECT id, state_changed_at, CASE WHEN is_active THEN waiting_since END, team_id \
          FROM @extschema@.chats WHERE assigned_operator_id = $1 \
            AND (team_id = $2 OR $2 IS NULL) \
          ORDER BY id FOR NO KEY UPDATE",
    args: &[UUID, UUID],
    read_only: false,
};

// ---------------------------------------------------------------- chats and messages

/// A new chat and its first message, in one statement: of team `$4` (NULL: none; a team that
/// does not exist: nothing is written) with priority `$5`. The team is looked for in this
/// statement, whose snapshot is taken after its lock on `chats`: a DELETE of the team either
/// waited for this call to end, or has committed before this snapshot (sql/references.sql).
pub static START_CHAT: Statement = Statement {
    sql: "WITH chat AS ( \
              INSERT INTO @extschema@.chats (real_user_id, chat_state, waiting_since, state_changed_at, \
                                             last_message_at, idempotency_key, team_id, priority) \
              SELECT $1, 'waiting_assignment', now(), now(), now(), $3, $4, $5 \
              WHERE $4 IS NULL OR EXISTS (SELECT 1 FROM @extschema@.teams t WHERE t.id = $4) \
              ON CONFLICT (real_user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
              RETURNING id) \
          INSERT INTO @extschema@.messages (chat_id, sender_type, content) \
          SELECT id, 'real_user', $2 FROM chat \
          RETURNING chat_id",
    args: &[UUID, TEXT, TEXT, UUID, INT4],
    read_only: false,
};

/// The chat a `start_chat` with this user ($1) and idempotency key ($2) started.
pub static FIND_STARTED_CHAT: Statement = Statement {
    sql: "SELECT id FROM @extschema@.chats WHERE real_user_id = $1 AND idempotency_key = $2",
    args: &[UUID, TEXT],
    read_only: true,
};

/// The message a call with this idempotency key ($2) stored in chat $1 for this sender
/// (`$3`: 'real_user' or 'operator', `$4` the operator).
pub static FIND_KEYED_MESSAGE: Statement = Statement {
    sql: "SELECT id FROM @extschema@.messages \
          WHERE chat_id = $1 AND idempotency_key = $2 AND sender_type = $3 \
            AND operator_id IS NOT DISTINCT FROM $4",
    args: &[UUID, TEXT, TEXT, UUID],
    read_only: true,
};

/// A user message on a locked chat ($1). From `assigned` or `waiting_real_user_reply` the
/// chat goes back to the queue with `waiting_since = now()`; a chat already waiting keeps
/// its place; a completed chat reopens. An open assignment is released (`real_user_message`).
///
/// `$4` is the state the lock read when the chat changes state (NULL: it was waiting and
/// stays so); only an `assigned` chat has an open assignment to release (a one-time filter:
/// the others do not look for one). The change event (when `$8`; see [`INSERT_EVENTS`]) names
/// the holder `$5`, since when the chat was in its state `$6` and its team `$7`. Returns the
/// message and the chat's priority (its place in the queue, for src/store/heads.rs).
pub static REAL_USER_MESSAGE: Statement = Statement {
    sql: "WITH msg AS ( \
              INSERT INTO @extschema@.messages (chat_id, sender_type, content, idempotency_key) \
              VALUES ($1, 'real_user', $2, $3) RETURNING id), \
          released AS ( \
              UPDATE @extschema@.chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = 'real_user_message' \
              WHERE $4 = 'assigned' \
                AND id = (SELECT max(id) FROM @extschema@.chat_assignments WHERE chat_id = $1) AND released_at IS NULL RETURNING id), \
          chat AS ( \
              UPDATE @extschema@.chats SET \
                  chat_state = 'waiting_assignment', \
                  assigned_operator_id = NULL, \
                  is_active = true, \
                  waiting_since = CASE WHEN chat_state = 'waiting_assignment' \
                                       THEN waiting_since ELSE now() END, \
                  state_changed_at = CASE WHEN chat_state = 'waiting_assignment' \
                                          THEN state_changed_at ELSE now() END, \
                  last_message_at = now() \
              WHERE id = $1 RETURNING id, priority), \
          event AS ( \
              INSERT INTO @extschema@.chat_events \
                  (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since) \
              SELECT chat.id, $4::@extschema@.chat_state, 'waiting_assignment', $5, $7, \
                     'real_user_message', now(), $6, now() \
              FROM chat WHERE $8 AND $4 IS NOT NULL) \
          SELECT id, (SELECT priority FROM chat) FROM msg",
    args: &[UUID, TEXT, TEXT, TEXT, UUID, TIMESTAMPTZ, UUID, BOOL],
    read_only: false,
};

/// The assigned operator ($2) answers a locked chat ($1): the chat waits for the user, the
/// assignment is released (`operator_replied`) and the operator is free for the next chat.
/// The change event (when `$7`; see [`INSERT_EVENTS`]) names since when the chat was
/// assigned `$5` and its team `$6`.
pub static OPERATOR_REPLY: Statement = Statement {
    sql: "WITH msg AS ( \
              INSERT INTO @extschema@.messages (chat_id, sender_type, operator_id, content, idempotency_key) \
              VALUES ($1, 'operator', $2, $3, $4) RETURNING id), \
          released AS ( \
              UPDATE @extschema@.chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = 'operator_replied' \
              WHERE id = (SELECT max(id) FROM @extschema@.chat_assignments WHERE chat_id = $1) AND released_at IS NULL RETURNING id), \
          chat AS ( \
              UPDATE @extschema@.chats SET \
                  chat_state = 'waiting_real_user_reply', \
                  assigned_operator_id = NULL, \
                  last_operator_id = $2, \
                  operator_replied_at = now(), \
                  first_response_at = least(first_response_at, now()), \
                  state_changed_at = now(), \
                  last_message_at = now() \
              WHERE id = $1 RETURNING id), \
          event AS ( \
              INSERT INTO @extschema@.chat_events \
                  (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since) \
              SELECT chat.id, 'assigned', 'waiting_real_user_reply', $2, $6, 'operator_replied', \
                     now(), $5, NULL \
              FROM chat WHERE $7) \
          SELECT id FROM msg",
    args: &[UUID, UUID, TEXT, TEXT, TIMESTAMPTZ, UUID, BOOL],
    read_only: false,
};

/// A follow-up by the operator who answered a chat that still waits for the user: stored,
/// no state change. `first_response_at` keeps the earliest operator message's time: this
/// transaction may have started (its `now()`) before the reply it waited behind.
pub static OPERATOR_FOLLOW_UP: Statement = Statement {
    sql: "WITH msg AS ( \
              INSERT INTO @extschema@.messages (chat_id, sender_type, operator_id, content, idempotency_key) \
              VALUES ($1, 'operator', $2, $3, $4) RETURNING id), \
          chat AS ( \
              UPDATE @extschema@.chats SET operator_replied_at = now(), last_message_at = now(), \
                                 first_response_at = least(first_response_at, now()) \
              WHERE id = $1 RETURNING id) \
          SELECT id FROM msg",
    args: &[UUID, UUID, TEXT, TEXT],
    read_only: false,
};

/// Ends a locked chat ($1): completed, inactive, any open assignment released (`completed`).
pub static COMPLETE_CHAT: Statement = Statement {
    sql: "WITH released AS ( \
              UPDATE @extschema@.chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = 'completed' \
              WHERE id = (SELECT max(id) FROM @extschema@.chat_assignments WHERE chat_id = $1) AND released_at IS NULL RETURNING id) \
          UPDATE @extschema@.chats SET chat_state = 'completed', is_active = false, \
                           assigned_operator_id = NULL, state_changed_at = now() \
          WHERE id = $1",
    args: &[UUID],
    read_only: false,
};

// ---------------------------------------------------------------- assignment

/// Whether some waiting chat of queue `$key` (an SQL expression) was last held by someone
/// other than the caller `$1` (or by no one), in two index probes of
/// `idx_chats_last_operator` (the ends of the queue's range of last operators; `$a` names
/// the alias): when both ends are the caller's, every waiting chat of the queue is, and the
/// avoid-same-operator search skips the queue instead of walking it to find nothing
/// (written as ORDER BY ... LIMIT 1 so that the plan reads the index ends; as EXISTS it was
/// planned as a scan of `chats`).
macro_rules! someone_elses_waiting {
    ($a:literal, $key:expr) => {
        concat!(
            "(",
            last_operator_end!(
                $a,
                $key,
                "IS NULL OR ",
                $a,
                ".last_operator_id <> $1",
                "DESC NULLS FIRST"
            ),
            " OR ",
            last_operator_end!($a, $key, "<> $1", "", "", "ASC NULLS LAST"),
            ")"
        )
    };
}

/// One end of queue `$key`'s range of last operators in `idx_chats_last_operator`, tested
/// with `last_operator_id $test...` (false when the queue is empty): see
/// [`someone_elses_waiting!`].
macro_rules! last_operator_end {
    ($a:literal, $key:expr, $test:literal, $a2:literal, $test2:literal, $order:literal) => {
        concat!(
            "coalesce((SELECT ",
            $a,
            ".last_operator_id ",
            $test,
            $a2,
            $test2,
            " \
                       FROM @extschema@.chats ",
            $a,
            " \
                       WHERE coalesce(",
            $a,
            ".team_id, ",
            no_team!(),
            ") = ",
            $key,
            " \
                         AND ",
            $a,
            ".chat_state = 'waiting_assignment' AND ",
            $a,
            ".is_active \
                       ORDER BY ",
            $a,
            ".last_operator_id ",
            $order,
            " LIMIT 1), false)"
        )
    };
}

/// How a claim begins: `held`, the chats the operator (`$1`) holds, and `open_count`, how
/// many. Looked up by id from the operator's `held_chat_ids` (every chat it holds and
/// perhaps some it no longer does: sql/references.sql), which the lock of step 1 returned
/// and the caller passes as `$list`, each through the primary key, rather than counted
/// through `idx_chats_assigned_operator`: that index keeps an entry for every version of
/// every chat the operator was ever given until vacuum can remove it, and while an old
/// snapshot stays open (a long report, a REPEATABLE READ transaction) that is one more
/// entry per assignment, every one of them read by every claim. A chat's own versions are
/// few. The list is the locked row's (a lock that waited returns the newest version), and
/// every assignment to the operator takes that lock, so it misses no chat given to it; the
/// claim writes back what is still held, plus the chat it takes, and returns the new list
/// (`claim_take!`). An id listed twice counts once (`DISTINCT` in the count: a `DISTINCT`
/// of the rows would sort them in the claim's path).
macro_rules! open_count {
    ($list:literal) => {
        concat!(
            "held AS ( \
                  SELECT u.id FROM unnest(",
            $list,
            "::uuid[]) AS u(id) \
                  WHERE (SELECT h.assigned_operator_id FROM @extschema@.chats h WHERE h.id = u.id) = $1), \
              open_count AS (SELECT count(DISTINCT id) AS n FROM held)"
        )
    };
}

/// One range of a claim's queue (`$key`, an SQL expression): its first chat in queue order
/// that meets `$range`, is not in `$except` and no one else holds, locked (a scalar
/// subquery: its row, or NULL). A claim tries the ranges of the queue's head in turn and
/// the whole queue last (src/store/heads.rs). The row is the version the lock got (the
/// newest, when a call changed it since the statement's snapshot), which is why the claim
/// reads its columns from it rather than looking the id up again.
macro_rules! claim_from {
    ($key:expr, $except:literal, $range:expr) => {
        concat!(
            "(SELECT w FROM @extschema@.chats w \
              WHERE coalesce(w.team_id, ",
            no_team!(),
            ") = ",
            $key,
            " \
                AND w.chat_state = 'waiting_assignment' AND w.is_active \
                AND NOT (w.id = ANY (",
            $except,
            ")) AND ",
            $range,
            " \
              ORDER BY w.priority DESC, w.waiting_since, w.id \
              LIMIT 1 FOR NO KEY UPDATE OF w SKIP LOCKED)"
        )
    };
}

/// The first free chat of a queue (`$key`) from its head (`$hp`, `$hw`: priority and
/// `waiting_since`, NULL when the worker keeps none), as one row or NULL: the head's
/// priority from its `waiting_since` on, else the lower priorities, else the whole queue
/// (src/store/heads.rs), each through [`claim_from!`] with `$except` and the extra
/// condition `$also` (SQL ending in `AND `, or empty).
macro_rules! claim_first {
    ($key:expr, $except:literal, $also:literal, $hp:literal, $hw:literal) => {
        concat!(
            "coalesce(",
            claim_from!(
                $key,
                $except,
                concat!($also, "w.priority = ", $hp, " AND w.waiting_since >= ", $hw)
            ),
            ", ",
            claim_from!($key, $except, concat!($also, "w.priority < ", $hp)),
            ", ",
            claim_from!($key, $except, concat!($also, "true")),
            ")"
        )
    };
}

/// What both claim statements do with the chat they chose (`next`: the first free chat
/// someone else last held, `other`, else the best head, `head`): assign it, open its
/// assignment (which starts the heartbeat), stamp the operator (`last_assigned_at`, and
/// `held_chat_ids`: the chats of `held` and this one), and write the change
/// event when `$9` (reason `$8`; see [`INSERT_EVENTS`]). Returns the chats the operator
/// held before, the chat it got, and where the operator's row is now and its new list (its
/// update moved it: a later claim in the same transaction must pass these). A chat taken
/// without that update (`$4` not the row's `ctid`) is an error of the caller's
/// (`store::chats::claim_with`).
macro_rules! claim_take {
    () => {
        "next AS ( \
              SELECT id, state_changed_at, waiting_since, team_id FROM other \
              UNION ALL \
              SELECT id, state_changed_at, waiting_since, team_id FROM head \
              LIMIT 1), \
          chat AS ( \
              UPDATE @extschema@.chats c SET chat_state = 'assigned', assigned_operator_id = $1, \
                                 last_operator_id = $1, assigned_at = now(), \
                                 state_changed_at = now(), \
                                 first_assigned_at = least(c.first_assigned_at, now()) \
              FROM next WHERE c.id = next.id RETURNING c.id), \
          assignment AS ( \
              INSERT INTO @extschema@.chat_assignments (chat_id, operator_id, assigned_at, last_activity_at) \
              SELECT id, $1, now(), now() FROM chat RETURNING id), \
          operator AS ( \
              UPDATE @extschema@.operators \
                 SET last_assigned_at = now(), \
                     held_chat_ids = ARRAY(SELECT DISTINCT id FROM held) || (SELECT id FROM chat) \
              WHERE ctid = $4 AND id = $1 AND EXISTS (SELECT 1 FROM chat) \
              RETURNING ctid, held_chat_ids), \
          event AS ( \
              INSERT INTO @extschema@.chat_events \
                  (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since) \
              SELECT next.id, 'waiting_assignment', 'assigned', $1, next.team_id, $8, now(), \
                     next.state_changed_at, next.waiting_since \
              FROM chat JOIN next ON next.id = chat.id WHERE $9) \
          SELECT (SELECT n FROM open_count), (SELECT id FROM chat), (SELECT ctid FROM operator), \
                 (SELECT held_chat_ids FROM operator)"
    };
}

/// Claims the next chat for an operator whose row is already locked (step 1).
///
/// `$1` operator, `$2` its capacity, `$3` avoid_same_operator, `$4` where the operator's row
/// is (its `ctid` under the lock of step 1: a TID scan, where a generic plan would read the
/// whole small `operators` table for `id = $1`), `$5` only from queues whose chats are
/// pushed (an automatic assignment: teams whose routing is not `manual`, and the queue
/// without a team when `$6`, `chat_assign.default_routing` is not `manual`). Returns one row: the chats
/// the operator held before this call, the chat it got (NULL when at capacity or when
/// nothing is free), and the operator row's new `ctid` and `held_chat_ids` (NULL when it
/// took nothing). `$13`: the operator's `held_chat_ids` as its lock returned them.
///
/// The operator may take from the queue of chats without a team and from the queue of each
/// of its teams (`queues`; read in this statement, after the operator's lock, which every
/// change of its memberships takes too). Each queue is read through
/// `idx_chats_waiting_assignment` in its own order, so the scan stops at the first row no
/// one else holds (`SKIP LOCKED`): no sort of the queue, no cost that grows with it. The best
/// of those heads (at most one per queue) is the answer unless the caller was its last
/// operator and avoid_same_operator is on; only then are the queues searched for the first
/// free chat someone else last held (`other`). Whether any waiting chat of a queue is someone
/// else's at all is asked first, from both ends of that queue in `idx_chats_last_operator`
/// (a chat nobody held sorts first from the top): when both ends are the caller's, every
/// waiting chat of that queue is, and the search skips it instead of walking the whole queue
/// to find nothing (written as ORDER BY ... LIMIT 1 so that the plan reads the index ends;
/// as EXISTS it was planned as a scan of `chats`). The heads stay locked while the call runs
/// even when another chat wins, so a concurrent call passes them by for that long.
///
/// Chats in `$7` are passed over: the pull of a call that has just taken those chats from
/// this operator (an admin's release, a transfer) must not hand them straight back.
///
/// The assignment row starts the heartbeat (`last_activity_at`). When `$9`, the statement
/// writes the chat's change event itself, with reason `$8` (see [`INSERT_EVENTS`] for the
/// columns): one statement less per call (see `store::event_in_statement`).
pub static CLAIM_NEXT_CHAT: Statement = Statement {
    sql: concat!(
        "WITH ", open_count!("$13"), ", \
          keys AS ( \
              SELECT ", no_team!(), " AS k WHERE (SELECT n FROM open_count) < $2 AND (NOT $5 OR $6) \
              UNION ALL \
              SELECT m.team_id FROM @extschema@.team_members m \
              WHERE m.operator_id = $1 AND (SELECT n FROM open_count) < $2 \
                AND (NOT $5 OR EXISTS (SELECT 1 FROM @extschema@.teams t \
                                       WHERE t.id = m.team_id AND t.routing <> 'manual'))), \
          queues AS ( \
              SELECT keys.k, h.p AS hp, h.w AS hw FROM keys LEFT JOIN \
                  unnest($10::uuid[], $11::int4[], $12::timestamptz[]) AS h(k, p, w) ON h.k = keys.k), \
          heads AS ( \
              SELECT (pick.r).id, (pick.r).priority, (pick.r).waiting_since, \
                     (pick.r).last_operator_id, (pick.r).state_changed_at, (pick.r).team_id \
              FROM queues q CROSS JOIN LATERAL ( \
                  SELECT ", claim_first!("q.k", "$7", "", "q.hp", "q.hw"), " AS r OFFSET 0) AS pick \
              WHERE (pick.r).id IS NOT NULL), \
          head AS ( \
              SELECT * FROM heads ORDER BY priority DESC, waiting_since, id LIMIT 1), \
          others AS ( \
              SELECT q.k, q.hp, q.hw FROM queues q \
              WHERE $3 AND (SELECT last_operator_id FROM head) = $1 \
                AND ", someone_elses_waiting!("c", "q.k"), "), \
          other AS ( \
              SELECT (pick.r).id, (pick.r).priority, (pick.r).waiting_since, \
                     (pick.r).state_changed_at, (pick.r).team_id \
              FROM others q CROSS JOIN LATERAL ( \
                  SELECT ", claim_first!("q.k", "'{}'::uuid[]", "w.last_operator_id IS DISTINCT FROM $1 AND ", "q.hp", "q.hw"), " AS r OFFSET 0) AS pick \
              WHERE (pick.r).id IS NOT NULL \
              ORDER BY (pick.r).priority DESC, (pick.r).waiting_since, (pick.r).id LIMIT 1), ",
        claim_take!()
    ),
    args: &[
        UUID,
        INT4,
        BOOL,
        TID,
        BOOL,
        BOOL,
        UUID_ARRAY,
        TEXT,
        BOOL,
        UUID_ARRAY,
        INT4_ARRAY,
        TIMESTAMPTZ_ARRAY,
        UUID_ARRAY,
    ],
    read_only: false,
};

/// How both claims of an operator of no team begin: the chats the operator holds
/// (`open_count`) and `head`, the chat `$pick` (an SQL expression: a locked `chats` row or
/// NULL) when the operator has room and may take from the queue; the statement goes on
/// with more conditions on `head` or its closing parenthesis.
macro_rules! no_team_head {
    ($pick:expr) => {
        concat!(
            "WITH ",
            open_count!("$12"),
            ", \
              head AS ( \
                  SELECT (h.r).id, (h.r).last_operator_id, (h.r).state_changed_at, \
                         (h.r).waiting_since, (h.r).team_id \
                  FROM (SELECT ",
            $pick,
            " AS r \
                        WHERE (SELECT n FROM open_count) < $2 AND (NOT $5 OR $6) OFFSET 0) AS h \
                  WHERE (h.r).id IS NOT NULL"
        )
    };
}

/// The parameters of both claims of an operator of no team: [`CLAIM_NEXT_CHAT`]'s first
/// nine, then the head of the queue without a team (priority, `waiting_since`) and the
/// operator's `held_chat_ids`.
const CLAIM_NO_TEAM_ARGS: &[Oid] = &[
    UUID,
    INT4,
    BOOL,
    TID,
    BOOL,
    BOOL,
    UUID_ARRAY,
    TEXT,
    BOOL,
    INT4,
    TIMESTAMPTZ,
    UUID_ARRAY,
];

/// [`CLAIM_NEXT_CHAT`] for an operator who is a member of no team: the same parameters,
/// result and choice, read from the one queue of chats without a team. A statement of its
/// own so that its plan names neither `team_members` nor `teams`: a plan locks every table
/// and index it names when it starts, and past sixteen relations a transaction's locks leave
/// the backend's fast path for the shared lock table, where sixteen callers queue on its
/// partition locks; this claim and the rest of its call stay under sixteen.
pub static CLAIM_NEXT_CHAT_NO_TEAM: Statement = Statement {
    sql: concat!(
        no_team_head!(claim_first!(no_team!(), "$7", "", "$10", "$11")),
        "), \
          other AS ( \
              SELECT (o.r).id, (o.r).state_changed_at, (o.r).waiting_since, (o.r).team_id \
              FROM (SELECT ",
        claim_first!(
            no_team!(),
            "'{}'::uuid[]",
            "w.last_operator_id IS DISTINCT FROM $1 AND ",
            "$10",
            "$11"
        ),
        " AS r \
                    WHERE $3 AND (SELECT last_operator_id FROM head) = $1 AND ",
        someone_elses_waiting!("o", no_team!()),
        " \
                    OFFSET 0) AS o \
              WHERE (o.r).id IS NOT NULL), ",
        claim_take!()
    ),
    args: CLAIM_NO_TEAM_ARGS,
    read_only: false,
};

/// [`CLAIM_NEXT_CHAT_NO_TEAM`]'s common case, tried first when the worker keeps the head
/// of the queue without a team (`$10`, `$11`): the first free chat of the head's priority
/// from its `waiting_since` on, taken unless avoid_same_operator (`$3`) is on, the caller
/// was its last operator and some waiting chat is someone else's (the full claim's two
/// probes: an operator alone on duty is not sent to the full claim each time). The same
/// parameters, the same result row, the same choice when it takes a chat; when it takes
/// none (nothing free in that range, or the caller's own chat at the head while another's
/// waits: the other ranges and the search for someone else's chat decide) the caller runs
/// [`CLAIM_NEXT_CHAT_NO_TEAM`], which finds the same chats first. Why a second statement:
/// PostgreSQL sets up every part of a plan when the statement starts, used or not, and the
/// full claim's six queue ranges (each a scan, a lock and a limit) and two probes made that
/// set-up a quarter of an assignment's CPU; this one has one range and the probes.
pub static CLAIM_HEAD_NO_TEAM: Statement = Statement {
    sql: concat!(
        no_team_head!(claim_from!(
            no_team!(),
            "$7",
            "w.priority = $10 AND w.waiting_since >= $11"
        )),
        " \
                AND (NOT $3 OR (h.r).last_operator_id IS DISTINCT FROM $1 \
                     OR NOT ",
        someone_elses_waiting!("o", no_team!()),
        ")), \
          other AS ( \
              SELECT NULL::uuid AS id, NULL::timestamptz AS state_changed_at, \
                     NULL::timestamptz AS waiting_since, NULL::uuid AS team_id WHERE false), ",
        claim_take!()
    ),
    args: CLAIM_NO_TEAM_ARGS,
    read_only: false,
};

/// The worker's read of a queue's head (src/store/heads.rs): the priority and
/// `waiting_since` of queue `$1`'s first waiting chat at or after position (`$2`, `$3`): the
/// rest of priority `$2` from `$3` on, then the lower priorities. No lock: a chat that a
/// claim in progress holds is still waiting to this snapshot, and must stay behind the head.
/// Not read-only, so that SPI takes a new snapshot for it (the protocol needs one taken
/// after the head's new generation).
pub static HEAD_FROM: Statement = Statement {
    sql: concat!(
        "SELECT p, w FROM ( \
              (SELECT c.priority AS p, c.waiting_since AS w FROM @extschema@.chats c \
               WHERE coalesce(c.team_id, ",
        no_team!(),
        ") = $1 \
                 AND c.chat_state = 'waiting_assignment' AND c.is_active \
                 AND c.priority = $2 AND c.waiting_since >= $3 \
               ORDER BY c.priority DESC, c.waiting_since, c.id LIMIT 1) \
              UNION ALL \
              (SELECT c.priority, c.waiting_since FROM @extschema@.chats c \
               WHERE coalesce(c.team_id, ",
        no_team!(),
        ") = $1 \
                 AND c.chat_state = 'waiting_assignment' AND c.is_active \
                 AND c.priority < $2 \
               ORDER BY c.priority DESC, c.waiting_since, c.id LIMIT 1)) AS first \
          LIMIT 1"
    ),
    args: &[UUID, INT4, TIMESTAMPTZ],
    read_only: false,
};

/// The queues the worker keeps heads for: the one without a team and each team's (as many
/// as there are slots).
pub static QUEUE_KEYS: Statement = Statement {
    sql: concat!(
        "SELECT ",
        no_team!(),
        " UNION ALL (SELECT id FROM @extschema@.teams ORDER BY id LIMIT 255)"
    ),
    args: &[],
    read_only: true,
};

/// Releases the assignments of chats already locked (step 2) that are still `assigned`:
/// back to the queue keeping `waiting_since`, assignment closed with reason `$2` (which
/// ends its heartbeat; an idle release, `idle_timeout`, counts in the chat's
/// `idle_releases` for the service metrics). Returns the chats released and the operator each was taken from
/// (`last_operator_id`, which equals the holder while assigned, by constraint: no join of
/// the two updates, which a generic plan with an array of unknown length made a nested
/// loop, quadratic in the chats released). Shared by the admin release, idle detection and
/// operator deactivation. The state is compared as text so that no index can serve that
/// term: the chats are found by primary key, never by walking every assigned chat (with
/// `chat_state = 'assigned'` the generic plan took idx_chats_state_changed whenever
/// ANALYZE had seen few assigned chats).
pub static RELEASE_TO_QUEUE: Statement = Statement {
    sql: "WITH chat AS ( \
              UPDATE @extschema@.chats SET chat_state = 'waiting_assignment', assigned_operator_id = NULL, \
                               waiting_since = coalesce(waiting_since, now()), \
                               state_changed_at = now(), \
                               idle_releases = idle_releases + ($2 = 'idle_timeout')::int \
              WHERE id = ANY ($1) AND chat_state::text = 'assigned' RETURNING id, last_operator_id), \
          released AS ( \
              UPDATE @extschema@.chat_assignments a \
              SET released_at = greatest(now(), a.assigned_at), release_reason = $2 \
              FROM chat CROSS JOIN LATERAL ( \
                  SELECT max(l.id) AS id FROM @extschema@.chat_assignments l WHERE l.chat_id = chat.id) newest \
              WHERE a.id = newest.id AND a.released_at IS NULL \
              RETURNING a.id) \
          SELECT id, last_operator_id FROM chat ORDER BY id",
    args: &[UUID_ARRAY, TEXT],
    read_only: false,
};

/// Idle detection, step 2 with `SKIP LOCKED` only: assigned chats whose heartbeat is older
/// than `$1` seconds. Locking the assignment row too means a heartbeat that commits after
/// this statement's snapshot is re-checked (and the chat passed by), and one in flight
/// makes us skip the chat instead of waiting. Assigned chats are few (at most the
/// operators' capacity), found through `idx_chats_assigned_operator`; each one's newest
/// assignment by one probe of `idx_chat_assignments_chat`. The holder is compared with that
/// probe's row, not joined to `a`: as a join clause between the chats and the assignments
/// it let the planner merge-join them by operator and probe every pair (operators times
/// their chats squared; pg_test `idle_scan_probes_each_chat_once`).
pub static LOCK_IDLE_CHATS: Statement = Statement {
    sql: "SELECT c.id, a.operator_id, \
                 extract(epoch FROM now() - a.last_activity_at)::float8, \
                 c.state_changed_at, CASE WHEN c.is_active THEN c.waiting_since END, c.team_id \
          FROM @extschema@.chats c \
          CROSS JOIN LATERAL ( \
              SELECT l.id, l.operator_id FROM @extschema@.chat_assignments l \
              WHERE l.chat_id = c.id ORDER BY l.id DESC LIMIT 1) newest \
          JOIN @extschema@.chat_assignments a ON a.id = newest.id \
          WHERE c.assigned_operator_id IS NOT NULL AND newest.operator_id = c.assigned_operator_id \
            AND a.released_at IS NULL \
            AND a.last_activity_at < now() - make_interval(secs => $1) \
          ORDER BY a.last_activity_at \
          FOR NO KEY UPDATE OF c SKIP LOCKED \
          FOR NO KEY UPDATE OF a SKIP LOCKED",
    args: &[FLOAT8],
    read_only: false,
};

/// Heartbeat on a locked chat: true when this operator holds its open assignment. Never
/// older than the assignment: a heartbeat that waited for the chat's lock while the chat was
/// given (back) to this operator carries its own transaction's earlier `now()`.
pub static TOUCH_ACTIVITY: Statement = Statement {
    sql: "UPDATE @extschema@.chat_assignments SET last_activity_at = greatest(now(), assigned_at) \
          WHERE id = (SELECT max(id) FROM @extschema@.chat_assignments WHERE chat_id = $2) \
            AND operator_id = $1 AND released_at IS NULL RETURNING chat_id",
    args: &[UUID, UUID],
    read_only: false,
};

// ---------------------------------------------------------------- change events

/// One `chat_events` row per chat in `$1`, in that order, with the operator each change
/// concerns in `$2` (NULL: none), the old state `$3` (NULL for a new chat), the new state
/// `$4`, the reason `$5`, the chat's team after the change (`$8`), and for the monitoring
/// totals when each chat had entered its old state (`$6`) and its place in the queue before
/// the change (`$7`, NULL: not in it).
/// Written in the changing transaction: an event exists exactly when its change committed.
/// Ids come from the identity sequence; see `store::hold_event_id_floor`.
///
/// `waiting_since` is the queue side's: a chat leaving the queue had `$7`; one entering it
/// keeps `$7` (a release) or waits from now (a new chat, a user's message, a reopening).
pub static INSERT_EVENTS: Statement = Statement {
    sql: "INSERT INTO @extschema@.chat_events \
              (chat_id, old_state, new_state, operator_id, team_id, reason, at, since, waiting_since) \
          SELECT c.chat_id, $3::@extschema@.chat_state, $4::@extschema@.chat_state, c.operator_id, c.team_id, \
                 $5, now(), c.since, \
                 CASE WHEN $4 = 'waiting_assignment' THEN coalesce(c.waiting, now()) \
                      WHEN $3 = 'waiting_assignment' THEN c.waiting END \
          FROM unnest($1, $2, $6, $7, $8) WITH ORDINALITY AS c(chat_id, operator_id, since, waiting, team_id, n) \
          ORDER BY c.n",
    args: &[UUID_ARRAY, UUID_ARRAY, TEXT, TEXT, TEXT, TIMESTAMPTZ_ARRAY, TIMESTAMPTZ_ARRAY, UUID_ARRAY],
    read_only: false,
};

/// Folding the events into the totals (sql/state_totals.sql), step 1: the fold row, or
/// nothing when another transaction is folding (never wait for it).
pub static FOLD_LOCK: Statement = Statement {
    sql: "SELECT position FROM @extschema@.chat_state_fold FOR UPDATE SKIP LOCKED",
    args: &[],
    read_only: false,
};

/// Step 2: the events in (`$2`, `$1`] added to the deltas per state, the position moved to
/// `$1`. `$1` is the horizon of `read_chat_events`, taken before this statement's snapshot:
/// every event up to it is in the snapshot or will never exist.
pub static FOLD_EVENTS: Statement = Statement {
    sql: "WITH moved AS ( \
              UPDATE @extschema@.chat_state_fold SET position = $1 RETURNING position) \
          INSERT INTO @extschema@.chat_state_deltas \
          SELECT chat_state, sum(chats), coalesce(sum(changed), 0), sum(queued), sum(waiting) \
          FROM @extschema@.chat_state_event_deltas \
          WHERE id > $2 AND id <= $1 \
          GROUP BY chat_state",
    args: &[INT8, INT8],
    read_only: false,
};

/// Step 3: the deltas compacted to one row per state (under the fold row's lock).
pub static COMPACT_DELTAS: Statement = Statement {
    sql: "WITH gone AS (DELETE FROM @extschema@.chat_state_deltas RETURNING *) \
          INSERT INTO @extschema@.chat_state_deltas \
          SELECT chat_state, sum(chat_count), sum(changed_epoch), sum(queue_count), sum(waiting_epoch) \
          FROM gone GROUP BY chat_state",
    args: &[],
    read_only: false,
};

/// The id of the newest event, and the smallest event-id floor of a transaction still
/// running (in `pg_locks`; NULL when none): `read_chat_events`' horizon, for the fold. Two
/// statements, in this order (see sql/events.sql).
pub static EVENT_FLOORS_HELD: Statement = Statement {
    sql: "SELECT min((l.classid::bigint << 32) | l.objid::bigint) FROM pg_catalog.pg_locks l \
          WHERE l.locktype = 'advisory' AND l.objsubid = 25441 \
            AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d \
                              WHERE d.datname = pg_catalog.current_database())",
    args: &[],
    read_only: false,
};

/// Events older than `chat_assign.event_retention` (`$1` seconds), at most `$2` of them,
/// oldest ids first, and only events already folded into the monitoring totals. The candidates are the `$2` lowest ids, so a batch reads a bounded
/// part of the primary key whatever the table holds.
pub static PRUNE_EVENTS: Statement = Statement {
    sql: "DELETE FROM @extschema@.chat_events \
          WHERE id IN (SELECT id FROM (SELECT id, at FROM @extschema@.chat_events ORDER BY id LIMIT $2) AS head \
                       WHERE at < now() - make_interval(secs => $1) \
                         AND id <= (SELECT position FROM @extschema@.chat_state_fold))",
    args: &[FLOAT8, INT8],
    read_only: false,
};

/// The wake-up itself: sent by the worker in its own transaction, never by a call.
pub const WAKE_UP: &str = "SELECT pg_catalog.pg_notify('chat_assign', $1)";

// ---------------------------------------------------------------- where we live

/// The extension's schema, quoted for SQL text, and its installed version, by the
/// extension's oid. Run before any plan exists (it tells [`crate::store`] what to put in
/// them), so it is plain text, not a [`Statement`]. The idle worker runs it as a superuser
/// under its database's own search_path, hence the operators spelled out.
pub const EXTENSION_SCHEMA: &str = "SELECT pg_catalog.quote_ident(n.nspname), e.extversion \
     FROM pg_catalog.pg_extension e \
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
     WHERE e.oid OPERATOR(pg_catalog.=) $1";

/// The oid of the event sequence in the extension's schema (`$1`, the quoted name), read
/// with [`EXTENSION_SCHEMA`].
pub const EVENT_SEQUENCE_OID: &str = "SELECT c.oid FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
     WHERE pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.=) $1 \
       AND c.relname OPERATOR(pg_catalog.=) 'chat_events_id_seq'";

/// The idle worker's own search_path, set before it reads anything: it runs as a superuser,
/// and its database's settings (which the database owner controls) chose the one it
/// started with.
pub const WORKER_SEARCH_PATH: &str =
    "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)";

/// The settings every API function sets for its own call (sql/privileges.sql), for the rest
/// of the worker's transaction.
pub const WORKER_PLAN_SETTINGS: &str =
    "SELECT pg_catalog.set_config('enable_seqscan', 'off', true), \
     pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true), \
     pg_catalog.set_config('jit', 'off', true)";

// ---------------------------------------------------------------- operators

pub static CREATE_OPERATOR: Statement = Statement {
    sql: "INSERT INTO @extschema@.operators (name, max_concurrent_chats) VALUES ($1, $2) RETURNING id",
    args: &[TEXT, INT4],
    read_only: false,
};

/// On a locked operator: sets `is_active`, reports whether it changed.
pub static SET_OPERATOR_ACTIVE: Statement = Statement {
    sql: "UPDATE @extschema@.operators SET is_active = $2 WHERE id = $1 AND is_active IS DISTINCT FROM $2 \
          RETURNING id",
    args: &[UUID, BOOL],
    read_only: false,
};

// ---------------------------------------------------------------- teams, presence, transfers

pub static CREATE_TEAM: Statement = Statement {
    sql: "INSERT INTO @extschema@.teams (name, routing) VALUES ($1, $2) \
          ON CONFLICT (name) DO NOTHING RETURNING id",
    args: &[TEXT, TEXT],
    read_only: false,
};

/// A team's routing, the team row locked (a routing change waits for another).
pub static LOCK_TEAM: Statement = Statement {
    sql: "SELECT routing FROM @extschema@.teams WHERE id = $1 FOR NO KEY UPDATE",
    args: &[UUID],
    read_only: false,
};

/// Whether team `$1` exists, its row locked against a DELETE (joining a team, step 1).
pub static KEEP_TEAM: Statement = Statement {
    sql: "SELECT id FROM @extschema@.teams WHERE id = $1 FOR KEY SHARE",
    args: &[UUID],
    read_only: false,
};

/// Whether team `$1` exists (no lock).
pub static TEAM_EXISTS: Statement = Statement {
    sql: "SELECT EXISTS (SELECT 1 FROM @extschema@.teams WHERE id = $1)",
    args: &[UUID],
    read_only: true,
};

pub static SET_TEAM_ROUTING: Statement = Statement {
    sql: "UPDATE @extschema@.teams SET routing = $2 WHERE id = $1 AND routing <> $2 RETURNING id",
    args: &[UUID, TEXT],
    read_only: false,
};

/// Operator `$1` joins team `$2` (both locked); nothing when it is a member already.
pub static ADD_TEAM_MEMBER: Statement = Statement {
    sql: "INSERT INTO @extschema@.team_members (operator_id, team_id) VALUES ($1, $2) \
          ON CONFLICT DO NOTHING RETURNING team_id",
    args: &[UUID, UUID],
    read_only: false,
};

/// Operator `$1` (locked) leaves team `$2`; nothing when it was not a member. Its
/// `team_count` becomes its memberships left (the statement's own snapshot still holds the
/// one it deletes): an operator who leaves its last team claims without the team tables again.
pub static REMOVE_TEAM_MEMBER: Statement = Statement {
    sql: "WITH gone AS ( \
              DELETE FROM @extschema@.team_members WHERE operator_id = $1 AND team_id = $2 \
              RETURNING team_id), \
          counted AS ( \
              UPDATE @extschema@.operators \
              SET team_count = (SELECT count(*) FROM @extschema@.team_members m WHERE m.operator_id = $1) \
                               - (SELECT count(*) FROM gone) \
              WHERE id = $1 AND EXISTS (SELECT 1 FROM gone) RETURNING id) \
          SELECT team_id FROM gone",
    args: &[UUID, UUID],
    read_only: false,
};

/// On a locked operator: its presence becomes `$2`; nothing when it already was. Returns the
/// row's new `ctid`: the update moved it, and a later statement that finds the row by its
/// `ctid` (the claim) must use this one.
pub static SET_OPERATOR_STATUS: Statement = Statement {
    sql: "UPDATE @extschema@.operators SET status = $2, status_changed_at = now() \
          WHERE id = $1 AND status <> $2 RETURNING ctid",
    args: &[UUID, TEXT],
    read_only: false,
};

/// Whether a locked operator (`$1`) may be given a chat of team `$2` (NULL: a chat without a
/// team, which anyone may take), and how many chats it holds. Read after the operator's
/// lock, which every change of its memberships and chats takes too.
pub static OPERATOR_ROOM: Statement = Statement {
    sql: concat!(
        "SELECT ",
        held_by!("$1"),
        ", \
                 $2::uuid IS NULL OR EXISTS (SELECT 1 FROM @extschema@.team_members m \
                                             WHERE m.operator_id = $1 AND m.team_id = $2)"
    ),
    args: &[UUID, UUID],
    read_only: false,
};

/// A locked chat (`$1`) goes to operator `$2` (locked, checked by [`OPERATOR_ROOM`]): any
/// open assignment released with reason `$3`, a new one opened, the chat `assigned` to `$2`,
/// which becomes its last operator; `waiting_since` keeps its place should it be released.
/// The transfer is recorded: from `$4` (the holder, or last operator) and the chat's team.
pub static TRANSFER_TO_OPERATOR: Statement = Statement {
    sql: concat!(
        "WITH released AS ( \
              UPDATE @extschema@.chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = $3 \
              WHERE id = (SELECT max(id) FROM @extschema@.chat_assignments WHERE chat_id = $1) AND released_at IS NULL \
              RETURNING id), \
          chat AS ( \
              UPDATE @extschema@.chats SET chat_state = 'assigned', assigned_operator_id = $2, \
                                 last_operator_id = $2, assigned_at = now(), state_changed_at = now(), \
                                 waiting_since = coalesce(waiting_since, now()), \
                                 first_assigned_at = least(first_assigned_at, now()) \
              WHERE id = $1 RETURNING id, team_id), \
          assignment AS ( \
              INSERT INTO @extschema@.chat_assignments (chat_id, operator_id, assigned_at, last_activity_at) \
              SELECT id, $2, now(), now() FROM chat RETURNING id), \
          operator AS ( \
              UPDATE @extschema@.operators SET last_assigned_at = now(), \
                                 held_chat_ids = ", still_held!("$2"), " || $1 \
              WHERE id = $2 RETURNING id), \
          history AS ( \
              INSERT INTO @extschema@.chat_transfers (chat_id, from_operator_id, from_team_id, \
                                                      to_operator_id, to_team_id, reason) \
              SELECT id, $4, team_id, $2, team_id, $3 FROM chat RETURNING id) \
          SELECT id FROM chat"
    ),
    args: &[UUID, UUID, TEXT, UUID],
    read_only: false,
};

/// A locked chat (`$1`) moves to team `$2`'s queue: an assigned chat goes back to the queue
/// keeping its `waiting_since` (its open assignment released with reason `$3`); a waiting
/// chat keeps its place; a chat waiting for its user's reply will queue in that team. The
/// team is looked for in this statement (as [`START_CHAT`] does): nothing is written when it
/// does not exist. Recorded as a transfer from `$4` (the holder, or last operator) and the
/// old team. Returns the chat and whether it was released.
pub static TRANSFER_TO_TEAM: Statement = Statement {
    sql: "WITH team AS ( \
              SELECT t.id FROM @extschema@.teams t WHERE t.id = $2), \
          old AS ( \
              SELECT c.team_id, c.chat_state = 'assigned' AS held FROM @extschema@.chats c \
              WHERE c.id = $1 AND EXISTS (SELECT 1 FROM team)), \
          released AS ( \
              UPDATE @extschema@.chat_assignments SET released_at = greatest(now(), assigned_at), release_reason = $3 \
              WHERE id = (SELECT max(id) FROM @extschema@.chat_assignments WHERE chat_id = $1) AND released_at IS NULL \
                AND EXISTS (SELECT 1 FROM team) \
              RETURNING id), \
          chat AS ( \
              UPDATE @extschema@.chats SET team_id = $2, \
                  chat_state = CASE WHEN chat_state = 'assigned' THEN 'waiting_assignment' ELSE chat_state END, \
                  assigned_operator_id = NULL, \
                  waiting_since = CASE WHEN chat_state = 'assigned' THEN coalesce(waiting_since, now()) \
                                       ELSE waiting_since END, \
                  state_changed_at = now() \
              WHERE id = $1 AND EXISTS (SELECT 1 FROM team) RETURNING id), \
          history AS ( \
              INSERT INTO @extschema@.chat_transfers (chat_id, from_operator_id, from_team_id, to_team_id, reason) \
              SELECT $1, $4, o.team_id, $2, $3 FROM old o WHERE EXISTS (SELECT 1 FROM chat) RETURNING id) \
          SELECT (SELECT id FROM chat), (SELECT held FROM old)",
    args: &[UUID, UUID, TEXT, UUID],
    read_only: false,
};

/// A locked chat's priority becomes `$2`; nothing when it already was.
pub static SET_CHAT_PRIORITY: Statement = Statement {
    sql: "UPDATE @extschema@.chats SET priority = $2 WHERE id = $1 AND priority <> $2 RETURNING id",
    args: &[UUID, INT4],
    read_only: false,
};

/// Where a chat stands: whether it is in the queue (waiting and active), its queue's key,
/// priority and `waiting_since`. No lock: a position is a reading, not a claim.
pub static QUEUE_PLACE: Statement = Statement {
    sql: concat!(
        "SELECT chat_state = 'waiting_assignment' AND is_active, coalesce(team_id, ",
        no_team!(),
        "), priority, waiting_since FROM @extschema@.chats WHERE id = $1"
    ),
    args: &[UUID],
    read_only: true,
};

/// How many chats of queue `$1` come before a chat of priority `$2`, waiting since `$3`,
/// with id `$4`: those of higher priority, then those of the same priority ahead of it in
/// (`waiting_since`, `id`). Two range scans of the queue index, each reading exactly the
/// entries ahead (index-only where the visibility map allows): the cost grows with the
/// position, not with the queue.
pub static QUEUE_AHEAD: Statement = Statement {
    sql: concat!(
        "SELECT (SELECT count(*) FROM @extschema@.chats c \
                  WHERE coalesce(c.team_id, ",
        no_team!(),
        ") = $1 \
                    AND c.chat_state = 'waiting_assignment' AND c.is_active \
                    AND c.priority > $2) \
              + (SELECT count(*) FROM @extschema@.chats c \
                  WHERE coalesce(c.team_id, ",
        no_team!(),
        ") = $1 \
                    AND c.chat_state = 'waiting_assignment' AND c.is_active \
                    AND c.priority = $2 AND (c.waiting_since, c.id) < ($3, $4))"
    ),
    args: &[UUID, INT4, TIMESTAMPTZ, UUID],
    read_only: true,
};

/// How fast queue `$1` has been served lately: of the last 500 assignments (of any queue)
/// made within the last hour, how many were of chats of this queue, and over how many
/// seconds those 500 were made. A bounded read (the newest ids of `chat_assignments` and a
/// chat each), however busy the desk.
pub static QUEUE_RATE: Statement = Statement {
    sql: concat!(
        "SELECT count(*) FILTER (WHERE coalesce(c.team_id, ",
        no_team!(),
        ") = $1), \
                extract(epoch FROM now() - min(r.assigned_at))::float8 \
         FROM (SELECT a.chat_id, a.assigned_at FROM @extschema@.chat_assignments a \
               ORDER BY a.id DESC LIMIT 500) AS r \
         JOIN @extschema@.chats c ON c.id = r.chat_id \
         WHERE r.assigned_at > now() - interval '1 hour'"
    ),
    args: &[UUID],
    read_only: true,
};

/// Presence through the worker: online operators with no sign of life for `$1` seconds
/// become `away`: no status change, assignment or heartbeat on a chat they hold since. Rows
/// another session holds are passed by (the next pass sees them).
pub static MARK_AWAY: Statement = Statement {
    sql: "UPDATE @extschema@.operators o SET status = 'away', status_changed_at = now() \
          WHERE o.id IN ( \
              SELECT op.id FROM @extschema@.operators op \
              WHERE op.status = 'online' \
                AND greatest(op.status_changed_at, op.last_assigned_at) < now() - make_interval(secs => $1) \
                AND NOT EXISTS ( \
                    SELECT 1 FROM @extschema@.chats c \
                    JOIN @extschema@.chat_assignments a \
                      ON a.id = (SELECT max(l.id) FROM @extschema@.chat_assignments l WHERE l.chat_id = c.id) \
                    WHERE c.assigned_operator_id = op.id \
                      AND a.last_activity_at >= now() - make_interval(secs => $1)) \
              FOR NO KEY UPDATE SKIP LOCKED) \
          RETURNING o.id",
    args: &[FLOAT8],
    read_only: false,
};

// ---------------------------------------------------------------- automatic assignment

/// The routing of team `$1`.
pub static TEAM_ROUTING: Statement = Statement {
    sql: "SELECT routing FROM @extschema@.teams WHERE id = $1",
    args: &[UUID],
    read_only: false,
};

/// Whether operator `$1` is a member of a team whose chats are pushed (routing not
/// `manual`): only then does freeing its capacity pull a chat (the queue without a team is
/// decided by `chat_assign.default_routing`, without a statement).
pub static IN_PUSH_TEAM: Statement = Statement {
    sql: concat!("SELECT ", in_pushed_team!("$1")),
    args: &[UUID],
    read_only: false,
};

/// Step 1 for a call that already holds a chat's lock (out of order, so it never waits): the
/// operator's row when no one else holds it, with what [`LOCK_OPERATOR`] returns. A row this
/// transaction already holds is returned too.
pub static LOCK_OPERATOR_IF_FREE: Statement = Statement {
    sql: "SELECT is_active, max_concurrent_chats, ctid, status, team_count > 0, \
                 held_chat_ids \
          FROM @extschema@.operators WHERE id = $1 FOR NO KEY UPDATE SKIP LOCKED",
    args: &[UUID],
    read_only: false,
};

/// Who gets a chat that starts waiting in a pushed queue (team `$1`, NULL: the queue without
/// a team): of the active, online operators who may take it and had room in this
/// statement's snapshot, not in `$5` (tried already), the one with the most free capacity
/// (`least_loaded`) or, with `$2` (`round_robin`), none first; then assigned longest ago.
/// With `$3` (avoid_same_operator) the chat's last operator `$4` comes last. Locked with
/// `SKIP LOCKED`: the caller holds the chat's lock (step 2), so it must never wait for an
/// operator's (step 1); an operator in the middle of a call of its own is passed by, and
/// its room is checked again under the lock ([`OPERATOR_FIT`]).
pub static PUSH_CANDIDATE: Statement = Statement {
    sql: "SELECT o.id FROM @extschema@.operators o \
          CROSS JOIN LATERAL (SELECT count(*) AS n FROM @extschema@.chats c \
                              WHERE c.assigned_operator_id = o.id) AS held \
          WHERE o.is_active AND o.status = 'online' \
            AND NOT (o.id = ANY ($5)) \
            AND held.n < o.max_concurrent_chats \
            AND ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM @extschema@.team_members m \
                                             WHERE m.team_id = $1 AND m.operator_id = o.id)) \
          ORDER BY ($3 AND o.id IS NOT DISTINCT FROM $4), \
                   CASE WHEN $2 THEN 0 ELSE held.n - o.max_concurrent_chats END, \
                   o.last_assigned_at NULLS FIRST, o.id \
          LIMIT 1 \
          FOR NO KEY UPDATE OF o SKIP LOCKED",
    args: &[UUID, BOOL, BOOL, UUID, UUID_ARRAY],
    read_only: false,
};

/// Whether a locked operator (`$1`) may take a chat of team `$2` now, read after its lock
/// (a fresh snapshot: every assignment, status and membership change of the operator
/// happens under that lock): active and online, a member (when `$2` is a team), and room.
pub static OPERATOR_FIT: Statement = Statement {
    sql: concat!(
        "SELECT o.is_active AND o.status = 'online' \
                 AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM @extschema@.team_members m \
                                                  WHERE m.operator_id = $1 AND m.team_id = $2)) \
                 AND ",
        held_by!("$1"),
        " < o.max_concurrent_chats \
          FROM @extschema@.operators o WHERE o.id = $1"
    ),
    args: &[UUID, UUID],
    read_only: false,
};

/// A locked, waiting chat (`$1`) given to a locked operator (`$2`) who fits: assigned, an
/// assignment row (with its heartbeat), the operator's `last_assigned_at`. Returns since
/// when the chat waited and its place (for its event).
pub static ASSIGN_WAITING_CHAT: Statement = Statement {
    sql: concat!(
        "WITH old AS ( \
              SELECT state_changed_at, waiting_since FROM @extschema@.chats \
              WHERE id = $1 AND chat_state = 'waiting_assignment' AND is_active), \
          chat AS ( \
              UPDATE @extschema@.chats SET chat_state = 'assigned', assigned_operator_id = $2, \
                                 last_operator_id = $2, assigned_at = now(), state_changed_at = now(), \
                                 first_assigned_at = least(first_assigned_at, now()) \
              WHERE id = $1 AND chat_state = 'waiting_assignment' AND is_active RETURNING id), \
          assignment AS ( \
              INSERT INTO @extschema@.chat_assignments (chat_id, operator_id, assigned_at, last_activity_at) \
              SELECT id, $2, now(), now() FROM chat RETURNING id), \
          operator AS ( \
              UPDATE @extschema@.operators SET last_assigned_at = now(), \
                                 held_chat_ids = ", still_held!("$2"), " || $1 \
              WHERE id = $2 AND EXISTS (SELECT 1 FROM chat) RETURNING id) \
          SELECT (SELECT id FROM chat), (SELECT state_changed_at FROM old), (SELECT waiting_since FROM old)"
    ),
    args: &[UUID, UUID],
    read_only: false,
};

/// Operators (`$1`) whose chats an idle release just took and who hold none now become
/// `away` (they stopped answering), so that no automatic assignment goes to them until they
/// show a sign of life; only those in a pushed queue (`$2`: the queue without a team
/// pushes). Taken with `SKIP LOCKED`: the release holds chats, and an operator locked by a
/// call of its own is not idle.
pub static MARK_IDLE_AWAY: Statement = Statement {
    sql: concat!(
        "UPDATE @extschema@.operators o SET status = 'away', status_changed_at = now() \
          WHERE o.id IN ( \
              SELECT op.id FROM @extschema@.operators op \
              WHERE op.id = ANY ($1) AND op.status = 'online' \
                AND ",
        held_by!("op.id"),
        " = 0 \
                AND ($2 OR ",
        in_pushed_team!("op.id"),
        ") \
              FOR NO KEY UPDATE SKIP LOCKED) \
          RETURNING o.id"
    ),
    args: &[UUID_ARRAY, BOOL],
    read_only: false,
};

/// The worker's assignment pass: active, online operators with room who take from a pushed
/// queue (`$1`: the queue without a team pushes), oldest assignment first.
pub static PUSH_SWEEP: Statement = Statement {
    sql: concat!(
        "SELECT o.id FROM @extschema@.operators o \
          WHERE o.is_active AND o.status = 'online' \
            AND ",
        held_by!("o.id"),
        " < o.max_concurrent_chats \
            AND ($1 OR ",
        in_pushed_team!("o.id"),
        ") \
          ORDER BY o.last_assigned_at NULLS FIRST, o.id"
    ),
    args: &[BOOL],
    read_only: false,
};

// ---------------------------------------------------------------- monitoring

/// One row: queue depth per state, waiting ages, and operators by availability. An operator
/// is busy when at capacity, available when active with room for another chat.
///
/// Counts and the average wait come from the running totals (`chat_state_totals`, see
/// `sql/state_totals.sql`), not from a scan of the queue. The oldest wait is the first entry
/// of the queue index for each queue (a team's, or the one without a team) and distinct
/// priority in it (a loose index scan: one probe per queue and priority level in use).
pub static QUEUE_STATUS: Statement = Statement {
    sql: concat!(
        "WITH RECURSIVE queues AS ( \
              (SELECT coalesce(team_id, ", no_team!(), ") AS k FROM @extschema@.chats \
                WHERE chat_state = 'waiting_assignment' AND is_active \
                ORDER BY 1 LIMIT 1) \
              UNION ALL \
              SELECT (SELECT coalesce(c.team_id, ", no_team!(), ") FROM @extschema@.chats c \
                       WHERE c.chat_state = 'waiting_assignment' AND c.is_active \
                         AND coalesce(c.team_id, ", no_team!(), ") > q.k \
                       ORDER BY 1 LIMIT 1) \
              FROM queues q WHERE q.k IS NOT NULL), \
          priorities AS ( \
              SELECT q.k, (SELECT c.priority FROM @extschema@.chats c \
                            WHERE coalesce(c.team_id, ", no_team!(), ") = q.k \
                              AND c.chat_state = 'waiting_assignment' AND c.is_active \
                            ORDER BY c.priority DESC LIMIT 1) AS priority \
              FROM queues q WHERE q.k IS NOT NULL \
              UNION ALL \
              SELECT p.k, (SELECT c.priority FROM @extschema@.chats c \
                            WHERE coalesce(c.team_id, ", no_team!(), ") = p.k \
                              AND c.chat_state = 'waiting_assignment' AND c.is_active \
                              AND c.priority < p.priority \
                            ORDER BY c.priority DESC LIMIT 1) \
              FROM priorities p WHERE p.priority IS NOT NULL), \
          oldest AS ( \
              SELECT min((SELECT c.waiting_since FROM @extschema@.chats c \
                           WHERE coalesce(c.team_id, ", no_team!(), ") = p.k \
                             AND c.chat_state = 'waiting_assignment' AND c.is_active \
                             AND c.priority = p.priority \
                           ORDER BY c.waiting_since LIMIT 1)) AS since \
              FROM priorities p WHERE p.priority IS NOT NULL), \
          totals AS ( \
              SELECT sum(queue_count) FILTER (WHERE chat_state = 'waiting_assignment') AS waiting, \
                     sum(waiting_epoch) FILTER (WHERE chat_state = 'waiting_assignment') AS waiting_epoch, \
                     sum(chat_count) FILTER (WHERE chat_state = 'assigned') AS assigned, \
                     sum(chat_count) FILTER (WHERE chat_state = 'waiting_real_user_reply') AS replied \
              FROM @extschema@.chat_state_totals) \
          SELECT t.waiting::bigint, t.assigned::bigint, t.replied::bigint, \
                 round(extract(epoch FROM now() - (SELECT since FROM oldest)), 1)::float8, \
                 CASE WHEN t.waiting > 0 \
                      THEN round(extract(epoch FROM now()) - t.waiting_epoch / t.waiting, 1)::float8 \
                 END, \
                 o.active, o.busy, o.available \
          FROM totals t, ( \
              SELECT count(*) FILTER (WHERE op.is_active) AS active, \
                     count(*) FILTER (WHERE op.is_active \
                                      AND coalesce(a.n, 0) >= op.max_concurrent_chats) AS busy, \
                     count(*) FILTER (WHERE op.is_active \
                                      AND coalesce(a.n, 0) < op.max_concurrent_chats) AS available \
              FROM @extschema@.operators op \
              LEFT JOIN (SELECT assigned_operator_id AS operator_id, count(*) AS n FROM @extschema@.chats \
                         WHERE assigned_operator_id IS NOT NULL GROUP BY assigned_operator_id) AS a \
                     ON a.operator_id = op.id) AS o"
    ),
    args: &[],
    read_only: true,
};

/// The scopes of service metrics besides `all` and `no_team`: the teams (only `$1` when
/// given), in the order the rows come out.
pub static SERVICE_TEAMS: Statement = Statement {
    sql: "SELECT t.id, t.name FROM @extschema@.teams t \
          WHERE $1::uuid IS NULL OR t.id = $1 ORDER BY t.name",
    args: &[UUID],
    read_only: true,
};

/// The chats started since `$1` (of team `$2`; NULL: all), one row each, for service
/// metrics to fold in Rust (columns: [`SERVICE_WINDOW_COLUMNS`]): start, first assignment,
/// first operator reply, whether it ended without one (abandoned), idle releases, team.
/// Read through the BRIN index on `created_at`; no sort, no grouping: percentiles in SQL
/// sort the window once per scope and duration, and cost twice the read.
pub static SERVICE_WINDOW: Statement = Statement {
    sql: "SELECT c.created_at, c.first_assigned_at, c.first_response_at, \
                 c.chat_state = 'completed' AND c.first_response_at IS NULL, c.idle_releases, \
                 c.team_id \
          FROM @extschema@.chats c \
          WHERE c.created_at >= $1 AND ($2::uuid IS NULL OR c.team_id = $2)",
    args: &[TIMESTAMPTZ, UUID],
    read_only: true,
};

/// The result types of [`SERVICE_WINDOW`], checked before its first row is read.
pub const SERVICE_WINDOW_COLUMNS: &[Oid] =
    &[TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, BOOL, INT4, UUID];

/// Service metrics computed in SQL, for a window larger than the fold may hold in memory
/// (see `service_metrics`): the same rows and values as the fold, from `percentile_cont`,
/// whose sorts spill to disk. One row per scope, as `get_service_metrics` returns them.
pub static SERVICE_METRICS: Statement = Statement {
    sql: "WITH w AS ( \
              SELECT c.team_id, c.chat_state, c.first_response_at IS NULL AS unanswered, c.idle_releases, \
                     date_part('epoch', c.first_response_at - c.created_at) AS response, \
                     date_part('epoch', c.first_assigned_at - c.created_at) AS wait \
              FROM @extschema@.chats c \
              WHERE c.created_at >= $1 AND ($2::uuid IS NULL OR c.team_id = $2)), \
          per AS ( \
              SELECT grouping(team_id) = 1 AS overall, team_id, count(*) AS started, \
                     percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY response) AS response, \
                     percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wait) AS wait, \
                     sum(idle_releases) AS idle, \
                     count(*) FILTER (WHERE chat_state = 'completed' AND unanswered) AS abandoned \
              FROM w GROUP BY GROUPING SETS ((team_id), ())), \
          moved AS ( \
              SELECT grouping(x.from_team_id) = 1 AS overall, x.from_team_id AS team_id, count(*) AS n \
              FROM @extschema@.chat_transfers x \
              WHERE x.transferred_at >= $1 AND ($2::uuid IS NULL OR x.from_team_id = $2) \
              GROUP BY GROUPING SETS ((x.from_team_id), ())), \
          scopes AS ( \
              SELECT 0 AS ord, 'all'::text AS scope, true AS overall, NULL::uuid AS team_id, NULL::text AS team_name \
              WHERE $2::uuid IS NULL \
              UNION ALL \
              SELECT 1, 'no_team', false, NULL, NULL WHERE $2::uuid IS NULL \
              UNION ALL \
              SELECT 2, 'team', false, t.id, t.name FROM @extschema@.teams t \
              WHERE $2::uuid IS NULL OR t.id = $2) \
          SELECT s.scope, s.team_id, s.team_name, coalesce(p.started, 0), \
                 p.response[1], p.response[2], p.wait[1], p.wait[2], \
                 coalesce(m.n, 0), coalesce(p.idle, 0)::bigint, coalesce(p.abandoned, 0) \
          FROM scopes s \
          LEFT JOIN per p ON p.overall = s.overall AND p.team_id IS NOT DISTINCT FROM s.team_id \
          LEFT JOIN moved m ON m.overall = s.overall AND m.team_id IS NOT DISTINCT FROM s.team_id \
          ORDER BY s.ord, s.team_name",
    args: &[TIMESTAMPTZ, UUID],
    read_only: true,
};

/// Transfers since `$1` out of each team (NULL: out of no team; only team `$2` when given),
/// through the BRIN index on `transferred_at`.
pub static SERVICE_TRANSFERS: Statement = Statement {
    sql: "SELECT x.from_team_id, count(*) \
          FROM @extschema@.chat_transfers x \
          WHERE x.transferred_at >= $1 AND ($2::uuid IS NULL OR x.from_team_id = $2) \
          GROUP BY x.from_team_id",
    args: &[TIMESTAMPTZ, UUID],
    read_only: true,
};

/// Active chats stuck in `waiting_assignment` or `assigned` for more than `$1` hours,
/// oldest first, with who holds them (or last held them).
pub static STUCK_CHATS: Statement = Statement {
    sql: "SELECT c.id, c.chat_state::text, c.real_user_id, c.state_changed_at, \
                 round(extract(epoch FROM now() - c.state_changed_at) / 3600, 2), \
                 c.assigned_operator_id, c.last_operator_id, o.name \
          FROM @extschema@.chats c \
          LEFT JOIN @extschema@.operators o ON o.id = coalesce(c.assigned_operator_id, c.last_operator_id) \
          WHERE c.is_active \
            AND c.chat_state IN ('waiting_assignment', 'assigned') \
            AND c.state_changed_at < now() - make_interval(secs => $1 * 3600) \
          ORDER BY c.state_changed_at, c.id",
    args: &[FLOAT8],
    read_only: true,
};

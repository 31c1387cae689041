//! Multi-connection stress test of the `chat_assign` extension.
//!
//! Sets up teams, operators (each in none, one or two teams) and chats (of a random team or
//! none, with a random priority), then runs N connections for S seconds, each looping over a
//! random but realistic mix of every public function and view (an operator takes a chat and
//! usually answers it, users write back, admins release and transfer chats, change
//! priorities and memberships and (de)activate operators, operators go away, offline and
//! back, the idle job runs with a tiny threshold so that it really releases chats,
//! dashboards poll the monitoring functions and users ask where they are in the queue).
//! Meanwhile a monitor connection checks every invariant of the contract (docs/api.md) in
//! one snapshot every ~100 ms, and that `get_service_metrics()` answers with sane values.
//! Afterwards it checks, with SQL, every invariant again, that every message a call reported
//! as stored is stored as reported, that the counts the calls reported match what the tables
//! hold, and, call by call, every chat given to an operator: see [`replay_operators`] and
//! [`call_shape`].
//!
//! Teams route `manual`, `least_loaded` or `round_robin`, and chats without a team follow
//! `chat_assign.default_routing` (the database's, or a connection's own: see
//! [`SESSION_ROUTINGS`]), so most calls that put a chat in a queue or free an operator also
//! give chats away (`auto_assigned` events) inside the same call. Every call that can write
//! a change event reads back, inside its own transaction, the events that transaction wrote
//! ([`CALL_EVENTS_SQL`]); so each event of the run is tied to the one call that wrote it.
//!
//! Every error is classified by SQLSTATE: the documented refusals (`55000`, `P0002`) are
//! counted (`55000` also by cause); a deadlock (`40P01`), an internal error (`XX000`), a
//! unique violation (`23505`), any SQLSTATE the documented error table (docs/api.md) does not
//! list, a documented argument error on valid arguments and any non-database error fail the
//! run.
//!
//! Usage: chat_assign_stress [--dsn DSN] [--connections N] [--seconds S] [--operators N]
//!        [--chats N] [--seed N]
//! Environment fallbacks: STRESS_DSN (else built from PGHOST/PGPORT/PGUSER/PGDATABASE),
//! STRESS_CONNECTIONS (32), STRESS_SECONDS (20), STRESS_SEED.
//! The last line printed is `stress: N passed, M failed`; the exit status is 0 only when
//! M is 0.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio_postgres::{Client, Error as PgError, NoTls, Statement};
use uuid::Uuid;

// ------------------------------------------------------------------------------ config

struct Config {
    dsn: String,
    connections: usize,
    seconds: u64,
    operators: usize,
    chats: usize,
    seed: u64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn default_dsn() -> String {
    if let Ok(dsn) = std::env::var("STRESS_DSN") {
        return dsn;
    }
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PGPORT").unwrap_or_else(|_| "5432".into());
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
    let db = std::env::var("PGDATABASE").unwrap_or_else(|_| "postgres".into());
    format!("host={host} port={port} user={user} dbname={db}")
}

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        dsn: default_dsn(),
        connections: env_or("STRESS_CONNECTIONS", 32),
        seconds: env_or("STRESS_SECONDS", 20),
        operators: 24,
        chats: 300,
        seed: env_or(
            "STRESS_SEED",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        ),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--dsn" => cfg.dsn = value()?,
            "--connections" => cfg.connections = num(value()?)? as usize,
            "--seconds" => cfg.seconds = num(value()?)?,
            "--operators" => cfg.operators = num(value()?)? as usize,
            "--chats" => cfg.chats = num(value()?)? as usize,
            "--seed" => cfg.seed = num(value()?)?,
            "-h" | "--help" => {
                return Err(
                    "usage: chat_assign_stress [--dsn DSN] [--connections N] [--seconds S] \
                            [--operators N] [--chats N] [--seed N]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if cfg.connections == 0 || cfg.seconds == 0 || cfg.operators < 3 || cfg.chats == 0 {
        return Err("connections, seconds and chats must be >= 1, operators >= 3".into());
    }
    Ok(cfg)
}

// ------------------------------------------------------------------------------ labels

/// The public API: every function and view. Each must see at least one successful call.
const PUBLIC: &[&str] = &[
    "start_chat",
    "real_user_send_message",
    "operator_send_message",
    "assign_chat_to_operator",
    "release_and_reassign_chat",
    "touch_operator_activity",
    "release_idle_assignments",
    "complete_chat",
    "create_operator",
    "set_operator_active",
    "create_team",
    "set_team_routing",
    "add_team_member",
    "remove_team_member",
    "set_operator_status",
    "transfer_chat",
    "set_chat_priority",
    "get_queue_position",
    "get_assignment_queue_status",
    "detect_stuck_chats",
    "chat_state_summary (view)",
    "operator_assignment_stats (view)",
    "team_queue_status (view)",
];

/// What a deliberately invalid call is given besides constants.
#[derive(Clone, Copy)]
enum InvalidArgs {
    None,
    Chat,
    Operator,
    ChatOperatorTeam,
}

/// Deliberately invalid calls (rare) and the SQLSTATE the documented error table (docs/api.md) promises for them.
const INVALID: &[(&str, &str, InvalidArgs, &str)] = &[
    (
        "invalid: real_user_send_message blank",
        "SELECT real_user_send_message($1, '   ')",
        InvalidArgs::Chat,
        "22023",
    ),
    (
        "invalid: assign_chat_to_operator NULL",
        "SELECT assign_chat_to_operator(NULL)",
        InvalidArgs::None,
        "22004",
    ),
    (
        "invalid: release_idle_assignments -1s",
        "SELECT * FROM release_idle_assignments('-1 second')",
        InvalidArgs::None,
        "22023",
    ),
    (
        "invalid: create_operator capacity 0",
        "SELECT create_operator('stress-invalid', 0)",
        InvalidArgs::None,
        "22023",
    ),
    (
        "invalid: detect_stuck_chats 0 hours",
        "SELECT * FROM detect_stuck_chats(0)",
        InvalidArgs::None,
        "22023",
    ),
    (
        "invalid: transfer_chat without a target",
        "SELECT transfer_chat($1)",
        InvalidArgs::Chat,
        "22023",
    ),
    (
        "invalid: transfer_chat with two targets",
        "SELECT transfer_chat($1, $2, $3)",
        InvalidArgs::ChatOperatorTeam,
        "22023",
    ),
    (
        "invalid: set_operator_status busy",
        "SELECT set_operator_status($1, 'busy')",
        InvalidArgs::Operator,
        "22023",
    ),
    (
        "invalid: create_team taken name",
        "SELECT create_team('stress team 0')",
        InvalidArgs::None,
        "23505",
    ),
];

/// Release reasons the extension may write, plus the ones this test passes.
const ADMIN_REASON: &str = "stress_admin_release";
/// The reason of transfers to a team. A chat's team changes only by such a transfer, so
/// the final checks find those changes in the events by this reason.
const TEAM_TRANSFER_REASON: &str = "stress_transfer_team";
/// The reason of half the transfers to an operator (the others pass the default).
const OPERATOR_TRANSFER_REASON: &str = "stress_transfer_operator";
const KNOWN_REASONS: &str = "'real_user_message','operator_replied','manual_unassign','idle_timeout','operator_inactive','completed','operator_offline','removed_from_team','transfer','stress_admin_release','stress_transfer_team','stress_transfer_operator'";

/// The teams of the set-up and their routings: one team whose chats wait for operators to
/// ask, two whose chats are given away inside the calls. Which operator a routing picks is
/// pg_regress's to check (routing); this test checks who may be given a chat, and that
/// pushing and pulling never deadlock, break an invariant or give a chat twice.
const ROUTINGS: [&str; 3] = ["manual", "least_loaded", "round_robin"];

/// `chat_assign.default_routing` (how chats without a team reach operators) for the whole
/// run: set on the database (ALTER DATABASE), as an app configures it, so that the set-up,
/// the monitor and most connections agree. Connection `i` overrides it for its session with
/// `SESSION_ROUTINGS[i % 4]` when that is not `None`. The setting is per session by design
/// (USERSET), so sessions that disagree must keep every promise too: a `manual` session
/// neither pushes chats without a team nor pulls them while others do, and all of them meet
/// on the same queue. No check depends on which routing a call ran with.
const DATABASE_ROUTING: &str = "least_loaded";
const SESSION_ROUTINGS: [Option<&str>; 4] = [None, Some("round_robin"), Some("manual"), None];

/// Reads back, inside the calling transaction, what it wrote: each change event as
/// `e|id|old_state|new_state|operator|chat|team|held|reason` (empty for NULL), in id order,
/// where `held`, for an event that gives the chat to an operator, is how many chats that
/// operator holds in a snapshot taken now; then each operator row it updated, as
/// `o|id|status|is_active` (its presence and activity as the call leaves them: every call
/// that changes them, or gives the operator a chat, updates the row). The first element is
/// the event sequence's last value, read before the events.
///
/// Why it is a function: the statement that makes a call cannot read the call's writes
/// itself (its snapshot was taken before the call ran), but a query inside a VOLATILE
/// PL/pgSQL function takes a fresh snapshot, which sees them. Every call is made as
/// `SELECT f.r, clock_timestamp(), stress_check.call_events($n) FROM fn(...) AS f(r)`
/// ([`recorded_call`]): the function in FROM has run to completion before the row is formed,
/// and the row is formed before the transaction commits, so what it reads is exactly the
/// call's (a row's `xmin` is the transaction's id, or the id of one of the subtransactions a
/// push or a pull runs in: a visible row whose writer is still in progress can only be this
/// transaction's own, see `stress_check.mine`) and every lock the call took is still held
/// (so no one else has updated those operator rows since).
///
/// The events are found from below: `p_after` is the sequence's last value as the
/// connection's previous recorded call read it. Ids are taken in time order (the sequence
/// has no cache, src/store/events.rs), and this call started after that reading, so every id
/// it took is above it: only the ids taken since are read, a few hundred at most.
/// (`pg_locks`, where a transaction publishes its own floor, would do too, but reading it
/// takes every lock-table partition lock: at every call, that costs most of the throughput.)
const CALL_EVENTS_SQL: &str = r#"
CREATE SCHEMA stress_check;
-- Whether a visible row was written by the current transaction or one of its committed
-- subtransactions: its writer is still in progress (another transaction's uncommitted rows
-- are not visible). The 32-bit xmin takes the current epoch (the run is far from a wrap).
CREATE FUNCTION stress_check.mine(p_xmin xid, p_top xid) RETURNS boolean
LANGUAGE sql STABLE AS $m$
  SELECT p_xmin = p_top
      OR pg_catalog.pg_xact_status(
           (((pg_catalog.pg_current_xact_id()::text::bigint >> 32) << 32)
            | p_xmin::text::bigint)::text::xid8) = 'in progress'
$m$;
CREATE FUNCTION stress_check.call_events(p_after bigint) RETURNS text[]
LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET jit = off AS $f$
DECLARE
  v_newest bigint := coalesce(pg_catalog.pg_sequence_last_value('public.chat_events_id_seq'), 0);
  v_xid xid := pg_catalog.pg_current_xact_id_if_assigned()::xid;
BEGIN
  IF v_xid IS NULL THEN
    RETURN ARRAY[v_newest::text];
  END IF;
  RETURN ARRAY[v_newest::text] || (
    SELECT coalesce(array_agg(concat_ws('|', 'e', e.id, coalesce(e.old_state::text, ''), e.new_state,
                                        coalesce(e.operator_id::text, ''), e.chat_id,
                                        coalesce(e.team_id::text, ''),
                                        coalesce(CASE WHEN e.new_state = 'assigned' THEN
                                                   (SELECT count(*) FROM public.chats c
                                                     WHERE c.assigned_operator_id = e.operator_id
                                                       AND c.chat_state = 'assigned')::text END, ''),
                                        e.reason) ORDER BY e.id), '{}')
    FROM public.chat_events e
    WHERE e.id > p_after AND e.id <= v_newest AND stress_check.mine(e.xmin, v_xid))
  || (
    SELECT coalesce(array_agg(concat_ws('|', 'o', o.id, o.status, o.is_active) ORDER BY o.id), '{}')
    FROM public.operators o WHERE stress_check.mine(o.xmin, v_xid));
END $f$;
"#;

/// Kinds of fatal outcome; each is one check (must stay 0).
const FATAL_KINDS: &[&str] = &[
    "40P01 deadlock_detected",
    "XX000 internal_error",
    "23505 unique_violation",
    "40001 serialization_failure",
    "SQLSTATE not in the documented error table (docs/api.md)",
    "documented argument error (22004/22023) on valid arguments",
    "invalid arguments not refused with the documented SQLSTATE",
    "non-database error (connection, protocol, decoding)",
];

/// Sanity checks the workers apply to what the monitoring functions return.
const SANITY_KINDS: &[&str] = &[
    "get_assignment_queue_status: one row, busy+available=active, oldest>=avg",
    "detect_stuck_chats: only waiting/assigned rows, holder consistent, oldest first",
    "chat_state_summary: four states in enum order, counts >= 0",
    "operator_assignment_stats: active<=capacity, total=released+active, inactive holds 0",
    "release_idle_assignments: released only chats idle longer than the threshold",
    "release_idle_assignments: NULL/default threshold (5 min) released nothing",
    "no call took longer than 10 s",
    "get_queue_position: one row, position >= 1 and ahead = position - 1, estimate >= 0, or all NULL; never an error",
    "team_queue_status: the queue without a team first, then one row per team, available <= online <= eligible",
    "set_operator_status: returned a presence (online, away or offline)",
];

/// The causes of `55000`, told apart by the message (the SQLSTATE is the same for all).
fn refusal_cause(message: &str) -> &'static str {
    if message.contains("not online") {
        "operator not online"
    } else if message.contains("not a member") {
        "operator not a member of the chat's team"
    } else if message.contains("already has an active assignment") {
        "operator at capacity"
    } else if message.contains("is not active") {
        "operator inactive"
    } else if message.contains("is not assigned to chat") {
        "not the chat's operator"
    } else {
        "other"
    }
}

// ------------------------------------------------------------------------------ the invariants

/// What this workload adds to the contract's invariants (which are tests/invariants.sql, the
/// one definition every test layer runs: [`SHARED_INVARIANTS`]), as violation counts in one
/// statement, so that the monitor sees one snapshot.
const INVARIANTS_SQL: &str = r#"
SELECT
  (SELECT count(*) FROM chats c
    JOIN (SELECT DISTINCT ON (e.chat_id) e.chat_id, e.new_state FROM chat_events e
          ORDER BY e.chat_id, e.id DESC) AS last_event ON last_event.chat_id = c.id
    WHERE last_event.new_state <> c.chat_state)
    AS "a chat's newest event names its current state",
  (SELECT count(*) FROM chats c
    JOIN (SELECT DISTINCT ON (e.chat_id) e.chat_id, e.team_id FROM chat_events e
          ORDER BY e.chat_id, e.id DESC) AS last_event ON last_event.chat_id = c.id
    WHERE last_event.team_id IS DISTINCT FROM c.team_id)
    AS "a chat's newest event names its current team",
  (SELECT count(*) FROM chat_assignments
    WHERE released_at IS NULL AND last_activity_at < assigned_at)
    AS "an open assignment's heartbeat is not older than the assignment",
  (SELECT count(*) FROM operators o
    WHERE NOT o.is_active
      AND EXISTS (SELECT 1 FROM chat_assignments a
                   WHERE a.operator_id = o.id AND a.released_at IS NULL))
    AS "inactive operator holds no open assignment",
  (SELECT count(*) FROM chats
    WHERE chat_state = 'assigned' AND last_operator_id IS DISTINCT FROM assigned_operator_id)
    AS "assigned chat: last_operator_id = assigned_operator_id",
  (SELECT count(*) FROM chat_assignments
    WHERE (released_at IS NULL) <> (release_reason IS NULL)
       OR release_reason NOT IN (__REASONS__)
       OR released_at < assigned_at)
    AS "released assignments have a known reason and time"
"#;

/// The contract's invariants and the monitoring's agreement with the tables, as every test
/// layer checks them: one row per violated check ("name: count").
const SHARED_INVARIANTS: &str = include_str!("../../invariants.sql");

/// The shared invariants as (name, violations) pairs, violated ones only.
async fn shared_violations(client: &Client) -> Result<Vec<(String, i64)>, PgError> {
    let sql = SHARED_INVARIANTS.trim_end().trim_end_matches(';');
    let mut out = Vec::new();
    for row in client.query(sql, &[]).await? {
        let text: String = row.try_get(0)?;
        let (name, n) = text.rsplit_once(": ").unwrap_or((text.as_str(), "1"));
        out.push((name.to_string(), n.parse().unwrap_or(1)));
    }
    Ok(out)
}

fn invariants_sql() -> String {
    INVARIANTS_SQL.replace("__REASONS__", KNOWN_REASONS)
}

async fn invariant_counts(client: &Client, sql: &str) -> Result<Vec<(String, i64)>, PgError> {
    let row = client.query_one(sql, &[]).await?;
    let mut out = Vec::new();
    for (i, col) in row.columns().iter().enumerate() {
        out.push((col.name().to_string(), row.try_get::<_, i64>(i)?));
    }
    Ok(out)
}

// ------------------------------------------------------------------------------ bookkeeping

#[derive(Default, Clone)]
struct FnStats {
    calls: u64,
    ok: u64,
    /// assign: a chat returned; boolean functions: true; set-returning: rows returned.
    hits: u64,
    codes: BTreeMap<String, u64>,
    total_us: u128,
    max_us: u128,
}

/// A message some call reported as stored.
struct StoredMessage {
    id: i64,
    chat_id: Uuid,
    content: String,
    sender: &'static str,
    operator_id: Option<Uuid>,
}

/// A chat start_chat reported as created, with its first message and the team it was
/// started in.
struct StartedChat {
    chat_id: Uuid,
    real_user_id: Uuid,
    content: String,
    team: Option<Uuid>,
}

/// A successful call that can write change events: the function, and what of its arguments
/// and its result the checks need.
#[derive(Clone, Debug)]
enum CallKind {
    /// start_chat: the chat it returned and the team it was started in.
    StartChat {
        chat: Uuid,
        team: Option<Uuid>,
    },
    UserMessage {
        chat: Uuid,
    },
    /// operator_send_message (a first reply or a follow-up).
    Reply {
        chat: Uuid,
        operator: Uuid,
    },
    /// assign_chat_to_operator: the chat it returned, if any.
    Assign {
        operator: Uuid,
        got: Option<Uuid>,
    },
    /// release_and_reassign_chat and whether it returned true.
    Release {
        chat: Uuid,
        released: bool,
    },
    /// release_idle_assignments: the (chat, operator) rows it returned.
    Idle {
        released: Vec<(Uuid, Uuid)>,
    },
    Complete {
        chat: Uuid,
        completed: bool,
    },
    /// set_operator_active: the value set and whether it returned "changed".
    Active {
        operator: Uuid,
        active: bool,
        changed: bool,
    },
    /// set_operator_status: the presence set and the one it returned as the previous.
    Status {
        operator: Uuid,
        new: &'static str,
        previous: String,
    },
    /// add_team_member / remove_team_member: the team and whether it returned true.
    Join {
        operator: Uuid,
        team: Uuid,
        changed: bool,
    },
    Leave {
        operator: Uuid,
        team: Uuid,
        changed: bool,
    },
    /// transfer_chat to an operator / to a team, and whether it moved the chat.
    ToOperator {
        chat: Uuid,
        operator: Uuid,
        moved: bool,
    },
    ToTeam {
        chat: Uuid,
        team: Uuid,
        moved: bool,
    },
}

impl CallKind {
    fn label(&self) -> &'static str {
        match self {
            CallKind::StartChat { .. } => "start_chat",
            CallKind::UserMessage { .. } => "real_user_send_message",
            CallKind::Reply { .. } => "operator_send_message",
            CallKind::Assign { .. } => "assign_chat_to_operator",
            CallKind::Release { .. } => "release_and_reassign_chat",
            CallKind::Idle { .. } => "release_idle_assignments",
            CallKind::Complete { .. } => "complete_chat",
            CallKind::Active { .. } => "set_operator_active",
            CallKind::Status { .. } => "set_operator_status",
            CallKind::Join { .. } => "add_team_member",
            CallKind::Leave { .. } => "remove_team_member",
            CallKind::ToOperator { .. } => "transfer_chat (to an operator)",
            CallKind::ToTeam { .. } => "transfer_chat (to a team)",
        }
    }

    /// The operator whose row lock the call takes before anything else (step 1 of the lock
    /// order): the calls that change what an operator may be given, or give it a chat it
    /// asked for or is transferred.
    fn locked_operator(&self) -> Option<Uuid> {
        match self {
            CallKind::Assign { operator, .. }
            | CallKind::Active { operator, .. }
            | CallKind::Status { operator, .. }
            | CallKind::Join { operator, .. }
            | CallKind::Leave { operator, .. }
            | CallKind::ToOperator { operator, .. } => Some(*operator),
            _ => None,
        }
    }
}

/// A change event a call's own transaction wrote, read back inside that transaction
/// ([`CALL_EVENTS_SQL`]).
#[derive(Clone, Debug, PartialEq)]
struct CallEvent {
    id: i64,
    old: Option<String>,
    new: String,
    operator: Option<Uuid>,
    chat: Uuid,
    team: Option<Uuid>,
    /// For an event that gives the chat to an operator: how many chats that operator holds,
    /// read after the call while the call still holds the operator's row lock.
    held: Option<i64>,
    reason: String,
}

impl CallEvent {
    /// One `e|...` element of [`CALL_EVENTS_SQL`]'s answer.
    fn parse(text: &str) -> Option<CallEvent> {
        let mut f = text.strip_prefix("e|")?.splitn(8, '|');
        let id = f.next()?.parse().ok()?;
        let old = Some(f.next()?)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let new = f.next()?.to_string();
        let uuid = |s: &str| -> Option<Option<Uuid>> {
            if s.is_empty() {
                Some(None)
            } else {
                Uuid::parse_str(s).ok().map(Some)
            }
        };
        let operator = uuid(f.next()?)?;
        let chat = uuid(f.next()?)??;
        let team = uuid(f.next()?)?;
        let held = match f.next()? {
            "" => None,
            n => Some(n.parse().ok()?),
        };
        let reason = f.next()?.to_string();
        Some(CallEvent {
            id,
            old,
            new,
            operator,
            chat,
            team,
            held,
            reason,
        })
    }

    /// An event that gives the chat to `operator` (an assignment, a transfer to an operator
    /// or an automatic assignment).
    fn gives(&self) -> bool {
        self.new == "assigned"
    }

    fn is_auto(&self) -> bool {
        self.reason == "auto_assigned"
    }

    /// An event that takes the chat from the operator who held it (`operator`).
    fn releases(&self) -> bool {
        self.old.as_deref() == Some("assigned") && self.new != "assigned"
    }
}

/// An operator row a call updated, as the call left it.
#[derive(Clone, Debug, PartialEq)]
struct OpRow {
    operator: Uuid,
    status: String,
    active: bool,
}

impl OpRow {
    /// One `o|...` element of [`CALL_EVENTS_SQL`]'s answer.
    fn parse(text: &str) -> Option<OpRow> {
        let mut f = text.strip_prefix("o|")?.splitn(3, '|');
        Some(OpRow {
            operator: Uuid::parse_str(f.next()?).ok()?,
            status: f.next()?.to_string(),
            active: match f.next()? {
                "t" | "true" => true,
                "f" | "false" => false,
                _ => return None,
            },
        })
    }
}

/// One successful call: what it was, its number (unique in the run), `clock_timestamp()` read
/// by the same statement after the function returned (inside the call's transaction, so
/// while it still holds every row lock it took), the events it wrote, in id order, and the
/// operator rows it updated.
#[derive(Clone, Debug)]
struct CallRecord {
    id: u64,
    at: SystemTime,
    kind: CallKind,
    events: Vec<CallEvent>,
    rows: Vec<OpRow>,
}

enum Expect {
    Valid,
    Code(&'static str),
}

#[derive(Default)]
struct Report {
    stats: BTreeMap<&'static str, FnStats>,
    messages: Vec<StoredMessage>,
    started: Vec<StartedChat>,
    fatal: BTreeMap<&'static str, u64>,
    fatal_examples: Vec<String>,
    sanity: BTreeMap<&'static str, u64>,
    sanity_examples: Vec<String>,
    assign_returned_chat: u64,
    reassign_true: u64,
    idle_released_rows: u64,
    operators_created: u64,
    transfers_to_operator: u64,
    transfers_to_team: u64,
    calls: Vec<CallRecord>,
    /// `55000` refusals by function and cause ([`refusal_cause`]).
    refusals: BTreeMap<(&'static str, &'static str), u64>,
    lost_connection: bool,
}

fn describe(e: &PgError) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s += &format!(" | DETAIL: {d}");
            }
            if let Some(h) = db.hint() {
                s += &format!(" | HINT: {h}");
            }
            if let Some(w) = db.where_() {
                s += &format!(" | WHERE: {}", w.replace('\n', " / "));
            }
            s
        }
        None => format!("non-database error: {e}"),
    }
}

impl Report {
    fn fatal(&mut self, kind: &'static str, example: String) {
        *self.fatal.entry(kind).or_default() += 1;
        if self.fatal_examples.len() < 20 {
            self.fatal_examples.push(example);
        }
    }

    fn sanity(&mut self, kind: &'static str, example: String) {
        *self.sanity.entry(kind).or_default() += 1;
        if self.sanity_examples.len() < 20 {
            self.sanity_examples.push(example);
        }
    }

    /// Records one call's outcome; returns its value on success.
    fn record<T>(
        &mut self,
        label: &'static str,
        expect: Expect,
        t0: Instant,
        res: Result<T, PgError>,
    ) -> Option<T> {
        let us = t0.elapsed().as_micros();
        if us > 10_000_000 {
            self.sanity(
                SANITY_KINDS[6],
                format!("{label} took {:.1} s", us as f64 / 1e6),
            );
        }
        let s = self.stats.entry(label).or_default();
        s.calls += 1;
        s.total_us += us;
        s.max_us = s.max_us.max(us);
        match res {
            Ok(v) => {
                s.ok += 1;
                if let Expect::Code(want) = expect {
                    self.fatal(
                        FATAL_KINDS[6],
                        format!("{label}: succeeded, expected SQLSTATE {want}"),
                    );
                }
                Some(v)
            }
            Err(e) => {
                let code = e.code().map(|c| c.code().to_string());
                *s.codes
                    .entry(code.clone().unwrap_or_else(|| "non-db".into()))
                    .or_default() += 1;
                let text = format!("{label}: {}", describe(&e));
                match (code.as_deref(), expect) {
                    (None, _) => {
                        self.fatal(FATAL_KINDS[7], text);
                        // A closed connection cannot go on.
                        self.lost_connection = true;
                    }
                    (Some(c), Expect::Code(want)) => {
                        if c != want {
                            self.fatal(FATAL_KINDS[6], format!("{text} (expected {want})"));
                        }
                    }
                    (Some("55000"), Expect::Valid) => {
                        let cause = e
                            .as_db_error()
                            .map_or("other", |db| refusal_cause(db.message()));
                        *self.refusals.entry((label, cause)).or_default() += 1;
                    }
                    (Some("P0002"), Expect::Valid) => {}
                    (Some("22004" | "22023"), Expect::Valid) => self.fatal(FATAL_KINDS[5], text),
                    (Some("40P01"), _) => self.fatal(FATAL_KINDS[0], text),
                    (Some("XX000"), _) => self.fatal(FATAL_KINDS[1], text),
                    (Some("23505"), _) => self.fatal(FATAL_KINDS[2], text),
                    (Some("40001"), _) => self.fatal(FATAL_KINDS[3], text),
                    (Some(_), _) => self.fatal(FATAL_KINDS[4], text),
                }
                None
            }
        }
    }

    fn hit(&mut self, label: &'static str, n: u64) {
        self.stats.entry(label).or_default().hits += n;
    }

    /// The events a call read back ([`CALL_EVENTS_SQL`]); one it cannot read is a failure.
    /// The first element moves the connection's lower bound (`after`) for its next call.
    fn parse_events(
        &mut self,
        label: &'static str,
        texts: &[String],
        after: &mut i64,
    ) -> (Vec<CallEvent>, Vec<OpRow>) {
        match texts.first().map(|t| t.parse::<i64>()) {
            Some(Ok(newest)) => *after = newest.max(*after),
            _ => self.fatal(
                FATAL_KINDS[7],
                format!("{label}: no sequence reading in {texts:?}"),
            ),
        }
        let mut events = Vec::with_capacity(texts.len());
        let mut rows = Vec::new();
        for text in texts.iter().skip(1) {
            if let Some(e) = CallEvent::parse(text) {
                events.push(e);
            } else if let Some(r) = OpRow::parse(text) {
                rows.push(r);
            } else {
                self.fatal(
                    FATAL_KINDS[7],
                    format!("{label}: unreadable element {text:?}"),
                );
            }
        }
        (events, rows)
    }

    fn merge(&mut self, other: Report) {
        for (k, v) in other.stats {
            let s = self.stats.entry(k).or_default();
            s.calls += v.calls;
            s.ok += v.ok;
            s.hits += v.hits;
            s.total_us += v.total_us;
            s.max_us = s.max_us.max(v.max_us);
            for (c, n) in v.codes {
                *s.codes.entry(c).or_default() += n;
            }
        }
        self.messages.extend(other.messages);
        self.started.extend(other.started);
        for (k, n) in other.fatal {
            *self.fatal.entry(k).or_default() += n;
        }
        for e in other.fatal_examples {
            if self.fatal_examples.len() < 20 {
                self.fatal_examples.push(e);
            }
        }
        for (k, n) in other.sanity {
            *self.sanity.entry(k).or_default() += n;
        }
        for e in other.sanity_examples {
            if self.sanity_examples.len() < 20 {
                self.sanity_examples.push(e);
            }
        }
        self.assign_returned_chat += other.assign_returned_chat;
        self.reassign_true += other.reassign_true;
        self.idle_released_rows += other.idle_released_rows;
        self.operators_created += other.operators_created;
        self.transfers_to_operator += other.transfers_to_operator;
        self.transfers_to_team += other.transfers_to_team;
        self.calls.extend(other.calls);
        for (k, n) in other.refusals {
            *self.refusals.entry(k).or_default() += n;
        }
        self.lost_connection |= other.lost_connection;
    }
}

// ------------------------------------------------------------------------------ connections

async fn connect(dsn: &str, name: &str) -> Result<Client, String> {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .map_err(|e| format!("connect ({dsn}): {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(&format!(
            "SET application_name = '{name}'; SET statement_timeout = '60s'"
        ))
        .await
        .map_err(|e| format!("session setup: {e}"))?;
    Ok(client)
}

/// How every call that can write a change event is made: the function in FROM, so that its
/// result is complete (the call has run) before the row is formed; then, in the same
/// statement and so the same transaction, which still holds every row lock the call took,
/// `clock_timestamp()` and the events the call wrote ([`CALL_EVENTS_SQL`]), whose lower
/// bound is the statement's last parameter (after the call's own: see [`call!`]).
/// [`replay_operators`] orders each operator's calls by that reading.
fn recorded_call(call: &str) -> String {
    format!(
        "SELECT f.r, clock_timestamp(), stress_check.call_events(${}) FROM {call} AS f(r)",
        params_in(call) + 1
    )
}

/// [`recorded_call`] for `release_idle_assignments`, which returns rows (the reading and the
/// events repeat on each; with no row it released nothing, so wrote no event).
fn recorded_idle(args: &str) -> String {
    format!(
        "SELECT f.chat_id, f.operator_id, f.idle_seconds, clock_timestamp(), \
                stress_check.call_events(${}) \
         FROM release_idle_assignments({args}) AS f",
        params_in(args) + 1
    )
}

/// The highest `$n` in a piece of SQL (0: none).
fn params_in(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

struct Stmts {
    start_chat: Statement,
    start_chat_team: Statement,
    start_chat_named: Statement,
    user_msg: Statement,
    op_msg: Statement,
    assign: Statement,
    release_default: Statement,
    release_reason: Statement,
    touch: Statement,
    idle: Vec<(Statement, Option<f64>)>,
    complete: Statement,
    create_op: Statement,
    set_active: Statement,
    create_team: Statement,
    create_team_default: Statement,
    set_routing: Statement,
    add_member: Statement,
    remove_member: Statement,
    set_status: Statement,
    transfer_to_operator: Statement,
    transfer_to_operator_reason: Statement,
    transfer_to_team: Statement,
    set_priority: Statement,
    queue_position: Statement,
    queue_status: Statement,
    stuck: Vec<Statement>,
    summary: Statement,
    op_stats: Statement,
    team_status: Statement,
    invalid: Vec<Statement>,
}

impl Stmts {
    async fn prepare(c: &Client) -> Result<Self, PgError> {
        let mut idle = Vec::new();
        for (args, threshold) in [
            ("p_idle_after => '50 milliseconds'", Some(0.05)),
            ("'200 milliseconds'::interval", Some(0.2)),
            ("NULL", None),
            ("", None),
        ] {
            idle.push((c.prepare(&recorded_idle(args)).await?, threshold));
        }
        let mut stuck = Vec::new();
        for sql in [
            "detect_stuck_chats()",
            "detect_stuck_chats(0.0001)",
            "detect_stuck_chats(p_hours => 0.001)",
        ] {
            stuck.push(
                c.prepare(&format!(
                    "SELECT chat_id, chat_state, real_user_id, state_changed_at, \
                            assigned_operator_id, last_operator_id, operator_name \
                     FROM {sql}"
                ))
                .await?,
            );
        }
        let mut invalid = Vec::new();
        for (_, sql, _, _) in INVALID {
            invalid.push(c.prepare(sql).await?);
        }
        Ok(Stmts {
            start_chat: c.prepare(&recorded_call("start_chat($1, $2)")).await?,
            start_chat_team: c
                .prepare(&recorded_call("start_chat($1, $2, NULL, $3, $4)"))
                .await?,
            start_chat_named: c
                .prepare(&recorded_call(
                    "start_chat(p_real_user_id => $1, p_content => $2, \
                                p_team_id => $3, p_priority => $4)",
                ))
                .await?,
            user_msg: c
                .prepare(&recorded_call(
                    "real_user_send_message(p_chat_id => $1, p_content => $2)",
                ))
                .await?,
            op_msg: c
                .prepare(&recorded_call("operator_send_message($1, $2, $3)"))
                .await?,
            assign: c
                .prepare(&recorded_call("assign_chat_to_operator($1)"))
                .await?,
            release_default: c
                .prepare(&recorded_call("release_and_reassign_chat($1)"))
                .await?,
            release_reason: c
                .prepare(&recorded_call(
                    "release_and_reassign_chat(p_chat_id => $1, p_reason => $2)",
                ))
                .await?,
            touch: c
                .prepare("SELECT touch_operator_activity(p_operator_id => $1, p_chat_id => $2)")
                .await?,
            idle,
            complete: c.prepare(&recorded_call("complete_chat($1)")).await?,
            create_op: c.prepare("SELECT create_operator($1, $2)").await?,
            set_active: c
                .prepare(&recorded_call("set_operator_active($1, $2)"))
                .await?,
            create_team: c.prepare("SELECT create_team($1, $2)").await?,
            create_team_default: c.prepare("SELECT create_team($1)").await?,
            set_routing: c.prepare("SELECT set_team_routing($1, $2)").await?,
            add_member: c
                .prepare(&recorded_call(
                    "add_team_member(p_team_id => $1, p_operator_id => $2)",
                ))
                .await?,
            remove_member: c
                .prepare(&recorded_call("remove_team_member($1, $2)"))
                .await?,
            set_status: c
                .prepare(&recorded_call("set_operator_status($1, $2)"))
                .await?,
            transfer_to_operator: c.prepare(&recorded_call("transfer_chat($1, $2)")).await?,
            transfer_to_operator_reason: c
                .prepare(&recorded_call(
                    "transfer_chat(p_chat_id => $1, p_to_operator_id => $2, p_reason => $3)",
                ))
                .await?,
            transfer_to_team: c
                .prepare(&recorded_call(
                    "transfer_chat(p_chat_id => $1, p_to_team_id => $2, p_reason => $3)",
                ))
                .await?,
            set_priority: c.prepare("SELECT set_chat_priority($1, $2)").await?,
            queue_position: c
                .prepare(
                    "SELECT queue_position, waiting_ahead, estimated_wait_seconds \
                     FROM get_queue_position($1)",
                )
                .await?,
            queue_status: c
                .prepare(
                    "SELECT waiting_count, assigned_count, waiting_reply_count, \
                            oldest_waiting_seconds, avg_waiting_seconds, active_operators, \
                            busy_operators, available_operators \
                     FROM get_assignment_queue_status()",
                )
                .await?,
            stuck,
            summary: c
                .prepare(
                    "SELECT s.chat_state::text AS state, s.chat_count, \
                            s.oldest_state_changed_at, s.avg_seconds_in_state::float8 AS avg \
                     FROM chat_state_summary s",
                )
                .await?,
            op_stats: c
                .prepare(
                    "SELECT operator_id, is_active, max_concurrent_chats, total_assignments, \
                            released_assignments, active_assignments, \
                            avg_handling_seconds::float8 AS avg \
                     FROM operator_assignment_stats",
                )
                .await?,
            team_status: c
                .prepare(
                    "SELECT team_id, waiting, oldest_waiting_seconds, assigned, eligible, \
                            online, available \
                     FROM team_queue_status",
                )
                .await?,
            invalid,
        })
    }
}

/// Ids every connection may use: operators and chats created so far, and the chats
/// assigned most recently (by any connection), which users, admins and the idle job then
/// race on.
struct Shared {
    operators: RwLock<Vec<Uuid>>,
    chats: RwLock<Vec<Uuid>>,
    teams: RwLock<Vec<Uuid>>,
    hot: Mutex<VecDeque<Uuid>>,
}

// ------------------------------------------------------------------------------ a worker

struct Worker {
    id: usize,
    client: Client,
    st: Stmts,
    rng: StdRng,
    shared: Arc<Shared>,
    rep: Report,
    seq: u64,
    /// (operator, chat) pairs this connection was given and has not answered yet.
    held: Vec<(Uuid, Uuid)>,
    /// Chats recently answered by an operator: the users write back to these.
    replied: Vec<Uuid>,
    /// The event sequence's last value as this connection's previous recorded call read it:
    /// every event a later call writes has a higher id ([`CALL_EVENTS_SQL`]).
    events_after: i64,
}

/// One call returning one value in column 0.
macro_rules! one {
    ($w:ident, $label:expr, $stmt:expr, $ty:ty, [$($p:expr),*]) => {{
        let t0 = Instant::now();
        let res = $w.client.query_one($stmt, &[$(&$p),*]).await
            .and_then(|r| r.try_get::<_, $ty>(0));
        $w.rep.record($label, Expect::Valid, t0, res)
    }};
}

/// One call made through [`recorded_call`]: its value, the clock reading and the events its
/// transaction wrote (as the helper spells them).
macro_rules! call {
    ($w:ident, $label:expr, $stmt:expr, $ty:ty, [$($p:expr),*]) => {{
        let t0 = Instant::now();
        let after = $w.events_after;
        let res = $w.client.query_one($stmt, &[$(&$p,)* &after]).await.and_then(|r| {
            Ok((
                r.try_get::<_, $ty>(0)?,
                r.try_get::<_, SystemTime>(1)?,
                r.try_get::<_, Vec<String>>(2)?,
            ))
        });
        $w.rep.record($label, Expect::Valid, t0, res)
    }};
}

/// One call returning rows.
macro_rules! rows {
    ($w:ident, $label:expr, $stmt:expr, [$($p:expr),*]) => {{
        let t0 = Instant::now();
        let res = $w.client.query($stmt, &[$(&$p),*]).await;
        $w.rep.record($label, Expect::Valid, t0, res)
    }};
}

impl Worker {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn pick_operator(&mut self) -> Uuid {
        let ops = self.shared.operators.read().unwrap();
        // A few "hot" operators get many calls from several connections at once.
        if self.rng.random_bool(0.2) {
            ops[self.rng.random_range(0..3)]
        } else {
            *ops.choose(&mut self.rng).unwrap()
        }
    }

    /// Mostly one of the set-up's teams, which have members; sometimes any, including the
    /// teams made during the run, which start without.
    fn pick_team(&mut self) -> Uuid {
        let teams = self.shared.teams.read().unwrap();
        if self.rng.random_bool(0.8) {
            teams[self.rng.random_range(0..ROUTINGS.len())]
        } else {
            *teams.choose(&mut self.rng).unwrap()
        }
    }

    /// Keeps a successful call's record. The chats it gave away by itself join those the
    /// workload acts on: their operators answer some (a reply pulls the next chat), and users,
    /// admins and the idle job race on them.
    fn recorded(&mut self, at: SystemTime, kind: CallKind, texts: Vec<String>) {
        let (events, rows) = self
            .rep
            .parse_events(kind.label(), &texts, &mut self.events_after);
        for e in &events {
            if let (true, Some(op)) = (e.is_auto(), e.operator) {
                self.heat(e.chat);
                if self.rng.random_bool(0.5) {
                    self.hold(op, e.chat);
                }
            }
        }
        let id = ((self.id as u64 + 1) << 40) | self.next_seq();
        self.rep.calls.push(CallRecord {
            id,
            at,
            kind,
            events,
            rows,
        });
    }

    /// A chat that was just given to an operator: likely still assigned for a while.
    fn heat(&mut self, chat: Uuid) {
        let mut hot = self.shared.hot.lock().unwrap();
        hot.push_back(chat);
        if hot.len() > 64 {
            hot.pop_front();
        }
    }

    /// A chat this connection's operator will answer later.
    fn hold(&mut self, op: Uuid, chat: Uuid) {
        self.held.push((op, chat));
        if self.held.len() > 8 {
            self.held.remove(0);
        }
    }

    fn pick_chat(&mut self) -> Uuid {
        *self
            .shared
            .chats
            .read()
            .unwrap()
            .choose(&mut self.rng)
            .unwrap()
    }

    /// With probability `p` a chat some connection was just given (likely still assigned),
    /// else any chat.
    fn pick_hot_chat(&mut self, p: f64) -> Uuid {
        if self.rng.random_bool(p) {
            let hot = self.shared.hot.lock().unwrap();
            if !hot.is_empty() {
                return hot[self.rng.random_range(0..hot.len())];
            }
        }
        self.pick_chat()
    }

    fn take_held(&mut self) -> Option<(Uuid, Uuid)> {
        if self.held.is_empty() {
            None
        } else {
            let i = self.rng.random_range(0..self.held.len());
            Some(self.held.swap_remove(i))
        }
    }

    fn content(&mut self, who: &str) -> String {
        let n = self.next_seq();
        let flavour = [
            "hello",
            "any news?",
            "thanks — ¡gracias! ✓",
            "line one\nline two",
            "ok",
        ];
        let f = flavour[(n as usize) % flavour.len()];
        format!("w{}#{} {who}: {f}", self.id, n)
    }

    async fn run(mut self, deadline: Instant) -> Report {
        while Instant::now() < deadline && !self.rep.lost_connection {
            // Weights per 10,000 iterations.
            let roll = self.rng.random_range(0..10_000u32);
            match roll {
                0..=149 => self.start_chat().await,          // 1.5 %
                150..=1899 => self.user_message().await,     // 17.5 %
                1900..=4299 => self.assign_flow().await,     // 24 %
                4300..=5099 => self.reply_to_held().await,   // 8 %
                5100..=5499 => self.reply_random().await,    // 4 %
                5500..=6099 => self.release().await,         // 6 %
                6100..=6799 => self.touch().await,           // 7 %
                6800..=7299 => self.idle_release().await,    // 5 %
                7300..=7349 => self.complete().await,        // 0.5 %
                7350..=7351 => self.create_operator().await, // 0.02 %
                7352..=7354 => self.create_team().await,     // 0.03 %
                7355..=7362 => self.set_routing().await,     // 0.08 %
                7363..=7599 => self.set_active().await,      // 2.4 %
                7600..=7749 => self.set_status().await,      // 1.5 %
                7750..=7929 => self.transfer().await,        // 1.8 %
                7930..=7999 => self.membership().await,      // 0.7 %
                8000..=8059 => self.set_priority().await,    // 0.6 %
                8060..=8199 => self.queue_position().await,  // 1.4 %
                8200..=8499 => self.queue_status().await,    // 3 %
                8500..=8799 => self.stuck().await,           // 3 %
                8800..=9099 => self.summary().await,         // 3 %
                9100..=9299 => self.team_status().await,     // 2 %
                9300..=9599 => self.op_stats().await,        // 3 %
                9600..=9639 => self.invalid().await,         // 0.4 %
                _ => self.user_message().await,              // 3.6 %
            }
        }
        self.rep
    }

    /// Of a team (most chats) or none, usually with priority 0; by each of the signatures.
    async fn start_chat(&mut self) {
        let user = Uuid::new_v4();
        let content = self.content("first message");
        let team = self.rng.random_bool(0.6).then(|| self.pick_team());
        let priority: i32 = if self.rng.random_bool(0.7) {
            0
        } else {
            self.rng.random_range(1..=5)
        };
        let started = match (team, priority, self.rng.random_bool(0.5)) {
            (None, 0, true) => call!(
                self,
                "start_chat",
                &self.st.start_chat,
                Uuid,
                [user, content]
            ),
            (_, _, true) => call!(
                self,
                "start_chat",
                &self.st.start_chat_team,
                Uuid,
                [user, content, team, priority]
            ),
            (_, _, false) => call!(
                self,
                "start_chat",
                &self.st.start_chat_named,
                Uuid,
                [user, content, team, priority]
            ),
        };
        if let Some((chat, at, events)) = started {
            self.recorded(at, CallKind::StartChat { chat, team }, events);
            self.shared.chats.write().unwrap().push(chat);
            self.rep.started.push(StartedChat {
                chat_id: chat,
                real_user_id: user,
                content,
                team,
            });
        }
    }

    async fn user_message(&mut self) {
        let chat = if !self.replied.is_empty() && self.rng.random_bool(0.5) {
            let i = self.rng.random_range(0..self.replied.len());
            self.replied.swap_remove(i)
        } else {
            self.pick_hot_chat(0.5)
        };
        let content = self.content("user");
        if let Some((id, at, events)) = call!(
            self,
            "real_user_send_message",
            &self.st.user_msg,
            i64,
            [chat, content]
        ) {
            self.recorded(at, CallKind::UserMessage { chat }, events);
            self.rep.messages.push(StoredMessage {
                id,
                chat_id: chat,
                content,
                sender: "real_user",
                operator_id: None,
            });
        }
    }

    async fn operator_message(&mut self, chat: Uuid, op: Uuid) -> bool {
        let content = self.content("operator");
        match call!(
            self,
            "operator_send_message",
            &self.st.op_msg,
            i64,
            [chat, op, content]
        ) {
            Some((id, at, events)) => {
                self.recorded(at, CallKind::Reply { chat, operator: op }, events);
                self.rep.messages.push(StoredMessage {
                    id,
                    chat_id: chat,
                    content,
                    sender: "operator",
                    operator_id: Some(op),
                });
                true
            }
            None => false,
        }
    }

    async fn touch_pair(&mut self, op: Uuid, chat: Uuid) {
        if let Some(true) = one!(
            self,
            "touch_operator_activity",
            &self.st.touch,
            bool,
            [op, chat]
        ) {
            self.rep.hit("touch_operator_activity", 1);
        }
    }

    /// An operator asks for a chat; usually answers it at once (sometimes after a
    /// heartbeat, sometimes with a follow-up), otherwise keeps it for later (where the idle
    /// job, a user message or an admin may take it away first).
    async fn assign_flow(&mut self) {
        let op = self.pick_operator();
        let Some((got, at, events)) = call!(
            self,
            "assign_chat_to_operator",
            &self.st.assign,
            Option<Uuid>,
            [op]
        ) else {
            return;
        };
        self.recorded(at, CallKind::Assign { operator: op, got }, events);
        let Some(chat) = got else { return };
        self.rep.assign_returned_chat += 1;
        self.rep.hit("assign_chat_to_operator", 1);
        self.heat(chat);
        if self.rng.random_bool(0.7) {
            if self.rng.random_bool(0.5) {
                self.touch_pair(op, chat).await;
            }
            if self.operator_message(chat, op).await {
                self.replied.push(chat);
                if self.replied.len() > 16 {
                    self.replied.remove(0);
                }
                if self.rng.random_bool(0.2) {
                    self.operator_message(chat, op).await; // follow-up while the user is away
                }
            }
        } else {
            self.hold(op, chat);
        }
    }

    async fn reply_to_held(&mut self) {
        match self.take_held() {
            Some((op, chat)) => {
                if self.operator_message(chat, op).await {
                    self.replied.push(chat);
                }
            }
            None => self.assign_flow().await,
        }
    }

    /// Mostly the wrong operator for the chat: must be refused with 55000 and store nothing.
    async fn reply_random(&mut self) {
        let chat = self.pick_hot_chat(0.5);
        let op = self.pick_operator();
        self.operator_message(chat, op).await;
    }

    async fn release(&mut self) {
        let chat = match self
            .rng
            .random_bool(0.5)
            .then(|| self.take_held())
            .flatten()
        {
            Some((_, chat)) => chat,
            None => self.pick_hot_chat(0.6),
        };
        let res = if self.rng.random_bool(0.5) {
            call!(
                self,
                "release_and_reassign_chat",
                &self.st.release_default,
                bool,
                [chat]
            )
        } else {
            call!(
                self,
                "release_and_reassign_chat",
                &self.st.release_reason,
                bool,
                [chat, ADMIN_REASON]
            )
        };
        let Some((released, at, events)) = res else {
            return;
        };
        self.recorded(at, CallKind::Release { chat, released }, events);
        if released {
            self.rep.reassign_true += 1;
            self.rep.hit("release_and_reassign_chat", 1);
        }
    }

    async fn touch(&mut self) {
        let pair = if !self.held.is_empty() && self.rng.random_bool(0.7) {
            Some(self.held[self.rng.random_range(0..self.held.len())])
        } else {
            None
        };
        let (op, chat) = match pair {
            Some(p) => p,
            None => (self.pick_operator(), self.pick_hot_chat(0.5)),
        };
        self.touch_pair(op, chat).await;
    }

    async fn idle_release(&mut self) {
        let variant = match self.rng.random_range(0..10u32) {
            0..=5 => 0,
            6..=7 => 1,
            8 => 2,
            _ => 3,
        };
        let (stmt, threshold) = self.st.idle[variant].clone();
        let after = self.events_after;
        let Some(rows) = rows!(self, "release_idle_assignments", &stmt, [after]) else {
            return;
        };
        self.rep.idle_released_rows += rows.len() as u64;
        self.rep.hit("release_idle_assignments", rows.len() as u64);
        if let Some(first) = rows.first() {
            let read = (|| -> Result<_, PgError> {
                let mut released = Vec::new();
                for r in &rows {
                    released.push((r.try_get::<_, Uuid>(0)?, r.try_get::<_, Uuid>(1)?));
                }
                Ok((
                    released,
                    first.try_get::<_, SystemTime>(3)?,
                    first.try_get::<_, Vec<String>>(4)?,
                ))
            })();
            match read {
                Ok((released, at, events)) => {
                    self.recorded(at, CallKind::Idle { released }, events)
                }
                Err(e) => self.rep.fatal(
                    FATAL_KINDS[7],
                    format!("release_idle_assignments: {}", describe(&e)),
                ),
            }
        }
        for r in &rows {
            let idle: f64 = r.try_get(2).unwrap_or(-1.0);
            let chat: Option<Uuid> = r.try_get(0).ok();
            match threshold {
                Some(t) if idle < t - 1e-6 => self.rep.sanity(
                    SANITY_KINDS[4],
                    format!("chat {chat:?} released after {idle} s, threshold {t} s"),
                ),
                None => self.rep.sanity(
                    SANITY_KINDS[5],
                    format!("chat {chat:?} released after {idle} s with the 5 min default"),
                ),
                _ => {}
            }
        }
    }

    async fn complete(&mut self) {
        let chat = self.pick_hot_chat(0.5);
        if let Some((completed, at, events)) =
            call!(self, "complete_chat", &self.st.complete, bool, [chat])
        {
            self.recorded(at, CallKind::Complete { chat, completed }, events);
            if completed {
                self.rep.hit("complete_chat", 1);
            }
        }
    }

    async fn create_operator(&mut self) {
        let n = self.next_seq();
        let name = format!("stress operator w{}#{n}", self.id);
        let cap: i32 = self.rng.random_range(1..=3);
        if let Some(op) = one!(
            self,
            "create_operator",
            &self.st.create_op,
            Uuid,
            [name, cap]
        ) {
            self.rep.operators_created += 1;
            self.shared.operators.write().unwrap().push(op);
        }
    }

    async fn set_active(&mut self) {
        let op = self.pick_operator();
        let active = self.rng.random_bool(0.7);
        if let Some((changed, at, events)) = call!(
            self,
            "set_operator_active",
            &self.st.set_active,
            bool,
            [op, active]
        ) {
            let kind = CallKind::Active {
                operator: op,
                active,
                changed,
            };
            self.recorded(at, kind, events);
            if changed {
                self.rep.hit("set_operator_active", 1);
            }
        }
    }

    /// A new team, without members until the membership calls add some: its chats (sent
    /// there by transfers) wait until then.
    async fn create_team(&mut self) {
        let n = self.next_seq();
        let name = format!("stress team w{}#{n}", self.id);
        let made = if self.rng.random_bool(0.5) {
            one!(
                self,
                "create_team",
                &self.st.create_team_default,
                Uuid,
                [name]
            )
        } else {
            let routing = *ROUTINGS.choose(&mut self.rng).unwrap();
            one!(
                self,
                "create_team",
                &self.st.create_team,
                Uuid,
                [name, routing]
            )
        };
        if let Some(team) = made {
            self.shared.teams.write().unwrap().push(team);
        }
    }

    async fn set_routing(&mut self) {
        let team = self.pick_team();
        let routing = *ROUTINGS.choose(&mut self.rng).unwrap();
        if let Some(true) = one!(
            self,
            "set_team_routing",
            &self.st.set_routing,
            bool,
            [team, routing]
        ) {
            self.rep.hit("set_team_routing", 1);
        }
    }

    /// Mostly back online; sometimes away (keeps its chats; asking for one brings it
    /// back) or offline (releases them all, and assignment refuses it until it is back).
    async fn set_status(&mut self) {
        let op = self.pick_operator();
        let status: &'static str = match self.rng.random_range(0..20u32) {
            0..=11 => "online",
            12..=16 => "away",
            _ => "offline",
        };
        if let Some((previous, at, events)) = call!(
            self,
            "set_operator_status",
            &self.st.set_status,
            String,
            [op, status]
        ) {
            if !["online", "away", "offline"].contains(&previous.as_str()) {
                self.rep.sanity(
                    SANITY_KINDS[9],
                    format!("set_operator_status({op}, {status}) returned {previous:?}"),
                );
            }
            if previous != status {
                self.rep.hit("set_operator_status", 1);
            }
            let kind = CallKind::Status {
                operator: op,
                new: status,
                previous,
            };
            self.recorded(at, kind, events);
        }
    }

    /// An admin hands a chat (likely one just assigned) to a random operator, who may well be
    /// at capacity, not online, inactive or outside the chat's team (`55000`), or to a random
    /// team's queue.
    async fn transfer(&mut self) {
        let chat = self.pick_hot_chat(0.6);
        if self.rng.random_bool(0.5) {
            let op = self.pick_operator();
            let res = if self.rng.random_bool(0.5) {
                call!(
                    self,
                    "transfer_chat",
                    &self.st.transfer_to_operator,
                    bool,
                    [chat, op]
                )
            } else {
                call!(
                    self,
                    "transfer_chat",
                    &self.st.transfer_to_operator_reason,
                    bool,
                    [chat, op, OPERATOR_TRANSFER_REASON]
                )
            };
            if let Some((moved, at, events)) = res {
                let kind = CallKind::ToOperator {
                    chat,
                    operator: op,
                    moved,
                };
                self.recorded(at, kind, events);
                if moved {
                    self.rep.transfers_to_operator += 1;
                    self.rep.hit("transfer_chat", 1);
                    // The operator got it: it answers it, as after an assignment.
                    if self.rng.random_bool(0.5) {
                        self.hold(op, chat);
                    }
                }
            }
        } else {
            let team = self.pick_team();
            if let Some((moved, at, events)) = call!(
                self,
                "transfer_chat",
                &self.st.transfer_to_team,
                bool,
                [chat, team, TEAM_TRANSFER_REASON]
            ) {
                self.recorded(at, CallKind::ToTeam { chat, team, moved }, events);
                if moved {
                    self.rep.transfers_to_team += 1;
                    self.rep.hit("transfer_chat", 1);
                }
            }
        }
    }

    /// An operator joins or leaves a team (leaving releases the team's chats it holds).
    async fn membership(&mut self) {
        let op = self.pick_operator();
        let team = self.pick_team();
        if self.rng.random_bool(0.5) {
            if let Some((changed, at, events)) = call!(
                self,
                "add_team_member",
                &self.st.add_member,
                bool,
                [team, op]
            ) {
                let kind = CallKind::Join {
                    operator: op,
                    team,
                    changed,
                };
                self.recorded(at, kind, events);
                if changed {
                    self.rep.hit("add_team_member", 1);
                }
            }
        } else if let Some((changed, at, events)) = call!(
            self,
            "remove_team_member",
            &self.st.remove_member,
            bool,
            [team, op]
        ) {
            let kind = CallKind::Leave {
                operator: op,
                team,
                changed,
            };
            self.recorded(at, kind, events);
            if changed {
                self.rep.hit("remove_team_member", 1);
            }
        }
    }

    async fn set_priority(&mut self) {
        let chat = self.pick_chat();
        let priority: i32 = self.rng.random_range(0..=5);
        if let Some(true) = one!(
            self,
            "set_chat_priority",
            &self.st.set_priority,
            bool,
            [chat, priority]
        ) {
            self.rep.hit("set_chat_priority", 1);
        }
    }

    /// A user asks where their chat stands: a place in its queue while it waits, NULLs
    /// otherwise; the chat exists, so any error at all is a failure.
    async fn queue_position(&mut self) {
        let chat = self.pick_hot_chat(0.2);
        let t0 = Instant::now();
        let res = self.client.query(&self.st.queue_position, &[&chat]).await;
        let failed = res.as_ref().err().map(describe);
        let Some(rows) = self
            .rep
            .record("get_queue_position", Expect::Valid, t0, res)
        else {
            self.rep.sanity(
                SANITY_KINDS[7],
                format!("get_queue_position({chat}): {}", failed.unwrap_or_default()),
            );
            return;
        };
        let row = match rows.as_slice() {
            [r] => (
                r.try_get::<_, Option<i32>>(0),
                r.try_get::<_, Option<i32>>(1),
                r.try_get::<_, Option<f64>>(2),
            ),
            _ => {
                self.rep.sanity(
                    SANITY_KINDS[7],
                    format!("get_queue_position({chat}): {} rows", rows.len()),
                );
                return;
            }
        };
        let ok = match row {
            (Ok(None), Ok(None), Ok(None)) => true,
            (Ok(Some(position)), Ok(Some(ahead)), Ok(estimate)) => {
                self.rep.hit("get_queue_position", 1);
                position >= 1
                    && ahead == position - 1
                    && estimate.is_none_or(|e| e.is_finite() && e >= 0.0)
            }
            _ => false,
        };
        if !ok {
            self.rep.sanity(
                SANITY_KINDS[7],
                format!("get_queue_position({chat}) = {row:?}"),
            );
        }
    }

    async fn queue_status(&mut self) {
        let Some(rows) = rows!(
            self,
            "get_assignment_queue_status",
            &self.st.queue_status,
            []
        ) else {
            return;
        };
        self.rep
            .hit("get_assignment_queue_status", rows.len() as u64);
        let bad = match rows.as_slice() {
            [r] => {
                let n = |i: usize| r.try_get::<_, i64>(i).unwrap_or(-1);
                let (oldest, avg): (Option<f64>, Option<f64>) =
                    (r.try_get(3).unwrap_or(None), r.try_get(4).unwrap_or(None));
                let ages_ok = match (oldest, avg) {
                    (Some(o), Some(a)) => o + 1e-9 >= a && a >= 0.0,
                    (None, None) => n(0) == 0,
                    _ => false,
                };
                (0..8).filter(|i| *i != 3 && *i != 4).any(|i| n(i) < 0)
                    || n(6) + n(7) != n(5)
                    || !ages_ok
            }
            _ => true,
        };
        if bad {
            let shown: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
            self.rep
                .sanity(SANITY_KINDS[0], format!("queue status rows: {shown:?}"));
        }
    }

    async fn stuck(&mut self) {
        let i = self.rng.random_range(0..self.st.stuck.len());
        let stmt = self.st.stuck[i].clone();
        let Some(rows) = rows!(self, "detect_stuck_chats", &stmt, []) else {
            return;
        };
        self.rep.hit("detect_stuck_chats", rows.len() as u64);
        let mut last: Option<SystemTime> = None;
        for r in &rows {
            let state: String = r.try_get(1).unwrap_or_default();
            let changed: Option<SystemTime> = r.try_get(3).ok();
            let assigned: Option<Uuid> = r.try_get(4).unwrap_or(None);
            let ok_state = match state.as_str() {
                "assigned" => assigned.is_some(),
                "waiting_assignment" => assigned.is_none(),
                _ => false,
            };
            let ordered = match (last, changed) {
                (Some(a), Some(b)) => a <= b,
                (_, Some(_)) => true,
                _ => false,
            };
            if !ok_state || !ordered {
                self.rep.sanity(SANITY_KINDS[1], format!("stuck row {r:?}"));
            }
            last = changed;
        }
    }

    async fn summary(&mut self) {
        let Some(rows) = rows!(self, "chat_state_summary (view)", &self.st.summary, []) else {
            return;
        };
        self.rep.hit("chat_state_summary (view)", rows.len() as u64);
        let states: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0).unwrap_or_default())
            .collect();
        let counts_ok = rows.iter().all(|r| {
            let n = r.try_get::<_, i64>(1).unwrap_or(-1);
            let oldest: Option<SystemTime> = r.try_get(2).unwrap_or(None);
            n >= 0 && (n == 0) == oldest.is_none()
        });
        if states
            != [
                "waiting_assignment",
                "assigned",
                "waiting_real_user_reply",
                "completed",
            ]
            || !counts_ok
        {
            self.rep
                .sanity(SANITY_KINDS[2], format!("chat_state_summary: {rows:?}"));
        }
    }

    async fn op_stats(&mut self) {
        let Some(rows) = rows!(
            self,
            "operator_assignment_stats (view)",
            &self.st.op_stats,
            []
        ) else {
            return;
        };
        self.rep
            .hit("operator_assignment_stats (view)", rows.len() as u64);
        for r in &rows {
            let active_op: bool = r.try_get(1).unwrap_or(false);
            let cap = i64::from(r.try_get::<_, i32>(2).unwrap_or(0));
            let n = |i: usize| r.try_get::<_, i64>(i).unwrap_or(-1);
            let (total, released, active) = (n(3), n(4), n(5));
            let avg: Option<f64> = r.try_get(6).unwrap_or(None);
            if active > cap
                || total != released + active
                || active < 0
                || (!active_op && active != 0)
                || avg.is_some_and(|a| a < 0.0)
            {
                self.rep.sanity(
                    SANITY_KINDS[3],
                    format!("operator_assignment_stats row {r:?}"),
                );
            }
        }
    }

    /// The view that says, per queue, how many chats wait and who may take them.
    async fn team_status(&mut self) {
        // Every team known before the query committed before its snapshot: it has a row.
        let teams_before = self.shared.teams.read().unwrap().len();
        let Some(rows) = rows!(self, "team_queue_status (view)", &self.st.team_status, []) else {
            return;
        };
        self.rep.hit("team_queue_status (view)", rows.len() as u64);
        let mut bad = rows.len() < 1 + teams_before;
        for (i, r) in rows.iter().enumerate() {
            let team: Option<Uuid> = r.try_get(0).unwrap_or(None);
            let n = |c: usize| r.try_get::<_, i64>(c).unwrap_or(-1);
            let (waiting, assigned, eligible, online, available) = (n(1), n(3), n(4), n(5), n(6));
            let oldest: Option<f64> = r.try_get(2).unwrap_or(None);
            // The oldest wait is now() (the start of this transaction) minus a waiting_since
            // that a transaction which started a moment later may have written.
            let oldest_ok = match oldest {
                Some(o) => waiting > 0 && o >= -1.0,
                None => waiting == 0,
            };
            if (i == 0) != team.is_none()
                || waiting < 0
                || assigned < 0
                || available < 0
                || available > online
                || online > eligible
                || !oldest_ok
            {
                bad = true;
            }
        }
        if bad {
            let shown: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
            self.rep.sanity(
                SANITY_KINDS[8],
                format!("team_queue_status rows: {shown:?}"),
            );
        }
    }

    async fn invalid(&mut self) {
        let i = self.rng.random_range(0..INVALID.len());
        let (label, _, args, code) = INVALID[i];
        let stmt = self.st.invalid[i].clone();
        let t0 = Instant::now();
        let res = match args {
            InvalidArgs::None => self.client.query(&stmt, &[]).await,
            InvalidArgs::Chat => {
                let chat = self.pick_chat();
                self.client.query(&stmt, &[&chat]).await
            }
            InvalidArgs::Operator => {
                let op = self.pick_operator();
                self.client.query(&stmt, &[&op]).await
            }
            InvalidArgs::ChatOperatorTeam => {
                let (chat, op, team) = (self.pick_chat(), self.pick_operator(), self.pick_team());
                self.client.query(&stmt, &[&chat, &op, &team]).await
            }
        };
        self.rep.record(label, Expect::Code(code), t0, res);
    }
}

// ------------------------------------------------------------------------------ the monitor

#[derive(Default)]
struct MonitorReport {
    samples: u64,
    violations: BTreeMap<String, u64>,
    examples: Vec<String>,
    errors: Vec<String>,
    names: Vec<String>,
    max_ms: u128,
    /// get_service_metrics calls, and those that failed or answered something insane.
    metrics_calls: u64,
    metrics_bad: u64,
}

/// The columns of get_service_metrics, as the monitor reads them.
const SERVICE_METRICS_COLUMNS: &str = "scope, team_id, chats_started, first_response_p50, \
     first_response_p90, wait_to_assignment_p50, wait_to_assignment_p90, transfers, \
     idle_releases, abandoned";

/// One get_service_metrics call, in one of three shapes (every scope over the last day; every
/// scope over the last few seconds; one team, the one `team` names, over the last hour), and
/// what is wrong with its answer (nothing: empty). Sane means: the scopes in order (`all`,
/// `no_team`, then one row per team, or only the team asked for), counts >= 0, at most as
/// many chats abandoned as started, each p90 >= its p50 and both NULL together (all NULL when
/// no chat started), and, in one statement's snapshot, `all` = `no_team` + every team for the
/// counts (no team is deleted here, so every chat's and transfer's team has its row). Returns
/// a team of the answer for the next call.
async fn service_metrics(
    client: &Client,
    sample: u64,
    team: Option<Uuid>,
) -> Result<(Vec<String>, Option<Uuid>), PgError> {
    let rows = match (sample % 3, team) {
        (2, Some(team)) => {
            client
                .query(
                    &format!(
                        "SELECT {SERVICE_METRICS_COLUMNS} \
                         FROM get_service_metrics(now() - interval '1 hour', $1)"
                    ),
                    &[&team],
                )
                .await?
        }
        (1, _) => {
            client
                .query(
                    &format!(
                        "SELECT {SERVICE_METRICS_COLUMNS} \
                         FROM get_service_metrics(p_since => now() - interval '3 seconds')"
                    ),
                    &[],
                )
                .await?
        }
        _ => {
            client
                .query(
                    &format!("SELECT {SERVICE_METRICS_COLUMNS} FROM get_service_metrics()"),
                    &[],
                )
                .await?
        }
    };
    let one_team = sample % 3 == 2 && team.is_some();
    let mut bad = Vec::new();
    let mut sums = [0i64; 4];
    let mut all = [0i64; 4];
    let mut next_team = None;
    for (i, r) in rows.iter().enumerate() {
        let scope: String = r.try_get(0)?;
        let team_id: Option<Uuid> = r.try_get(1)?;
        let n = |c: usize| r.try_get::<_, i64>(c);
        let counts = [n(2)?, n(7)?, n(8)?, n(9)?];
        let p = |c: usize| r.try_get::<_, Option<f64>>(c);
        let pairs = [(p(3)?, p(4)?), (p(5)?, p(6)?)];
        let expected_scope = match (one_team, i) {
            (true, _) => "team",
            (false, 0) => "all",
            (false, 1) => "no_team",
            _ => "team",
        };
        let pairs_ok = pairs.iter().all(|pair| match pair {
            (Some(p50), Some(p90)) => counts[0] > 0 && p50.is_finite() && p90 >= p50,
            (None, None) => true,
            _ => false,
        });
        if scope != expected_scope
            || (scope == "team") != team_id.is_some()
            || (one_team && team_id != team)
            || counts.iter().any(|c| *c < 0)
            || counts[3] > counts[0]
            || !pairs_ok
        {
            bad.push(format!("row {i}: {r:?}"));
        }
        match scope.as_str() {
            "all" => all = counts,
            _ => {
                for (s, c) in sums.iter_mut().zip(counts) {
                    *s += c;
                }
            }
        }
        if team_id.is_some() && (next_team.is_none() || i as u64 % 3 == sample % 3) {
            next_team = team_id;
        }
    }
    if one_team {
        if rows.len() != 1 {
            bad.push(format!("{} rows for one team", rows.len()));
        }
    } else if rows.len() < 2 || all != sums {
        bad.push(format!(
            "{} rows; all = {all:?}, no_team + teams = {sums:?}",
            rows.len()
        ));
    }
    Ok((bad, next_team))
}

async fn monitor(client: Client, stop: Arc<AtomicBool>) -> MonitorReport {
    let sql = invariants_sql();
    let mut rep = MonitorReport::default();
    let mut team: Option<Uuid> = None;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let shared = match shared_violations(&client).await {
            Ok(violated) => violated,
            Err(e) => {
                rep.errors.push(describe(&e));
                Vec::new()
            }
        };
        match invariant_counts(&client, &sql).await.map(|mut counts| {
            counts.push(("tests/invariants.sql".to_string(), shared.len() as i64));
            counts
        }) {
            Ok(counts) => {
                for (name, n) in &shared {
                    if rep.examples.len() < 20 {
                        rep.examples
                            .push(format!("sample {}: {name} = {n}", rep.samples + 1));
                    }
                }
                rep.samples += 1;
                rep.max_ms = rep.max_ms.max(t0.elapsed().as_millis());
                if rep.names.is_empty() {
                    rep.names = counts.iter().map(|(n, _)| n.clone()).collect();
                }
                for (name, n) in counts {
                    if n != 0 {
                        *rep.violations.entry(name.clone()).or_default() += 1;
                        if rep.examples.len() < 20 {
                            rep.examples
                                .push(format!("sample {}: {name} = {n}", rep.samples));
                        }
                    }
                }
            }
            Err(e) => {
                rep.errors.push(describe(&e));
                if client.is_closed() || rep.errors.len() > 20 {
                    break;
                }
            }
        }
        rep.metrics_calls += 1;
        match service_metrics(&client, rep.metrics_calls, team).await {
            Ok((bad, next)) => {
                team = next.or(team);
                if !bad.is_empty() {
                    rep.metrics_bad += 1;
                    if rep.examples.len() < 20 {
                        rep.examples
                            .push(format!("get_service_metrics: {}", bad.join("; ")));
                    }
                }
            }
            Err(e) => {
                rep.metrics_bad += 1;
                if rep.examples.len() < 20 {
                    rep.examples
                        .push(format!("get_service_metrics: {}", describe(&e)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rep
}

// ------------------------------------------------------------------------------ checks

struct Checks {
    list: Vec<(String, i64, String)>,
    /// Examples of what failed, printed after the list.
    notes: Vec<String>,
    /// Automatic assignments by the function whose call made them.
    auto_by_call: BTreeMap<&'static str, AutoCount>,
}

impl Checks {
    fn add(&mut self, name: impl Into<String>, violations: i64, detail: impl Into<String>) {
        self.list.push((name.into(), violations, detail.into()));
    }
    fn passed(&self) -> usize {
        self.list.iter().filter(|c| c.1 == 0).count()
    }
    fn failed(&self) -> usize {
        self.list.len() - self.passed()
    }
}

// ------------------------------------------------------------------------------ eligibility, call by call

/// What an operator may be given, as its calls leave it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OpState {
    status: String,
    active: bool,
    teams: BTreeSet<Uuid>,
}

impl OpState {
    /// A new operator: online, active, in no team (the set-up's memberships are calls too).
    fn new() -> Self {
        OpState {
            status: "online".into(),
            active: true,
            teams: BTreeSet::new(),
        }
    }
}

/// Violations found by [`replay_operators`], one count per check.
#[derive(Default)]
struct Replay {
    ties: i64,
    returns: i64,
    /// Events giving an operator chats whose ids do not grow in the operator's lock order.
    order: i64,
    /// Assignments and transfers to an operator inactive or offline (not online, for a
    /// transfer) at that moment.
    absent: i64,
    /// Automatic assignments to an operator not active and online at that moment.
    auto_absent: i64,
    outsider: i64,
    /// Chats given to an operator who then held more than its capacity.
    over: i64,
    final_state: i64,
    given: i64,
    given_of_team: i64,
    auto_given: i64,
    /// Assignments asked for by an operator who was away (and so came back online).
    away_served: i64,
    /// Operator rows a call left with a presence or activity other than the replay's.
    rows: i64,
    /// Operators an idle release marked away (it took their last chat).
    idle_away: i64,
    examples: Vec<String>,
}

impl Replay {
    fn example(&mut self, text: String) {
        if self.examples.len() < 20 {
            self.examples.push(text);
        }
    }
}

/// One step of an operator's history: a call that took its row lock first (changing what
/// it may be given, or asking for a chat), a chat given to it (by any call), or its row as a
/// call that updated it left it.
enum Step<'a> {
    Own(&'a CallKind),
    Given(&'a CallEvent),
    Row(&'a OpRow, &'a CallKind),
}

/// Replays, operator by operator, every successful call that took the operator's row lock,
/// in the order the lock serialised them, and checks each against the history before it.
///
/// Why the order is known: every call that changes an operator's presence, activity or
/// memberships, or gives it a chat (assignment, transfer to it, and an automatic assignment
/// made by any call: a push locks the operator it picks, a pull the operator who pulls,
/// both with `SKIP LOCKED`), holds the operator's row lock (`FOR NO KEY UPDATE`,
/// src/store/queries.rs, lock order step 1) from before it reads or writes any of that until
/// its transaction commits, and this test is the only client (no background worker runs).
/// So on one operator those calls' lock-holding intervals are disjoint, and each call's
/// `clock_timestamp()` ([`recorded_call`]) lies inside every interval of its own: sorting an
/// operator's steps by that reading sorts them in lock order, hence in commit order. Within
/// one call, its own change of the operator comes first (an operator who comes online,
/// is activated or joins a team pulls chats after that), then the chats given, in event id
/// order. Each event giving the operator a chat takes its id from a sequence inside that
/// interval, so the ids of an operator's chats grow along the replay (checked: it confirms
/// the order).
///
/// What is proven, for every chat given to an operator during the run (each event is tied
/// to the call that wrote it, and every event of the table to one call: see
/// [`account_events`]):
/// - at that moment the operator was active and not offline for an assignment it asked for
///   (an `away` operator who asks is made online by the call), active and online for a
///   transfer to it and for an automatic assignment, from the presence and activity its own
///   earlier calls left;
/// - if the event names a team, the operator was a member of it then, from the memberships
///   its earlier calls left; and the event names the chat's team at that moment (checked
///   separately, in SQL, on each chat's events, which its row lock orders the same way), so
///   a team's chat went to a member of that team;
/// - the operator was within its capacity right after the call, and so at every moment:
///   only calls holding its lock add chats to it, so between the count read after the call
///   ([`CALL_EVENTS_SQL`], `held`) and the call's commit nothing is added; after that
///   commit only releases happen until the next such call;
/// - every return value of these calls (previous presence, "changed") is the one the
///   history before it gives, and the final tables hold what the whole history leaves.
///
/// What is not: that refusals (`55000`) were right (a failed call returns no reading, and
/// changed nothing); that a routing picked the operator it should have (candidates in a
/// call of their own are passed by, so another pick is legitimate under load). The order
/// rests on the server's clock not stepping back during the run; two equal readings on one
/// operator are reported, never guessed at.
fn replay_operators(
    calls: &[CallRecord],
    finals: &BTreeMap<Uuid, OpState>,
    capacity: &HashMap<Uuid, i64>,
) -> Replay {
    let mut out = Replay::default();
    let mut by_operator: BTreeMap<Uuid, Vec<(SystemTime, u64, usize, Step)>> = BTreeMap::new();
    for c in calls {
        if let Some(op) = c.kind.locked_operator() {
            by_operator
                .entry(op)
                .or_default()
                .push((c.at, c.id, 0, Step::Own(&c.kind)));
        }
        for (i, e) in c.events.iter().enumerate() {
            if let (true, Some(op)) = (e.gives(), e.operator) {
                by_operator
                    .entry(op)
                    .or_default()
                    .push((c.at, c.id, i + 1, Step::Given(e)));
            }
        }
        for row in &c.rows {
            by_operator.entry(row.operator).or_default().push((
                c.at,
                c.id,
                usize::MAX,
                Step::Row(row, &c.kind),
            ));
        }
    }
    for op in finals.keys() {
        by_operator.entry(*op).or_default();
    }
    for (op, mut steps) in by_operator {
        steps.sort_by_key(|(at, call, seq, _)| (*at, *call, *seq));
        out.ties += steps
            .windows(2)
            .filter(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1)
            .count() as i64;
        let mut st = OpState::new();
        let mut last_id: Option<i64> = None;
        for (_, _, _, step) in &steps {
            match step {
                Step::Own(kind) => replay_own(&mut out, op, &mut st, kind),
                Step::Row(row, kind) => {
                    let same = row.status == st.status && row.active == st.active;
                    if !same
                        && matches!(kind, CallKind::Idle { .. })
                        && row.status == "away"
                        && st.status == "online"
                        && row.active == st.active
                    {
                        // An idle release took the operator's last chat: it stopped
                        // answering, so it is away until it shows a sign of life.
                        out.idle_away += 1;
                        st.status = row.status.clone();
                    } else if !same {
                        out.rows += 1;
                        out.example(format!(
                            "{}: {op} left {} and active {}, its history says {st:?}",
                            kind.label(),
                            row.status,
                            row.active
                        ));
                    }
                }
                Step::Given(e) => {
                    if last_id.is_some_and(|last| e.id <= last) {
                        out.order += 1;
                        out.example(format!(
                            "{op}: event {} (chat {}) comes after event {last_id:?} in lock order",
                            e.id, e.chat
                        ));
                    }
                    last_id = Some(e.id);
                    out.given += 1;
                    if e.is_auto() {
                        out.auto_given += 1;
                        if !st.active || st.status != "online" {
                            out.auto_absent += 1;
                            out.example(format!(
                                "chat {} given automatically to {op} while {st:?}",
                                e.chat
                            ));
                        }
                    }
                    if let Some(team) = e.team {
                        out.given_of_team += 1;
                        if !st.teams.contains(&team) {
                            out.outsider += 1;
                            out.example(format!(
                                "chat {} of team {team} given to {op} ({}), member of {:?}",
                                e.chat, e.reason, st.teams
                            ));
                        }
                    }
                    let cap = capacity.get(&op).copied();
                    if !matches!((e.held, cap), (Some(h), Some(c)) if h <= c) {
                        out.over += 1;
                        out.example(format!(
                            "chat {} given to {op} ({}): it then held {:?} of {cap:?}",
                            e.chat, e.reason, e.held
                        ));
                    }
                }
            }
        }
        if finals.get(&op) != Some(&st) {
            out.final_state += 1;
            out.example(format!(
                "operator {op}: tables say {:?}, its calls leave {st:?}",
                finals.get(&op)
            ));
        }
    }
    out
}

/// A call that took `op`'s row lock first: checks it against `op`'s history and applies it.
fn replay_own(out: &mut Replay, op: Uuid, st: &mut OpState, kind: &CallKind) {
    match kind {
        CallKind::Assign { .. } => {
            if !st.active || st.status == "offline" {
                out.absent += 1;
                out.example(format!(
                    "assign_chat_to_operator({op}) succeeded while {st:?}"
                ));
            }
            if st.status == "away" {
                out.away_served += 1;
            }
            st.status = "online".into();
        }
        CallKind::ToOperator {
            chat, moved: true, ..
        } if !st.active || st.status != "online" => {
            out.absent += 1;
            out.example(format!(
                "transfer_chat({chat}) to {op} succeeded while {st:?}"
            ));
        }
        CallKind::Status { new, previous, .. } => {
            if *previous != st.status {
                out.returns += 1;
                out.example(format!(
                    "set_operator_status({op}, {new}) returned {previous}, history says {}",
                    st.status
                ));
            }
            st.status = (*new).into();
        }
        CallKind::Active {
            active, changed, ..
        } => {
            if *changed != (st.active != *active) {
                out.returns += 1;
                out.example(format!(
                    "set_operator_active({op}, {active}) returned {changed} while {st:?}"
                ));
            }
            st.active = *active;
        }
        CallKind::Join { team, changed, .. } => {
            if *changed == st.teams.contains(team) {
                out.returns += 1;
                out.example(format!(
                    "add_team_member({team}, {op}) returned {changed} while {st:?}"
                ));
            }
            st.teams.insert(*team);
        }
        CallKind::Leave { team, changed, .. } => {
            if *changed != st.teams.contains(team) {
                out.returns += 1;
                out.example(format!(
                    "remove_team_member({team}, {op}) returned {changed} while {st:?}"
                ));
            }
            st.teams.remove(team);
        }
        _ => {}
    }
}

/// Automatic assignments counted by how they came about.
#[derive(Default, Clone, Copy)]
struct AutoCount {
    /// A chat the call put in a queue, given to an operator the routing picked.
    push: u64,
    /// A chat given to an operator the call freed, brought online, activated or made a
    /// member (it pulls from its queues).
    pull: u64,
}

/// Checks that a call wrote exactly the change events its documented behaviour gives
/// (docs/api.md, "Automatic assignment"), and that each of its automatic assignments is one
/// it may make:
/// - a push, of a chat the call itself put in a queue (started, reopened or sent back by a
///   user's message, released, moved to a team), never to an operator the call took it from
///   (a released chat never goes to an operator released in the same call; a chat passed on
///   to a team does not go back to who passed it on);
/// - a pull, by an operator whose capacity the call freed (reply, release, complete, leaving
///   a team, a transfer away, a user's message on its chat) or who became available to a
///   queue (online from away or offline, activated, joined a team), of a chat other than
///   the ones the call took from it. An idle release pulls for no one.
///
/// An idle release may also mark the operators it took the last chat from `away`: its only
/// operator rows with another presence are of operators it released.
///
/// Returns the violations, described. `holder_before` names, per event id, who held the
/// chat just before that event (a transfer to an operator does not name who lost the chat).
fn call_shape(
    call: &CallRecord,
    holder_before: &HashMap<i64, Uuid>,
    count: &mut AutoCount,
) -> Vec<String> {
    let mut bad = Vec::new();
    let label = call.kind.label();
    let (autos, own): (Vec<&CallEvent>, Vec<&CallEvent>) =
        call.events.iter().partition(|e| e.is_auto());
    // The call's own changes, checked against what it returned.
    let mut check = |ok: bool, what: &str| {
        if !ok {
            bad.push(format!("{label}: {what}; events {:?}", call.events));
        }
    };
    let one = |reasons: &[&str], chat: Uuid| -> Option<&CallEvent> {
        match own.as_slice() {
            [e] if reasons.contains(&e.reason.as_str()) && e.chat == chat => Some(*e),
            _ => None,
        }
    };
    let released_by = |reason: &str, op: Uuid, team: Option<Uuid>| {
        own.iter().all(|e| {
            e.reason == reason
                && e.operator == Some(op)
                && e.releases()
                && e.new == "waiting_assignment"
                && (team.is_none() || e.team == team)
        })
    };
    // What automatic assignments the call may make: chats it put in a queue (`pushed`),
    // never to `not_to`; operators that may pull (`pullers`), never `not_pulled` chats.
    let mut pushed: Vec<Uuid> = Vec::new();
    let mut not_to: Vec<Uuid> = Vec::new();
    let mut pullers: Vec<Uuid> = Vec::new();
    let mut not_pulled: Vec<Uuid> = Vec::new();
    let chats_of = |events: &[&CallEvent]| events.iter().map(|e| e.chat).collect::<Vec<_>>();
    match &call.kind {
        CallKind::StartChat { chat, team } => {
            let e = one(&["chat_started"], *chat);
            check(
                e.is_some_and(|e| {
                    e.old.is_none() && e.new == "waiting_assignment" && e.team == *team
                }),
                "one chat_started event of the chat it returned, in its team",
            );
            pushed.push(*chat);
        }
        CallKind::UserMessage { chat } => {
            if !own.is_empty() {
                let e = one(&["real_user_message"], *chat);
                check(
                    e.is_some_and(|e| {
                        e.new == "waiting_assignment"
                            && e.old.as_deref() != Some("waiting_assignment")
                            && e.operator.is_some() == e.releases()
                    }),
                    "at most one real_user_message event, of its chat, into the queue",
                );
                pushed.push(*chat);
                if let Some(holder) = e.and_then(|e| e.operator) {
                    pullers.push(holder);
                }
            }
        }
        CallKind::Reply { chat, operator } => {
            if !own.is_empty() {
                let e = one(&["operator_replied"], *chat);
                check(
                    e.is_some_and(|e| {
                        e.operator == Some(*operator)
                            && e.releases()
                            && e.new == "waiting_real_user_reply"
                    }),
                    "at most one operator_replied event, of its chat and operator",
                );
                pullers.push(*operator);
                not_pulled.push(*chat);
            }
        }
        CallKind::Assign { operator, got } => match got {
            None => check(own.is_empty(), "no chat returned, yet events"),
            Some(chat) => check(
                one(&["assigned"], *chat).is_some_and(|e| {
                    e.operator == Some(*operator) && e.old.as_deref() == Some("waiting_assignment")
                }),
                "one assigned event, of the chat it returned, to its operator",
            ),
        },
        CallKind::Release { chat, released } => {
            if !released {
                check(own.is_empty(), "returned false, yet events");
            } else {
                let e = one(&["manual_unassign", ADMIN_REASON], *chat);
                check(
                    e.is_some_and(|e| e.releases() && e.new == "waiting_assignment"),
                    "one release event of its chat, back to the queue",
                );
                pushed.push(*chat);
                not_pulled.push(*chat);
                if let Some(holder) = e.and_then(|e| e.operator) {
                    not_to.push(holder);
                    pullers.push(holder);
                }
            }
        }
        CallKind::Idle { released } => {
            check(
                call.rows
                    .iter()
                    .filter(|r| r.status != "online")
                    .all(|r| r.status == "away" && released.iter().any(|(_, o)| *o == r.operator)),
                "only operators it released marked away",
            );
            let mut rows: Vec<(Uuid, Option<Uuid>)> =
                released.iter().map(|(c, o)| (*c, Some(*o))).collect();
            let mut written: Vec<(Uuid, Option<Uuid>)> =
                own.iter().map(|e| (e.chat, e.operator)).collect();
            rows.sort();
            written.sort();
            check(
                rows == written
                    && own
                        .iter()
                        .all(|e| e.reason == "idle_timeout" && e.releases()),
                "one idle_timeout event per row returned, of that chat and operator",
            );
            pushed = chats_of(&own);
            not_to = released.iter().map(|(_, o)| *o).collect();
        }
        CallKind::Complete { chat, completed } => {
            if !completed {
                check(own.is_empty(), "returned false, yet events");
            } else {
                let e = one(&["completed"], *chat);
                check(
                    e.is_some_and(|e| e.new == "completed" && e.operator.is_some() == e.releases()),
                    "one completed event of its chat",
                );
                if let Some(holder) = e.and_then(|e| e.operator) {
                    pullers.push(holder);
                }
                not_pulled.push(*chat);
            }
        }
        CallKind::Active {
            operator,
            active,
            changed,
        } => {
            if *active {
                check(own.is_empty(), "activation released chats");
                if *changed {
                    pullers.push(*operator);
                }
            } else {
                check(
                    released_by("operator_inactive", *operator, None),
                    "only operator_inactive releases of its chats",
                );
                pushed = chats_of(&own);
                not_to.push(*operator);
            }
        }
        CallKind::Status {
            operator,
            new,
            previous,
        } => match *new {
            "offline" => {
                check(
                    released_by("operator_offline", *operator, None),
                    "only operator_offline releases of its chats",
                );
                pushed = chats_of(&own);
                not_to.push(*operator);
            }
            _ => {
                check(
                    own.is_empty(),
                    "an online or away operator's chats released",
                );
                if *new == "online" && previous != "online" {
                    pullers.push(*operator);
                }
            }
        },
        CallKind::Join {
            operator, changed, ..
        } => {
            check(own.is_empty(), "joining a team released chats");
            if *changed {
                pullers.push(*operator);
            }
        }
        CallKind::Leave {
            operator,
            team,
            changed,
        } => {
            check(
                (*changed || own.is_empty())
                    && released_by("removed_from_team", *operator, Some(*team)),
                "only removed_from_team releases of its chats of that team",
            );
            pushed = chats_of(&own);
            not_pulled = chats_of(&own);
            not_to.push(*operator);
            if *changed {
                pullers.push(*operator);
            }
        }
        CallKind::ToOperator {
            chat,
            operator,
            moved,
        } => {
            if !moved {
                check(own.is_empty(), "returned false, yet events");
            } else {
                let e = one(&["transfer", OPERATOR_TRANSFER_REASON], *chat);
                check(
                    e.is_some_and(|e| e.operator == Some(*operator) && e.gives()),
                    "one transfer event of its chat, to its operator",
                );
                if let Some(e) = e.filter(|e| e.old.as_deref() == Some("assigned")) {
                    match holder_before.get(&e.id) {
                        Some(holder) => pullers.push(*holder),
                        None => check(false, "a transfer of an assigned chat nobody held"),
                    }
                }
                not_pulled.push(*chat);
            }
        }
        CallKind::ToTeam { chat, team, moved } => {
            if !moved {
                check(own.is_empty(), "returned false, yet events");
            } else {
                let e = one(&[TEAM_TRANSFER_REASON], *chat);
                check(
                    e.is_some_and(|e| {
                        e.team == Some(*team) && e.operator.is_some() == e.releases()
                    }),
                    "one transfer event of its chat, into that team",
                );
                if e.is_some_and(|e| e.new == "waiting_assignment") {
                    pushed.push(*chat);
                }
                if let Some(holder) = e.and_then(|e| e.operator) {
                    pullers.push(holder);
                    not_to.push(holder);
                }
                not_pulled.push(*chat);
            }
        }
    }
    for a in autos {
        let Some(op) = a
            .operator
            .filter(|_| a.old.as_deref() == Some("waiting_assignment") && a.new == "assigned")
        else {
            bad.push(format!("{label}: malformed automatic assignment {a:?}"));
            continue;
        };
        if pushed.contains(&a.chat) && !not_to.contains(&op) {
            count.push += 1;
        } else if pullers.contains(&op)
            && !not_pulled.contains(&a.chat)
            && !pushed.contains(&a.chat)
        {
            count.pull += 1;
        } else if pushed.contains(&a.chat) {
            bad.push(format!(
                "{label}: chat {} given back to {op}, which the same call took it from; events {:?}",
                a.chat, call.events
            ));
        } else {
            bad.push(format!(
                "{label}: chat {} given to {op}, neither a chat the call put in a queue nor an operator it freed; events {:?}",
                a.chat, call.events
            ));
        }
    }
    bad
}

/// Every event of `chat_events` was written by exactly one successful call, which read it
/// back as the table holds it (so no event comes from a call that failed, from a call
/// without its own change, or from elsewhere). Returns the violations and examples.
fn account_events(calls: &[CallRecord], table: &[CallEvent]) -> (i64, Vec<String>) {
    let mut reported: HashMap<i64, &CallEvent> = HashMap::new();
    let mut bad = 0i64;
    let mut examples = Vec::new();
    let note = |examples: &mut Vec<String>, text: String| {
        if examples.len() < 10 {
            examples.push(text);
        }
    };
    for c in calls {
        for e in &c.events {
            if reported.insert(e.id, e).is_some() {
                bad += 1;
                note(
                    &mut examples,
                    format!("event {} reported by two calls", e.id),
                );
            }
        }
    }
    for t in table {
        match reported.remove(&t.id) {
            Some(e)
                if CallEvent {
                    held: None,
                    ..e.clone()
                } == *t => {}
            Some(e) => {
                bad += 1;
                note(
                    &mut examples,
                    format!("event {} reported as {e:?}, stored as {t:?}", t.id),
                );
            }
            None => {
                bad += 1;
                note(&mut examples, format!("event {t:?} reported by no call"));
            }
        }
    }
    bad += reported.len() as i64;
    for e in reported.values().take(3) {
        note(&mut examples, format!("reported event {e:?} is not stored"));
    }
    (bad, examples)
}

async fn count(client: &Client, sql: &str) -> Result<i64, PgError> {
    client.query_one(sql, &[]).await?.try_get(0)
}

/// One statement that counts several kinds of violation in one row: a check per column,
/// named by `names` in column order.
async fn add_counts(
    client: &Client,
    checks: &mut Checks,
    sql: &str,
    names: &[&str],
) -> Result<(), PgError> {
    let row = client.query_one(sql, &[]).await?;
    for (i, name) in names.iter().enumerate() {
        checks.add(*name, row.try_get(i)?, "");
    }
    Ok(())
}

async fn final_checks(
    client: &Client,
    rep: &Report,
    setup_operators: usize,
    checks: &mut Checks,
) -> Result<(), PgError> {
    // Every invariant, on the final state: the contract's (tests/invariants.sql, every check
    // by name), then what this workload adds.
    let violated = shared_violations(client).await?;
    checks.add(
        "final: tests/invariants.sql (the contract's invariants and the monitoring)",
        violated.iter().map(|(_, n)| *n).sum(),
        violated
            .iter()
            .map(|(name, n)| format!("{name}: {n}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    for (name, n) in invariant_counts(client, &invariants_sql()).await? {
        checks.add(format!("final: {name}"), n, "");
    }

    // Invariant 5: every message a call reported is stored, as reported.
    let mut seen = HashSet::new();
    let dups = rep.messages.iter().filter(|m| !seen.insert(m.id)).count() as i64;
    checks.add(
        "inv5: message ids returned by successful calls are distinct",
        dups,
        format!("{} ids", rep.messages.len()),
    );
    let ids: Vec<i64> = rep.messages.iter().map(|m| m.id).collect();
    let chats: Vec<Uuid> = rep.messages.iter().map(|m| m.chat_id).collect();
    let contents: Vec<String> = rep.messages.iter().map(|m| m.content.clone()).collect();
    let senders: Vec<String> = rep.messages.iter().map(|m| m.sender.to_string()).collect();
    let ops: Vec<Option<Uuid>> = rep.messages.iter().map(|m| m.operator_id).collect();
    let bad: i64 = client
        .query_one(
            "SELECT count(*) FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::text[], $5::uuid[]) \
                 AS r(id, chat_id, content, sender_type, operator_id) \
             LEFT JOIN messages m ON m.id = r.id \
             WHERE m.id IS NULL OR m.chat_id <> r.chat_id OR m.content <> r.content \
                OR m.sender_type <> r.sender_type \
                OR m.operator_id IS DISTINCT FROM r.operator_id",
            &[&ids, &chats, &contents, &senders, &ops],
        )
        .await?
        .try_get(0)?;
    checks.add(
        "inv5: every reported message id is stored with the same chat, sender and content",
        bad,
        format!("{} messages checked", ids.len()),
    );
    let s_chats: Vec<Uuid> = rep.started.iter().map(|s| s.chat_id).collect();
    let s_users: Vec<Uuid> = rep.started.iter().map(|s| s.real_user_id).collect();
    let s_contents: Vec<String> = rep.started.iter().map(|s| s.content.clone()).collect();
    let bad: i64 = client
        .query_one(
            "SELECT count(*) FROM unnest($1::uuid[], $2::uuid[], $3::text[]) \
                 AS r(chat_id, real_user_id, content) \
             LEFT JOIN chats c ON c.id = r.chat_id \
             LEFT JOIN LATERAL (SELECT m.content, m.sender_type FROM messages m \
                                WHERE m.chat_id = r.chat_id ORDER BY m.id LIMIT 1) f ON true \
             WHERE c.id IS NULL OR c.real_user_id <> r.real_user_id \
                OR f.content IS DISTINCT FROM r.content \
                OR f.sender_type IS DISTINCT FROM 'real_user'",
            &[&s_chats, &s_users, &s_contents],
        )
        .await?
        .try_get(0)?;
    checks.add(
        "inv5: every chat start_chat returned exists with its user and first message",
        bad,
        format!("{} chats checked", s_chats.len()),
    );
    let stored = count(client, "SELECT count(*) FROM messages").await?;
    let expected = (rep.messages.len() + rep.started.len()) as i64;
    checks.add(
        "inv5: messages table holds exactly the messages successful calls reported (failed calls stored nothing)",
        (stored - expected).abs(),
        format!("stored {stored}, reported {expected}"),
    );

    let s_teams: Vec<Option<Uuid>> = rep.started.iter().map(|s| s.team).collect();
    let bad: i64 = client
        .query_one(
            "SELECT count(*) FROM unnest($1::uuid[], $2::uuid[]) AS r(chat_id, team_id) \
             LEFT JOIN LATERAL (SELECT e.reason, e.team_id FROM chat_events e \
                                WHERE e.chat_id = r.chat_id ORDER BY e.id LIMIT 1) f ON true \
             WHERE f.reason IS DISTINCT FROM 'chat_started' \
                OR f.team_id IS DISTINCT FROM r.team_id",
            &[&s_chats, &s_teams],
        )
        .await?
        .try_get(0)?;
    checks.add(
        "teams: each chat's first event is chat_started, in the team start_chat was given",
        bad,
        format!("{} chats checked", s_chats.len()),
    );

    // A chat's team, event by event: its events are written under its row lock, so their
    // ids are in the order of its changes; each names the chat's team after the change.
    // Only a transfer to a team changes it; so an event that is not one names the team of
    // the event before it, which for an `assigned` event is the chat's team at that moment.
    add_counts(
        client,
        checks,
        &format!(
            "SELECT count(*) FILTER (WHERE x.new_state = 'assigned'), count(*) \
             FROM (SELECT e.new_state, e.team_id, e.reason, \
                          lag(e.team_id) OVER w AS prev_team, row_number() OVER w AS n \
                   FROM chat_events e WINDOW w AS (PARTITION BY e.chat_id ORDER BY e.id)) x \
             WHERE x.n > 1 AND x.reason <> '{TEAM_TRANSFER_REASON}' \
               AND x.team_id IS DISTINCT FROM x.prev_team"
        ),
        &[
            "teams: every assigned event names the chat's team at that moment (its previous event's)",
            "teams: a chat's team changes only at a transfer to a team",
        ],
    )
    .await?;
    // Transfers, stored history against the events, chat by chat in lock order (both are
    // written under the chat's lock, ids from sequences).
    let bad = count(
        client,
        &format!(
            "SELECT count(*) FROM \
               (SELECT x.chat_id, x.team_id, x.prev_team, \
                       row_number() OVER (PARTITION BY x.chat_id ORDER BY x.id) AS n \
                FROM (SELECT e.id, e.chat_id, e.team_id, e.reason, \
                             lag(e.team_id) OVER (PARTITION BY e.chat_id ORDER BY e.id) \
                               AS prev_team \
                      FROM chat_events e) x \
                WHERE x.reason = '{TEAM_TRANSFER_REASON}') ev \
             FULL JOIN \
               (SELECT t.chat_id, t.from_team_id, t.to_team_id, \
                       row_number() OVER (PARTITION BY t.chat_id ORDER BY t.id) AS n \
                FROM chat_transfers t WHERE t.to_operator_id IS NULL) tr USING (chat_id, n) \
             WHERE ev.team_id IS DISTINCT FROM tr.to_team_id \
                OR ev.prev_team IS DISTINCT FROM tr.from_team_id"
        ),
    )
    .await?;
    checks.add(
        "transfers to a team: each stored transfer has its event, naming that team; it came from the chat's team before",
        bad,
        "",
    );
    let bad = count(
        client,
        &format!(
            "SELECT count(*) FROM \
               (SELECT e.chat_id, e.operator_id, e.team_id, \
                       row_number() OVER (PARTITION BY e.chat_id ORDER BY e.id) AS n \
                FROM chat_events e WHERE e.new_state = 'assigned' \
                  AND e.reason IN ('transfer', '{OPERATOR_TRANSFER_REASON}')) ev \
             FULL JOIN \
               (SELECT t.chat_id, t.to_operator_id, t.from_team_id, t.to_team_id, \
                       row_number() OVER (PARTITION BY t.chat_id ORDER BY t.id) AS n \
                FROM chat_transfers t WHERE t.to_operator_id IS NOT NULL) tr USING (chat_id, n) \
             WHERE ev.operator_id IS DISTINCT FROM tr.to_operator_id \
                OR ev.team_id IS DISTINCT FROM tr.to_team_id \
                OR tr.from_team_id IS DISTINCT FROM tr.to_team_id"
        ),
    )
    .await?;
    checks.add(
        "transfers to an operator: each stored transfer has its assigned event, same operator and team",
        bad,
        "",
    );

    // Each chat's events, in id order, are its changes in order (all written under its row
    // lock): each starts from the state the one before left, and the operator a change
    // takes the chat from is the one the change before gave it to. So no chat was ever held
    // by two operators, and only a transfer to an operator hands an assigned chat on.
    add_counts(
        client,
        checks,
        &format!(
            "SELECT count(*) FILTER (WHERE x.old_state IS DISTINCT FROM x.prev_state), \
                    count(*) FILTER (WHERE x.old_state = 'assigned' \
                                       AND (x.new_state <> 'assigned' \
                                                AND x.operator_id IS DISTINCT FROM x.prev_operator \
                                            OR x.new_state = 'assigned' \
                                                AND (x.reason NOT IN ('transfer', '{OPERATOR_TRANSFER_REASON}') \
                                                     OR x.operator_id = x.prev_operator))), \
                    count(*) FILTER (WHERE x.new_state = 'assigned' AND x.operator_id IS NULL) \
             FROM (SELECT e.old_state, e.new_state, e.operator_id, e.reason, \
                          lag(e.new_state) OVER w AS prev_state, \
                          lag(e.operator_id) OVER w AS prev_operator \
                   FROM chat_events e WINDOW w AS (PARTITION BY e.chat_id ORDER BY e.id)) x"
        ),
        &[
            "events: each chat's events chain (each one's old state is the state the one before left)",
            "events: a chat leaves an operator only by an event naming the operator that had it; assigned to assigned only by a transfer to another operator",
            "events: every event giving a chat names its operator",
        ],
    )
    .await?;

    // Every event was written by exactly one successful call, which read it back.
    let mut table = Vec::new();
    for r in client
        .query(
            "SELECT id, old_state::text, new_state::text, operator_id, chat_id, team_id, reason \
             FROM chat_events ORDER BY id",
            &[],
        )
        .await?
    {
        table.push(CallEvent {
            id: r.try_get(0)?,
            old: r.try_get(1)?,
            new: r.try_get(2)?,
            operator: r.try_get(3)?,
            chat: r.try_get(4)?,
            team: r.try_get(5)?,
            held: None,
            reason: r.try_get(6)?,
        });
    }
    let (bad, examples) = account_events(&rep.calls, &table);
    let reported: usize = rep.calls.iter().map(|c| c.events.len()).sum();
    checks.add(
        "events: every stored event was written by exactly one successful call, which read it back as stored",
        bad,
        format!("{} events stored, {reported} reported by {} calls", table.len(), rep.calls.len()),
    );
    checks
        .notes
        .extend(examples.into_iter().map(|e| format!("events: {e}")));

    // Each call wrote what its documented behaviour gives, and gave chats away only as a
    // push or a pull it may make (see call_shape).
    let mut holder_before = HashMap::new();
    let mut last: HashMap<Uuid, &CallEvent> = HashMap::new();
    for e in &table {
        if let Some(prev) = last.insert(e.chat, e) {
            if let (true, Some(op)) = (prev.gives(), prev.operator) {
                holder_before.insert(e.id, op);
            }
        }
    }
    let mut shape_bad = 0i64;
    let mut released_back = 0i64;
    for c in &rep.calls {
        let count = checks.auto_by_call.entry(c.kind.label()).or_default();
        for v in call_shape(c, &holder_before, count) {
            if v.contains("which the same call took it from") {
                released_back += 1;
            } else {
                shape_bad += 1;
            }
            if checks.notes.len() < 60 {
                checks.notes.push(format!("call: {v}"));
            }
        }
    }
    let autos: u64 = checks.auto_by_call.values().map(|a| a.push + a.pull).sum();
    checks.add(
        "per call: each call wrote exactly the events its result and docs/api.md give; each automatic assignment is a push of a chat it queued or a pull by an operator it freed",
        shape_bad,
        format!("{} calls, {autos} automatic assignments", rep.calls.len()),
    );
    checks.add(
        "per call: a chat released or passed on to a team is never given back, in the same call, to the operator it was taken from",
        released_back,
        "",
    );

    // Every chat given to an operator went to an eligible one with room (see
    // replay_operators).
    let mut finals = BTreeMap::new();
    let mut capacity = HashMap::new();
    for r in client
        .query(
            "SELECT o.id, o.status, o.is_active, o.max_concurrent_chats::int8, \
                    coalesce(array_agg(m.team_id) FILTER (WHERE m.team_id IS NOT NULL), '{}') \
             FROM operators o LEFT JOIN team_members m ON m.operator_id = o.id GROUP BY o.id",
            &[],
        )
        .await?
    {
        let teams: Vec<Uuid> = r.try_get(4)?;
        let id: Uuid = r.try_get(0)?;
        capacity.insert(id, r.try_get::<_, i64>(3)?);
        finals.insert(
            id,
            OpState {
                status: r.try_get(1)?,
                active: r.try_get(2)?,
                teams: teams.into_iter().collect(),
            },
        );
    }
    let replay = replay_operators(&rep.calls, &finals, &capacity);
    let locked = rep
        .calls
        .iter()
        .filter(|c| c.kind.locked_operator().is_some())
        .count();
    checks.add(
        "per operator: the calls under its lock have distinct clock readings (their order is known)",
        replay.ties,
        format!("{locked} calls locking an operator first, on {} operators", finals.len()),
    );
    checks.add(
        "per operator: the ids of the events giving it chats grow in its lock order",
        replay.order,
        format!("{} chats given", replay.given),
    );
    checks.add(
        "per call: every chat assigned or transferred went to an active operator not offline (online, for a transfer)",
        replay.absent,
        format!(
            "{} chats given; {} assignment calls by away operators",
            replay.given, replay.away_served
        ),
    );
    checks.add(
        "per call: every chat given automatically went to an active, online operator",
        replay.auto_absent,
        format!("{} automatic assignments", replay.auto_given),
    );
    checks.add(
        "per call: every chat of a team given (asked for, transferred or automatically) went to a member of that team",
        replay.outsider,
        format!("{} chats of a team given", replay.given_of_team),
    );
    checks.add(
        "per call: every operator given a chat held at most its capacity after the call (so at every moment)",
        replay.over,
        "",
    );
    checks.add(
        "per call: set_operator_status/_active, add/remove_team_member returned what the operator's history gives",
        replay.returns,
        "",
    );
    checks.add(
        "per call: every operator row a call updated holds the presence and activity the operator's history gives (an idle release may mark the operators it released away)",
        replay.rows,
        format!("{} operators marked away by idle releases", replay.idle_away),
    );
    checks.add(
        "final: operators' presence, activity and memberships are what their calls left",
        replay.final_state,
        "",
    );
    checks
        .notes
        .extend(replay.examples.into_iter().map(|e| format!("replay: {e}")));

    // What the calls reported matches what the tables hold.
    let n = count(client, "SELECT count(*) FROM chat_assignments").await?;
    let given = replay.given;
    checks.add(
        "assignments stored = chats the calls reported given (assigned, transferred to an operator or automatically)",
        (n - given).abs(),
        format!("stored {n}, reported {given}"),
    );
    let returned = (rep.assign_returned_chat + rep.transfers_to_operator) as i64;
    checks.add(
        "chats given by assignments and transfers = assign_chat_to_operator calls that returned a chat + transfers to an operator that returned true",
        (given - replay.auto_given - returned).abs(),
        format!("given {}, returned {returned}", given - replay.auto_given),
    );
    let n = count(
        client,
        "SELECT count(*) FROM chat_transfers WHERE to_operator_id IS NOT NULL",
    )
    .await?;
    checks.add(
        "transfers to an operator stored = transfer_chat calls to an operator that returned true",
        (n - rep.transfers_to_operator as i64).abs(),
        format!("stored {n}, true {}", rep.transfers_to_operator),
    );
    let n = count(
        client,
        "SELECT count(*) FROM chat_transfers WHERE to_operator_id IS NULL",
    )
    .await?;
    checks.add(
        "transfers to a team stored = transfer_chat calls to a team that returned true",
        (n - rep.transfers_to_team as i64).abs(),
        format!("stored {n}, true {}", rep.transfers_to_team),
    );
    let n = count(
        client,
        "SELECT count(*) FROM chat_assignments WHERE release_reason = 'idle_timeout'",
    )
    .await?;
    checks.add(
        "idle_timeout releases stored = rows release_idle_assignments returned",
        (n - rep.idle_released_rows as i64).abs(),
        format!("stored {n}, returned {}", rep.idle_released_rows),
    );
    let n = count(
        client,
        &format!(
            "SELECT count(*) FROM chat_assignments \
             WHERE release_reason IN ('manual_unassign', '{ADMIN_REASON}')"
        ),
    )
    .await?;
    checks.add(
        "admin releases stored = release_and_reassign_chat calls that returned true",
        (n - rep.reassign_true as i64).abs(),
        format!("stored {n}, true {}", rep.reassign_true),
    );
    let n = count(client, "SELECT count(*) FROM chats").await?;
    checks.add(
        "chats stored = start_chat calls that returned an id",
        (n - rep.started.len() as i64).abs(),
        format!("stored {n}, returned {}", rep.started.len()),
    );
    let n = count(client, "SELECT count(*) FROM operators").await?;
    let want = (setup_operators as u64 + rep.operators_created) as i64;
    checks.add(
        "operators stored = create_operator calls that returned an id",
        (n - want).abs(),
        format!("stored {n}, returned {want}"),
    );

    // Queue positions once nothing moves: each queue (a team's, or the one without a team)
    // in the order chats are taken from it, highest priority first, then by waiting_since
    // and id; chats not in a queue have none.
    let bad = count(
        client,
        "SELECT count(*) FROM chats c \
         CROSS JOIN LATERAL get_queue_position(c.id) p \
         LEFT JOIN (SELECT q.id, row_number() OVER ( \
                             PARTITION BY q.team_id ORDER BY q.priority DESC, q.waiting_since, q.id) \
                           AS position \
                    FROM chats q \
                    WHERE q.chat_state = 'waiting_assignment' AND q.is_active) w ON w.id = c.id \
         WHERE p.queue_position IS DISTINCT FROM w.position \
            OR p.waiting_ahead IS DISTINCT FROM w.position - 1 \
            OR p.estimated_wait_seconds < 0",
    )
    .await?;
    checks.add(
        "final: get_queue_position of every chat = its place in its queue's order (NULL when not waiting)",
        bad,
        "",
    );

    // The monitoring functions agree with the tables once nothing moves.
    let bad = count(
        client,
        "SELECT count(*) FROM get_assignment_queue_status() q \
         WHERE q.waiting_count <> (SELECT count(*) FROM chats \
                                    WHERE chat_state = 'waiting_assignment' AND is_active) \
            OR q.assigned_count <> (SELECT count(*) FROM chats WHERE chat_state = 'assigned') \
            OR q.waiting_reply_count <> (SELECT count(*) FROM chats \
                                    WHERE chat_state = 'waiting_real_user_reply' AND is_active) \
            OR q.active_operators <> (SELECT count(*) FROM operators WHERE is_active)",
    )
    .await?;
    checks.add(
        "final: get_assignment_queue_status() agrees with the tables",
        bad,
        "",
    );
    let bad = count(
        client,
        "SELECT count(*) FROM chat_state_summary s \
         WHERE s.chat_count <> (SELECT count(*) FROM chats c WHERE c.chat_state = s.chat_state)",
    )
    .await?;
    checks.add("final: chat_state_summary agrees with the tables", bad, "");
    Ok(())
}

// ------------------------------------------------------------------------------ main

#[tokio::main]
async fn main() {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(cfg).await {
        Ok(failed) => std::process::exit(if failed == 0 { 0 } else { 1 }),
        Err(e) => {
            eprintln!("stress: aborted: {e}");
            println!("stress: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

async fn run(cfg: Config) -> Result<usize, String> {
    let pg = |e: PgError| describe(&e);
    println!(
        "stress: {} connections, {} s, {} operators, {} chats, seed {}",
        cfg.connections, cfg.seconds, cfg.operators, cfg.chats, cfg.seed
    );

    // ---- set-up
    let admin = connect(&cfg.dsn, "chat_assign_stress admin").await?;
    let version: Option<String> = admin
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'chat_assign'",
            &[],
        )
        .await
        .map_err(pg)?
        .map(|r| r.get(0));
    let version = version.ok_or("extension chat_assign is not installed in this database")?;
    let pre = count(&admin, "SELECT count(*) FROM chats")
        .await
        .map_err(pg)?
        + count(&admin, "SELECT count(*) FROM operators")
            .await
            .map_err(pg)?;
    if pre != 0 {
        return Err("the database must be fresh (chats/operators not empty)".into());
    }
    // The helper every recorded call reads its own events with, and the routing of chats
    // without a team for every session from now on (the admin's own is set here: it
    // connected before).
    admin
        .batch_execute(&format!(
            "{CALL_EVENTS_SQL}; \
             DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET chat_assign.default_routing = %L', \
                                        current_database(), '{DATABASE_ROUTING}'); END $$; \
             SET chat_assign.default_routing = '{DATABASE_ROUTING}'"
        ))
        .await
        .map_err(pg)?;
    let t_setup = Instant::now();
    let mut setup = Report::default();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut teams = Vec::new();
    for (i, routing) in ROUTINGS.iter().enumerate() {
        let r = admin
            .query_one(
                "SELECT create_team($1, $2)",
                &[&format!("stress team {i}"), routing],
            )
            .await
            .map_err(pg)?;
        teams.push(r.get::<_, Uuid>(0));
    }
    let mut operators = Vec::new();
    let mut memberships = 0;
    let join = admin
        .prepare(&recorded_call("add_team_member($1, $2)"))
        .await
        .map_err(pg)?;
    let start = admin
        .prepare(&recorded_call("start_chat($1, $2, NULL, $3, $4)"))
        .await
        .map_err(pg)?;
    let mut events_after = 0i64;
    let setup_call =
        |at: SystemTime, kind: CallKind, texts: Vec<String>, rep: &mut Report, after: &mut i64| {
            let (events, rows) = rep.parse_events(kind.label(), &texts, after);
            let id = rep.calls.len() as u64;
            rep.calls.push(CallRecord {
                id,
                at,
                kind,
                events,
                rows,
            });
        };
    for i in 0..cfg.operators {
        let cap = (i % 3) as i32 + 1;
        let r = admin
            .query_one(
                "SELECT create_operator($1, $2)",
                &[&format!("operator {i}"), &cap],
            )
            .await
            .map_err(pg)?;
        let op: Uuid = r.get(0);
        operators.push(op);
        // In no team (takes only chats without one), one, or two.
        let k = rng.random_range(0..=2);
        for team in teams.choose_multiple(&mut rng, k) {
            let r = admin
                .query_one(&join, &[team, &op, &events_after])
                .await
                .map_err(pg)?;
            let kind = CallKind::Join {
                operator: op,
                team: *team,
                changed: r.get(0),
            };
            setup_call(r.get(1), kind, r.get(2), &mut setup, &mut events_after);
            memberships += 1;
        }
    }
    let mut chats = Vec::new();
    for i in 0..cfg.chats {
        let user = Uuid::new_v4();
        let content = format!("setup chat {i}: hello");
        let team = rng
            .random_bool(0.6)
            .then(|| *teams.choose(&mut rng).unwrap());
        let priority: i32 = if rng.random_bool(0.7) {
            0
        } else {
            rng.random_range(1..=5)
        };
        let r = admin
            .query_one(&start, &[&user, &content, &team, &priority, &events_after])
            .await
            .map_err(pg)?;
        let chat: Uuid = r.get(0);
        let kind = CallKind::StartChat { chat, team };
        setup_call(r.get(1), kind, r.get(2), &mut setup, &mut events_after);
        chats.push(chat);
        setup.started.push(StartedChat {
            chat_id: chat,
            real_user_id: user,
            content,
            team,
        });
    }
    println!(
        "stress: extension chat_assign {version}; set-up {} teams, {} operators (capacity 1-3, \
         {memberships} memberships), {} chats (60 % of a team, 30 % with a priority) in {} ms",
        teams.len(),
        operators.len(),
        chats.len(),
        t_setup.elapsed().as_millis()
    );
    // Statistics for the set-up's tables. `teams` and `team_members` stay far below
    // autovacuum's analyze threshold (50 changed rows), and without statistics the planner
    // takes them for ~10 pages each: the monitoring views and tests/invariants.sql then cost
    // enough for JIT, which compiles them on every call (0.1-0.5 s alone, seconds under this
    // load), and the workers would poll dashboards instead of stressing the calls.
    admin.batch_execute("ANALYZE").await.map_err(pg)?;
    let shared = Arc::new(Shared {
        operators: RwLock::new(operators),
        chats: RwLock::new(chats),
        teams: RwLock::new(teams),
        hot: Mutex::new(VecDeque::new()),
    });

    // ---- connections
    let mut workers = Vec::new();
    let mut routings: BTreeMap<String, usize> = BTreeMap::new();
    let mut routing_mismatch = Vec::new();
    for id in 0..cfg.connections {
        let client = connect(&cfg.dsn, &format!("chat_assign_stress w{id}")).await?;
        let want = SESSION_ROUTINGS[id % SESSION_ROUTINGS.len()];
        if let Some(routing) = want {
            client
                .batch_execute(&format!("SET chat_assign.default_routing = '{routing}'"))
                .await
                .map_err(pg)?;
        }
        // The setting as the library reads it: the call in FROM loads the library first.
        let effective: String = client
            .query_one(
                "SELECT current_setting('chat_assign.default_routing') \
                 FROM get_assignment_queue_status()",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        if effective != want.unwrap_or(DATABASE_ROUTING) {
            routing_mismatch.push(format!("connection {id}: {effective}"));
        }
        *routings.entry(effective).or_default() += 1;
        let st = Stmts::prepare(&client).await.map_err(pg)?;
        workers.push(Worker {
            id,
            client,
            st,
            rng: StdRng::seed_from_u64(
                cfg.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            shared: shared.clone(),
            rep: Report::default(),
            seq: 0,
            held: Vec::new(),
            replied: Vec::new(),
            events_after: 0,
        });
    }
    let mon_client = connect(&cfg.dsn, "chat_assign_stress monitor").await?;
    // The invariants are one statement of a few dozen subqueries: JIT compiles hundreds of
    // functions for it at every sample, more than half its time, and under this load each
    // sample already takes seconds. Samples are what the monitor is for.
    mon_client
        .batch_execute("SET jit = off")
        .await
        .map_err(|e| describe(&e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mon = tokio::spawn(monitor(mon_client, stop.clone()));

    // ---- the run
    let t_run = Instant::now();
    let deadline = t_run + Duration::from_secs(cfg.seconds);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(w.run(deadline)))
        .collect();
    let mut rep = Report::default();
    let mut stragglers = 0i64;
    for h in handles {
        let hard_stop = deadline + Duration::from_secs(90);
        match tokio::time::timeout_at(hard_stop.into(), h).await {
            Ok(Ok(r)) => rep.merge(r),
            Ok(Err(e)) => {
                rep.fatal(FATAL_KINDS[7], format!("worker task panicked: {e}"));
            }
            Err(_) => stragglers += 1,
        }
    }
    let elapsed = t_run.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mon = mon.await.map_err(|e| format!("monitor task: {e}"))?;

    // ---- checks
    let mut checks = Checks {
        list: Vec::new(),
        notes: Vec::new(),
        auto_by_call: BTreeMap::new(),
    };
    let setup_operators = cfg.operators;
    let calls_run: u64 = rep.stats.values().map(|s| s.calls).sum();
    rep.merge(setup);

    for kind in FATAL_KINDS {
        checks.add(
            format!("no {kind}"),
            *rep.fatal.get(kind).unwrap_or(&0) as i64,
            "",
        );
    }
    checks.add(
        "chat_assign.default_routing: each connection runs with the database's or its own SET",
        routing_mismatch.len() as i64,
        routings
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .chain(routing_mismatch.iter().cloned())
            .collect::<Vec<_>>()
            .join(", "),
    );
    checks.add(
        "every connection stopped by itself within 90 s after the deadline",
        stragglers,
        "",
    );
    checks.add(
        "monitor sampled the invariants during the run without error",
        if mon.samples == 0 { 1 } else { 0 } + mon.errors.len() as i64,
        format!("{} samples", mon.samples),
    );
    checks.add(
        "during run: get_service_metrics() always answered, with sane values (counts >= 0, p90 >= p50, all = no_team + teams)",
        mon.metrics_bad as i64 + if mon.metrics_calls == 0 { 1 } else { 0 },
        format!("{} calls", mon.metrics_calls),
    );
    for name in &mon.names {
        checks.add(
            format!("during run: {name}"),
            *mon.violations.get(name).unwrap_or(&0) as i64,
            format!("violating samples of {}", mon.samples),
        );
    }
    for kind in SANITY_KINDS {
        checks.add(*kind, *rep.sanity.get(kind).unwrap_or(&0) as i64, "");
    }
    for f in PUBLIC {
        let ok = rep.stats.get(f).map_or(0, |s| s.ok);
        checks.add(
            format!("coverage: {f} succeeded at least once"),
            if ok == 0 { 1 } else { 0 },
            format!("{ok} ok"),
        );
    }
    for (label, _, _, _) in INVALID {
        let n = rep.stats.get(label).map_or(0, |s| s.calls);
        if n > 0 {
            checks.add(
                format!("coverage: {label} exercised"),
                0,
                format!("{n} calls"),
            );
        }
    }
    let hit = |f: &str| rep.stats.get(f).map_or(0, |s| s.hits);
    let refused =
        |f: &'static str, cause: &'static str| rep.refusals.get(&(f, cause)).copied().unwrap_or(0);
    let code = |f: &str, c: &str| {
        rep.stats
            .get(f)
            .and_then(|s| s.codes.get(c).copied())
            .unwrap_or(0)
    };
    for (what, n) in [
        (
            "assign_chat_to_operator returned a chat",
            hit("assign_chat_to_operator"),
        ),
        (
            "assign_chat_to_operator refused an operator at capacity or inactive (55000)",
            code("assign_chat_to_operator", "55000"),
        ),
        (
            "operator_send_message refused a non-assigned operator (55000)",
            code("operator_send_message", "55000"),
        ),
        (
            "release_idle_assignments released chats",
            hit("release_idle_assignments"),
        ),
        (
            "release_and_reassign_chat released chats",
            hit("release_and_reassign_chat"),
        ),
        (
            "touch_operator_activity returned true",
            hit("touch_operator_activity"),
        ),
        (
            "assign_chat_to_operator refused an operator not online (55000)",
            refused("assign_chat_to_operator", "operator not online"),
        ),
        (
            "set_operator_status changed a presence",
            hit("set_operator_status"),
        ),
        (
            "transfer_chat moved a chat to an operator",
            rep.transfers_to_operator,
        ),
        (
            "transfer_chat moved a chat to a team",
            rep.transfers_to_team,
        ),
        (
            "transfer_chat refused an operator not a member of the chat's team (55000)",
            refused("transfer_chat", "operator not a member of the chat's team"),
        ),
        ("add_team_member added a member", hit("add_team_member")),
        (
            "remove_team_member removed a member",
            hit("remove_team_member"),
        ),
        (
            "set_chat_priority changed a priority",
            hit("set_chat_priority"),
        ),
        (
            "get_queue_position returned a position",
            hit("get_queue_position"),
        ),
    ] {
        checks.add(
            format!("coverage: {what}"),
            if n == 0 { 1 } else { 0 },
            format!("{n}"),
        );
    }

    if let Err(e) = final_checks(&admin, &rep, setup_operators, &mut checks).await {
        checks.add("final checks ran without error", 1, describe(&e));
    }
    // Pushes and pulls the workload always makes plenty of (the others are printed below).
    let auto = |f: &str| checks.auto_by_call.get(f).copied().unwrap_or_default();
    for (what, n) in [
        (
            "start_chat pushed a new chat to an operator",
            auto("start_chat").push,
        ),
        (
            "operator_send_message pulled the next chat for the operator who replied",
            auto("operator_send_message").pull,
        ),
        (
            "real_user_send_message pushed the chat back out",
            auto("real_user_send_message").push,
        ),
        (
            "release_idle_assignments pushed released chats to other operators",
            auto("release_idle_assignments").push,
        ),
    ] {
        checks.add(
            format!("coverage: {what}"),
            if n == 0 { 1 } else { 0 },
            format!("{n}"),
        );
    }
    let reasons = admin
        .query(
            "SELECT coalesce(release_reason, '(open)'), count(*) FROM chat_assignments \
             GROUP BY 1 ORDER BY 2 DESC",
            &[],
        )
        .await
        .map_err(pg)?;
    let states = admin
        .query(
            "SELECT chat_state::text, chat_count FROM chat_state_summary",
            &[],
        )
        .await
        .map_err(pg)?;
    let inactive = count(&admin, "SELECT count(*) FROM operators WHERE NOT is_active")
        .await
        .map_err(pg)?;
    let released_by = |reason: &str| {
        reasons
            .iter()
            .find(|r| r.get::<_, String>(0) == reason)
            .map_or(0, |r| r.get::<_, i64>(1))
    };
    let n = released_by("operator_offline");
    checks.add(
        "coverage: set_operator_status('offline') released chats",
        if n == 0 { 1 } else { 0 },
        format!("{n}"),
    );
    let presence = admin
        .query(
            "SELECT status, count(*) FROM operators GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .map_err(pg)?;
    let queues = admin
        .query(
            "SELECT coalesce(team_name, '(no team)'), routing, waiting, assigned, eligible, \
                    online, available \
             FROM team_queue_status",
            &[],
        )
        .await
        .map_err(pg)?;

    // ---- report
    print_report(&cfg, &rep, &mon, calls_run, elapsed);
    println!("\nfinal state:");
    for r in &states {
        println!(
            "  chats {:<26} {:>6}",
            r.get::<_, String>(0),
            r.get::<_, i64>(1)
        );
    }
    let presence: Vec<String> = presence
        .iter()
        .map(|r| format!("{} {}", r.get::<_, i64>(1), r.get::<_, String>(0)))
        .collect();
    println!(
        "  operators {} ({inactive} inactive; {})",
        setup_operators as u64 + rep.operators_created,
        presence.join(", ")
    );
    println!("  queues                      waiting assigned eligible   online available  routing");
    for r in &queues {
        println!(
            "    {:<24} {:>8} {:>8} {:>8} {:>8} {:>9}  {}",
            r.get::<_, String>(0),
            r.get::<_, i64>(2),
            r.get::<_, i64>(3),
            r.get::<_, i64>(4),
            r.get::<_, i64>(5),
            r.get::<_, i64>(6),
            r.get::<_, Option<String>>(1).unwrap_or_default()
        );
    }
    println!("  automatic assignments (auto_assigned events) by the call that made them:");
    println!("    {:<32} {:>7} {:>7}", "", "push", "pull");
    let mut total = AutoCount::default();
    for (label, n) in &checks.auto_by_call {
        if n.push + n.pull > 0 {
            println!("    {label:<32} {:>7} {:>7}", n.push, n.pull);
        }
        total.push += n.push;
        total.pull += n.pull;
    }
    println!(
        "    {:<32} {:>7} {:>7}  ({} in all)",
        "total",
        total.push,
        total.pull,
        total.push + total.pull
    );
    println!("  assignments by release reason:");
    for r in &reasons {
        println!(
            "    {:<24} {:>7}",
            r.get::<_, String>(0),
            r.get::<_, i64>(1)
        );
    }

    println!("\nchecks:");
    for (name, n, detail) in &checks.list {
        let status = if *n == 0 { "ok  " } else { "FAIL" };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        if *n == 0 {
            println!("  {status} {name}{detail}");
        } else {
            println!("  {status} {name}: {n} violation(s){detail}");
        }
    }
    if !checks.notes.is_empty() {
        println!("\nfailed checks, examples:");
        for e in &checks.notes {
            println!("  {e}");
        }
    }
    if !rep.fatal_examples.is_empty() {
        println!("\nfatal errors (first {}):", rep.fatal_examples.len());
        for e in &rep.fatal_examples {
            println!("  {e}");
        }
    }
    if !rep.sanity_examples.is_empty() {
        println!("\nsanity violations (first {}):", rep.sanity_examples.len());
        for e in &rep.sanity_examples {
            println!("  {e}");
        }
    }
    if !mon.examples.is_empty() || !mon.errors.is_empty() {
        println!("\nmonitor:");
        for e in mon.examples.iter().chain(mon.errors.iter()) {
            println!("  {e}");
        }
    }
    let inv_checked = mon.names.len();
    println!(
        "\nstress: {} connections x {:.1} s, {} calls, {:.0} calls/s, {} invariants checked in {} monitor samples and at the end",
        cfg.connections,
        elapsed,
        calls_run,
        calls_run as f64 / elapsed,
        inv_checked,
        mon.samples
    );
    println!(
        "stress: {} passed, {} failed",
        checks.passed(),
        checks.failed()
    );
    Ok(checks.failed())
}

fn print_report(cfg: &Config, rep: &Report, mon: &MonitorReport, calls_run: u64, elapsed: f64) {
    let mut codes: Vec<String> = Vec::new();
    for s in rep.stats.values() {
        for c in s.codes.keys() {
            if !codes.contains(c) {
                codes.push(c.clone());
            }
        }
    }
    codes.sort();
    println!("\nper function (run phase; hits = chats returned / true / rows returned):");
    let mut header = format!(
        "  {:<40} {:>8} {:>8} {:>8}",
        "function", "calls", "ok", "hits"
    );
    for c in &codes {
        header += &format!(" {c:>7}");
    }
    header += &format!(" {:>8} {:>8}", "avg ms", "max ms");
    println!("{header}");
    let mut labels: Vec<&str> = PUBLIC.to_vec();
    labels.extend(INVALID.iter().map(|(l, _, _, _)| *l));
    for label in labels {
        let Some(s) = rep.stats.get(label) else {
            continue;
        };
        let mut line = format!("  {:<40} {:>8} {:>8} {:>8}", label, s.calls, s.ok, s.hits);
        for c in &codes {
            line += &format!(" {:>7}", s.codes.get(c).copied().unwrap_or(0));
        }
        let avg = if s.calls > 0 {
            s.total_us as f64 / s.calls as f64 / 1000.0
        } else {
            0.0
        };
        line += &format!(" {:>8.2} {:>8.1}", avg, s.max_us as f64 / 1000.0);
        println!("{line}");
    }
    println!("\nper SQLSTATE (errors):");
    for c in &codes {
        let n: u64 = rep
            .stats
            .values()
            .map(|s| s.codes.get(c).copied().unwrap_or(0))
            .sum();
        let what = match c.as_str() {
            "55000" => "object_not_in_prerequisite_state (documented refusal)",
            "P0002" => "no_data_found (documented)",
            "22004" => "null_value_not_allowed (documented)",
            "22023" => "invalid_parameter_value (documented)",
            "40P01" => "deadlock_detected (FAIL)",
            "XX000" => "internal_error (FAIL)",
            "23505" => "unique_violation (FAIL, but for create_team with a taken name)",
            "23514" => "check_violation (not documented: FAIL)",
            "40001" => "serialization_failure (FAIL)",
            "57014" => "query_canceled, statement_timeout 60 s (not documented: FAIL)",
            "non-db" => "not a database error (FAIL)",
            _ => "not documented (FAIL)",
        };
        println!("  {c:<7} {n:>8}  {what}");
    }
    println!("\n55000 refusals by function and cause (told by the message):");
    for ((label, cause), n) in &rep.refusals {
        println!("  {label:<40} {cause:<42} {n:>7}");
    }
    println!(
        "\nfigures: {} connections, {:.1} s (asked {} s), {} calls, {:.0} calls/s; monitor {} samples (slowest {} ms); {} messages, {} chats and {} calls with their events recorded",
        cfg.connections,
        elapsed,
        cfg.seconds,
        calls_run,
        calls_run as f64 / elapsed,
        mon.samples,
        mon.max_ms,
        rep.messages.len(),
        rep.started.len(),
        rep.calls.len()
    );
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// A call at `ms` (its number too) with its events and operator rows.
    fn call(ms: u64, kind: CallKind, events: Vec<CallEvent>, rows: Vec<OpRow>) -> CallRecord {
        CallRecord {
            id: ms,
            at: at(ms),
            kind,
            events,
            rows,
        }
    }

    /// An event giving `chat` to `op` (reason `reason`), which then holds `held` chats.
    fn gives(
        id: i64,
        reason: &str,
        op: Uuid,
        chat: Uuid,
        team: Option<Uuid>,
        held: i64,
    ) -> CallEvent {
        CallEvent {
            id,
            old: Some("waiting_assignment".into()),
            new: "assigned".into(),
            operator: Some(op),
            chat,
            team,
            held: Some(held),
            reason: reason.into(),
        }
    }

    /// An event taking `chat` from `op` back to the queue.
    fn releases(id: i64, reason: &str, op: Uuid, chat: Uuid) -> CallEvent {
        CallEvent {
            id,
            old: Some("assigned".into()),
            new: "waiting_assignment".into(),
            operator: Some(op),
            chat,
            team: None,
            held: None,
            reason: reason.into(),
        }
    }

    fn row(op: Uuid, status: &str) -> OpRow {
        OpRow {
            operator: op,
            status: status.into(),
            active: true,
        }
    }

    fn finals(op: Uuid, status: &str, teams: &[Uuid]) -> BTreeMap<Uuid, OpState> {
        BTreeMap::from([(
            op,
            OpState {
                status: status.into(),
                active: true,
                teams: teams.iter().copied().collect(),
            },
        )])
    }

    fn ids() -> (Uuid, Uuid, Uuid, Uuid) {
        (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        )
    }

    /// Joins (and pulls a team chat), a chat without a team pushed to it, an assignment,
    /// leaving, offline, back online (pulling), an idle release marking it away: all
    /// consistent, whatever order the records come in.
    #[test]
    fn a_consistent_history_passes() {
        let (op, team, c1, c2) = ids();
        let (c3, c4, c5, other) = ids();
        let cap = HashMap::from([(op, 2)]);
        let calls = vec![
            // Out of order on purpose: the replay sorts by the clock.
            call(
                3,
                CallKind::StartChat {
                    chat: c2,
                    team: None,
                },
                vec![
                    CallEvent {
                        id: 4,
                        old: None,
                        new: "waiting_assignment".into(),
                        operator: None,
                        chat: c2,
                        team: None,
                        held: None,
                        reason: "chat_started".into(),
                    },
                    gives(5, "auto_assigned", op, c2, None, 2),
                ],
                vec![row(op, "online")],
            ),
            call(
                1,
                CallKind::Join {
                    operator: op,
                    team,
                    changed: true,
                },
                vec![gives(2, "auto_assigned", op, c1, Some(team), 1)],
                vec![row(op, "online")],
            ),
            call(
                4,
                CallKind::Leave {
                    operator: op,
                    team,
                    changed: true,
                },
                vec![],
                vec![],
            ),
            call(
                5,
                CallKind::Assign {
                    operator: op,
                    got: Some(c3),
                },
                vec![gives(9, "assigned", op, c3, None, 2)],
                vec![row(op, "online")],
            ),
            call(
                6,
                CallKind::Status {
                    operator: op,
                    new: "offline",
                    previous: "online".into(),
                },
                vec![],
                vec![row(op, "offline")],
            ),
            call(
                7,
                CallKind::Status {
                    operator: op,
                    new: "online",
                    previous: "offline".into(),
                },
                vec![gives(12, "auto_assigned", op, c4, None, 1)],
                vec![row(op, "online")],
            ),
            call(
                8,
                CallKind::Idle {
                    released: vec![(c4, op)],
                },
                vec![
                    releases(14, "idle_timeout", op, c4),
                    gives(15, "auto_assigned", other, c4, None, 1),
                ],
                vec![row(op, "away"), row(other, "online")],
            ),
            call(
                9,
                CallKind::Assign {
                    operator: op,
                    got: Some(c5),
                },
                vec![gives(20, "assigned", op, c5, None, 1)],
                vec![row(op, "online")],
            ),
        ];
        let mut fin = finals(op, "online", &[]);
        fin.insert(other, OpState::new());
        let mut cap = cap;
        cap.insert(other, 1);
        let r = replay_operators(&calls, &fin, &cap);
        assert_eq!(
            (
                r.ties,
                r.returns,
                r.order,
                r.absent,
                r.auto_absent,
                r.outsider,
                r.over,
                r.rows,
                r.final_state
            ),
            (0, 0, 0, 0, 0, 0, 0, 0, 0),
            "{:?}",
            r.examples
        );
        assert_eq!(
            (
                r.given,
                r.given_of_team,
                r.auto_given,
                r.away_served,
                r.idle_away
            ),
            (6, 1, 4, 1, 1)
        );
        let mut count = AutoCount::default();
        let bad: Vec<String> = calls
            .iter()
            .flat_map(|c| call_shape(c, &HashMap::new(), &mut count))
            .collect();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!((count.push, count.pull), (2, 2));
    }

    /// Pushes to an operator offline, outside the chat's team or full, and events whose ids
    /// do not follow the lock order, are caught.
    #[test]
    fn automatic_assignments_to_the_ineligible_are_caught() {
        let (op, team, c1, c2) = ids();
        let c3 = Uuid::new_v4();
        let calls = vec![
            call(
                1,
                CallKind::Status {
                    operator: op,
                    new: "offline",
                    previous: "online".into(),
                },
                vec![],
                vec![row(op, "offline")],
            ),
            call(
                2,
                CallKind::StartChat {
                    chat: c1,
                    team: None,
                },
                vec![gives(10, "auto_assigned", op, c1, None, 1)],
                vec![],
            ),
            call(
                3,
                CallKind::Status {
                    operator: op,
                    new: "online",
                    previous: "offline".into(),
                },
                vec![],
                vec![row(op, "online")],
            ),
            // A team it is not a member of; over its capacity of 1; an id below the last.
            call(
                4,
                CallKind::StartChat {
                    chat: c2,
                    team: Some(team),
                },
                vec![gives(5, "auto_assigned", op, c2, Some(team), 2)],
                vec![row(op, "online")],
            ),
            call(
                5,
                CallKind::StartChat {
                    chat: c3,
                    team: None,
                },
                vec![gives(11, "auto_assigned", op, c3, None, 1)],
                vec![row(op, "away")],
            ),
        ];
        let r = replay_operators(
            &calls,
            &finals(op, "online", &[]),
            &HashMap::from([(op, 1)]),
        );
        assert_eq!(
            (
                r.auto_absent,
                r.outsider,
                r.over,
                r.order,
                r.rows,
                r.returns
            ),
            (1, 1, 1, 1, 1, 0),
            "{:?}",
            r.examples
        );
    }

    #[test]
    fn wrong_returns_ties_and_final_state_are_caught() {
        let (op, team, c1, _) = ids();
        let calls = vec![
            call(
                1,
                CallKind::Join {
                    operator: op,
                    team,
                    changed: false,
                },
                vec![],
                vec![],
            ),
            call(
                2,
                CallKind::Status {
                    operator: op,
                    new: "away",
                    previous: "offline".into(),
                },
                vec![],
                vec![row(op, "away")],
            ),
            call(
                2,
                CallKind::Assign {
                    operator: op,
                    got: Some(c1),
                },
                vec![gives(3, "assigned", op, c1, None, 1)],
                vec![row(op, "online")],
            ),
        ];
        // Two calls with one reading: the second gets another number.
        let mut calls = calls;
        calls[2].id = 99;
        let r = replay_operators(
            &calls,
            &finals(op, "away", &[team]),
            &HashMap::from([(op, 1)]),
        );
        assert_eq!(
            (r.returns, r.ties, r.final_state),
            (2, 1, 1),
            "{:?}",
            r.examples
        );
    }

    /// A chat an admin released given back to the same operator, a pull by an operator the
    /// call did not free, and an assignment event of another chat than the one returned are
    /// caught; a transfer of an assigned chat lets its former holder pull another.
    #[test]
    fn calls_that_give_chats_they_may_not_are_caught() {
        let (op, other, c1, c2) = ids();
        let release = |ms, events| {
            call(
                ms,
                CallKind::Release {
                    chat: c1,
                    released: true,
                },
                events,
                vec![],
            )
        };
        let mut count = AutoCount::default();
        let given_back = release(
            1,
            vec![
                releases(1, "manual_unassign", op, c1),
                gives(2, "auto_assigned", op, c1, None, 1),
            ],
        );
        let bad = call_shape(&given_back, &HashMap::new(), &mut count);
        assert!(bad.len() == 1 && bad[0].contains("given back"), "{bad:?}");
        let pushed_and_pulled = release(
            2,
            vec![
                releases(1, "manual_unassign", op, c1),
                gives(2, "auto_assigned", other, c1, None, 1),
                gives(3, "auto_assigned", op, c2, None, 1),
            ],
        );
        assert!(call_shape(&pushed_and_pulled, &HashMap::new(), &mut count).is_empty());
        let stranger_pulls = release(
            3,
            vec![
                releases(1, "manual_unassign", op, c1),
                gives(3, "auto_assigned", other, c2, None, 1),
            ],
        );
        assert_eq!(
            call_shape(&stranger_pulls, &HashMap::new(), &mut count).len(),
            1
        );
        let wrong_chat = call(
            4,
            CallKind::Assign {
                operator: op,
                got: Some(c1),
            },
            vec![gives(4, "assigned", op, c2, None, 1)],
            vec![],
        );
        assert_eq!(
            call_shape(&wrong_chat, &HashMap::new(), &mut count).len(),
            1
        );
        let mut transfer = gives(5, "transfer", other, c1, None, 1);
        transfer.old = Some("assigned".into());
        let transferred = call(
            5,
            CallKind::ToOperator {
                chat: c1,
                operator: other,
                moved: true,
            },
            vec![transfer, gives(6, "auto_assigned", op, c2, None, 1)],
            vec![],
        );
        let holder = HashMap::from([(5, op)]);
        assert!(call_shape(&transferred, &holder, &mut count).is_empty());
        assert_eq!(
            call_shape(&transferred, &HashMap::new(), &mut count).len(),
            2
        );
        assert_eq!((count.push, count.pull), (1, 2));
    }

    #[test]
    fn events_no_call_or_two_calls_reported_are_caught() {
        let (op, c1, c2, _) = ids();
        let e1 = gives(1, "assigned", op, c1, None, 1);
        let e2 = gives(2, "auto_assigned", op, c2, None, 2);
        let kind = CallKind::Assign {
            operator: op,
            got: Some(c1),
        };
        let calls = vec![call(1, kind.clone(), vec![e1.clone()], vec![])];
        let stored = |e: &CallEvent| CallEvent {
            held: None,
            ..e.clone()
        };
        assert_eq!(account_events(&calls, &[stored(&e1)]).0, 0);
        assert_eq!(account_events(&calls, &[stored(&e1), stored(&e2)]).0, 1);
        let twice = vec![calls[0].clone(), call(2, kind, vec![e1.clone()], vec![])];
        assert_eq!(account_events(&twice, &[stored(&e1)]).0, 1);
        assert_eq!(account_events(&calls, &[]).0, 1);
    }

    #[test]
    fn the_helper_answer_parses() {
        let (op, chat, team, _) = ids();
        let e = CallEvent::parse(&format!(
            "e|7|waiting_assignment|assigned|{op}|{chat}|{team}|2|auto_assigned"
        ))
        .unwrap();
        assert_eq!(e, gives(7, "auto_assigned", op, chat, Some(team), 2));
        let e =
            CallEvent::parse(&format!("e|8||waiting_assignment||{chat}|||chat_started")).unwrap();
        assert_eq!(
            (e.old, e.operator, e.team, e.held),
            (None, None, None, None)
        );
        assert_eq!(
            OpRow::parse(&format!("o|{op}|away|t")),
            Some(row(op, "away"))
        );
        assert!(CallEvent::parse(&format!("o|{op}|away|t")).is_none());
        assert_eq!(params_in("f($1, $12, p => $3)"), 12);
        assert_eq!(params_in("release_idle_assignments()"), 0);
    }
}

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
//! one snapshot every ~100 ms. Afterwards it checks, with SQL, every invariant again, that
//! every message a call reported as stored is stored as reported, that the counts the calls
//! reported match what the tables hold, and, call by call, that every chat given to an
//! operator (by assignment or transfer) went to an eligible one: see [`replay_operators`].
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

/// The teams of the set-up and their routings (the routing changes nothing about who may
/// take a chat, which is what this test checks, but every routing is in use).
const ROUTINGS: [&str; 3] = ["manual", "least_loaded", "round_robin"];

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

/// What a successful call that takes an operator's row lock did and returned. These calls
/// are the only ones that change what an operator may be given (presence, activity,
/// memberships) or give it a chat.
#[derive(Clone, Debug)]
enum OpCall {
    /// assign_chat_to_operator: the chat it returned, if any.
    Assign(Option<Uuid>),
    /// transfer_chat to this operator: whether it moved the chat.
    TransferIn {
        chat: Uuid,
        moved: bool,
    },
    /// set_operator_status: the presence set and the one it returned as the previous.
    Status {
        new: &'static str,
        previous: String,
    },
    /// set_operator_active: the value set and whether it returned "changed".
    Active {
        active: bool,
        changed: bool,
    },
    /// add_team_member / remove_team_member: the team and whether it returned true.
    Join {
        team: Uuid,
        changed: bool,
    },
    Leave {
        team: Uuid,
        changed: bool,
    },
}

/// One such call, with `clock_timestamp()` read by the same statement after the function
/// returned: inside the call's transaction, so while it still holds the operator's lock.
#[derive(Clone, Debug)]
struct OpRecord {
    operator: Uuid,
    at: SystemTime,
    call: OpCall,
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
    op_calls: Vec<OpRecord>,
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
        self.op_calls.extend(other.op_calls);
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

/// How the calls that take an operator's lock are made: the function in FROM, so that its
/// result is complete (the call has run) before the row with `clock_timestamp()` is formed,
/// in the same statement and so the same transaction, which holds the operator's row lock
/// until it commits. [`replay_operators`] orders each operator's calls by that reading.
fn timed_call(call: &str) -> String {
    format!("SELECT f.r, clock_timestamp() FROM {call} AS f(r)")
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
        for (sql, threshold) in [
            (
                "SELECT chat_id, operator_id, idle_seconds \
                 FROM release_idle_assignments(p_idle_after => '50 milliseconds')",
                Some(0.05),
            ),
            (
                "SELECT chat_id, operator_id, idle_seconds \
                 FROM release_idle_assignments('200 milliseconds'::interval)",
                Some(0.2),
            ),
            (
                "SELECT chat_id, operator_id, idle_seconds FROM release_idle_assignments(NULL)",
                None,
            ),
            (
                "SELECT chat_id, operator_id, idle_seconds FROM release_idle_assignments()",
                None,
            ),
        ] {
            idle.push((c.prepare(sql).await?, threshold));
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
            start_chat: c.prepare("SELECT start_chat($1, $2)").await?,
            start_chat_team: c.prepare("SELECT start_chat($1, $2, NULL, $3, $4)").await?,
            start_chat_named: c
                .prepare(
                    "SELECT start_chat(p_real_user_id => $1, p_content => $2, \
                                       p_team_id => $3, p_priority => $4)",
                )
                .await?,
            user_msg: c
                .prepare("SELECT real_user_send_message(p_chat_id => $1, p_content => $2)")
                .await?,
            op_msg: c
                .prepare("SELECT operator_send_message($1, $2, $3)")
                .await?,
            assign: c
                .prepare(&timed_call("assign_chat_to_operator($1)"))
                .await?,
            release_default: c.prepare("SELECT release_and_reassign_chat($1)").await?,
            release_reason: c
                .prepare("SELECT release_and_reassign_chat(p_chat_id => $1, p_reason => $2)")
                .await?,
            touch: c
                .prepare("SELECT touch_operator_activity(p_operator_id => $1, p_chat_id => $2)")
                .await?,
            idle,
            complete: c.prepare("SELECT complete_chat($1)").await?,
            create_op: c.prepare("SELECT create_operator($1, $2)").await?,
            set_active: c
                .prepare(&timed_call("set_operator_active($1, $2)"))
                .await?,
            create_team: c.prepare("SELECT create_team($1, $2)").await?,
            create_team_default: c.prepare("SELECT create_team($1)").await?,
            set_routing: c.prepare("SELECT set_team_routing($1, $2)").await?,
            add_member: c
                .prepare(&timed_call(
                    "add_team_member(p_team_id => $1, p_operator_id => $2)",
                ))
                .await?,
            remove_member: c.prepare(&timed_call("remove_team_member($1, $2)")).await?,
            set_status: c
                .prepare(&timed_call("set_operator_status($1, $2)"))
                .await?,
            transfer_to_operator: c.prepare(&timed_call("transfer_chat($1, $2)")).await?,
            transfer_to_operator_reason: c
                .prepare(&timed_call(
                    "transfer_chat(p_chat_id => $1, p_to_operator_id => $2, p_reason => $3)",
                ))
                .await?,
            transfer_to_team: c
                .prepare(
                    "SELECT transfer_chat(p_chat_id => $1, p_to_team_id => $2, p_reason => $3)",
                )
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

/// One call that takes an operator's lock, made through [`timed_call`]: its value and the
/// clock reading.
macro_rules! timed {
    ($w:ident, $label:expr, $stmt:expr, $ty:ty, [$($p:expr),*]) => {{
        let t0 = Instant::now();
        let res = $w.client.query_one($stmt, &[$(&$p),*]).await.and_then(|r| {
            Ok((r.try_get::<_, $ty>(0)?, r.try_get::<_, SystemTime>(1)?))
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

    fn op_call(&mut self, operator: Uuid, at: SystemTime, call: OpCall) {
        self.rep.op_calls.push(OpRecord { operator, at, call });
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
            (None, 0, true) => one!(
                self,
                "start_chat",
                &self.st.start_chat,
                Uuid,
                [user, content]
            ),
            (_, _, true) => one!(
                self,
                "start_chat",
                &self.st.start_chat_team,
                Uuid,
                [user, content, team, priority]
            ),
            (_, _, false) => one!(
                self,
                "start_chat",
                &self.st.start_chat_named,
                Uuid,
                [user, content, team, priority]
            ),
        };
        if let Some(chat) = started {
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
        if let Some(id) = one!(
            self,
            "real_user_send_message",
            &self.st.user_msg,
            i64,
            [chat, content]
        ) {
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
        match one!(
            self,
            "operator_send_message",
            &self.st.op_msg,
            i64,
            [chat, op, content]
        ) {
            Some(id) => {
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
        let Some((got, at)) = timed!(
            self,
            "assign_chat_to_operator",
            &self.st.assign,
            Option<Uuid>,
            [op]
        ) else {
            return;
        };
        self.op_call(op, at, OpCall::Assign(got));
        let Some(chat) = got else { return };
        self.rep.assign_returned_chat += 1;
        self.rep.hit("assign_chat_to_operator", 1);
        {
            let mut hot = self.shared.hot.lock().unwrap();
            hot.push_back(chat);
            if hot.len() > 64 {
                hot.pop_front();
            }
        }
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
            self.held.push((op, chat));
            if self.held.len() > 8 {
                self.held.remove(0);
            }
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
        let released = if self.rng.random_bool(0.5) {
            one!(
                self,
                "release_and_reassign_chat",
                &self.st.release_default,
                bool,
                [chat]
            )
        } else {
            one!(
                self,
                "release_and_reassign_chat",
                &self.st.release_reason,
                bool,
                [chat, ADMIN_REASON]
            )
        };
        if released == Some(true) {
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
        let Some(rows) = rows!(self, "release_idle_assignments", &stmt, []) else {
            return;
        };
        self.rep.idle_released_rows += rows.len() as u64;
        self.rep.hit("release_idle_assignments", rows.len() as u64);
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
        if let Some(true) = one!(self, "complete_chat", &self.st.complete, bool, [chat]) {
            self.rep.hit("complete_chat", 1);
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
        if let Some((changed, at)) = timed!(
            self,
            "set_operator_active",
            &self.st.set_active,
            bool,
            [op, active]
        ) {
            self.op_call(op, at, OpCall::Active { active, changed });
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
        if let Some((previous, at)) = timed!(
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
            self.op_call(
                op,
                at,
                OpCall::Status {
                    new: status,
                    previous,
                },
            );
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
                timed!(
                    self,
                    "transfer_chat",
                    &self.st.transfer_to_operator,
                    bool,
                    [chat, op]
                )
            } else {
                timed!(
                    self,
                    "transfer_chat",
                    &self.st.transfer_to_operator_reason,
                    bool,
                    [chat, op, OPERATOR_TRANSFER_REASON]
                )
            };
            if let Some((moved, at)) = res {
                self.op_call(op, at, OpCall::TransferIn { chat, moved });
                if moved {
                    self.rep.transfers_to_operator += 1;
                    self.rep.hit("transfer_chat", 1);
                    // The operator got it: it answers it, as after an assignment.
                    if self.rng.random_bool(0.5) {
                        self.held.push((op, chat));
                        if self.held.len() > 8 {
                            self.held.remove(0);
                        }
                    }
                }
            }
        } else {
            let team = self.pick_team();
            if let Some(true) = one!(
                self,
                "transfer_chat",
                &self.st.transfer_to_team,
                bool,
                [chat, team, TEAM_TRANSFER_REASON]
            ) {
                self.rep.transfers_to_team += 1;
                self.rep.hit("transfer_chat", 1);
            }
        }
    }

    /// An operator joins or leaves a team (leaving releases the team's chats it holds).
    async fn membership(&mut self) {
        let op = self.pick_operator();
        let team = self.pick_team();
        if self.rng.random_bool(0.5) {
            if let Some((changed, at)) = timed!(
                self,
                "add_team_member",
                &self.st.add_member,
                bool,
                [team, op]
            ) {
                self.op_call(op, at, OpCall::Join { team, changed });
                if changed {
                    self.rep.hit("add_team_member", 1);
                }
            }
        } else if let Some((changed, at)) = timed!(
            self,
            "remove_team_member",
            &self.st.remove_member,
            bool,
            [team, op]
        ) {
            self.op_call(op, at, OpCall::Leave { team, changed });
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
}

async fn monitor(client: Client, stop: Arc<AtomicBool>) -> MonitorReport {
    let sql = invariants_sql();
    let mut rep = MonitorReport::default();
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rep
}

// ------------------------------------------------------------------------------ checks

struct Checks {
    list: Vec<(String, i64, String)>,
    /// Examples of what failed, printed after the list.
    notes: Vec<String>,
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

/// A chat given to an operator, as its `chat_events` row (new_state `assigned`) tells it.
struct GivenEvent {
    chat: Uuid,
    team: Option<Uuid>,
}

/// Violations found by [`replay_operators`], one count per check.
#[derive(Default)]
struct Replay {
    ties: i64,
    returns: i64,
    events: i64,
    absent: i64,
    outsider: i64,
    final_state: i64,
    given: i64,
    given_of_team: i64,
    /// Assignments asked for by an operator who was away (and so came back online).
    away_served: i64,
    examples: Vec<String>,
}

impl Replay {
    fn example(&mut self, text: String) {
        if self.examples.len() < 20 {
            self.examples.push(text);
        }
    }
}

/// Replays, operator by operator, every successful call that took the operator's row lock,
/// in the order the lock serialised them, and checks each against the history before it.
///
/// Why the order is known: every call that changes an operator's presence, activity or
/// memberships, or gives it a chat (assignment, transfer to it), holds the operator's row
/// lock (`FOR NO KEY UPDATE`, src/store/queries.rs, lock order step 1) from before it reads
/// or writes any of that until its transaction commits, and this test is the only client.
/// So on one operator those calls' lock-holding intervals are disjoint, and each call's
/// `clock_timestamp()` ([`timed_call`]) lies inside its own interval: sorting an operator's
/// calls by that reading sorts them in lock order, hence in commit order. Likewise each
/// call writes its `assigned` event (ids from a sequence) inside that interval, so an
/// operator's `assigned` events in id order are its chats in the same order.
///
/// What is proven, for every chat the extension gave an operator during the run:
/// - the k-th `assigned` event of the operator is the chat its k-th successful assignment
///   or transfer (in lock order) returned, and there are no other `assigned` events;
/// - at that moment the operator was active and not offline (online, for a transfer: an
///   `away` operator who asks is made online by the call), from the presence and activity
///   its own earlier calls left;
/// - if the event names a team, the operator was a member of it then, from the memberships
///   its earlier calls left; and the event names the chat's team at that moment (checked
///   separately, in SQL, on each chat's events, which its row lock orders the same way), so
///   a team's chat went to a member of that team;
/// - every return value of these calls (previous presence, "changed") is the one the
///   history before it gives, and the final tables hold what the whole history leaves.
///
/// What is not: that refusals (`55000`) were right (a failed call returns no reading, and
/// changed nothing); capacity per call (releases take no operator lock; the invariants
/// check it in each snapshot). The order rests on the server's clock not stepping back
/// during the run; two equal readings on one operator are reported, never guessed at.
fn replay_operators(
    calls: &[OpRecord],
    mut events: HashMap<Uuid, VecDeque<GivenEvent>>,
    finals: &BTreeMap<Uuid, OpState>,
) -> Replay {
    let mut out = Replay::default();
    let mut by_operator: BTreeMap<Uuid, Vec<&OpRecord>> = BTreeMap::new();
    for c in calls {
        by_operator.entry(c.operator).or_default().push(c);
    }
    for op in finals.keys() {
        by_operator.entry(*op).or_default();
    }
    for (op, mut list) in by_operator {
        list.sort_by_key(|c| c.at);
        out.ties += list.windows(2).filter(|w| w[0].at == w[1].at).count() as i64;
        let mut st = OpState::new();
        let mut given = events.remove(&op).unwrap_or_default();
        for c in list {
            match &c.call {
                OpCall::Assign(got) => {
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
                    if let Some(chat) = got {
                        given_chat(&mut out, op, *chat, &st, &mut given);
                    }
                }
                OpCall::TransferIn { chat, moved } => {
                    if *moved {
                        if !st.active || st.status != "online" {
                            out.absent += 1;
                            out.example(format!(
                                "transfer_chat({chat}) to {op} succeeded while {st:?}"
                            ));
                        }
                        given_chat(&mut out, op, *chat, &st, &mut given);
                    }
                }
                OpCall::Status { new, previous } => {
                    if *previous != st.status {
                        out.returns += 1;
                        out.example(format!(
                            "set_operator_status({op}, {new}) returned {previous}, history says {}",
                            st.status
                        ));
                    }
                    st.status = (*new).into();
                }
                OpCall::Active { active, changed } => {
                    if *changed != (st.active != *active) {
                        out.returns += 1;
                        out.example(format!(
                            "set_operator_active({op}, {active}) returned {changed} while {st:?}"
                        ));
                    }
                    st.active = *active;
                }
                OpCall::Join { team, changed } => {
                    if *changed == st.teams.contains(team) {
                        out.returns += 1;
                        out.example(format!(
                            "add_team_member({team}, {op}) returned {changed} while {st:?}"
                        ));
                    }
                    st.teams.insert(*team);
                }
                OpCall::Leave { team, changed } => {
                    if *changed != st.teams.contains(team) {
                        out.returns += 1;
                        out.example(format!(
                            "remove_team_member({team}, {op}) returned {changed} while {st:?}"
                        ));
                    }
                    st.teams.remove(team);
                }
            }
        }
        if !given.is_empty() {
            out.events += given.len() as i64;
            out.example(format!(
                "{} assigned event(s) of {op} that no call returned",
                given.len()
            ));
        }
        if finals.get(&op) != Some(&st) {
            out.final_state += 1;
            out.example(format!(
                "operator {op}: tables say {:?}, its calls leave {st:?}",
                finals.get(&op)
            ));
        }
    }
    for (op, left) in events {
        out.events += left.len() as i64;
        out.example(format!(
            "{} assigned event(s) of unknown operator {op}",
            left.len()
        ));
    }
    out
}

/// A chat a call gave `op`: pairs it with the operator's next `assigned` event and checks
/// that the event's team is one of the operator's teams now.
fn given_chat(
    out: &mut Replay,
    op: Uuid,
    chat: Uuid,
    st: &OpState,
    events: &mut VecDeque<GivenEvent>,
) {
    match events.pop_front() {
        Some(e) if e.chat == chat => {
            out.given += 1;
            if let Some(team) = e.team {
                out.given_of_team += 1;
                if !st.teams.contains(&team) {
                    out.outsider += 1;
                    out.example(format!(
                        "chat {chat} of team {team} given to {op}, member of {:?}",
                        st.teams
                    ));
                }
            }
        }
        Some(e) => {
            out.events += 1;
            out.example(format!(
                "{op} was given {chat}; its next assigned event is of chat {}",
                e.chat
            ));
        }
        None => {
            out.events += 1;
            out.example(format!("{op} was given {chat}; no assigned event left"));
        }
    }
}

async fn count(client: &Client, sql: &str) -> Result<i64, PgError> {
    client.query_one(sql, &[]).await?.try_get(0)
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
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE x.new_state = 'assigned'), count(*) \
                 FROM (SELECT e.new_state, e.team_id, e.reason, \
                              lag(e.team_id) OVER w AS prev_team, row_number() OVER w AS n \
                       FROM chat_events e WINDOW w AS (PARTITION BY e.chat_id ORDER BY e.id)) x \
                 WHERE x.n > 1 AND x.reason <> '{TEAM_TRANSFER_REASON}' \
                   AND x.team_id IS DISTINCT FROM x.prev_team"
            ),
            &[],
        )
        .await?;
    checks.add(
        "teams: every assigned event names the chat's team at that moment (its previous event's)",
        row.try_get(0)?,
        "",
    );
    checks.add(
        "teams: a chat's team changes only at a transfer to a team",
        row.try_get(1)?,
        "",
    );
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

    // Every chat given to an operator went to an eligible one (see replay_operators).
    let mut events: HashMap<Uuid, VecDeque<GivenEvent>> = HashMap::new();
    for r in client
        .query(
            "SELECT coalesce(operator_id, '00000000-0000-0000-0000-000000000000'), chat_id, \
                    team_id \
             FROM chat_events WHERE new_state = 'assigned' ORDER BY id",
            &[],
        )
        .await?
    {
        events
            .entry(r.try_get(0)?)
            .or_default()
            .push_back(GivenEvent {
                chat: r.try_get(1)?,
                team: r.try_get(2)?,
            });
    }
    let mut finals = BTreeMap::new();
    for r in client
        .query(
            "SELECT o.id, o.status, o.is_active, \
                    coalesce(array_agg(m.team_id) FILTER (WHERE m.team_id IS NOT NULL), '{}') \
             FROM operators o LEFT JOIN team_members m ON m.operator_id = o.id GROUP BY o.id",
            &[],
        )
        .await?
    {
        let teams: Vec<Uuid> = r.try_get(3)?;
        finals.insert(
            r.try_get::<_, Uuid>(0)?,
            OpState {
                status: r.try_get(1)?,
                active: r.try_get(2)?,
                teams: teams.into_iter().collect(),
            },
        );
    }
    let replay = replay_operators(&rep.op_calls, events, &finals);
    let detail = format!("{} calls on {} operators", rep.op_calls.len(), finals.len());
    checks.add(
        "per operator: the calls under its lock have distinct clock readings (their order is known)",
        replay.ties,
        detail,
    );
    checks.add(
        "per operator: its assigned events are, in order, the chats its assignments and transfers returned",
        replay.events,
        format!("{} chats given", replay.given),
    );
    checks.add(
        "per call: every chat given went to an active operator not offline (online, for a transfer)",
        replay.absent,
        format!(
            "{} chats given; {} assignment calls by away operators",
            replay.given, replay.away_served
        ),
    );
    checks.add(
        "per call: every chat of a team given went to a member of that team",
        replay.outsider,
        format!("{} chats of a team given", replay.given_of_team),
    );
    checks.add(
        "per call: set_operator_status/_active, add/remove_team_member returned what the operator's history gives",
        replay.returns,
        "",
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
    let given = rep.assign_returned_chat + rep.transfers_to_operator;
    checks.add(
        "assignments stored = assign_chat_to_operator calls that returned a chat + transfers to an operator that returned true",
        (n - given as i64).abs(),
        format!("stored {n}, returned {given}"),
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
        .prepare(&timed_call("add_team_member($1, $2)"))
        .await
        .map_err(pg)?;
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
            let r = admin.query_one(&join, &[team, &op]).await.map_err(pg)?;
            setup.op_calls.push(OpRecord {
                operator: op,
                at: r.get(1),
                call: OpCall::Join {
                    team: *team,
                    changed: r.get(0),
                },
            });
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
            .query_one(
                "SELECT start_chat($1, $2, NULL, $3, $4)",
                &[&user, &content, &team, &priority],
            )
            .await
            .map_err(pg)?;
        let chat: Uuid = r.get(0);
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
    for id in 0..cfg.connections {
        let client = connect(&cfg.dsn, &format!("chat_assign_stress w{id}")).await?;
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
        "every connection stopped by itself within 90 s after the deadline",
        stragglers,
        "",
    );
    checks.add(
        "monitor sampled the invariants during the run without error",
        if mon.samples == 0 { 1 } else { 0 } + mon.errors.len() as i64,
        format!("{} samples", mon.samples),
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
        "\nfigures: {} connections, {:.1} s (asked {} s), {} calls, {:.0} calls/s; monitor {} samples (slowest {} ms); {} messages, {} chats and {} calls under an operator's lock recorded",
        cfg.connections,
        elapsed,
        cfg.seconds,
        calls_run,
        calls_run as f64 / elapsed,
        mon.samples,
        mon.max_ms,
        rep.messages.len(),
        rep.started.len(),
        rep.op_calls.len()
    );
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn call(operator: Uuid, ms: u64, call: OpCall) -> OpRecord {
        OpRecord {
            operator,
            at: at(ms),
            call,
        }
    }

    fn given(pairs: &[(Uuid, Uuid, Option<Uuid>)]) -> HashMap<Uuid, VecDeque<GivenEvent>> {
        let mut events: HashMap<Uuid, VecDeque<GivenEvent>> = HashMap::new();
        for (op, chat, team) in pairs {
            events.entry(*op).or_default().push_back(GivenEvent {
                chat: *chat,
                team: *team,
            });
        }
        events
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

    /// Joins, a team's chat, leaving, a chat without a team, offline, back: all consistent.
    #[test]
    fn a_consistent_history_passes() {
        let (op, team, c1, c2) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let calls = vec![
            // Out of order on purpose: the replay sorts by the clock.
            call(
                op,
                3,
                OpCall::Leave {
                    team,
                    changed: true,
                },
            ),
            call(
                op,
                1,
                OpCall::Join {
                    team,
                    changed: true,
                },
            ),
            call(op, 2, OpCall::Assign(Some(c1))),
            call(op, 4, OpCall::Assign(Some(c2))),
            call(
                op,
                5,
                OpCall::Status {
                    new: "offline",
                    previous: "online".into(),
                },
            ),
            call(
                op,
                6,
                OpCall::Status {
                    new: "away",
                    previous: "offline".into(),
                },
            ),
            call(op, 7, OpCall::Assign(None)),
        ];
        let events = given(&[(op, c1, Some(team)), (op, c2, None)]);
        let r = replay_operators(&calls, events, &finals(op, "online", &[]));
        assert_eq!(
            (
                r.ties,
                r.returns,
                r.events,
                r.absent,
                r.outsider,
                r.final_state
            ),
            (0, 0, 0, 0, 0, 0),
            "{:?}",
            r.examples
        );
        assert_eq!((r.given, r.given_of_team, r.away_served), (2, 1, 1));
    }

    #[test]
    fn a_team_chat_after_leaving_and_a_chat_while_offline_are_caught() {
        let (op, team, c1, c2) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let calls = vec![
            call(
                op,
                1,
                OpCall::Join {
                    team,
                    changed: true,
                },
            ),
            call(
                op,
                2,
                OpCall::Leave {
                    team,
                    changed: true,
                },
            ),
            call(op, 3, OpCall::Assign(Some(c1))),
            call(
                op,
                4,
                OpCall::Status {
                    new: "offline",
                    previous: "online".into(),
                },
            ),
            call(
                op,
                5,
                OpCall::TransferIn {
                    chat: c2,
                    moved: true,
                },
            ),
        ];
        let events = given(&[(op, c1, Some(team)), (op, c2, None)]);
        let r = replay_operators(&calls, events, &finals(op, "offline", &[]));
        assert_eq!(
            (r.outsider, r.absent, r.events, r.final_state),
            (1, 1, 0, 0)
        );
    }

    #[test]
    fn wrong_returns_events_ties_and_final_state_are_caught() {
        let (op, team, c1, c2) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let calls = vec![
            call(
                op,
                1,
                OpCall::Join {
                    team,
                    changed: false,
                },
            ),
            call(
                op,
                2,
                OpCall::Status {
                    new: "away",
                    previous: "offline".into(),
                },
            ),
            call(op, 2, OpCall::Assign(Some(c1))),
        ];
        // The event names another chat, and one more event follows that no call returned.
        let events = given(&[(op, c2, None), (op, c1, None)]);
        let r = replay_operators(&calls, events, &finals(op, "away", &[team]));
        assert_eq!((r.returns, r.ties, r.events, r.final_state), (2, 1, 2, 1));
    }
}

//! Multi-connection stress test of the `chat_assign` extension.
//!
//! Sets up operators and chats, then runs N connections for S seconds, each looping over a
//! random but realistic mix of every public function and view (an operator takes a chat and
//! usually answers it, users write back, admins release chats and (de)activate operators,
//! the idle job runs with a tiny threshold so that it really releases chats, dashboards
//! poll the monitoring functions). Meanwhile a monitor connection checks every invariant of
//! the contract (docs/api.md) in one snapshot every ~100 ms. Afterwards it checks, with SQL, every invariant
//! again, that every message a call reported as stored is stored as reported, and that the
//! counts the calls reported match what the tables hold.
//!
//! Every error is classified by SQLSTATE: the documented refusals (`55000`, `P0002`) are
//! counted; a deadlock (`40P01`), an internal error (`XX000`), a unique violation (`23505`),
//! any SQLSTATE the documented error table (docs/api.md) does not list, a documented argument error on valid arguments
//! and any non-database error fail the run.
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
use std::collections::{BTreeMap, HashSet, VecDeque};
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
    "get_assignment_queue_status",
    "detect_stuck_chats",
    "chat_state_summary (view)",
    "operator_assignment_stats (view)",
];

/// Deliberately invalid calls (rare) and the SQLSTATE the documented error table (docs/api.md) promises for them.
const INVALID: &[(&str, &str, &str)] = &[
    (
        "invalid: real_user_send_message blank",
        "SELECT real_user_send_message($1, '   ')",
        "22023",
    ),
    (
        "invalid: assign_chat_to_operator NULL",
        "SELECT assign_chat_to_operator(NULL)",
        "22004",
    ),
    (
        "invalid: release_idle_assignments -1s",
        "SELECT * FROM release_idle_assignments('-1 second')",
        "22023",
    ),
    (
        "invalid: create_operator capacity 0",
        "SELECT create_operator('stress-invalid', 0)",
        "22023",
    ),
    (
        "invalid: detect_stuck_chats 0 hours",
        "SELECT * FROM detect_stuck_chats(0)",
        "22023",
    ),
];

/// Release reasons the extension may write, plus the one this test passes.
const ADMIN_REASON: &str = "stress_admin_release";
const KNOWN_REASONS: &str =
    "'real_user_message','operator_replied','manual_unassign','idle_timeout','operator_inactive','completed','stress_admin_release'";

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
];

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

/// A chat start_chat reported as created, with its first message.
struct StartedChat {
    chat_id: Uuid,
    real_user_id: Uuid,
    content: String,
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
                    (Some("55000" | "P0002"), Expect::Valid) => {}
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

struct Stmts {
    start_chat: Statement,
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
    queue_status: Statement,
    stuck: Vec<Statement>,
    summary: Statement,
    op_stats: Statement,
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
        for (_, sql, _) in INVALID {
            invalid.push(c.prepare(sql).await?);
        }
        Ok(Stmts {
            start_chat: c.prepare("SELECT start_chat($1, $2)").await?,
            user_msg: c
                .prepare("SELECT real_user_send_message(p_chat_id => $1, p_content => $2)")
                .await?,
            op_msg: c
                .prepare("SELECT operator_send_message($1, $2, $3)")
                .await?,
            assign: c.prepare("SELECT assign_chat_to_operator($1)").await?,
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
            set_active: c.prepare("SELECT set_operator_active($1, $2)").await?,
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
                1900..=4399 => self.assign_flow().await,     // 25 %
                4400..=5199 => self.reply_to_held().await,   // 8 %
                5200..=5599 => self.reply_random().await,    // 4 %
                5600..=6199 => self.release().await,         // 6 %
                6200..=6999 => self.touch().await,           // 8 %
                7000..=7499 => self.idle_release().await,    // 5 %
                7500..=7549 => self.complete().await,        // 0.5 %
                7550..=7551 => self.create_operator().await, // 0.02 %
                7552..=7799 => self.set_active().await,      // 2.5 %
                7800..=8199 => self.queue_status().await,    // 4 %
                8200..=8599 => self.stuck().await,           // 4 %
                8600..=8999 => self.summary().await,         // 4 %
                9000..=9399 => self.op_stats().await,        // 4 %
                9400..=9429 => self.invalid().await,         // 0.3 %
                _ => self.user_message().await,              // 5.7 %
            }
        }
        self.rep
    }

    async fn start_chat(&mut self) {
        let user = Uuid::new_v4();
        let content = self.content("first message");
        if let Some(chat) = one!(
            self,
            "start_chat",
            &self.st.start_chat,
            Uuid,
            [user, content]
        ) {
            self.shared.chats.write().unwrap().push(chat);
            self.rep.started.push(StartedChat {
                chat_id: chat,
                real_user_id: user,
                content,
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
        let Some(got) = one!(
            self,
            "assign_chat_to_operator",
            &self.st.assign,
            Option<Uuid>,
            [op]
        ) else {
            return;
        };
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
        if let Some(true) = one!(
            self,
            "set_operator_active",
            &self.st.set_active,
            bool,
            [op, active]
        ) {
            self.rep.hit("set_operator_active", 1);
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

    async fn invalid(&mut self) {
        let i = self.rng.random_range(0..INVALID.len());
        let (label, _, code) = INVALID[i];
        let stmt = self.st.invalid[i].clone();
        let t0 = Instant::now();
        let res = if i == 0 {
            let chat = self.pick_chat();
            self.client.query(&stmt, &[&chat]).await
        } else {
            self.client.query(&stmt, &[]).await
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

    // What the calls reported matches what the tables hold.
    let n = count(client, "SELECT count(*) FROM chat_assignments").await?;
    checks.add(
        "assignments stored = assign_chat_to_operator calls that returned a chat",
        (n - rep.assign_returned_chat as i64).abs(),
        format!("stored {n}, returned {}", rep.assign_returned_chat),
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
    let mut operators = Vec::new();
    for i in 0..cfg.operators {
        let cap = (i % 3) as i32 + 1;
        let r = admin
            .query_one(
                "SELECT create_operator($1, $2)",
                &[&format!("operator {i}"), &cap],
            )
            .await
            .map_err(pg)?;
        operators.push(r.get::<_, Uuid>(0));
    }
    let mut chats = Vec::new();
    for i in 0..cfg.chats {
        let user = Uuid::new_v4();
        let content = format!("setup chat {i}: hello");
        let r = admin
            .query_one("SELECT start_chat($1, $2)", &[&user, &content])
            .await
            .map_err(pg)?;
        let chat: Uuid = r.get(0);
        chats.push(chat);
        setup.started.push(StartedChat {
            chat_id: chat,
            real_user_id: user,
            content,
        });
    }
    println!(
        "stress: extension chat_assign {version}; set-up {} operators (capacity 1-3), {} chats in {} ms",
        operators.len(),
        chats.len(),
        t_setup.elapsed().as_millis()
    );
    let shared = Arc::new(Shared {
        operators: RwLock::new(operators),
        chats: RwLock::new(chats),
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
    let mut checks = Checks { list: Vec::new() };
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
    for (label, _, _) in INVALID {
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
    println!(
        "  operators {} ({inactive} inactive)",
        setup_operators as u64 + rep.operators_created
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
    labels.extend(INVALID.iter().map(|(l, _, _)| *l));
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
            "23505" => "unique_violation (FAIL)",
            "23514" => "check_violation (not documented: FAIL)",
            "40001" => "serialization_failure (FAIL)",
            "57014" => "query_canceled, statement_timeout 60 s (not documented: FAIL)",
            "non-db" => "not a database error (FAIL)",
            _ => "not documented (FAIL)",
        };
        println!("  {c:<7} {n:>8}  {what}");
    }
    println!(
        "\nfigures: {} connections, {:.1} s (asked {} s), {} calls, {:.0} calls/s; monitor {} samples (slowest {} ms); {} messages and {} chats recorded",
        cfg.connections,
        elapsed,
        cfg.seconds,
        calls_run,
        calls_run as f64 / elapsed,
        mon.samples,
        mon.max_ms,
        rep.messages.len(),
        rep.started.len()
    );
}

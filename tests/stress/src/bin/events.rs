//! Change events of the `chat_assign` extension (0.3: the `chat_events` table,
//! `read_chat_events` and the worker's coalesced `NOTIFY chat_assign` wake-ups), checked end
//! to end over tokio-postgres. Four parts:
//!
//! - (a) exactly once: a consumer calls `read_chat_events(last_id, 7)` in a loop, keeping
//!   only the last id it got, while writer connections play random flows (start, assign,
//!   reply, user message, release, complete), some in transactions that roll back or stay
//!   open a while. The consumer disconnects and reconnects many times, some of them with a
//!   read in flight whose answer it throws away (as a crash before storing the id would).
//!   Afterwards what it got is exactly `chat_events` (same ids, strictly increasing, equal
//!   rows), and every committed change has its event: one `chat_started` per chat, one
//!   `assigned` per assignment row, one release event per released assignment (same chat,
//!   operator and reason), each chat's events chain old state → new state, the last one
//!   is the chat's state.
//! - (b) wake-ups: with `chat_assign.notify_interval = 100ms`, writers make 500+ changes in
//!   about 1.5 s; a LISTEN client gets wake-ups from the worker only (its pid), each
//!   payload an event id, increasing, at most one per interval (count <= elapsed / 0.1 s + 2),
//!   the last one equal to max(id) within 3 s; none while nothing changes for 1 s; none
//!   with `notify_interval = 0` (ALTER SYSTEM + pg_reload_conf()), and they resume on RESET.
//! - (c) calls never notify: with wake-ups off and a LISTEN session holding the queue in an
//!   open transaction, 100 state-changing calls succeed, no notification arrives and
//!   `pg_notification_queue_usage()` stays 0 (while three 7.9 kB NOTIFYs do move it: the
//!   measure sees notifications); state-changing calls succeed inside a transaction that
//!   is then PREPAREd (0.2 failed there with 0A000), a prepared transaction's events hold
//!   back the horizon until COMMIT PREPARED, and ROLLBACK PREPARED leaves no event.
//! - (d) forged wake-ups: a role without any grant may `NOTIFY chat_assign` anything; a
//!   consumer that takes payloads as hints (reads until empty on every wake-up) still gets
//!   exactly the events.
//!
//! Usage: chat_assign_events --dsn DSN
//! DSN as user postgres (a superuser: ALTER SYSTEM, CREATE ROLE) to a database with the
//! extension in `public` (fresh: part (a) compares all of `chat_events`), on a server with
//! `shared_preload_libraries = 'chat_assign'`, the database in `chat_assign.databases`,
//! `max_prepared_transactions > 0` and trust authentication for the role it creates.
//! Prints `ok - events: ...` / `not ok - events: ...` per check (diagnostics on `#` lines)
//! and ends with `events: N passed, M failed`; exit status 0 only when M is 0. Run by
//! tests/tap/t/002_events.pl (scripts/tap.sh).

use futures_util::{stream, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};
use uuid::Uuid;

type Res<T> = Result<T, String>;

const CHANNEL: &str = "chat_assign";
const WORKER_TYPE: &str = "chat_assign idle worker";
/// Part (a): writer connections, how long they write, the consumer's page size.
const WRITERS: usize = 6;
const WRITE_FOR: Duration = Duration::from_secs(4);
const PAGE: i32 = 7;
/// Part (b): the interval set for the test, and how many changes the burst must make.
const INTERVAL_MS: u64 = 100;
const BURST_CHANGES: i64 = 500;
const FORGER: &str = "chat_assign_events_forger";

// ------------------------------------------------------------------------------ report

struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn check(&mut self, ok: bool, name: &str, details: &[String]) {
        if ok {
            self.passed += 1;
            println!("ok - events: {name}");
        } else {
            self.failed += 1;
            println!("not ok - events: {name}");
            for line in details.iter().flat_map(|d| d.lines()).take(40) {
                println!("#   {line}");
            }
        }
    }

    fn expect_eq<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, expected: T, got: T) {
        let details = [
            format!("expected: {expected:?}"),
            format!("got:      {got:?}"),
        ];
        self.check(expected == got, name, &details);
    }
}

// ------------------------------------------------------------------------------ connections

async fn connect(dsn: &str) -> Res<Client> {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .map_err(|e| format!("connect: {}", db_error(&e)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A connection that LISTENs on `chat_assign`; notifications arrive on `rx` with the
/// moment they were received.
struct Listener {
    client: Client,
    rx: mpsc::UnboundedReceiver<(Instant, Notification)>,
}

async fn listen(dsn: &str) -> Res<Listener> {
    let (client, mut conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .map_err(|e| format!("connect (listener): {}", db_error(&e)))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send((Instant::now(), n)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| format!("LISTEN: {}", db_error(&e)))?;
    Ok(Listener { client, rx })
}

impl Listener {
    /// Waits until nothing arrived for `quiet` (at most `limit`); returns what arrived.
    async fn settle(&mut self, quiet: Duration, limit: Duration) -> Vec<(Instant, Notification)> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            match tokio::time::timeout(quiet, self.rx.recv()).await {
                Ok(Some(n)) => got.push(n),
                _ => break,
            }
        }
        got
    }

    /// Collects notifications until one satisfies `done` or `limit` passes.
    async fn until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Notification) -> bool,
    ) -> (Vec<(Instant, Notification)>, bool) {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(n)) => {
                    let hit = done(&n.1);
                    got.push(n);
                    if hit {
                        return (got, true);
                    }
                }
                _ => return (got, false),
            }
        }
    }
}

async fn one<T>(client: &Client, sql: &str) -> Res<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| format!("{sql}: {}", db_error(&e)))?;
    row.try_get(0)
        .map_err(|e| format!("{sql}: {}", db_error(&e)))
}

async fn exec(client: &Client, sql: &str) -> Res<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {}", db_error(&e)))
}

async fn max_event_id(client: &Client) -> Res<i64> {
    one(client, "SELECT coalesce(max(id), 0) FROM chat_events").await
}

async fn set_notify_interval(client: &Client, setting: Option<&str>) -> Res<()> {
    let sql = match setting {
        Some(value) => format!("ALTER SYSTEM SET chat_assign.notify_interval = '{value}'"),
        None => "ALTER SYSTEM RESET chat_assign.notify_interval".to_owned(),
    };
    exec(client, &sql).await?;
    exec(client, "SELECT pg_reload_conf()").await?;
    // The worker re-reads its configuration when it wakes up (at most one interval).
    tokio::time::sleep(Duration::from_millis(600)).await;
    Ok(())
}

// ------------------------------------------------------------------------------ events

#[derive(Clone, Debug, PartialEq)]
struct Event {
    id: i64,
    chat: Uuid,
    old: Option<String>,
    new: String,
    operator: Option<Uuid>,
    reason: String,
}

const EVENT_COLUMNS: &str = "id, chat_id, old_state::text, new_state::text, operator_id, reason";

fn events_of(rows: Vec<tokio_postgres::Row>) -> Vec<Event> {
    rows.iter()
        .map(|r| Event {
            id: r.get(0),
            chat: r.get(1),
            old: r.get(2),
            new: r.get(3),
            operator: r.get(4),
            reason: r.get(5),
        })
        .collect()
}

async fn read_events(
    client: &Client,
    after: i64,
    limit: i32,
) -> Result<Vec<Event>, tokio_postgres::Error> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM read_chat_events($1, $2)");
    Ok(events_of(client.query(&sql, &[&after, &limit]).await?))
}

async fn table_events(client: &Client, after: i64) -> Res<Vec<Event>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM chat_events WHERE id > $1 ORDER BY id");
    Ok(events_of(
        client
            .query(&sql, &[&after])
            .await
            .map_err(|e| format!("{sql}: {}", db_error(&e)))?,
    ))
}

/// Reads until `read_chat_events` returns nothing; appends to `got`, moves `last`.
async fn read_all(client: &Client, last: &mut i64, got: &mut Vec<Event>) -> Res<()> {
    loop {
        let batch = read_events(client, *last, 1000)
            .await
            .map_err(|e| format!("read_chat_events({last}, 1000): {}", db_error(&e)))?;
        if batch.is_empty() {
            return Ok(());
        }
        *last = batch.last().map_or(*last, |e| e.id);
        got.extend(batch);
    }
}

/// "SQLSTATE: message (detail)" of a server error, else the client's text.
fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

fn ids(events: &[Event]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

/// `[1, 2, 3, 5]` → "1..3, 5" for diagnostics.
fn ranges(ids: &[i64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}..{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    let text = out.join(", ");
    if text.len() > 300 {
        format!("{}...", &text[..300])
    } else {
        text
    }
}

fn strictly_increasing(ids: &[i64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

// ------------------------------------------------------------------------------ writers

#[derive(Default, Debug)]
struct WriterStats {
    calls: u64,
    committed: u64,
    rolled_back: u64,
    held_open: u64,
    refused: u64,
    unexpected: Vec<String>,
}

/// What a writer may do next.
#[derive(Clone, Copy)]
enum Action {
    Start,
    Assign,
    Reply,
    UserMessage,
    Release,
    Complete,
}

fn pick(rng: &mut StdRng) -> Action {
    match rng.random_range(0..100) {
        0..25 => Action::Start,
        25..50 => Action::Assign,
        50..65 => Action::Reply,
        65..80 => Action::UserMessage,
        80..92 => Action::Release,
        _ => Action::Complete,
    }
}

/// One call; `Err` is the server's error (a refusal or worse).
async fn act(
    client: &Client,
    rng: &mut StdRng,
    operators: &[Uuid],
    mine: &[Uuid],
    started: &mut Vec<Uuid>,
    action: Action,
) -> Result<(), tokio_postgres::Error> {
    let operator = operators[rng.random_range(0..operators.len())];
    let chat = (!mine.is_empty()).then(|| mine[rng.random_range(0..mine.len())]);
    match (action, chat) {
        (Action::Start, _) | (_, None) => {
            let row = client
                .query_one("SELECT start_chat($1, 'Hello')", &[&Uuid::new_v4()])
                .await?;
            started.push(row.get(0));
        }
        (Action::Assign, _) => {
            client
                .query_one("SELECT assign_chat_to_operator($1)", &[&operator])
                .await?;
        }
        (Action::Reply, _) => {
            let offset = rng.random_range(0i64..8);
            let rows = client
                .query(
                    "SELECT id, assigned_operator_id FROM chats WHERE chat_state = 'assigned'
                     ORDER BY id LIMIT 1 OFFSET $1",
                    &[&offset],
                )
                .await?;
            if let Some(row) = rows.first() {
                let (chat, holder): (Uuid, Uuid) = (row.get(0), row.get(1));
                client
                    .query_one(
                        "SELECT operator_send_message($1, $2, 'On it')",
                        &[&chat, &holder],
                    )
                    .await?;
            }
        }
        (Action::UserMessage, Some(chat)) => {
            client
                .query_one("SELECT real_user_send_message($1, 'Any news?')", &[&chat])
                .await?;
        }
        (Action::Release, Some(chat)) => {
            client
                .query_one("SELECT release_and_reassign_chat($1)", &[&chat])
                .await?;
        }
        (Action::Complete, Some(chat)) => {
            client
                .query_one("SELECT complete_chat($1)", &[&chat])
                .await?;
        }
    }
    Ok(())
}

/// Random flows until `until`: half the time one call on its own, else a transaction of
/// one to three calls that commits, rolls back, or stays open 30-250 ms before it ends.
/// Calls name only chats this writer started and saw committed, or any assigned chat.
async fn writer(dsn: String, operators: Arc<Vec<Uuid>>, until: Instant, seed: u64) -> WriterStats {
    let mut stats = WriterStats::default();
    let client = match connect(&dsn).await {
        Ok(c) => c,
        Err(e) => {
            stats.unexpected.push(e);
            return stats;
        }
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<Uuid> = Vec::new();
    while Instant::now() < until {
        let mode = rng.random_range(0..100);
        let in_tx = mode >= 50;
        if in_tx && client.batch_execute("BEGIN").await.is_err() {
            stats.unexpected.push("BEGIN failed".into());
            break;
        }
        // A transaction makes one call on existing rows and up to two start_chat calls,
        // in any order: only start_chat (which locks no existing row) shares a transaction
        // with another call, so the documented deadlocks of multi-call transactions
        // (docs/api.md, "Concurrency") cannot happen and any 40P01 is a failure.
        let calls = if in_tx { rng.random_range(1..=3) } else { 1 };
        let main_call = rng.random_range(0..calls);
        let mut started = Vec::new();
        let mut failed = false;
        for k in 0..calls {
            stats.calls += 1;
            let action = if k == main_call {
                pick(&mut rng)
            } else {
                Action::Start
            };
            if let Err(e) = act(&client, &mut rng, &operators, &mine, &mut started, action).await {
                if e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) {
                    stats.refused += 1;
                } else {
                    stats.unexpected.push(db_error(&e));
                }
                failed = true;
                break;
            }
        }
        if !in_tx {
            if !failed {
                stats.committed += 1;
                mine.extend(started);
            }
            continue;
        }
        if mode >= 88 {
            stats.held_open += 1;
            tokio::time::sleep(Duration::from_millis(rng.random_range(30..250))).await;
        }
        let rollback = failed || (70..82).contains(&mode) || (mode >= 88 && rng.random_bool(0.3));
        let end = if rollback { "ROLLBACK" } else { "COMMIT" };
        match client.batch_execute(end).await {
            Ok(()) if rollback => stats.rolled_back += 1,
            Ok(()) => {
                stats.committed += 1;
                mine.extend(started);
            }
            Err(e) => stats.unexpected.push(format!("{end}: {}", db_error(&e))),
        }
    }
    stats
}

async fn create_operators(client: &Client, n: usize, capacity: i32) -> Res<Vec<Uuid>> {
    let rows = client
        .query(
            "SELECT create_operator('events op ' || g, $2) FROM generate_series(1, $1) g",
            &[&(n as i32), &capacity],
        )
        .await
        .map_err(|e| format!("create_operator: {}", db_error(&e)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

// ------------------------------------------------------------------------------ (a) exactly once

struct ConsumerRun {
    got: Vec<Event>,
    reads: u64,
    reconnects: u64,
    /// Reads whose answer was thrown away with the connection (the id not stored).
    abandoned: u64,
}

/// The consumer of part (a). It keeps only `last` between connections, as a consumer that
/// stores its position would; it stops once the writers are done and it has caught up.
async fn consumer(dsn: String, stop: Arc<AtomicBool>) -> Res<ConsumerRun> {
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let mut run = ConsumerRun {
        got: Vec::new(),
        reads: 0,
        reconnects: 0,
        abandoned: 0,
    };
    let mut last = 0i64;
    let deadline = Instant::now() + WRITE_FOR + Duration::from_secs(60);
    loop {
        let client = connect(&dsn).await?;
        let budget = rng.random_range(10..40);
        for _ in 0..budget {
            if Instant::now() > deadline {
                return Err(format!(
                    "consumer: not caught up after 60 s (last id {last})"
                ));
            }
            let batch = read_events(&client, last, PAGE)
                .await
                .map_err(|e| format!("read_chat_events({last}, {PAGE}): {}", db_error(&e)))?;
            run.reads += 1;
            if batch.is_empty() {
                if stop.load(Ordering::SeqCst) && last >= max_event_id(&client).await? {
                    return Ok(run);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                continue;
            }
            last = batch.last().map_or(last, |e| e.id);
            run.got.extend(batch);
        }
        // Every other time the connection goes away with a read in flight: its answer is
        // lost, and `last` stays what it was.
        if run.reconnects % 2 == 1 {
            let in_flight = read_events(&client, last, PAGE);
            if tokio::time::timeout(Duration::from_micros(300), in_flight)
                .await
                .is_err()
            {
                run.abandoned += 1;
            }
        }
        drop(client);
        run.reconnects += 1;
    }
}

async fn part_exactly_once(dsn: &str, rep: &mut Report) -> Res<()> {
    let admin = connect(dsn).await?;
    let before: i64 = one(&admin, "SELECT count(*) FROM chat_events").await?;
    if before != 0 {
        return Err(format!(
            "part (a) needs a database without events (chat_events has {before} rows)"
        ));
    }
    let operators = Arc::new(create_operators(&admin, 8, 2).await?);
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = tokio::spawn(consumer(dsn.to_owned(), stop.clone()));
    let until = Instant::now() + WRITE_FOR;
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            tokio::spawn(writer(
                dsn.to_owned(),
                operators.clone(),
                until,
                7 + i as u64,
            ))
        })
        .collect();
    let mut total = WriterStats::default();
    for w in writers {
        let s = w.await.map_err(|e| format!("writer task: {e}"))?;
        total.calls += s.calls;
        total.committed += s.committed;
        total.rolled_back += s.rolled_back;
        total.held_open += s.held_open;
        total.refused += s.refused;
        total.unexpected.extend(s.unexpected);
    }
    stop.store(true, Ordering::SeqCst);
    let run = consumer
        .await
        .map_err(|e| format!("consumer task: {e}"))??;

    rep.check(
        total.unexpected.is_empty(),
        &format!(
            "(a) {WRITERS} writers: {} calls, {} commits, {} rollbacks, {} transactions held open, {} refusals (55000), no other error",
            total.calls, total.committed, total.rolled_back, total.held_open, total.refused
        ),
        &total.unexpected,
    );
    rep.check(
        total.rolled_back > 0 && total.held_open > 0 && run.reconnects >= 3,
        &format!(
            "(a) the run did what it is meant to: rollbacks, held transactions, {} reconnects ({} with a read in flight), {} reads",
            run.reconnects, run.abandoned, run.reads
        ),
        &[],
    );
    let got_ids = ids(&run.got);
    let table = table_events(&admin, 0).await?;
    let table_ids = ids(&table);
    rep.check(
        strictly_increasing(&got_ids),
        &format!(
            "(a) the consumer's ids are strictly increasing ({} events, none twice)",
            got_ids.len()
        ),
        &[format!("got: {}", ranges(&got_ids))],
    );
    let missing: Vec<i64> = table_ids
        .iter()
        .filter(|i| !got_ids.contains(i))
        .copied()
        .collect();
    let extra: Vec<i64> = got_ids
        .iter()
        .filter(|i| !table_ids.contains(i))
        .copied()
        .collect();
    rep.check(
        got_ids == table_ids,
        &format!(
            "(a) the consumer got exactly the ids of chat_events ({} rows, ids {}..{}; the {} ids between them that no row has were rolled back)",
            table_ids.len(),
            table_ids.first().copied().unwrap_or(0),
            table_ids.last().copied().unwrap_or(0),
            table_ids.last().copied().unwrap_or(0) - table_ids.first().copied().unwrap_or(1) + 1
                - table_ids.len() as i64
        ),
        &[
            format!("missed: {}", ranges(&missing)),
            format!("not in the table: {}", ranges(&extra)),
        ],
    );
    let differing: Vec<String> = run
        .got
        .iter()
        .zip(&table)
        .filter(|(a, b)| a != b)
        .take(5)
        .map(|(a, b)| format!("got {a:?}\ntable {b:?}"))
        .collect();
    rep.check(
        differing.is_empty() && run.got.len() == table.len(),
        "(a) every event the consumer got equals its row",
        &differing,
    );

    // Every committed change has its event (and nothing else has one).
    let checks: [(&str, &str); 5] = [
        (
            "(a) one chat_started event per chat, none for anything else",
            "SELECT (SELECT count(*) FROM chats c WHERE (SELECT count(*) FROM chat_events e
                       WHERE e.chat_id = c.id AND e.reason = 'chat_started') <> 1)
                  + (SELECT count(*) FROM chat_events e WHERE e.reason = 'chat_started'
                       AND (e.old_state IS NOT NULL OR NOT EXISTS (SELECT 1 FROM chats c WHERE c.id = e.chat_id)))",
        ),
        (
            "(a) one 'assigned' event (waiting_assignment -> assigned, same chat and operator) per chat_assignments row",
            "SELECT count(*) FROM (
               (SELECT chat_id, operator_id FROM chat_assignments
                EXCEPT ALL SELECT chat_id, operator_id FROM chat_events
                           WHERE reason = 'assigned' AND old_state = 'waiting_assignment' AND new_state = 'assigned')
               UNION ALL
               (SELECT chat_id, operator_id FROM chat_events WHERE new_state = 'assigned'
                EXCEPT ALL SELECT chat_id, operator_id FROM chat_assignments)) d",
        ),
        (
            "(a) one event leaving 'assigned' per released assignment (same chat, operator, reason = release_reason)",
            "SELECT count(*) FROM (
               (SELECT chat_id, operator_id, release_reason FROM chat_assignments WHERE released_at IS NOT NULL
                EXCEPT ALL SELECT chat_id, operator_id, reason FROM chat_events WHERE old_state = 'assigned')
               UNION ALL
               (SELECT chat_id, operator_id, reason FROM chat_events WHERE old_state = 'assigned'
                EXCEPT ALL SELECT chat_id, operator_id, release_reason FROM chat_assignments
                           WHERE released_at IS NOT NULL)) d",
        ),
        (
            "(a) each chat's events in id order chain up: old_state = the previous event's new_state",
            "SELECT count(*) FROM (SELECT old_state, lag(new_state) OVER (PARTITION BY chat_id ORDER BY id) AS prev
                                   FROM chat_events) x
              WHERE old_state IS DISTINCT FROM prev",
        ),
        (
            "(a) each chat's last event names its current state",
            "SELECT count(*) FROM chats c
              WHERE c.chat_state IS DISTINCT FROM (SELECT e.new_state FROM chat_events e
                                                    WHERE e.chat_id = c.id ORDER BY e.id DESC LIMIT 1)",
        ),
    ];
    for (name, sql) in checks {
        let bad: i64 = one(&admin, sql).await?;
        rep.expect_eq(name, 0, bad);
    }
    let summary: String = one(
        &admin,
        "SELECT string_agg(reason || ' ' || n, ', ' ORDER BY reason)
           FROM (SELECT reason, count(*) AS n FROM chat_events GROUP BY reason) r",
    )
    .await?;
    println!("# (a) events by reason: {summary}");
    Ok(())
}

// ------------------------------------------------------------------------------ (b) wake-ups

async fn worker_pid(client: &Client) -> Res<Option<i32>> {
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = $1 AND datname = current_database()",
            &[&WORKER_TYPE],
        )
        .await
        .map_err(|e| format!("worker pid: {}", db_error(&e)))?;
    Ok(rows.first().map(|r| r.get(0)))
}

/// Autocommit start_chat / assign / reply calls from `n` connections for `for_at_least`
/// (and until `min_changes` events exist beyond `from`); returns the calls that succeeded.
async fn burst(
    dsn: &str,
    n: usize,
    for_at_least: Duration,
    min_changes: i64,
    from: i64,
) -> Res<u64> {
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let dsn = dsn.to_owned();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let client = connect(&dsn).await?;
            let op: Uuid = one(
                &client,
                &format!("SELECT create_operator('burst {i}', 1000)"),
            )
            .await?;
            let mut calls = 0u64;
            while !done.load(Ordering::SeqCst) {
                let chat: Uuid = client
                    .query_one("SELECT start_chat($1, 'burst')", &[&Uuid::new_v4()])
                    .await
                    .map_err(|e| format!("start_chat: {}", db_error(&e)))?
                    .get(0);
                calls += 1;
                if calls.is_multiple_of(3) {
                    client
                        .query_one("SELECT assign_chat_to_operator($1)", &[&op])
                        .await
                        .map_err(|e| format!("assign: {}", db_error(&e)))?;
                    calls += 1;
                }
                let _ = chat;
            }
            Ok::<u64, String>(calls)
        }));
    }
    let watcher = connect(dsn).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if start.elapsed() >= for_at_least && max_event_id(&watcher).await? - from >= min_changes {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    done.store(true, Ordering::SeqCst);
    let mut calls = 0;
    for t in tasks {
        calls += t.await.map_err(|e| format!("burst task: {e}"))??;
    }
    Ok(calls)
}

fn payloads(got: &[(Instant, Notification)]) -> Vec<String> {
    got.iter().map(|(_, n)| n.payload().to_owned()).collect()
}

async fn part_wakeups(dsn: &str, rep: &mut Report) -> Res<()> {
    let admin = connect(dsn).await?;
    let Some(worker) = worker_pid(&admin).await? else {
        rep.check(
            false,
            "(b) a chat_assign worker runs in this database",
            &["needs shared_preload_libraries = 'chat_assign' and the database in chat_assign.databases".into()],
        );
        return Ok(());
    };
    set_notify_interval(&admin, Some(&format!("{INTERVAL_MS}ms"))).await?;
    let mut listener = listen(dsn).await?;
    listener
        .settle(Duration::from_millis(400), Duration::from_secs(5))
        .await;
    let quiet = listener.until(Duration::from_secs(1), |_| false).await.0;
    rep.check(
        quiet.is_empty(),
        "(b) no wake-up while nothing changes for 1 s",
        &[format!("got: {:?}", payloads(&quiet))],
    );

    let from = max_event_id(&admin).await?;
    let t0 = Instant::now();
    let calls = burst(dsn, 8, Duration::from_millis(1500), BURST_CHANGES, from).await?;
    let burst_end = Instant::now();
    let newest = max_event_id(&admin).await?;
    let target = newest.to_string();
    let (mut got, reached) = listener
        .until(Duration::from_secs(3), |n| n.payload() == target)
        .await;
    let reached_at = got.last().map(|(t, _)| *t).unwrap_or(burst_end);
    // Anything after the final payload would break the count too.
    got.extend(
        listener
            .settle(Duration::from_millis(300), Duration::from_secs(1))
            .await,
    );
    let changes = newest - from;
    let elapsed = got.last().map_or(burst_end, |(t, _)| *t).duration_since(t0);
    rep.check(
        changes >= BURST_CHANGES,
        &format!(
            "(b) burst: {changes} changes ({calls} calls from 8 connections) in {:.2} s",
            burst_end.duration_since(t0).as_secs_f64()
        ),
        &[],
    );
    rep.check(
        reached,
        &format!(
            "(b) the last wake-up's payload is max(id) = {newest}, {} ms after the burst ended (bound 3000 ms)",
            reached_at.saturating_duration_since(burst_end).as_millis()
        ),
        &[format!("payloads: {:?}", payloads(&got))],
    );
    let limit = (elapsed.as_secs_f64() / (INTERVAL_MS as f64 / 1000.0)).floor() as usize + 2;
    rep.check(
        !got.is_empty() && got.len() <= limit,
        &format!(
            "(b) {} wake-ups for {changes} changes over {:.2} s: at most one per {INTERVAL_MS} ms (<= {limit})",
            got.len(),
            elapsed.as_secs_f64()
        ),
        &[format!("payloads: {:?}", payloads(&got))],
    );
    let gaps: Vec<u128> = got
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_millis())
        .collect();
    let min_gap = gaps.iter().copied().min().unwrap_or(u128::MAX);
    rep.check(
        min_gap >= (INTERVAL_MS as u128) / 2,
        &format!(
            "(b) consecutive wake-ups at least {} ms apart (smallest gap {} ms, received time)",
            INTERVAL_MS / 2,
            if gaps.is_empty() {
                "-".to_owned()
            } else {
                min_gap.to_string()
            }
        ),
        &[format!("gaps ms: {gaps:?}")],
    );
    let numbers: Vec<Option<i64>> = got.iter().map(|(_, n)| n.payload().parse().ok()).collect();
    let valid: Vec<i64> = numbers.iter().flatten().copied().collect();
    rep.check(
        valid.len() == got.len()
            && strictly_increasing(&valid)
            && valid.iter().all(|&i| i > from && i <= newest),
        &format!(
            "(b) every payload is an event id of the burst ({from} < id <= {newest}), increasing"
        ),
        &[format!("payloads: {:?}", payloads(&got))],
    );
    let senders: Vec<i32> = got
        .iter()
        .map(|(_, n)| n.process_id())
        .filter(|&p| p != worker)
        .collect();
    rep.check(
        senders.is_empty(),
        &format!("(b) every wake-up comes from the worker (pid {worker}), none from a call"),
        &[format!("other senders: {senders:?}")],
    );
    let quiet = listener.until(Duration::from_secs(1), |_| false).await.0;
    rep.check(
        quiet.is_empty(),
        "(b) after the burst: no wake-up while nothing changes for 1 s",
        &[format!("got: {:?}", payloads(&quiet))],
    );

    // Off, then (c) with wake-ups off, then on again.
    set_notify_interval(&admin, Some("0")).await?;
    listener
        .settle(Duration::from_millis(300), Duration::from_secs(3))
        .await;
    let off_from = max_event_id(&admin).await?;
    let off_calls = burst(dsn, 4, Duration::from_millis(300), 100, off_from).await?;
    let off_changes = max_event_id(&admin).await? - off_from;
    let off = listener
        .until(Duration::from_millis(1500), |_| false)
        .await
        .0;
    rep.check(
        off.is_empty() && off_changes >= 100,
        &format!(
            "(b) chat_assign.notify_interval = 0 (ALTER SYSTEM, pg_reload_conf()): no wake-up in 1.5 s after {off_changes} changes ({off_calls} calls)"
        ),
        &[format!("got: {:?}", payloads(&off))],
    );
    let outcome = part_calls_never_notify(dsn, &admin, &mut listener, rep).await;

    set_notify_interval(&admin, None).await?;
    let newest = max_event_id(&admin).await?.to_string();
    let (back, reached) = listener
        .until(Duration::from_secs(3), |n| n.payload() == newest)
        .await;
    rep.check(
        reached,
        &format!("(b) RESET chat_assign.notify_interval: wake-ups resume, payload max(id) = {newest} within 3 s"),
        &[format!("got: {:?}", payloads(&back))],
    );
    outcome
}

// ------------------------------------------------------------------------------ (c) calls never notify

async fn part_calls_never_notify(
    dsn: &str,
    admin: &Client,
    listener: &mut Listener,
    rep: &mut Report,
) -> Res<()> {
    // A listener inside an open transaction: the queue cannot be cleaned past it.
    let holder = listen(dsn).await?;
    exec(&holder.client, "BEGIN; SELECT 1").await?;
    let usage_before: f64 = one(admin, "SELECT pg_notification_queue_usage()").await?;
    let caller = connect(dsn).await?;
    let op: Uuid = one(&caller, "SELECT create_operator('no notify', 1)").await?;
    let mut ok = 0;
    let mut errors = Vec::new();
    for i in 0..25 {
        let round = async {
            let chat: Uuid = caller
                .query_one("SELECT start_chat($1, 'quiet')", &[&Uuid::new_v4()])
                .await?
                .get(0);
            let _ = chat;
            let taken: Option<Uuid> = caller
                .query_one("SELECT assign_chat_to_operator($1)", &[&op])
                .await?
                .get(0);
            let taken = taken.unwrap_or(chat);
            caller
                .query_one("SELECT operator_send_message($1, $2, 'hi')", &[&taken, &op])
                .await?;
            caller
                .query_one("SELECT real_user_send_message($1, 'thanks')", &[&taken])
                .await?;
            Ok::<(), tokio_postgres::Error>(())
        };
        match round.await {
            Ok(()) => ok += 4,
            Err(e) => errors.push(format!("round {i}: {}", db_error(&e))),
        }
    }
    let usage_after: f64 = one(admin, "SELECT pg_notification_queue_usage()").await?;
    let heard = listener
        .until(Duration::from_millis(500), |_| false)
        .await
        .0;
    rep.check(
        ok == 100 && errors.is_empty(),
        "(c) 100 state-changing calls succeed while a LISTEN session holds the queue in an open transaction",
        &errors,
    );
    rep.check(
        usage_before == 0.0 && usage_after == 0.0 && heard.is_empty(),
        "(c) with notify_interval = 0 the calls notify nobody: pg_notification_queue_usage() stays 0, nothing heard",
        &[
            format!("usage before {usage_before}, after {usage_after}"),
            format!("heard: {:?}", payloads(&heard)),
        ],
    );
    // The measure is not blind: three 7.9 kB notifications move it while the tail is held.
    let big = "x".repeat(7900);
    for _ in 0..3 {
        caller
            .execute("SELECT pg_notify('chat_assign_probe', $1)", &[&big])
            .await
            .map_err(|e| format!("pg_notify probe: {}", db_error(&e)))?;
    }
    let usage_probe: f64 = one(admin, "SELECT pg_notification_queue_usage()").await?;
    rep.check(
        usage_probe > 0.0,
        &format!("(c) control: three 7.9 kB NOTIFYs do show in pg_notification_queue_usage() ({usage_probe:e})"),
        &[],
    );
    exec(&holder.client, "COMMIT").await?;
    drop(holder);

    // Two-phase commit: a call's transaction can be PREPAREd.
    let max_prepared: String = one(admin, "SHOW max_prepared_transactions").await?;
    if max_prepared == "0" {
        rep.check(
            false,
            "(c) PREPARE TRANSACTION after state-changing calls",
            &["max_prepared_transactions is 0 on this server".into()],
        );
        return Ok(());
    }
    let reader = connect(dsn).await?;
    let mut last = max_event_id(admin).await?;
    let mut got = Vec::new();
    read_all(&reader, &mut last, &mut got).await?;
    let start = last;
    let p = connect(dsn).await?;
    let prepared = async {
        exec(&p, "BEGIN").await?;
        let chat: Uuid = one(&p, "SELECT start_chat(gen_random_uuid(), '2pc')").await?;
        let op2: Uuid = one(&p, "SELECT create_operator('2pc op', 5)").await?;
        // The oldest waiting chat, whichever it is: a state change in the same transaction.
        let taken: Option<Uuid> = p
            .query_one("SELECT assign_chat_to_operator($1)", &[&op2])
            .await
            .map_err(|e| format!("assign: {}", db_error(&e)))?
            .get(0);
        exec(&p, "PREPARE TRANSACTION 'chat_assign_events_2pc'").await?;
        Ok::<(Uuid, Option<Uuid>), String>((chat, taken))
    }
    .await;
    let prepared_ok = prepared.is_ok();
    rep.check(
        prepared_ok,
        "(c) start_chat and assign_chat_to_operator in a transaction, then PREPARE TRANSACTION: succeeds (0.2: 0A000)",
        &[prepared.as_ref().err().cloned().unwrap_or_default()],
    );
    if !prepared_ok {
        let _ = exec(admin, "ROLLBACK PREPARED 'chat_assign_events_2pc'").await;
        return Ok(());
    }
    let later: Uuid = one(
        admin,
        "SELECT start_chat(gen_random_uuid(), 'after the prepared one')",
    )
    .await?;
    let later_id: i64 = one(
        admin,
        &format!(
            "SELECT id FROM chat_events WHERE chat_id = '{later}' AND reason = 'chat_started'"
        ),
    )
    .await?;
    let mut while_prepared = Vec::new();
    read_all(&reader, &mut last, &mut while_prepared).await?;
    rep.check(
        while_prepared.is_empty(),
        &format!("(c) while it is prepared, read_chat_events({start}) stops below its events: not even the later, committed event {later_id}"),
        &[format!("got ids: {:?}", ids(&while_prepared))],
    );
    exec(admin, "COMMIT PREPARED 'chat_assign_events_2pc'").await?;
    let mut after = Vec::new();
    read_all(&reader, &mut last, &mut after).await?;
    let table = table_events(admin, start).await?;
    rep.check(
        after == table && after.len() >= 3 && after.last().map(|e| e.id) == Some(later_id),
        &format!(
            "(c) after COMMIT PREPARED the reader gets its events and then event {later_id}, in id order: {:?}",
            ids(&after)
        ),
        &[format!("table: {:?}", ids(&table))],
    );
    // ROLLBACK PREPARED: its events never exist, the horizon moves on.
    let start = last;
    exec(&p, "BEGIN").await?;
    one::<Uuid>(
        &p,
        "SELECT start_chat(gen_random_uuid(), '2pc, rolled back')",
    )
    .await?;
    exec(&p, "PREPARE TRANSACTION 'chat_assign_events_2pc_rb'").await?;
    let later: Uuid = one(
        admin,
        "SELECT start_chat(gen_random_uuid(), 'after the rolled back one')",
    )
    .await?;
    let mut held = Vec::new();
    read_all(&reader, &mut last, &mut held).await?;
    exec(admin, "ROLLBACK PREPARED 'chat_assign_events_2pc_rb'").await?;
    let mut after = Vec::new();
    read_all(&reader, &mut last, &mut after).await?;
    let table = table_events(admin, start).await?;
    rep.check(
        held.is_empty() && after == table && after.len() == 1 && after[0].chat == later,
        "(c) ROLLBACK PREPARED: its event never appears; the later event is read once it is gone",
        &[format!(
            "while prepared: {:?}, after: {:?}, table: {:?}",
            ids(&held),
            ids(&after),
            ids(&table)
        )],
    );
    Ok(())
}

// ------------------------------------------------------------------------------ (d) forged

async fn part_forged(dsn: &str, rep: &mut Report) -> Res<()> {
    let admin = connect(dsn).await?;
    exec(
        &admin,
        &format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{FORGER}') THEN
                 CREATE ROLE {FORGER} LOGIN;
               END IF;
             END $$"
        ),
    )
    .await?;
    let forger = connect(&format!("{dsn} user={FORGER}")).await?;
    let read_as_forger = forger
        .query("SELECT * FROM read_chat_events(0, 1)", &[])
        .await
        .err()
        .and_then(|e| e.code().cloned());
    rep.check(
        read_as_forger == Some(SqlState::INSUFFICIENT_PRIVILEGE),
        &format!("(d) a role with no grant ({FORGER}) may not read events (42501)"),
        &[format!("got: {read_as_forger:?}")],
    );
    let worker = worker_pid(&admin).await?.unwrap_or(-1);

    // The consumer: LISTEN, and on every wake-up, whatever its payload, read until empty.
    let mut listener = listen(dsn).await?;
    listener
        .settle(Duration::from_millis(300), Duration::from_secs(3))
        .await;
    let start = max_event_id(&admin).await?;
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = start;
            let mut got = Vec::new();
            let mut heard = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_millis(200), listener.rx.recv()).await {
                    Ok(Some((_, n))) => {
                        heard.push((n.process_id(), n.payload().to_owned()));
                        read_all(&listener.client, &mut last, &mut got).await?;
                    }
                    Ok(None) => return Err("listener closed".to_owned()),
                    Err(_) if done.load(Ordering::SeqCst) => return Ok((got, heard)),
                    Err(_) => {}
                }
            }
        })
    };
    let writer = connect(dsn).await?;
    let op: Uuid = one(&writer, "SELECT create_operator('forged op', 100)").await?;
    let forged = [
        "garbage",
        "-1",
        "99999999999999",
        "",
        "1; DROP TABLE chat_events",
        "{\"id\": 1}",
    ];
    for (i, payload) in forged.iter().enumerate() {
        forger
            .execute("SELECT pg_notify('chat_assign', $1)", &[payload])
            .await
            .map_err(|e| format!("forged NOTIFY as {FORGER}: {}", db_error(&e)))?;
        for _ in 0..8 {
            writer
                .query_one("SELECT start_chat(gen_random_uuid(), 'forged?')", &[])
                .await
                .map_err(|e| format!("start_chat: {}", db_error(&e)))?;
            writer
                .query_one("SELECT assign_chat_to_operator($1)", &[&op])
                .await
                .map_err(|e| format!("assign: {}", db_error(&e)))?;
        }
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let newest = max_event_id(&admin).await?;
    // The worker's wake-up for the newest id arrives within a few intervals; then stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    done.store(true, Ordering::SeqCst);
    let (got, heard) = consumer
        .await
        .map_err(|e| format!("consumer task: {e}"))??;
    let forged_heard: Vec<&String> = heard
        .iter()
        .filter(|(pid, _)| *pid != worker)
        .map(|(_, p)| p)
        .collect();
    rep.check(
        forged_heard.len() == forged.len(),
        &format!(
            "(d) {FORGER} (no grants) can NOTIFY chat_assign: the consumer heard all {} forged payloads",
            forged.len()
        ),
        &[format!("heard: {heard:?}")],
    );
    rep.check(
        heard
            .iter()
            .any(|(pid, p)| *pid == worker && p == &newest.to_string()),
        &format!("(d) the worker's wake-up with max(id) = {newest} came too"),
        &[format!("heard: {heard:?}")],
    );
    let table = table_events(&admin, start).await?;
    rep.check(
        got == table && table.len() as i64 >= 2 * 8 * forged.len() as i64,
        &format!(
            "(d) the consumer that takes payloads as hints got exactly the {} events, in order",
            table.len()
        ),
        &[format!(
            "got {}, table {}",
            ranges(&ids(&got)),
            ranges(&ids(&table))
        )],
    );
    Ok(())
}

// ------------------------------------------------------------------------------ main

fn parse_args() -> Res<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, dsn] if flag == "--dsn" => Ok(dsn.clone()),
        _ => Err("usage: chat_assign_events --dsn DSN".into()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 8)]
async fn main() {
    let dsn = match parse_args() {
        Ok(dsn) => dsn,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut rep = Report {
        passed: 0,
        failed: 0,
    };
    let started = Instant::now();
    if let Err(e) = part_exactly_once(&dsn, &mut rep).await {
        rep.check(false, "(a) ran to its end", &[e]);
    }
    if let Err(e) = part_wakeups(&dsn, &mut rep).await {
        rep.check(false, "(b)/(c) ran to their end", &[e]);
        // Leave the server as it was found.
        if let Ok(admin) = connect(&dsn).await {
            let _ = set_notify_interval(&admin, None).await;
            let _ = exec(&admin, "ROLLBACK PREPARED 'chat_assign_events_2pc'").await;
        }
    }
    if let Err(e) = part_forged(&dsn, &mut rep).await {
        rep.check(false, "(d) ran to its end", &[e]);
    }
    println!("# run time {:.1} s", started.elapsed().as_secs_f64());
    println!("events: {} passed, {} failed", rep.passed, rep.failed);
    std::process::exit(if rep.failed == 0 { 0 } else { 1 });
}

//! Change events of the `chat_assign` extension (`NOTIFY chat_assign`), checked end to end.
//!
//! One connection `LISTEN`s on the channel while another plays chats through the API. For
//! every call the event the design promises (chat, old state, new state, operator, reason)
//! is written down from what the call returned; the listener must receive exactly those
//! events, in order. The actor sends a marker notification (`ops-marker:<name>`) after each
//! scenario, which cuts what the listener received into one check per scenario:
//! a full chat flow; deactivation releasing each held chat; completion and reopening;
//! several calls in one transaction (nothing while it is open, its events at commit, in call
//! order); rolled back transactions and savepoints, failed calls, direct table writes and
//! `SET chat_assign.notify = off` (nothing); `RESET` (events again). Then every payload is
//! checked: a JSON object with exactly the six keys and JSON types of the design, `at` a
//! timestamptz within the run that never goes back, sent by the backend that made the call.
//!
//! Usage: chat_assign_events --dsn DSN
//! The database must have the extension installed and no chats. Prints `ok - events: ...` /
//! `not ok - events: ...` per check (diagnostics on `#` lines); exit status 0 only when
//! every check passed. Run by scripts/ops.sh.

use futures_util::{stream, StreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};
use uuid::Uuid;

type Res<T> = Result<T, String>;

const CHANNEL: &str = "chat_assign";
const MARKER: &str = "ops-marker:";
const END: &str = "end";
/// How long the listener may take to receive the final marker.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(15);

const WAITING: &str = "waiting_assignment";
const ASSIGNED: &str = "assigned";
const REPLIED: &str = "waiting_real_user_reply";
const COMPLETED: &str = "completed";

/// The fields of an event payload that the flow determines (`at` is checked apart).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    chat: Uuid,
    old: Option<String>,
    new: String,
    operator: Option<Uuid>,
    reason: String,
}

/// One expected step: an event, or events one transaction sends in an unspecified order.
enum Expect {
    One(Event),
    AnyOrder(Vec<Event>),
}

/// What the listener received, in order.
enum Got {
    Marker(String),
    Event(Event),
    /// A payload that is not a valid event, with the reason.
    Invalid(String),
}

// ------------------------------------------------------------------------------ the actor

/// The connection that plays the chats and writes down the events each call must send.
struct Flow {
    db: Client,
    /// Expected events since the last marker.
    pending: Vec<Expect>,
    /// Closed scenarios: marker name, what it shows, its expected events.
    scenarios: Vec<(String, String, Vec<Expect>)>,
    /// Readable names of chats and operators for the diagnostics.
    names: HashMap<Uuid, String>,
}

impl Flow {
    fn expect(
        &mut self,
        chat: Uuid,
        old: Option<&str>,
        new: &str,
        operator: Option<Uuid>,
        reason: &str,
    ) {
        self.pending
            .push(Expect::One(event(chat, old, new, operator, reason)));
    }

    fn name(&mut self, id: Uuid, name: &str) {
        self.names.insert(id, name.to_owned());
    }

    /// Ends a scenario: the listener must have received exactly the pending events before
    /// this marker.
    async fn marker(&mut self, name: &str, what: &str) -> Res<()> {
        notify_marker(&self.db, name).await?;
        let expected = std::mem::take(&mut self.pending);
        self.scenarios
            .push((name.to_owned(), what.to_owned(), expected));
        Ok(())
    }

    async fn exec(&self, sql: &str) -> Res<()> {
        self.db
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))
    }

    async fn one<T>(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Res<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let row = self
            .db
            .query_one(sql, params)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
        row.try_get(0).map_err(|e| format!("{sql}: {e}"))
    }

    /// A call that must fail with `code` (and so change nothing and send nothing).
    async fn refused(&self, sql: &str, params: &[&(dyn ToSql + Sync)], code: &str) -> Res<()> {
        match self.db.query(sql, params).await {
            Ok(_) => Err(format!("{sql}: succeeded, expected SQLSTATE {code}")),
            Err(e) if e.code().map(|c| c.code()) == Some(code) => Ok(()),
            Err(e) => Err(format!("{sql}: expected SQLSTATE {code}, got {e}")),
        }
    }

    /// `start_chat`: null → waiting_assignment, `chat_started`, no operator.
    async fn start_chat(&mut self, name: &str) -> Res<Uuid> {
        let chat = self.start_chat_silently(name).await?;
        self.expect(chat, None, WAITING, None, "chat_started");
        Ok(chat)
    }

    /// `start_chat` where no event is expected (rolled back, notify off).
    async fn start_chat_silently(&mut self, name: &str) -> Res<Uuid> {
        let content = format!("Hello from {name}");
        let chat: Uuid = self
            .one("SELECT start_chat($1, $2)", &[&Uuid::new_v4(), &content])
            .await?;
        self.name(chat, name);
        Ok(chat)
    }

    /// `assign_chat_to_operator` that must get a chat: waiting_assignment → assigned,
    /// `assigned`, the new holder.
    async fn assign(&mut self, operator: Uuid) -> Res<Uuid> {
        let chat = self.assign_silently(operator).await?;
        self.expect(chat, Some(WAITING), ASSIGNED, Some(operator), "assigned");
        Ok(chat)
    }

    async fn assign_silently(&mut self, operator: Uuid) -> Res<Uuid> {
        let chat: Option<Uuid> = self
            .one("SELECT assign_chat_to_operator($1)", &[&operator])
            .await?;
        chat.ok_or_else(|| "assign_chat_to_operator returned NULL with chats waiting".to_owned())
    }

    /// The first `operator_send_message`: assigned → waiting_real_user_reply,
    /// `operator_replied`, the replying operator.
    async fn reply(&mut self, chat: Uuid, operator: Uuid) -> Res<()> {
        self.operator_message(chat, operator).await?;
        self.expect(
            chat,
            Some(ASSIGNED),
            REPLIED,
            Some(operator),
            "operator_replied",
        );
        Ok(())
    }

    /// An operator message without an event (a follow-up, or notify off).
    async fn operator_message(&mut self, chat: Uuid, operator: Uuid) -> Res<()> {
        self.one::<i64>(
            "SELECT operator_send_message($1, $2, 'Let me check that for you')",
            &[&chat, &operator],
        )
        .await
        .map(drop)
    }

    /// `real_user_send_message` from `from`: → waiting_assignment, `real_user_message`,
    /// the operator who held it (null unless it was assigned). From waiting_assignment no
    /// event: the state does not change.
    async fn user_message(&mut self, chat: Uuid, from: &str, holder: Option<Uuid>) -> Res<()> {
        self.one::<i64>("SELECT real_user_send_message($1, 'Any news?')", &[&chat])
            .await?;
        if from != WAITING {
            self.expect(chat, Some(from), WAITING, holder, "real_user_message");
        }
        Ok(())
    }

    /// `release_and_reassign_chat` of an assigned chat: assigned → waiting_assignment, the
    /// given reason (default `manual_unassign`), the operator who held it.
    async fn release(&mut self, chat: Uuid, reason: Option<&str>, holder: Uuid) -> Res<()> {
        let released: bool = match reason {
            Some(r) => {
                self.one("SELECT release_and_reassign_chat($1, $2)", &[&chat, &r])
                    .await?
            }
            None => {
                self.one("SELECT release_and_reassign_chat($1)", &[&chat])
                    .await?
            }
        };
        if !released {
            return Err("release_and_reassign_chat returned false for an assigned chat".into());
        }
        let reason = reason.unwrap_or("manual_unassign");
        self.expect(chat, Some(ASSIGNED), WAITING, Some(holder), reason);
        Ok(())
    }

    /// `complete_chat`: → completed, `completed`, the operator who held it or null.
    async fn complete(&mut self, chat: Uuid, from: &str, holder: Option<Uuid>) -> Res<()> {
        let completed: bool = self.one("SELECT complete_chat($1)", &[&chat]).await?;
        if !completed {
            return Err("complete_chat returned false for a chat that was not completed".into());
        }
        self.expect(chat, Some(from), COMPLETED, holder, "completed");
        Ok(())
    }

    async fn set_active(&mut self, operator: Uuid, active: bool) -> Res<()> {
        let changed: bool = self
            .one("SELECT set_operator_active($1, $2)", &[&operator, &active])
            .await?;
        if !changed {
            return Err(format!("set_operator_active(.., {active}) returned false"));
        }
        Ok(())
    }
}

fn event(chat: Uuid, old: Option<&str>, new: &str, operator: Option<Uuid>, reason: &str) -> Event {
    Event {
        chat,
        old: old.map(str::to_owned),
        new: new.to_owned(),
        operator,
        reason: reason.to_owned(),
    }
}

async fn notify_marker(db: &Client, name: &str) -> Res<()> {
    db.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &format!("{MARKER}{name}")],
    )
    .await
    .map(drop)
    .map_err(|e| format!("marker {name}: {e}"))
}

/// The scenarios, in order. `other` is a third connection, for the marker sent while the
/// actor's transaction is open.
async fn play(f: &mut Flow, other: &Client) -> Res<()> {
    let op_a: Uuid = f.one("SELECT create_operator('events A')", &[]).await?;
    let op_b: Uuid = f.one("SELECT create_operator('events B')", &[]).await?;
    let op_c: Uuid = f.one("SELECT create_operator('events C', 2)", &[]).await?;
    f.name(op_a, "op A");
    f.name(op_b, "op B");
    f.name(op_c, "op C (capacity 2)");

    // One chat through every transition a chat can make with an operator. It is the only
    // chat, so every assign gets it.
    let c1 = f.start_chat("c1").await?;
    f.assign(op_a).await?;
    f.reply(c1, op_a).await?;
    f.operator_message(c1, op_a).await?; // a follow-up: no state change
    f.user_message(c1, REPLIED, None).await?;
    f.user_message(c1, WAITING, None).await?; // still waiting: no event
    f.assign(op_b).await?;
    f.user_message(c1, ASSIGNED, Some(op_b)).await?;
    f.assign(op_a).await?;
    let touched: bool = f
        .one("SELECT touch_operator_activity($1, $2)", &[&op_a, &c1])
        .await?;
    if !touched {
        return Err("touch_operator_activity of the holder returned false".into());
    }
    f.release(c1, None, op_a).await?;
    f.assign(op_b).await?;
    f.release(c1, Some("supervisor override"), op_b).await?;
    f.assign(op_a).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let idle: Vec<Uuid> =
        f.db.query(
            "SELECT chat_id FROM release_idle_assignments('1 millisecond')",
            &[],
        )
        .await
        .map_err(|e| format!("release_idle_assignments: {e}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if idle != [c1] {
        return Err(format!(
            "release_idle_assignments released {idle:?}, expected only c1"
        ));
    }
    f.expect(c1, Some(ASSIGNED), WAITING, Some(op_a), "idle_timeout");
    f.marker(
        "flow",
        "full flow: start, assign, reply (follow-up silent), user message back to the queue \
         (again: silent), assign, user message while assigned, assign, heartbeat (silent), \
         admin release (default and own reason), idle release",
    )
    .await?;

    // Deactivation releases every chat the operator holds, one event each.
    let c2 = f.start_chat("c2").await?;
    let x = f.assign(op_c).await?;
    let y = f.assign(op_c).await?;
    f.set_active(op_c, false).await?;
    f.pending.push(Expect::AnyOrder(vec![
        event(x, Some(ASSIGNED), WAITING, Some(op_c), "operator_inactive"),
        event(y, Some(ASSIGNED), WAITING, Some(op_c), "operator_inactive"),
    ]));
    f.set_active(op_c, true).await?; // no state change
    f.marker(
        "deactivate",
        "set_operator_active(false) releases each held chat (operator_inactive); reactivating is silent",
    )
    .await?;

    // Completion from every state, reopening, completing twice.
    let held = f.assign(op_a).await?;
    f.complete(held, ASSIGNED, Some(op_a)).await?;
    let waiting = if held == c1 { c2 } else { c1 };
    f.complete(waiting, WAITING, None).await?;
    let c3 = f.start_chat("c3").await?;
    if f.assign(op_b).await? != c3 {
        return Err("assign_chat_to_operator did not return the only waiting chat".into());
    }
    f.reply(c3, op_b).await?;
    f.complete(c3, REPLIED, None).await?;
    let again: bool = f.one("SELECT complete_chat($1)", &[&c3]).await?;
    if again {
        return Err("complete_chat of a completed chat returned true".into());
    }
    f.user_message(c3, COMPLETED, None).await?;
    f.marker(
        "complete",
        "complete_chat from assigned, waiting and waiting_real_user_reply; again is silent; \
         a user message reopens",
    )
    .await?;

    // Several calls in one transaction: nothing while it is open (a marker another session
    // sends meanwhile arrives first), then its events in call order.
    f.exec("BEGIN").await?;
    let c4 = f.start_chat("c4").await?;
    let taken = f.assign(op_a).await?;
    f.reply(taken, op_a).await?;
    let during = std::mem::take(&mut f.pending);
    notify_marker(other, "open-transaction").await?;
    f.scenarios.push((
        "open-transaction".into(),
        "nothing is sent while the transaction is open".into(),
        Vec::new(),
    ));
    f.exec("COMMIT").await?;
    f.pending = during;
    f.marker(
        "transaction",
        "three calls in one transaction: their events at commit, in call order",
    )
    .await?;

    // Rolled back work sends nothing; a rolled back savepoint drops only its own events.
    f.exec("BEGIN").await?;
    f.start_chat_silently("rolled back").await?;
    f.assign_silently(op_b).await?;
    f.exec("ROLLBACK").await?;
    f.exec("BEGIN").await?;
    let c5 = f.start_chat("c5").await?;
    f.exec("SAVEPOINT s").await?;
    f.assign_silently(op_b).await?;
    f.exec("ROLLBACK TO SAVEPOINT s; COMMIT").await?;
    f.marker(
        "rollback",
        "a rolled back transaction sends nothing; a rolled back savepoint only loses its own events",
    )
    .await?;

    // Failed calls and calls that change no state send nothing.
    f.refused(
        "SELECT operator_send_message($1, $2, 'not mine')",
        &[&c5, &op_b],
        "55000",
    )
    .await?;
    f.set_active(op_c, false).await?;
    f.refused("SELECT assign_chat_to_operator($1)", &[&op_c], "55000")
        .await?;
    f.set_active(op_c, true).await?;
    f.refused("SELECT start_chat($1, '   ')", &[&Uuid::new_v4()], "22023")
        .await?;
    let released: bool = f
        .one("SELECT release_and_reassign_chat($1)", &[&c5])
        .await?;
    let touched: bool = f
        .one("SELECT touch_operator_activity($1, $2)", &[&op_b, &c5])
        .await?;
    if released || touched {
        return Err("release/touch of a waiting chat returned true".into());
    }
    f.marker(
        "failed",
        "refused calls (55000, 22023) and calls that change no state send nothing",
    )
    .await?;

    // Events come from the functions, not from the tables.
    f.db.execute("UPDATE chats SET priority = 7 WHERE id = $1", &[&c4])
        .await
        .map_err(|e| format!("direct update: {e}"))?;
    f.db.execute(
        "UPDATE chats SET chat_state = 'completed', is_active = false WHERE id = $1",
        &[&c5],
    )
    .await
    .map_err(|e| format!("direct state change: {e}"))?;
    f.marker("direct", "direct writes to the tables send nothing")
        .await?;

    // chat_assign.notify = off: a whole flow without events; RESET: events again.
    f.exec("SET chat_assign.notify = off").await?;
    let quiet = f.start_chat_silently("quiet").await?;
    let got = f.assign_silently(op_b).await?;
    f.operator_message(got, op_b).await?;
    f.one::<bool>("SELECT complete_chat($1)", &[&quiet]).await?;
    f.marker(
        "notify-off",
        "SET chat_assign.notify = off: a whole flow sends nothing",
    )
    .await?;
    f.exec("RESET chat_assign.notify").await?;
    f.start_chat("after reset").await?;
    f.marker(
        "notify-reset",
        "after RESET chat_assign.notify events are sent again",
    )
    .await?;
    f.marker(END, "nothing arrives after the last scenario")
        .await
}

// ------------------------------------------------------------------------------ the listener

/// A connection that `LISTEN`s on the channel; its notifications are forwarded to the
/// returned receiver. The client must be kept alive as long as notifications are wanted.
async fn listen(dsn: &str) -> Res<(Client, mpsc::UnboundedReceiver<Notification>)> {
    let (client, mut connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .map_err(|e| format!("connect ({dsn}): {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    // Notifications only come out of the connection when it is polled for messages; this
    // task polls it, which also drives the client's own queries.
    tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    println!("# listener connection failed: {e}");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| format!("LISTEN: {e}"))?;
    Ok((client, rx))
}

async fn connect(dsn: &str) -> Res<Client> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .map_err(|e| format!("connect ({dsn}): {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Notifications until the final marker, the channel closing or the timeout.
async fn receive(rx: &mut mpsc::UnboundedReceiver<Notification>) -> (Vec<Notification>, bool) {
    let deadline = tokio::time::Instant::now() + RECEIVE_TIMEOUT;
    let end = format!("{MARKER}{END}");
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(n)) => {
                let last = n.payload() == end;
                got.push(n);
                if last {
                    return (got, true);
                }
            }
            Ok(None) | Err(_) => return (got, false),
        }
    }
}

/// A payload as the design describes it, parsed by the server's JSON parser. Returns the
/// event and its `at`, or why it is not one.
async fn parse(db: &Client, payload: &str) -> Result<(Event, String), String> {
    let row = db
        .query_one(
            "SELECT jsonb_typeof(p),
                    CASE WHEN jsonb_typeof(p) = 'object'
                         THEN (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(p) AS k)
                    END,
                    concat_ws(',', jsonb_typeof(p -> 'at'), jsonb_typeof(p -> 'chat_id'),
                              jsonb_typeof(p -> 'new_state'), jsonb_typeof(p -> 'old_state'),
                              jsonb_typeof(p -> 'operator_id'), jsonb_typeof(p -> 'reason')),
                    p ->> 'chat_id', p ->> 'old_state', p ->> 'new_state', p ->> 'operator_id',
                    p ->> 'reason', p ->> 'at'
             FROM (SELECT $1::text::jsonb AS p) AS s",
            &[&payload],
        )
        .await
        .map_err(|e| format!("not JSON ({e})"))?;
    let kind: Option<String> = row.get(0);
    if kind.as_deref() != Some("object") {
        return Err(format!(
            "a JSON {}, not an object",
            kind.unwrap_or_default()
        ));
    }
    let keys: Option<String> = row.get(1);
    let keys = keys.unwrap_or_default();
    if keys != "at,chat_id,new_state,old_state,operator_id,reason" {
        return Err(format!("keys {keys}"));
    }
    let types: String = row.get(2);
    let t: Vec<&str> = types.split(',').collect();
    let text_or_null = |t: &str| t == "string" || t == "null";
    if !(t[0] == "string"
        && t[1] == "string"
        && t[2] == "string"
        && text_or_null(t[3])
        && text_or_null(t[4])
        && t[5] == "string")
    {
        return Err(format!(
            "JSON types (at,chat_id,new_state,old_state,operator_id,reason) {types}"
        ));
    }
    let uuid = |s: String, key: &str| Uuid::parse_str(&s).map_err(|e| format!("{key} {s:?}: {e}"));
    let chat = uuid(row.get(3), "chat_id")?;
    let operator = row
        .get::<_, Option<String>>(6)
        .map(|s| uuid(s, "operator_id"))
        .transpose()?;
    let event = Event {
        chat,
        old: row.get(4),
        new: row.get(5),
        operator,
        reason: row.get(7),
    };
    Ok((event, row.get(8)))
}

// ------------------------------------------------------------------------------ checks

/// Prints each check; counts the failed ones (scripts/ops.sh counts the printed lines).
struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, ok: bool, what: &str, details: &[String]) {
        if ok {
            println!("ok - events: {what}");
        } else {
            self.failed += 1;
            println!("not ok - events: {what}");
            for line in details.iter().take(60) {
                println!("#   {line}");
            }
        }
    }
}

struct Names<'a>(&'a HashMap<Uuid, String>);

impl Names<'_> {
    fn id(&self, id: &Uuid) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_string())
    }
    fn got(&self, g: &Got) -> String {
        match g {
            Got::Marker(m) => format!("marker {m}"),
            Got::Event(e) => self.event(e),
            Got::Invalid(why) => format!("invalid payload: {why}"),
        }
    }
    fn event(&self, e: &Event) -> String {
        format!(
            "{}: {} -> {}, operator {}, reason {}",
            self.id(&e.chat),
            e.old.as_deref().unwrap_or("null"),
            e.new,
            e.operator.map_or("null".into(), |o| self.id(&o)),
            e.reason
        )
    }
}

/// Whether `got` is exactly `expected` (groups in any order within themselves).
fn matches(expected: &[Expect], got: &[&Got]) -> bool {
    let mut events = Vec::new();
    for g in got {
        match g {
            Got::Event(e) => events.push(e.clone()),
            _ => return false,
        }
    }
    let mut i = 0;
    for step in expected {
        match step {
            Expect::One(e) => {
                if events.get(i) != Some(e) {
                    return false;
                }
                i += 1;
            }
            Expect::AnyOrder(group) => {
                let Some(slice) = events.get(i..i + group.len()) else {
                    return false;
                };
                let (mut a, mut b) = (group.clone(), slice.to_vec());
                a.sort();
                b.sort();
                if a != b {
                    return false;
                }
                i += group.len();
            }
        }
    }
    i == events.len()
}

async fn run(dsn: &str, report: &mut Report) -> Res<()> {
    let (_listener, mut rx) = listen(dsn).await?;
    let actor = connect(dsn).await?;
    let other = connect(dsn).await?;
    let actor_pid: i32 = actor
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let run_start: String = actor
        .query_one("SELECT clock_timestamp()::text", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let mut flow = Flow {
        db: actor,
        pending: Vec::new(),
        scenarios: Vec::new(),
        names: HashMap::new(),
    };
    let played = play(&mut flow, &other).await;
    report.check(
        played.is_ok(),
        "the flow ran as designed (every call returned what the scenario needs)",
        &[played.err().unwrap_or_default()],
    );
    // The end marker is sent even when the flow stopped early, so that what arrived can
    // still be compared.
    if flow.scenarios.last().map(|s| s.0.as_str()) != Some(END) {
        notify_marker(&flow.db, END).await?;
    }
    let (notifications, complete) = receive(&mut rx).await;
    report.check(
        complete,
        &format!(
            "the listener received the final marker within {} s",
            RECEIVE_TIMEOUT.as_secs()
        ),
        &[format!("{} notifications received", notifications.len())],
    );

    // Parse everything received; cut it at the markers.
    let db = &flow.db;
    let mut got: Vec<Got> = Vec::new();
    let mut at_values = Vec::new();
    let mut payload_problems = Vec::new();
    let mut foreign_senders = Vec::new();
    for n in &notifications {
        if let Some(marker) = n.payload().strip_prefix(MARKER) {
            got.push(Got::Marker(marker.to_owned()));
            continue;
        }
        if n.process_id() != actor_pid {
            foreign_senders.push(format!(
                "pid {} (actor {actor_pid}): {}",
                n.process_id(),
                n.payload()
            ));
        }
        if n.channel() != CHANNEL {
            payload_problems.push(format!("channel {}: {}", n.channel(), n.payload()));
        }
        match parse(db, n.payload()).await {
            Ok((event, at)) => {
                at_values.push((at, n.payload().to_owned()));
                got.push(Got::Event(event));
            }
            Err(why) => {
                payload_problems.push(format!("{why}: {}", n.payload()));
                got.push(Got::Invalid(why));
            }
        }
    }
    let mut segments: HashMap<&str, Vec<&Got>> = HashMap::new();
    let mut current: Vec<&Got> = Vec::new();
    let mut markers_seen = Vec::new();
    for g in &got {
        if let Got::Marker(m) = g {
            segments.insert(m.as_str(), std::mem::take(&mut current));
            markers_seen.push(m.as_str());
        } else {
            current.push(g);
        }
    }
    let markers_sent: Vec<&str> = flow.scenarios.iter().map(|s| s.0.as_str()).collect();
    report.check(
        markers_seen == markers_sent,
        "the scenario markers arrived once each, in the order they were sent",
        &[
            format!("sent {markers_sent:?}"),
            format!("received {markers_seen:?}"),
        ],
    );

    let names = Names(&flow.names);
    for (marker, what, expected) in &flow.scenarios {
        let received = segments.get(marker.as_str()).cloned().unwrap_or_default();
        let mut details = vec!["expected:".to_owned()];
        for step in expected {
            match step {
                Expect::One(e) => details.push(format!("  {}", names.event(e))),
                Expect::AnyOrder(group) => {
                    for e in group {
                        details.push(format!("  (any order) {}", names.event(e)));
                    }
                }
            }
        }
        details.push("received:".to_owned());
        for g in &received {
            details.push(format!("  {}", names.got(g)));
        }
        report.check(matches(expected, &received), what, &details);
    }

    report.check(
        payload_problems.is_empty() && !at_values.is_empty(),
        "every payload is a JSON object with exactly at, chat_id, new_state, old_state, \
         operator_id, reason (strings; old_state and operator_id may be null)",
        &payload_problems,
    );
    report.check(
        foreign_senders.is_empty(),
        "every event was sent by the backend that made the call",
        &foreign_senders,
    );
    let mut at_problems = Vec::new();
    let mut previous: Option<String> = None;
    for (at, payload) in &at_values {
        let row = db
            .query_one(
                "SELECT $1::text::timestamptz BETWEEN $2::text::timestamptz AND clock_timestamp(),
                        $1::text::timestamptz >= coalesce($3::text::timestamptz, '-infinity')",
                &[at, &run_start, &previous],
            )
            .await;
        match row {
            Ok(r) => {
                if !r.get::<_, bool>(0) {
                    at_problems.push(format!(
                        "at {at} is not within the run (from {run_start}): {payload}"
                    ));
                }
                if !r.get::<_, bool>(1) {
                    at_problems.push(format!("at {at} is before the previous event's: {payload}"));
                }
            }
            Err(e) => at_problems.push(format!("at {at:?} is not a timestamptz ({e}): {payload}")),
        }
        previous = Some(at.clone());
    }
    report.check(
        at_problems.is_empty() && !at_values.is_empty(),
        "every at is a timestamptz within the run, never before the previous event's",
        &at_problems,
    );
    Ok(())
}

fn parse_args() -> Res<String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--dsn"), Some(dsn), None) => Ok(dsn),
        _ => Err("usage: chat_assign_events --dsn DSN".into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dsn = match parse_args() {
        Ok(dsn) => dsn,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut report = Report { failed: 0 };
    if let Err(e) = run(&dsn, &mut report).await {
        report.check(false, "the test ran to its end", &[e]);
    }
    std::process::exit(if report.failed == 0 { 0 } else { 1 });
}

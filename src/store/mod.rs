//! SPI access: every statement in [`queries`] runs through [`exec`], which prepares it once
//! per backend and keeps the plan. The operations below validate nothing about their
//! arguments (the `api` layer did) but check existence and state under the row locks, so
//! that what they report is what they stored.

pub mod queries;

use crate::error::{ChatError, ChatResult};
use pgrx::datum::{AnyNumeric, DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData, SpiTupleTable};
use pgrx::PgOid;
use pgrx::Uuid;
use queries::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// Plans kept for the life of the backend, keyed by the statement's address. Postgres'
    /// plan cache revalidates them after DDL on the objects they use.
    static PLANS: RefCell<HashMap<usize, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
    /// The installed extension the kept plans name (its oid) and its schema, quoted.
    static HOME: RefCell<Option<(pg_sys::Oid, String)>> = const { RefCell::new(None) };
    /// The oid of `chat_events_id_seq` in the installed extension (see [`event_id_floor`]).
    static EVENT_SEQUENCE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Where the extension lives now, or `None` when it is not installed in this database.
/// The statements name our objects by schema, so a reinstall (a new extension oid, maybe
/// in another schema) makes every kept plan stale: they are dropped and prepared again.
/// Costs one index probe of `pg_extension` per operation.
fn home(client: &SpiClient<'_>) -> ChatResult<Option<String>> {
    // SAFETY: a catalog lookup by name inside the caller's transaction; missing_ok.
    let oid = unsafe { pg_sys::get_extension_oid(c"chat_assign".as_ptr(), true) };
    if oid == pg_sys::InvalidOid {
        return Ok(None);
    }
    if let Some(schema) = HOME.with(|home| match &*home.borrow() {
        Some((known, schema)) if *known == oid => Some(schema.clone()),
        _ => None,
    }) {
        return Ok(Some(schema));
    }
    PLANS.with(|plans| plans.borrow_mut().clear());
    let (schema, version) = client
        .select(EXTENSION_SCHEMA, None, &[oid.into()])?
        .first()
        .get_two::<String, String>()?;
    let schema = schema
        .ok_or_else(|| ChatError::Internal(format!("no schema for extension oid {oid:?}")))?;
    // The statements name this version's tables and columns: with the previous version's
    // schema still in place they would fail half-way, or write the wrong thing.
    let version = version.unwrap_or_default();
    if version != env!("CARGO_PKG_VERSION") {
        return Err(ChatError::UpdatePending { installed: version });
    }
    let sequence = client
        .select(EVENT_SEQUENCE_OID, None, &[schema.as_str().into()])?
        .first()
        .get_one::<pg_sys::Oid>()?
        .ok_or_else(|| ChatError::Internal("no chat_events_id_seq".into()))?;
    EVENT_SEQUENCE.with(|seq| seq.set(sequence));
    HOME.with(|home| *home.borrow_mut() = Some((oid, schema.clone())));
    Ok(Some(schema))
}

/// Every operation runs in here: one SPI connection, with the kept plans checked against
/// where the extension lives now.
fn connect<R>(operation: impl FnOnce(&mut SpiClient<'_>) -> ChatResult<R>) -> ChatResult<R> {
    Spi::connect_mut(|client| {
        if home(client)?.is_none() {
            return Err(ChatError::Internal(
                "extension chat_assign is not installed in this database".into(),
            ));
        }
        if crate::guc::EVENTS.get() {
            crate::guc::mark_api_write();
        }
        crate::guc::bound_lock_waits();
        operation(client)
    })
}

/// A statement's text as it runs in this database, the extension's schema in place (for
/// EXPLAIN in tests).
#[cfg(any(test, feature = "pg_test"))]
pub fn resolved_sql(stmt: &'static Statement) -> ChatResult<String> {
    Spi::connect_mut(|client| {
        let schema = home(client)?.ok_or_else(|| ChatError::Internal("not installed".into()))?;
        Ok(stmt.sql.replace("@extschema@", &schema))
    })
}

fn plan(
    client: &SpiClient<'_>,
    stmt: &'static Statement,
) -> ChatResult<Rc<OwnedPreparedStatement>> {
    let key = stmt as *const Statement as usize;
    if let Some(p) = PLANS.with(|plans| plans.borrow().get(&key).cloned()) {
        return Ok(p);
    }
    let schema = HOME
        .with(|home| home.borrow().as_ref().map(|(_, schema)| schema.clone()))
        .ok_or_else(|| ChatError::Internal("statement prepared outside connect()".into()))?;
    // The schema name comes from the catalog, quoted by quote_ident: never from input.
    let sql = stmt.sql.replace("@extschema@", &schema);
    let args: Vec<PgOid> = stmt.args.iter().map(|oid| PgOid::from(*oid)).collect();
    let prepared = if stmt.read_only {
        client.prepare(&sql, &args)?
    } else {
        client.prepare_mut(&sql, &args)?
    };
    let kept = Rc::new(prepared.keep());
    PLANS.with(|plans| plans.borrow_mut().insert(key, kept.clone()));
    Ok(kept)
}

/// Runs a statement with its kept plan. The `Rc` is cloned out of the cache before running
/// so that no borrow of the cache is held while Postgres executes.
fn exec<'c>(
    client: &mut SpiClient<'c>,
    stmt: &'static Statement,
    args: &[DatumWithOid<'_>],
) -> ChatResult<SpiTupleTable<'c>> {
    let p = plan(client, stmt)?;
    Ok(if stmt.read_only {
        client.select(&*p, None, args)?
    } else {
        client.update(&*p, None, args)?
    })
}

/// A chat row as seen under its lock (column 3, its last operator, is not needed here).
struct LockedChat {
    state: String,
    assigned_operator_id: Option<Uuid>,
    place: Place,
}

/// Since when a chat is in its state, and its place in the queue (`waiting_since`, when
/// active): what its change event carries for the monitoring totals.
#[derive(Clone, Copy)]
struct Place {
    since: Option<TimestampWithTimeZone>,
    waiting_since: Option<TimestampWithTimeZone>,
}

impl Place {
    const NEW: Place = Place {
        since: None,
        waiting_since: None,
    };

    /// From two columns of a row, `since` at `at` and `waiting_since` after it.
    fn read(row: &impl TimestampColumns, at: usize) -> ChatResult<Place> {
        Ok(Place {
            since: row.timestamp(at)?,
            waiting_since: row.timestamp(at + 1)?,
        })
    }
}

/// The two kinds of SPI row (a statement's first row, a row met while iterating), as far as
/// [`Place::read`] needs them.
trait TimestampColumns {
    fn timestamp(&self, ordinal: usize) -> ChatResult<Option<TimestampWithTimeZone>>;
}

impl TimestampColumns for SpiTupleTable<'_> {
    fn timestamp(&self, ordinal: usize) -> ChatResult<Option<TimestampWithTimeZone>> {
        Ok(self.get::<TimestampWithTimeZone>(ordinal)?)
    }
}

impl TimestampColumns for SpiHeapTupleData<'_> {
    fn timestamp(&self, ordinal: usize) -> ChatResult<Option<TimestampWithTimeZone>> {
        Ok(self.get::<TimestampWithTimeZone>(ordinal)?)
    }
}

fn locked_chat(row: &SpiTupleTable<'_>) -> ChatResult<LockedChat> {
    Ok(LockedChat {
        state: row.get::<String>(1)?.unwrap_or_default(),
        assigned_operator_id: row.get::<Uuid>(2)?,
        place: Place::read(row, 4)?,
    })
}

fn lock_chat(client: &mut SpiClient<'_>, chat_id: Uuid) -> ChatResult<LockedChat> {
    let row = exec(client, &LOCK_CHAT, &[chat_id.into()])?;
    if row.is_empty() {
        return Err(ChatError::ChatNotFound(chat_id));
    }
    locked_chat(&row.first())
}

/// Locks a chat for an operator's call, only when it is this operator's (assigned to it, or
/// waiting for the user's reply to its answer): `None`, and no lock, otherwise.
fn lock_own_chat(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    operator_id: Uuid,
) -> ChatResult<Option<LockedChat>> {
    let row = exec(
        client,
        &LOCK_CHAT_FOR_OPERATOR,
        &[chat_id.into(), operator_id.into()],
    )?;
    if row.is_empty() {
        return Ok(None);
    }
    locked_chat(&row.first()).map(Some)
}

/// Why a chat is not this operator's, read without a lock: an unknown chat, then an unknown
/// operator, is `P0002`; otherwise it is someone else's.
fn unknown_chat_or_operator(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    operator_id: Uuid,
) -> ChatResult<()> {
    let row = exec(
        client,
        &PEEK_CHAT_FOR_OPERATOR,
        &[chat_id.into(), operator_id.into()],
    )?;
    if row.is_empty() {
        return Err(ChatError::ChatNotFound(chat_id));
    }
    if row.first().get::<bool>(4)? != Some(true) {
        return Err(ChatError::OperatorNotFound(operator_id));
    }
    Ok(())
}

/// The id in the first column of a statement that must return one (an id it just stored).
fn returned<T: FromDatum + IntoDatum>(table: SpiTupleTable<'_>, what: &str) -> ChatResult<T> {
    table
        .first()
        .get_one::<T>()?
        .ok_or_else(|| ChatError::Internal(format!("{what} stored no row")))
}

/// Chats whose state changed from `old` to `new` for one `reason`, each with the operator
/// the change concerns (who takes, answers or loses it) and where it was before.
struct Changes<'a> {
    old: Option<&'a str>,
    new: &'a str,
    reason: &'a str,
    chats: Vec<(Uuid, Option<Uuid>, Place)>,
}

impl<'a> Changes<'a> {
    fn one(
        chat: Uuid,
        operator: Option<Uuid>,
        place: Place,
        old: Option<&'a str>,
        new: &'a str,
        reason: &'a str,
    ) -> Self {
        Changes {
            old,
            new,
            reason,
            chats: vec![(chat, operator, place)],
        }
    }
}

/// Writes the change events (`chat_events`), in the same transaction as the change, so
/// that an event exists exactly when its change committed. Nothing is sent: LISTEN clients
/// are woken by the worker (see [`crate::worker`]), never by the call's own commit.
fn announce(client: &mut SpiClient<'_>, changes: Changes<'_>) -> ChatResult<()> {
    if changes.chats.is_empty() || !crate::guc::EVENTS.get() {
        return Ok(());
    }
    hold_event_id_floor();
    let mut chats = Vec::with_capacity(changes.chats.len());
    let mut operators = Vec::with_capacity(changes.chats.len());
    let mut since = Vec::with_capacity(changes.chats.len());
    let mut waiting = Vec::with_capacity(changes.chats.len());
    for (chat, operator, place) in changes.chats {
        chats.push(chat);
        operators.push(operator);
        since.push(place.since);
        waiting.push(place.waiting_since);
    }
    exec(
        client,
        &INSERT_EVENTS,
        &[
            chats.into(),
            operators.into(),
            changes.old.into(),
            changes.new.into(),
            changes.reason.into(),
            since.into(),
            waiting.into(),
        ],
    )?;
    // Now and then, fold the events into the monitoring totals here; the worker does it
    // every tick where it runs. Only in READ COMMITTED, where each statement sees what
    // committed before it (the fold's horizon relies on that).
    // SAFETY: the backend's own PRNG and isolation level.
    if unsafe { pg_sys::pg_prng_uint64(std::ptr::addr_of_mut!(pg_sys::pg_global_prng_state)) }
        % FOLD_ONE_CALL_IN
        == 0
        && unsafe { pg_sys::XactIsoLevel } < pg_sys::XACT_REPEATABLE_READ as i32
    {
        fold_events(client)?;
    }
    Ok(())
}

/// Calls that write events fold them into the totals once in this many, on average.
const FOLD_ONE_CALL_IN: u64 = 256;

/// Folds the events up to `read_chat_events`' horizon into `chat_state_deltas` (see
/// sql/state_totals.sql), unless another transaction is folding right now. Returns the
/// horizon: the newest event id `read_chat_events` would return now.
fn fold_events(client: &mut SpiClient<'_>) -> ChatResult<i64> {
    let newest = event_id_floor();
    let floor = exec(client, &EVENT_FLOORS_HELD, &[])?
        .first()
        .get_one::<i64>()?;
    let horizon = floor.map_or(newest, |floor| floor.min(newest));
    let locked = exec(client, &FOLD_LOCK, &[])?;
    if locked.is_empty() {
        return Ok(horizon);
    }
    let position = locked.first().get_one::<i64>()?.unwrap_or(0);
    if horizon <= position {
        return Ok(horizon);
    }
    exec(client, &FOLD_EVENTS, &[horizon.into(), position.into()])?;
    exec(client, &COMPACT_DELTAS, &[])?;
    Ok(horizon)
}

/// The worker's tick, in its own transaction: folds the events into the totals and returns
/// the horizon of `read_chat_events` (what a wake-up announces), or `None` when the extension
/// is not installed in this database.
pub fn worker_fold_events() -> ChatResult<Option<i64>> {
    Spi::connect_mut(|client| {
        if home(client)?.is_none() {
            return Ok(None);
        }
        fold_events(client).map(Some)
    })
}

/// `objsubid` of the advisory locks that publish event-id floors in `pg_locks`. The SQL
/// advisory-lock functions only ever use 1 and 2 there, so no application lock can be
/// mistaken for one of ours.
pub const EVENT_FLOOR_LOCK_MARK: u16 = 0x6361;

thread_local! {
    /// The (sub)transaction that already published its event-id floor: top-level xid and
    /// subtransaction id. A lock taken in a subtransaction that aborts is released with it,
    /// so the cache is per subtransaction (a committed one hands its lock to the parent,
    /// which then takes one more, harmlessly).
    static FLOOR_HELD_BY: RefCell<(pg_sys::TransactionId, pg_sys::SubTransactionId)> =
        const { RefCell::new((pg_sys::InvalidTransactionId, 0)) };
}

/// A number below every event id not taken yet: the sequence's last value (0 before its
/// first `nextval`). Read with `pg_sequence_last_value` straight from the sequence's page,
/// outside any snapshot (a sequence is not transactional), without a statement.
/// The identity sequence has no cache (`CACHE 1`), so no backend holds ids below it.
fn event_id_floor() -> i64 {
    let sequence = EVENT_SEQUENCE.with(Cell::get);
    // SAFETY: a built-in function on the oid of our own sequence, found by home(); it
    // raises a normal error if the sequence is gone, and returns NULL before its first call.
    unsafe {
        pgrx::direct_function_call::<i64>(
            pg_sys::pg_sequence_last_value,
            &[Some(pg_sys::Datum::from(sequence))],
        )
    }
    .unwrap_or(0)
}

/// Publishes, before this transaction takes its first event id, a number below every id it
/// can take: a shared advisory lock whose key is that number, held until the transaction
/// ends (commit, abort, crash). `read_chat_events` reads the sequence, then these locks,
/// then the events: it returns no id above the smallest floor of a transaction still
/// running, so an id that commits late can never land behind what a consumer has seen.
/// One lock per (sub)transaction; later events of it are above its floor.
fn hold_event_id_floor() {
    // SAFETY: plain reads of the current transaction's state. The change before the event
    // has assigned the top-level xid.
    let held = unsafe {
        (
            pg_sys::GetTopTransactionIdIfAny(),
            pg_sys::GetCurrentSubTransactionId(),
        )
    };
    if held.0 != pg_sys::InvalidTransactionId && FLOOR_HELD_BY.with(|h| *h.borrow() == held) {
        return;
    }
    let floor = event_id_floor().max(0) as u64;
    let tag = pg_sys::LOCKTAG {
        // SAFETY: MyDatabaseId is set for any backend connected to a database.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: (floor >> 32) as u32,
        locktag_field3: floor as u32,
        locktag_field4: EVENT_FLOOR_LOCK_MARK,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    };
    // SAFETY: a transaction-scoped shared lock (sessionLock = false), which nothing takes in
    // a conflicting mode, so it is granted at once; released by the lock manager at
    // transaction end.
    unsafe {
        pg_sys::LockAcquire(&tag, pg_sys::ShareLock as pg_sys::LOCKMODE, false, false);
    }
    FLOOR_HELD_BY.with(|h| *h.borrow_mut() = held);
}

/// The operator holding a locked chat, if it is assigned.
fn holder(chat: &LockedChat) -> Option<Uuid> {
    (chat.state == "assigned")
        .then_some(chat.assigned_operator_id)
        .flatten()
}

/// The message an earlier call with this idempotency key stored in the chat for this sender
/// (`operator`: `None` for the real user), if any.
fn keyed_message(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    key: Option<&str>,
    operator: Option<Uuid>,
) -> ChatResult<Option<i64>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let sender = if operator.is_some() {
        "operator"
    } else {
        "real_user"
    };
    let found = exec(
        client,
        &FIND_KEYED_MESSAGE,
        &[chat_id.into(), key.into(), sender.into(), operator.into()],
    )?;
    if found.is_empty() {
        return Ok(None);
    }
    Ok(found.first().get_one::<i64>()?)
}

/// A new chat waiting in the queue with its first message; announces `chat_started`. With
/// an idempotency key this user already started a chat with, that chat, and nothing written.
pub fn start_chat(real_user_id: Uuid, content: &str, key: Option<&str>) -> ChatResult<Uuid> {
    connect(|client| {
        let started = exec(
            client,
            &START_CHAT,
            &[real_user_id.into(), content.into(), key.into()],
        )?;
        if started.is_empty() {
            // The key's chat exists (ON CONFLICT waited for the call that made it to commit).
            if let Some(key) = key {
                return returned(
                    exec(
                        client,
                        &FIND_STARTED_CHAT,
                        &[real_user_id.into(), key.into()],
                    )?,
                    "start_chat (its idempotency key)",
                );
            }
        }
        let chat = returned(started, "start_chat")?;
        announce(
            client,
            Changes::one(
                chat,
                None,
                Place::NEW,
                None,
                "waiting_assignment",
                "chat_started",
            ),
        )?;
        Ok(chat)
    })
}

/// Stores the user's message under the chat lock; a chat not already waiting goes back to
/// the queue (announced as `real_user_message`). With an idempotency key the user already
/// sent in this chat, that message's id, and nothing written.
pub fn real_user_send_message(chat_id: Uuid, content: &str, key: Option<&str>) -> ChatResult<i64> {
    connect(|client| {
        if let Some(message) = keyed_message(client, chat_id, key, None)? {
            return Ok(message);
        }
        let chat = lock_chat(client, chat_id)?;
        // A call with the same key that committed while this one waited for the lock.
        if let Some(message) = keyed_message(client, chat_id, key, None)? {
            return Ok(message);
        }
        let message = returned(
            exec(
                client,
                &REAL_USER_MESSAGE,
                &[chat_id.into(), content.into(), key.into()],
            )?,
            "real_user_send_message",
        )?;
        if chat.state != "waiting_assignment" {
            // The chat waits from now on (not from an old waiting_since it kept).
            let place = Place {
                waiting_since: None,
                ..chat.place
            };
            let change = Changes::one(
                chat_id,
                holder(&chat),
                place,
                Some(&chat.state),
                "waiting_assignment",
                "real_user_message",
            );
            announce(client, change)?;
        }
        Ok(message)
    })
}

/// Stores the assigned operator's reply (announced as `operator_replied`) or a follow-up by
/// the operator who answered (no state change); anyone else is refused. With an idempotency
/// key this operator already sent in this chat, that message's id, and nothing written
/// (whatever the chat's state now: the call it repeats succeeded).
pub fn operator_send_message(
    chat_id: Uuid,
    operator_id: Uuid,
    content: &str,
    key: Option<&str>,
) -> ChatResult<i64> {
    connect(|client| {
        if let Some(message) = keyed_message(client, chat_id, key, Some(operator_id))? {
            return Ok(message);
        }
        // Someone else's chat is refused without taking its lock.
        let Some(chat) = lock_own_chat(client, chat_id, operator_id)? else {
            unknown_chat_or_operator(client, chat_id, operator_id)?;
            return Err(ChatError::NotAssignedOperator {
                chat_id,
                operator_id,
            });
        };
        if let Some(message) = keyed_message(client, chat_id, key, Some(operator_id))? {
            return Ok(message);
        }
        // Assigned to this operator: its reply; else waiting for the user: a follow-up.
        let first_reply = chat.state == "assigned";
        let stmt = if first_reply {
            &OPERATOR_REPLY
        } else {
            &OPERATOR_FOLLOW_UP
        };
        let message = returned(
            exec(
                client,
                stmt,
                &[
                    chat_id.into(),
                    operator_id.into(),
                    content.into(),
                    key.into(),
                ],
            )?,
            "operator_send_message",
        )?;
        if first_reply {
            let change = Changes::one(
                chat_id,
                Some(operator_id),
                chat.place,
                Some("assigned"),
                "waiting_real_user_reply",
                "operator_replied",
            );
            announce(client, change)?;
        }
        Ok(message)
    })
}

/// Locks the operator, then claims the next free chat in queue order (announced as
/// `assigned`); refuses an inactive operator or one at capacity.
pub fn assign_chat(operator_id: Uuid, avoid_same_operator: bool) -> ChatResult<Option<Uuid>> {
    connect(|client| {
        let op = exec(client, &LOCK_OPERATOR, &[operator_id.into()])?;
        if op.is_empty() {
            return Err(ChatError::OperatorNotFound(operator_id));
        }
        let op = op.first();
        let (is_active, max) = op.get_two::<bool, i32>()?;
        let row = op
            .get::<pg_sys::ItemPointerData>(3)?
            .ok_or_else(|| ChatError::Internal("operator row without ctid".into()))?;
        let max = max.unwrap_or(1);
        if is_active != Some(true) {
            return Err(ChatError::OperatorInactive(operator_id));
        }
        let claimed = exec(
            client,
            &CLAIM_NEXT_CHAT,
            &[
                operator_id.into(),
                max.into(),
                avoid_same_operator.into(),
                row.into(),
            ],
        )?;
        let claimed = claimed.first();
        let (open, chat) = claimed.get_two::<i64, Uuid>()?;
        let place = Place::read(&claimed, 3)?;
        let open = open.unwrap_or(0);
        if open >= i64::from(max) {
            return Err(ChatError::OperatorAtCapacity {
                operator_id,
                active: open,
                max,
            });
        }
        if let Some(chat_id) = chat {
            let change = Changes::one(
                chat_id,
                Some(operator_id),
                place,
                Some("waiting_assignment"),
                "assigned",
                "assigned",
            );
            announce(client, change)?;
        }
        Ok(chat)
    })
}

/// Puts locked chats that are still assigned back in the queue and announces it; returns
/// how many it released. Each chat comes with where it was, as its lock read it.
fn release_locked(
    client: &mut SpiClient<'_>,
    locked: &[(Uuid, Place)],
    reason: &str,
) -> ChatResult<usize> {
    let ids: Vec<Uuid> = locked.iter().map(|(chat, _)| *chat).collect();
    let mut released = Vec::with_capacity(locked.len());
    for row in exec(client, &RELEASE_TO_QUEUE, &[ids.into(), reason.into()])? {
        if let Some(chat) = row.get::<Uuid>(1)? {
            let place = locked
                .iter()
                .find(|(id, _)| *id == chat)
                .map_or(Place::NEW, |(_, place)| *place);
            released.push((chat, row.get::<Uuid>(2)?, place));
        }
    }
    let count = released.len();
    announce(
        client,
        Changes {
            old: Some("assigned"),
            new: "waiting_assignment",
            reason,
            chats: released,
        },
    )?;
    Ok(count)
}

/// Puts an assigned chat back in the queue with `reason`; false for any other state.
pub fn release_and_reassign_chat(chat_id: Uuid, reason: &str) -> ChatResult<bool> {
    connect(|client| {
        let chat = lock_chat(client, chat_id)?;
        if chat.state != "assigned" {
            return Ok(false);
        }
        Ok(release_locked(client, &[(chat_id, chat.place)], reason)? == 1)
    })
}

/// Refreshes the heartbeat of the operator holding the chat; false if they do not hold it.
pub fn touch_operator_activity(operator_id: Uuid, chat_id: Uuid) -> ChatResult<bool> {
    connect(|client| {
        // Someone else's chat is answered without taking its lock. This operator's is
        // locked first, like every call that writes a chat (chat, then assignment: no
        // deadlock with a release or a reply in the same transaction).
        let Some(chat) = lock_own_chat(client, chat_id, operator_id)? else {
            unknown_chat_or_operator(client, chat_id, operator_id)?;
            return Ok(false);
        };
        if chat.state != "assigned" {
            return Ok(false);
        }
        Ok(!exec(
            client,
            &TOUCH_ACTIVITY,
            &[operator_id.into(), chat_id.into()],
        )?
        .is_empty())
    })
}

/// A chat released for idleness: (chat, operator, seconds since its last heartbeat).
pub type IdleRelease = (Uuid, Uuid, f64);

/// Releases every assigned chat whose heartbeat is older than `idle_seconds`, passing over
/// rows others hold; announced as `idle_timeout`.
pub fn release_idle_assignments(idle_seconds: f64) -> ChatResult<Vec<IdleRelease>> {
    connect(|client| {
        let mut idle = Vec::new();
        let mut locked = Vec::new();
        for row in exec(client, &LOCK_IDLE_CHATS, &[idle_seconds.into()])? {
            if let (Some(chat), Some(op)) = (row.get::<Uuid>(1)?, row.get::<Uuid>(2)?) {
                idle.push((chat, op, row.get::<f64>(3)?.unwrap_or(0.0)));
                locked.push((chat, Place::read(&row, 4)?));
            }
        }
        if !locked.is_empty() {
            release_locked(client, &locked, "idle_timeout")?;
        }
        Ok(idle)
    })
}

/// Ends a chat (announced as `completed`); false when it already was.
pub fn complete_chat(chat_id: Uuid) -> ChatResult<bool> {
    connect(|client| {
        let chat = lock_chat(client, chat_id)?;
        if chat.state == "completed" {
            return Ok(false);
        }
        exec(client, &COMPLETE_CHAT, &[chat_id.into()])?;
        let change = Changes::one(
            chat_id,
            holder(&chat),
            chat.place,
            Some(&chat.state),
            "completed",
            "completed",
        );
        announce(client, change)?;
        Ok(true)
    })
}

/// A new operator with room for `max_concurrent_chats` chats.
pub fn create_operator(name: &str, max_concurrent_chats: i32) -> ChatResult<Uuid> {
    connect(|client| {
        returned(
            exec(
                client,
                &CREATE_OPERATOR,
                &[name.into(), max_concurrent_chats.into()],
            )?,
            "create_operator",
        )
    })
}

/// (De)activates an operator under its lock; deactivation releases its chats (announced as
/// `operator_inactive`).
pub fn set_operator_active(operator_id: Uuid, is_active: bool) -> ChatResult<bool> {
    connect(|client| {
        if exec(client, &LOCK_OPERATOR, &[operator_id.into()])?.is_empty() {
            return Err(ChatError::OperatorNotFound(operator_id));
        }
        let changed = !exec(
            client,
            &SET_OPERATOR_ACTIVE,
            &[operator_id.into(), is_active.into()],
        )?
        .is_empty();
        if !is_active {
            let mut held = Vec::new();
            for row in exec(client, &LOCK_OPERATOR_CHATS, &[operator_id.into()])? {
                if let Some(chat) = row.get::<Uuid>(1)? {
                    held.push((chat, Place::read(&row, 2)?));
                }
            }
            if !held.is_empty() {
                release_locked(client, &held, "operator_inactive")?;
            }
        }
        Ok(changed)
    })
}

/// The row of `get_assignment_queue_status()`.
pub struct QueueStatus {
    pub waiting: i64,
    pub assigned: i64,
    pub waiting_reply: i64,
    pub oldest_waiting_seconds: Option<f64>,
    pub avg_waiting_seconds: Option<f64>,
    pub active_operators: i64,
    pub busy_operators: i64,
    pub available_operators: i64,
}

/// The row of `get_assignment_queue_status()`, from the running totals.
pub fn queue_status() -> ChatResult<QueueStatus> {
    connect(|client| {
        let row = exec(client, &QUEUE_STATUS, &[])?.first();
        let count = |n: usize| -> ChatResult<i64> { Ok(row.get::<i64>(n)?.unwrap_or(0)) };
        Ok(QueueStatus {
            waiting: count(1)?,
            assigned: count(2)?,
            waiting_reply: count(3)?,
            oldest_waiting_seconds: row.get::<f64>(4)?,
            avg_waiting_seconds: row.get::<f64>(5)?,
            active_operators: count(6)?,
            busy_operators: count(7)?,
            available_operators: count(8)?,
        })
    })
}

/// A row of `detect_stuck_chats()`.
pub struct StuckChat {
    pub chat_id: Uuid,
    pub chat_state: String,
    pub real_user_id: Uuid,
    pub state_changed_at: TimestampWithTimeZone,
    pub hours_in_state: AnyNumeric,
    pub assigned_operator_id: Option<Uuid>,
    pub last_operator_id: Option<Uuid>,
    pub operator_name: Option<String>,
}

/// Active chats stuck in the queue or with an operator for more than `hours`.
pub fn stuck_chats(hours: f64) -> ChatResult<Vec<StuckChat>> {
    connect(|client| {
        let mut out = Vec::new();
        for row in exec(client, &STUCK_CHATS, &[hours.into()])? {
            let (Some(chat_id), Some(chat_state), Some(real_user_id), Some(changed), Some(hours)) = (
                row.get::<Uuid>(1)?,
                row.get::<String>(2)?,
                row.get::<Uuid>(3)?,
                row.get::<TimestampWithTimeZone>(4)?,
                row.get::<AnyNumeric>(5)?,
            ) else {
                continue;
            };
            out.push(StuckChat {
                chat_id,
                chat_state,
                real_user_id,
                state_changed_at: changed,
                hours_in_state: hours,
                assigned_operator_id: row.get::<Uuid>(6)?,
                last_operator_id: row.get::<Uuid>(7)?,
                operator_name: row.get::<String>(8)?,
            });
        }
        Ok(out)
    })
}

/// Deletes at most `batch` events older than `retention_seconds` (oldest first); returns
/// how many it deleted.
pub fn prune_chat_events(retention_seconds: f64, batch: i64) -> ChatResult<i64> {
    connect(|client| {
        let deleted = exec(
            client,
            &PRUNE_EVENTS,
            &[retention_seconds.into(), batch.into()],
        )?;
        Ok(deleted.len() as i64)
    })
}

/// Sets the worker's own search_path for the rest of its transaction's statements.
pub fn pin_worker_search_path() -> ChatResult<()> {
    Spi::connect_mut(|client| {
        client.update(WORKER_SEARCH_PATH, None, &[])?;
        Ok(())
    })
}

/// Sends the wake-up `NOTIFY chat_assign, '<newest id>'` (worker only).
pub fn wake_up(newest: i64) -> ChatResult<()> {
    Spi::connect_mut(|client| {
        client.update(WAKE_UP, None, &[newest.to_string().into()])?;
        Ok(())
    })
}

/// The idle worker's pass in the current transaction: `None` when the extension is not
/// installed in this database, else what `release_idle_assignments()` released. It runs the
/// function's Rust code, not the SQL function (whose name the database owner could shadow
/// in the extension's schema), with the settings the SQL function would set for its call
/// (for this transaction) and the `chat_assign.idle_timeout` the worker sees.
pub fn worker_release_idle() -> ChatResult<Option<Vec<IdleRelease>>> {
    let installed = Spi::connect_mut(|client| {
        client.update(WORKER_SEARCH_PATH, None, &[])?;
        if home(client)?.is_none() {
            return Ok(false);
        }
        client.update(WORKER_PLAN_SETTINGS, None, &[])?;
        Ok::<bool, ChatError>(true)
    })?;
    if !installed {
        return Ok(None);
    }
    release_idle_assignments(f64::from(crate::guc::IDLE_TIMEOUT_SECONDS.get())).map(Some)
}

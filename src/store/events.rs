//! Change events: written by every call that changes a state, in its transaction, with
//! the event-id floor that makes `read_chat_events` exactly once; folded into the
//! monitoring totals; pruned; announced by the worker's wake-up.

use super::queries::*;
use super::{chats::*, spi::*};
use crate::error::ChatResult;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use std::cell::{Cell, RefCell};

/// Chats whose state changed from `old` to `new` for one `reason`, each with the operator
/// the change concerns (who takes, answers or loses it) and where it was before.
pub(super) struct Changes<'a> {
    pub(super) old: Option<ChatState>,
    pub(super) new: ChatState,
    pub(super) reason: &'a str,
    pub(super) chats: Vec<(Uuid, Option<Uuid>, Place)>,
}

impl<'a> Changes<'a> {
    pub(super) fn one(
        chat: Uuid,
        operator: Option<Uuid>,
        place: Place,
        old: Option<ChatState>,
        new: ChatState,
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
pub(super) fn announce(client: &mut SpiClient<'_>, changes: Changes<'_>) -> ChatResult<()> {
    if changes.chats.is_empty() || !crate::guc::EVENTS.get() {
        return Ok(());
    }
    hold_event_id_floor();
    let mut chats = Vec::with_capacity(changes.chats.len());
    let mut operators = Vec::with_capacity(changes.chats.len());
    let mut since = Vec::with_capacity(changes.chats.len());
    let mut waiting = Vec::with_capacity(changes.chats.len());
    let mut teams = Vec::with_capacity(changes.chats.len());
    for (chat, operator, place) in changes.chats {
        chats.push(chat);
        operators.push(operator);
        since.push(place.since);
        waiting.push(place.waiting_since);
        teams.push(place.team);
    }
    exec(
        client,
        &INSERT_EVENTS,
        &[
            chats.into(),
            operators.into(),
            changes.old.map(ChatState::as_str).into(),
            changes.new.as_str().into(),
            changes.reason.into(),
            since.into(),
            waiting.into(),
            teams.into(),
        ],
    )?;
    after_events(client)
}

/// Whether the statement about to run writes its change event itself: events are on. The
/// three calls of a chat's cycle (the claim, the operator's reply, the user's message) write
/// their event in an `event` part of their one statement instead of calling [`announce`]
/// (a statement less per call: each costs its own planning check, executor start and end).
/// Publishes the event-id floor first, as [`announce`] does; the statement's `event` part
/// writes when this is true and the change happened, and [`after_events`] follows it.
pub(super) fn event_in_statement() -> bool {
    let on = crate::guc::EVENTS.get();
    if on {
        hold_event_id_floor();
    }
    on
}

/// After a statement that wrote change events: now and then, fold the events into the
/// monitoring totals here; the worker does it every tick where it runs. Only in READ
/// COMMITTED, where each statement sees what committed before it (the fold's horizon relies
/// on that).
pub(super) fn after_events(client: &mut SpiClient<'_>) -> ChatResult<()> {
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
pub(super) const FOLD_ONE_CALL_IN: u64 = 256;

/// Folds the events up to `read_chat_events`' horizon into `chat_state_deltas` (see
/// sql/state_totals.sql), unless another transaction is folding right now. Returns the
/// horizon: the newest event id `read_chat_events` would return now.
pub(super) fn fold_events(client: &mut SpiClient<'_>) -> ChatResult<i64> {
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
    pub(super) static FLOOR_HELD_BY: RefCell<(pg_sys::TransactionId, pg_sys::SubTransactionId)> =
        const { RefCell::new((pg_sys::InvalidTransactionId, 0)) };
}

/// A number below every event id not taken yet: the sequence's last value (0 before its
/// first `nextval`). Read with `pg_sequence_last_value` straight from the sequence's page,
/// outside any snapshot (a sequence is not transactional), without a statement.
/// The identity sequence has no cache (`CACHE 1`), so no backend holds ids below it.
pub(super) fn event_id_floor() -> i64 {
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
pub(super) fn hold_event_id_floor() {
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

/// Deletes at most `batch` events older than `retention_seconds` (oldest first); returns
/// how many it deleted.
pub fn prune_chat_events(retention_seconds: f64, batch: i64) -> ChatResult<i64> {
    connect_write(|client| {
        let deleted = exec(
            client,
            &PRUNE_EVENTS,
            &[retention_seconds.into(), batch.into()],
        )?;
        Ok(deleted.len() as i64)
    })
}

/// Sends the wake-up `NOTIFY chat_assign, '<newest id>'` (worker only).
pub fn wake_up(newest: i64) -> ChatResult<()> {
    Spi::connect_mut(|client| {
        client.update(WAKE_UP, None, &[newest.to_string().into()])?;
        Ok(())
    })
}

//! Where each queue's waiting chats begin, kept in shared memory, so that a claim starts
//! there instead of at the queue index's first entry.
//!
//! Why: every claim leaves a dead entry at the head of `idx_chats_waiting_assignment` (the
//! chat it took is no longer waiting). Normally the next scans mark those entries dead and
//! skip them for nothing; while a snapshot older than them exists (a `REPEATABLE READ`
//! report, `pg_dump`) they cannot be, and every claim walks all of them, a heap visit each:
//! after a minute at a thousand claims a second, tens of thousands per claim
//! (docs/performance.md, "An old snapshot"). With a head, a claim walks only the entries
//! dead since the head last moved.
//!
//! The head of a queue is a position (priority, `waiting_since`) that no waiting chat is
//! before. It exists only where the library is preloaded and the worker runs in the
//! database; without it (or for a queue the worker has not looked at yet) a claim scans from
//! the queue's first entry, as it always did.
//!
//! - *Claims* scan from the head: the head's priority from its `waiting_since` on, then the
//!   lower priorities, and only if both find nothing the whole queue, so a head that is
//!   wrong can delay a chat, never hide it ([`super::queries::CLAIM_NEXT_CHAT`]).
//! - *Calls that put a chat into a queue* note its position; when their transaction commits
//!   (a transaction callback, which runs after the commit is visible and before the client
//!   hears of it) the head is lowered to it. The rare ones (releases, transfers, priority
//!   changes) move every head of the database back to the start instead.
//! - *The worker* moves each head forward every tick: it notes a new generation, then reads
//!   the first waiting chat from the head with a fresh snapshot (a chat held by a claim in
//!   progress is still waiting to that snapshot, so a claim that rolls back is never
//!   passed), and publishes that or the lowest position placed since it noted the
//!   generation, whichever is first. Once a second it reads from the queue's start instead,
//!   for what no call noted (the app's own SQL on `chats`); less often when that read is
//!   long (see [`RESCAN_MICROS`]).
//!
//! What remains: a chat whose placement commits while the worker publishes can be passed by
//! claims until its own callback lowers the head, a moment later; those claims ran while the
//! call that placed it had not returned, so they could as well have come first.

use super::queries::{HEAD_FROM, QUEUE_KEYS};
use super::spi::exec;
use crate::error::{ChatError, ChatResult};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

/// Queues with a head, in all databases together: the queue without a team and each team's.
/// A queue that finds no free slot has no head (its claims scan from the start).
const SLOTS: usize = 256;

/// The key of the queue of chats without a team (`no_team!()` in the statements).
const NO_TEAM: [u8; 16] = [0; 16];

/// How often the worker reads each queue from its start (and looks for new teams), in µs.
/// A read from the start walks every entry left dead since the oldest snapshot: when one
/// takes longer than a hundredth of this, the next waits a hundred times as long as it took
/// (under an hours-old snapshot the walk is millions of entries; the worker stays near 1%
/// of a core, and an unrecorded placement waits longer).
const RESCAN_MICROS: i64 = 1_000_000;
const RESCAN_SPACING: i64 = 100;

/// A place in a queue's order: higher priority first, then older `waiting_since`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(super) struct Position {
    pub(super) priority: i32,
    /// `TimestampTz` microseconds; `i64::MIN` and `i64::MAX` are -infinity and infinity.
    pub(super) since: i64,
}

impl Position {
    /// Before every chat.
    const START: Position = Position {
        priority: i32::MAX,
        since: i64::MIN,
    };
    /// After every chat: the head of an empty queue.
    const END: Position = Position {
        priority: i32::MIN,
        since: i64::MAX,
    };

    fn before(self, other: Position) -> bool {
        self.priority > other.priority
            || (self.priority == other.priority && self.since < other.since)
    }

    fn earliest(self, other: Position) -> Position {
        if other.before(self) {
            other
        } else {
            self
        }
    }

    /// `since` as the statements' `timestamptz` parameter.
    pub(super) fn since_param(self) -> TimestampWithTimeZone {
        // Both infinities and every finite TimestampTz PostgreSQL made convert.
        TimestampWithTimeZone::try_from(self.since)
            .unwrap_or_else(|_| TimestampWithTimeZone::negative_infinity())
    }
}

#[derive(Copy, Clone)]
struct Slot {
    used: bool,
    /// The worker has read this queue at least once: `head` holds.
    known: bool,
    database: u32,
    queue: [u8; 16],
    head: Position,
    /// The lowest position placed since `generation` was last raised.
    recorded: Position,
    generation: u64,
    rescanned_at: i64,
    /// How long the last read from the queue's start took, µs.
    rescan_micros: i64,
}

const FREE: Slot = Slot {
    used: false,
    known: false,
    database: 0,
    queue: [0; 16],
    head: Position::START,
    recorded: Position::START,
    generation: 0,
    rescanned_at: 0,
    rescan_micros: 0,
};

#[derive(Copy, Clone)]
pub struct Heads {
    slots: [Slot; SLOTS],
}

impl Default for Heads {
    fn default() -> Self {
        Heads {
            slots: [FREE; SLOTS],
        }
    }
}

// SAFETY: plain data, no pointers.
unsafe impl PGRXSharedMemory for Heads {}

// SAFETY: the only shared memory of the extension under this name.
static HEADS: PgLwLock<Heads> = unsafe { PgLwLock::new(c"chat_assign_queue_heads") };

/// Set in the postmaster while it preloads the library (and so in every backend it forks):
/// only then does `HEADS` exist.
static HEADS_EXIST: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init` while `shared_preload_libraries` loads.
pub fn init() {
    pg_shmem_init!(HEADS);
    HEADS_EXIST.store(true, Ordering::Relaxed);
}

fn exist() -> bool {
    HEADS_EXIST.load(Ordering::Relaxed)
}

fn database() -> u32 {
    // SAFETY: set for any backend connected to a database.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

fn is_slot_of(slot: &Slot, database: u32, queue: &[u8; 16]) -> bool {
    slot.used && slot.database == database && &slot.queue == queue
}

/// The head of the queue of chats without a team in this database, if the worker keeps one.
pub(super) fn head_of_no_team() -> Option<Position> {
    if !exist() {
        return None;
    }
    let database = database();
    let heads = HEADS.share();
    heads
        .slots
        .iter()
        .find(|s| s.known && is_slot_of(s, database, &NO_TEAM))
        .map(|s| s.head)
}

/// Every head the worker keeps in this database: the queues' keys, priorities and
/// `waiting_since`s, as the team claim's array parameters.
pub(super) fn heads_here() -> (Vec<Uuid>, Vec<i32>, Vec<TimestampWithTimeZone>) {
    let mut keys = Vec::new();
    let mut priorities = Vec::new();
    let mut sinces = Vec::new();
    if exist() {
        let database = database();
        let heads = HEADS.share();
        for slot in heads
            .slots
            .iter()
            .filter(|s| s.used && s.known && s.database == database)
        {
            keys.push(Uuid::from_bytes(slot.queue));
            priorities.push(slot.head.priority);
            sinces.push(slot.head.since_param());
        }
    }
    (keys, priorities, sinces)
}

/// What a transaction placed, applied to the heads when it commits.
enum Placed {
    At([u8; 16], Position),
    /// Somewhere: every head of the database goes back to the start.
    Anywhere,
}

thread_local! {
    static PENDING: RefCell<Vec<Placed>> = const { RefCell::new(Vec::new()) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// When this worker last took in the database's queues.
    static QUEUES_READ_AT: Cell<i64> = const { Cell::new(0) };
}

fn note(placed: Placed) {
    if !exist() {
        return;
    }
    if !CALLBACK_REGISTERED.get() {
        // SAFETY: registered once per backend, for the life of the backend.
        unsafe { pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut()) };
        CALLBACK_REGISTERED.set(true);
    }
    PENDING.with(|p| p.borrow_mut().push(placed));
}

/// A chat of queue `team` (`None`: no team) waits from now on (this transaction's `now()`)
/// with priority `priority`.
pub(super) fn placed_now(team: Option<Uuid>, priority: i32) {
    // SAFETY: the current transaction's start, which is what its `now()` returns.
    let since = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    placed_at(team, Position { priority, since });
}

/// A chat of queue `team` waits at `position`.
pub(super) fn placed_at(team: Option<Uuid>, position: Position) {
    note(Placed::At(
        team.map_or(NO_TEAM, |t| *t.as_bytes()),
        position,
    ));
}

/// Chats were put into queues at places this call did not read (a release keeps the
/// chats' old `waiting_since`, a transfer or a priority change moves them).
pub(super) fn placed_anywhere() {
    note(Placed::Anywhere);
}

/// Applies what the transaction placed once its commit is visible; forgets it on abort.
/// A prepared transaction applies it at PREPARE (lowering a head early is always safe; one
/// that the worker moves past it before COMMIT PREPARED is corrected by its next read from
/// the start). Runs inside the transaction machinery: nothing here may raise.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::os::raw::c_void,
) {
    let apply = match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PREPARE => true,
        pg_sys::XactEvent::XACT_EVENT_ABORT => false,
        _ => return,
    };
    let placed = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if !apply || placed.is_empty() {
        return;
    }
    let database = database();
    let mut heads = HEADS.exclusive();
    for placed in placed {
        for slot in heads
            .slots
            .iter_mut()
            .filter(|s| s.used && s.database == database)
        {
            let position = match &placed {
                Placed::At(queue, position) if &slot.queue == queue => *position,
                Placed::At(..) => continue,
                Placed::Anywhere => Position::START,
            };
            slot.head = slot.head.earliest(position);
            slot.recorded = slot.recorded.earliest(position);
        }
    }
}

/// Every head of this database back to "not read yet": the worker's start, or the
/// extension gone.
pub fn forget_database() {
    if !exist() {
        return;
    }
    let database = database();
    let mut heads = HEADS.exclusive();
    for slot in heads.slots.iter_mut() {
        if slot.used && slot.database == database {
            *slot = FREE;
        }
    }
}

/// The worker's tick: moves each head of this database forward to the first waiting chat
/// (see the module's comment). Once a second it also takes in new teams and drops the heads
/// of teams that are gone, and reads each queue from its start (see [`RESCAN_MICROS`]). Only in READ COMMITTED, where
/// each statement takes a new snapshot: the protocol needs the read to see every placement
/// that committed before it.
pub(super) fn advance(client: &mut SpiClient<'_>) -> ChatResult<()> {
    // SAFETY: a read of the transaction's isolation level.
    if !exist() || unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Ok(());
    }
    let database = database();
    // SAFETY: the current time as PostgreSQL keeps it.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    if now - QUEUES_READ_AT.get() >= RESCAN_MICROS {
        QUEUES_READ_AT.set(now);
        let keys = exec(client, &QUEUE_KEYS, &[])?
            .map(|row| row.get::<Uuid>(1))
            .collect::<Result<Vec<_>, _>>()?;
        let mut heads = HEADS.exclusive();
        for slot in heads.slots.iter_mut() {
            if slot.used
                && slot.database == database
                && !keys.iter().flatten().any(|k| k.as_bytes() == &slot.queue)
            {
                *slot = FREE;
            }
        }
        for key in keys.iter().flatten() {
            if heads
                .slots
                .iter()
                .any(|s| is_slot_of(s, database, key.as_bytes()))
            {
                continue;
            }
            let Some(free) = heads.slots.iter_mut().find(|s| !s.used) else {
                break;
            };
            *free = Slot {
                used: true,
                database,
                queue: *key.as_bytes(),
                ..FREE
            };
        }
    }
    let queues: Vec<[u8; 16]> = {
        let heads = HEADS.share();
        heads
            .slots
            .iter()
            .filter(|s| s.used && s.database == database)
            .map(|s| s.queue)
            .collect()
    };
    for queue in queues {
        // A new generation: placements from now on are recorded.
        let Some((generation, from)) = with_slot(database, &queue, |slot| {
            slot.generation += 1;
            slot.recorded = Position::END;
            let spacing = RESCAN_MICROS.max(RESCAN_SPACING * slot.rescan_micros);
            let from = if !slot.known || now - slot.rescanned_at >= spacing {
                slot.rescanned_at = now;
                Position::START
            } else {
                slot.head
            };
            (slot.generation, from)
        }) else {
            continue;
        };
        let from_start = from == Position::START;
        // SAFETY: the current time as PostgreSQL keeps it.
        let started = unsafe { pg_sys::GetCurrentTimestamp() };
        // Read with a snapshot taken after the generation began.
        let first = exec(
            client,
            &HEAD_FROM,
            &[
                Uuid::from_bytes(queue).into(),
                from.priority.into(),
                from.since_param().into(),
            ],
        )?;
        let first = if first.is_empty() {
            Position::END
        } else {
            let (priority, since) = first.first().get_two::<i32, TimestampWithTimeZone>()?;
            match (priority, since) {
                (Some(priority), Some(since)) => Position {
                    priority,
                    since: since.into(),
                },
                _ => return Err(ChatError::Internal("queue head without a place".into())),
            }
        };
        // SAFETY: the current time as PostgreSQL keeps it.
        let took = unsafe { pg_sys::GetCurrentTimestamp() } - started;
        with_slot(database, &queue, |slot| {
            if from_start {
                slot.rescan_micros = took;
            }
            if slot.generation == generation {
                slot.head = first.earliest(slot.recorded);
                slot.known = true;
            }
        });
    }
    Ok(())
}

fn with_slot<R>(database: u32, queue: &[u8; 16], f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
    let mut heads = HEADS.exclusive();
    heads
        .slots
        .iter_mut()
        .find(|s| is_slot_of(s, database, queue))
        .map(f)
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn positions_order_by_priority_then_age() {
        let p = |priority, since| Position { priority, since };
        assert!(p(5, 100).before(p(1, 0)));
        assert!(p(1, 0).before(p(1, 1)));
        assert!(!p(1, 1).before(p(1, 1)));
        assert!(Position::START.before(p(i32::MAX, 0)));
        assert!(p(i32::MIN, 0).before(Position::END));
        assert_eq!(p(1, 5).earliest(p(1, 3)), p(1, 3));
        assert_eq!(p(2, 5).earliest(p(1, 3)), p(2, 5));
    }
}

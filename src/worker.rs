//! The background worker: with `chat_assign` in `shared_preload_libraries`, one worker per
//! database listed in `chat_assign.databases` does what would otherwise need a cron job or
//! would slow the calls down:
//!
//! - every `chat_assign.idle_check_interval` seconds it runs `release_idle_assignments()`
//!   and deletes expired change events in bounded batches (`chat_assign.event_retention`);
//!   with `chat_assign.away_after` set, it also marks online operators without a sign of
//!   life for that long as `away`; and it gives waiting chats of queues whose routing
//!   pushes to operators with room (what a push passed by);
//! - every `chat_assign.notify_interval` milliseconds (every second when that is 0) it folds
//!   the change events into the monitoring totals, and when the newest event a reader can
//!   get moved, sends one `NOTIFY chat_assign, '<id>'`: a coalesced wake-up for LISTEN
//!   clients, who then call `read_chat_events`. Only this worker notifies, in its own
//!   transaction: a call never takes PostgreSQL's cluster-wide notify lock at commit, and a
//!   full notification queue fails this worker's wake-up, never a call;
//! - at the same ticks it moves each queue's head forward to its first waiting chat, where
//!   claims start (src/store/heads.rs).
//!
//! Each pass is its own transaction. A pass that fails (a lock timeout, a user trigger
//! raising, the extension being dropped under it, an error at commit) is rolled back and
//! logged as a WARNING, and the worker carries on with the next one: a background worker
//! that let the ERROR through would exit and stop releasing chats until the postmaster
//! restarted it. Passes and failures (with the last error) are counted in shared memory,
//! which `worker_status()` reads.
//!
//! The worker calls the extension's Rust code, never an SQL function by name: whoever can
//! create functions in the extension's schema (the database owner, in `public`) cannot
//! make its call ambiguous or run something else in its place.
//!
//! SIGTERM (server shutdown, `pg_terminate_backend`, `DROP DATABASE ... WITH (FORCE)`)
//! ends the worker cleanly with exit code 0, which tells the postmaster not to start it
//! again: a terminated worker stays away until the next server start.

use crate::{guc, store};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `backend_type` of the workers in `pg_stat_activity`.
const WORKER_TYPE: &str = "chat_assign idle worker";

/// Batches of expired events deleted per idle pass, at most (each its own transaction).
const PRUNE_BATCHES_PER_PASS: usize = 100;

/// How many released chats a pass names one by one in the log.
const LOGGED_CHATS: usize = 20;

/// Workers whose passes `worker_status()` reports (the first this many databases).
const STATUS_SLOTS: usize = 32;

/// What a worker did, in shared memory, for `worker_status()`: a worker that keeps failing
/// shows there, not only as a WARNING per pass in the server log.
#[derive(Copy, Clone)]
pub struct WorkerStatus {
    slots: [StatusSlot; STATUS_SLOTS],
}

#[derive(Copy, Clone)]
struct StatusSlot {
    database: [u8; 64],
    database_len: usize,
    started_at: i64,
    idle_passes: i64,
    failed_passes: i64,
    last_pass_at: i64,
    last_error: [u8; 256],
    last_error_len: usize,
    last_error_at: i64,
}

impl Default for WorkerStatus {
    fn default() -> Self {
        WorkerStatus {
            slots: [StatusSlot {
                database: [0; 64],
                database_len: 0,
                started_at: 0,
                idle_passes: 0,
                failed_passes: 0,
                last_pass_at: 0,
                last_error: [0; 256],
                last_error_len: 0,
                last_error_at: 0,
            }; STATUS_SLOTS],
        }
    }
}

// SAFETY: plain data, no pointers.
unsafe impl PGRXSharedMemory for WorkerStatus {}

// SAFETY: the only shared memory of the extension under this name.
static STATUS: PgLwLock<WorkerStatus> = unsafe { PgLwLock::new(c"chat_assign_worker_status") };

/// Set in the postmaster while it preloads the library (and so in every backend it forks):
/// only then does `STATUS` exist.
static STATUS_EXISTS: AtomicBool = AtomicBool::new(false);

/// Copies as much of `text` as fits, on a character boundary.
fn put(buffer: &mut [u8], text: &str) -> usize {
    let mut end = text.len().min(buffer.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    buffer[..end].copy_from_slice(&text.as_bytes()[..end]);
    end
}

fn now() -> i64 {
    // SAFETY: the current time as PostgreSQL keeps it (TimestampTz).
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// This worker's slot: its database's place in `chat_assign.databases`.
fn with_slot(database: &str, update: impl FnOnce(&mut StatusSlot)) {
    if !STATUS_EXISTS.load(Ordering::Relaxed) {
        return;
    }
    let list = database_list(guc::text(&guc::DATABASES).as_deref().unwrap_or(""));
    let Some(index) = list.iter().position(|name| name == database) else {
        return;
    };
    if index >= STATUS_SLOTS {
        return;
    }
    let mut status = STATUS.exclusive();
    let slot = &mut status.slots[index];
    slot.database_len = put(&mut slot.database, database);
    update(slot);
}

/// Counts a unit of work of the worker in database `database`: an idle pass, and any unit
/// that failed (with its message).
fn record(database: &str, idle_pass: bool, failure: Option<&str>) {
    with_slot(database, |slot| {
        let at = now();
        if idle_pass {
            slot.idle_passes += 1;
            slot.last_pass_at = at;
        }
        if let Some(message) = failure {
            slot.failed_passes += 1;
            slot.last_error_len = put(&mut slot.last_error, message);
            slot.last_error_at = at;
        }
    });
}

/// A row of `worker_status()`: database, started, idle passes, failed units, last idle
/// pass, last error and when (timestamps as PostgreSQL's microseconds since 2000).
pub type StatusRow = (
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// What the workers did since the server started; empty without preload.
pub fn status() -> Vec<StatusRow> {
    if !STATUS_EXISTS.load(Ordering::Relaxed) {
        return Vec::new();
    }
    let status = STATUS.share();
    status
        .slots
        .iter()
        .filter(|slot| slot.database_len > 0)
        .map(|slot| {
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            (
                text(&slot.database[..slot.database_len]),
                slot.started_at,
                slot.idle_passes,
                slot.failed_passes,
                (slot.last_pass_at != 0).then_some(slot.last_pass_at),
                (slot.last_error_at != 0).then(|| text(&slot.last_error[..slot.last_error_len])),
                (slot.last_error_at != 0).then_some(slot.last_error_at),
            )
        })
        .collect()
}

/// Registers one worker per database in `chat_assign.databases`. Called from `_PG_init`
/// while `shared_preload_libraries` loads; without preload nothing runs in the background.
pub fn register() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    pg_shmem_init!(STATUS);
    STATUS_EXISTS.store(true, Ordering::Relaxed);
    store::heads::init();
    let databases = database_list(guc::text(&guc::DATABASES).as_deref().unwrap_or(""));
    if databases.is_empty() {
        log!("chat_assign: chat_assign.databases is empty; no idle worker started");
    }
    for database in databases {
        BackgroundWorkerBuilder::new(&format!("chat_assign idle worker for {database}"))
            .set_type(WORKER_TYPE)
            .set_library("chat_assign")
            .set_function("chat_assign_idle_worker_main")
            .set_extra(&database)
            .enable_spi_access()
            // A worker that dies with an error (its database does not exist yet, a FATAL)
            // is started again 10 s later.
            .set_restart_time(Some(Duration::from_secs(10)))
            .load();
    }
}

/// `a, b,,a` → `[a, b]`: trimmed, empty entries and repeats dropped, order kept.
fn database_list(setting: &str) -> Vec<String> {
    let mut databases: Vec<String> = Vec::new();
    for name in setting.split(',').map(str::trim) {
        if !name.is_empty() && !databases.iter().any(|known| known == name) {
            databases.push(name.to_owned());
        }
    }
    databases
}

/// The worker's main loop: a pass, then sleep until the interval is over, a reload
/// (which applies the new interval and runs a pass at once) or shutdown.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn chat_assign_idle_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_owned();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    with_slot(&database, |slot| slot.started_at = now());
    // Heads a worker before this one left may be stale: every queue is read from its start.
    store::heads::forget_database();
    log!(
        "chat_assign: idle worker started in database \"{database}\" (every {} s)",
        guc::IDLE_CHECK_INTERVAL_SECONDS.get()
    );

    let mut waiting_for_extension = false;
    let mut next_idle_pass = Instant::now();
    let mut announced: Option<i64> = None;
    loop {
        if Instant::now() >= next_idle_pass {
            match run_pass(store::worker_release_idle) {
                Ok(Some(released)) => {
                    waiting_for_extension = false;
                    record(&database, true, None);
                    log_released(&database, &released);
                    mark_away(&database);
                    assign_waiting(&database);
                    prune_events(&database);
                }
                Ok(None) => {
                    if !waiting_for_extension {
                        log!(
                            "chat_assign: extension chat_assign is not installed in database \"{database}\"; idle worker waiting"
                        );
                    }
                    waiting_for_extension = true;
                }
                Err(message) => {
                    record(&database, true, Some(&message));
                    warning!(
                        "chat_assign: idle release in database \"{database}\" failed: {message}"
                    )
                }
            }
            next_idle_pass = Instant::now() + idle_interval();
        }
        if !waiting_for_extension {
            announced = tick(&database, announced);
            advance_heads(&database);
        }
        let now = Instant::now();
        let until_idle_pass = next_idle_pass - now.min(next_idle_pass);
        let sleep = if waiting_for_extension {
            until_idle_pass
        } else {
            tick_interval().min(until_idle_pass)
        };
        if !BackgroundWorker::wait_latch(Some(sleep.max(Duration::from_millis(1)))) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            // A reload applies the new intervals and runs an idle pass at once.
            next_idle_pass = Instant::now();
        }
    }
    // No worker keeps this database's heads any more: claims scan from their queues' starts.
    store::heads::forget_database();
    log!("chat_assign: idle worker in database \"{database}\" stopped");
}

fn idle_interval() -> Duration {
    Duration::from_secs(guc::IDLE_CHECK_INTERVAL_SECONDS.get().max(1) as u64)
}

/// `None` when wake-ups are off (`chat_assign.notify_interval = 0`).
fn notify_interval() -> Option<Duration> {
    let ms = guc::NOTIFY_INTERVAL_MS.get();
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

/// How often the worker folds the events into the monitoring totals and looks whether to
/// wake listeners: every `chat_assign.notify_interval`, or every second when wake-ups are off.
fn tick_interval() -> Duration {
    notify_interval().unwrap_or(Duration::from_secs(1))
}

/// Moves the queue heads of this database forward (src/store/heads.rs), in a transaction
/// of its own; a failure is logged and counted, and the heads stay where they were (which
/// only makes claims walk further).
fn advance_heads(database: &str) {
    if let Err(message) = run_pass(store::worker_advance_heads) {
        record(database, false, Some(&message));
        warning!(
            "chat_assign: moving the queue heads in database \"{database}\" failed: {message}"
        );
    }
}

/// One tick: folds the events into the totals, and when the horizon of `read_chat_events`
/// (the newest event a reader can get now) moved since the last wake-up, sends one. The
/// payload is that horizon, so a woken reader finds what it was woken for; it announces
/// any change, not only a larger id (a recreated extension starts its ids again). The first
/// tick after start announces nothing: it only learns where the log stands. Returns the
/// horizon announced or learnt.
fn tick(database: &str, announced: Option<i64>) -> Option<i64> {
    let horizon = match run_pass(store::worker_fold_events) {
        Ok(Some(horizon)) => horizon,
        Ok(None) => return announced,
        Err(message) => {
            record(database, false, Some(&message));
            warning!("chat_assign: folding events in database \"{database}\" failed: {message}");
            return announced;
        }
    };
    match announced {
        Some(seen) if seen != horizon && notify_interval().is_some() => {
            match run_pass(|| store::wake_up(horizon)) {
                Ok(()) => Some(horizon),
                Err(message) => {
                    record(database, false, Some(&message));
                    warning!(
                        "chat_assign: wake-up NOTIFY in database \"{database}\" failed: {message}"
                    );
                    announced
                }
            }
        }
        Some(_) if notify_interval().is_some() => announced,
        _ => Some(horizon),
    }
}

/// Marks online operators without a sign of life for `chat_assign.away_after` as away.
fn mark_away(database: &str) {
    let after = guc::AWAY_AFTER_SECONDS.get();
    if after <= 0 {
        return;
    }
    match run_pass(|| store::worker_mark_away(f64::from(after))) {
        Ok(0) => {}
        Ok(marked) => {
            log!("chat_assign: {marked} operator(s) marked away in database \"{database}\"")
        }
        Err(message) => {
            record(database, false, Some(&message));
            warning!(
                "chat_assign: marking operators away in database \"{database}\" failed: {message}"
            );
        }
    }
}

/// Gives waiting chats of queues whose routing pushes to operators with room: what a push
/// passed by because its candidates were busy with calls of their own.
fn assign_waiting(database: &str) {
    match run_pass(store::worker_assign_waiting) {
        Ok(0) => {}
        Ok(given) => {
            log!("chat_assign: {given} waiting chat(s) assigned in database \"{database}\"")
        }
        Err(message) => {
            record(database, false, Some(&message));
            warning!(
                "chat_assign: assigning waiting chats in database \"{database}\" failed: {message}"
            );
        }
    }
}

/// Deletes expired events, a bounded batch per transaction, until a batch comes back short.
fn prune_events(database: &str) {
    let retention = f64::from(guc::EVENT_RETENTION_SECONDS.get());
    let mut total = 0;
    for _ in 0..PRUNE_BATCHES_PER_PASS {
        match run_pass(|| store::prune_chat_events(retention, crate::api::events::PRUNE_BATCH)) {
            Ok(deleted) => {
                total += deleted;
                if deleted < crate::api::events::PRUNE_BATCH {
                    break;
                }
            }
            Err(message) => {
                record(database, false, Some(&message));
                warning!("chat_assign: deleting expired events in database \"{database}\" failed: {message}");
                break;
            }
        }
    }
    if total > 0 {
        log!("chat_assign: deleted {total} expired event(s) in database \"{database}\"");
    }
}

/// One unit of work in its own transaction, commit included. An ERROR anywhere in it is
/// caught, the transaction rolled back and the message returned, so the loop survives it.
fn run_pass<T>(
    work: impl FnOnce() -> crate::error::ChatResult<T> + std::panic::UnwindSafe,
) -> Result<T, String> {
    let outcome = PgTryBuilder::new(|| {
        unsafe {
            pg_sys::SetCurrentStatementStartTimestamp();
            pg_sys::StartTransactionCommand();
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            pg_sys::pgstat_report_activity(
                pg_sys::BackendState::STATE_RUNNING,
                c"chat_assign worker: release_idle_assignments(), prune, wake-up".as_ptr(),
            );
        }
        // Every unit pins the search_path first: its database's settings (which the database
        // owner controls) chose the one the worker started with.
        let released = store::pin_worker_search_path()
            .and_then(|()| work())
            .map_err(|e| e.to_string());
        unsafe {
            if released.is_ok() {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            } else {
                pg_sys::AbortCurrentTransaction();
            }
        }
        released
    })
    .catch_others(|caught| {
        // Releases the snapshot, SPI, locks and memory of the failed pass, wherever in the
        // transaction (commit included) the error came from.
        unsafe { pg_sys::AbortOutOfAnyTransaction() };
        Err(caught_message(caught))
    })
    .execute();
    unsafe {
        // Report the pass's writes to the cumulative statistics now, not at exit, so that
        // autovacuum sees the dead rows it leaves.
        pg_sys::pgstat_report_stat(true);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
    }
    outcome
}

fn caught_message(caught: pg_sys::panic::CaughtError) -> String {
    match caught {
        pg_sys::panic::CaughtError::PostgresError(report)
        | pg_sys::panic::CaughtError::ErrorReport(report)
        | pg_sys::panic::CaughtError::RustPanic {
            ereport: report, ..
        } => report.message().to_owned(),
    }
}

fn log_released(database: &str, released: &[store::IdleRelease]) {
    if released.is_empty() {
        return;
    }
    log!(
        "chat_assign: released {} idle chat(s) in database \"{database}\"",
        released.len()
    );
    for (chat, operator, idle_seconds) in released.iter().take(LOGGED_CHATS) {
        log!("chat_assign: released chat {chat} from operator {operator} after {idle_seconds:.0} s idle");
    }
    if released.len() > LOGGED_CHATS {
        log!(
            "chat_assign: ... and {} more",
            released.len() - LOGGED_CHATS
        );
    }
}

#[cfg(test)]
mod unit {
    use super::database_list;

    #[test]
    fn database_list_trims_and_drops_empty_and_repeated_names() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            (" , ,", &[]),
            ("app", &["app"]),
            (" app , crm,app,, crm ", &["app", "crm"]),
        ];
        for (setting, expected) in cases {
            assert_eq!(database_list(setting), *expected, "setting {setting:?}");
        }
    }
}

//! The background worker: with `chat_assign` in `shared_preload_libraries`, one worker per
//! database listed in `chat_assign.databases` does what would otherwise need a cron job or
//! would slow the calls down:
//!
//! - every `chat_assign.idle_check_interval` seconds it runs `release_idle_assignments()`
//!   and deletes expired change events in bounded batches (`chat_assign.event_retention`);
//! - every `chat_assign.notify_interval` milliseconds (every second when that is 0) it folds
//!   the change events into the monitoring totals, and when the newest event a reader can
//!   get moved, sends one `NOTIFY chat_assign, '<id>'`: a coalesced wake-up for LISTEN
//!   clients, who then call `read_chat_events`. Only this worker notifies, in its own
//!   transaction: a call never takes PostgreSQL's cluster-wide notify lock at commit, and a
//!   full notification queue fails this worker's wake-up, never a call.
//!
//! Each pass is its own transaction. A pass that fails (a lock timeout, a user trigger
//! raising, the extension being dropped under it, an error at commit) is rolled back and
//! logged as a WARNING, and the worker carries on with the next one: a background worker
//! that let the ERROR through would exit and stop releasing chats until the postmaster
//! restarted it.
//!
//! SIGTERM (server shutdown, `pg_terminate_backend`, `DROP DATABASE ... WITH (FORCE)`)
//! ends the worker cleanly with exit code 0, which tells the postmaster not to start it
//! again: a terminated worker stays away until the next server start.

use crate::{guc, store};
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// `backend_type` of the workers in `pg_stat_activity`.
const WORKER_TYPE: &str = "chat_assign idle worker";

/// Batches of expired events deleted per idle pass, at most (each its own transaction).
const PRUNE_BATCHES_PER_PASS: usize = 100;

/// How many released chats a pass names one by one in the log.
const LOGGED_CHATS: usize = 20;

/// Registers one worker per database in `chat_assign.databases`. Called from `_PG_init`
/// while `shared_preload_libraries` loads; without preload nothing runs in the background.
pub fn register() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
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
                    log_released(&database, &released);
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
                    warning!(
                        "chat_assign: idle release in database \"{database}\" failed: {message}"
                    )
                }
            }
            next_idle_pass = Instant::now() + idle_interval();
        }
        if !waiting_for_extension {
            announced = tick(&database, announced);
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
            warning!("chat_assign: folding events in database \"{database}\" failed: {message}");
            return announced;
        }
    };
    match announced {
        Some(seen) if seen != horizon && notify_interval().is_some() => {
            match run_pass(|| store::wake_up(horizon)) {
                Ok(()) => Some(horizon),
                Err(message) => {
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

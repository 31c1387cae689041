//! Settings, registered when the library is loaded.
//!
//! Who may change what is part of the design: the behaviour knobs are USERSET (an app may
//! `SET LOCAL chat_assign.avoid_same_operator = off`), the operator claim is SUSET so that
//! the role an RPC layer switches to cannot turn its own check off, the worker's interval
//! is SIGHUP (a reload), and the worker's databases are fixed at server start because the
//! workers are registered then.

use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::ffi::{CStr, CString};

/// Seconds without a heartbeat after which `release_idle_assignments()` releases a chat.
pub static IDLE_TIMEOUT_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(300);

/// How chats reach operators: they ask (`manual`), or each chat that starts waiting is given
/// to the eligible operator with the most room (`least_loaded`) or assigned longest ago
/// (`round_robin`). A team's routing is its `teams.routing`; this is the routing of chats
/// without a team.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PostgresGucEnum)]
pub enum Routing {
    #[name = c"manual"]
    Manual,
    #[name = c"least_loaded"]
    LeastLoaded,
    #[name = c"round_robin"]
    RoundRobin,
}

impl Routing {
    /// A team's routing as stored in `teams.routing` (checked there).
    pub fn parse(label: &str) -> Routing {
        match label {
            "least_loaded" => Routing::LeastLoaded,
            "round_robin" => Routing::RoundRobin,
            _ => Routing::Manual,
        }
    }
}

/// The routing of chats without a team (`manual`: today's behaviour, operators ask).
pub static DEFAULT_ROUTING: GucSetting<Routing> = GucSetting::<Routing>::new(Routing::Manual);

/// Seconds without a sign of life after which the worker marks an online operator `away`
/// (0: never).
pub static AWAY_AFTER_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(0);

/// Prefer chats last handled by someone else; fall back to the caller's own only when
/// nothing else waits.
pub static AVOID_SAME_OPERATOR: GucSetting<bool> = GucSetting::<bool>::new(true);

/// 0.2's per-change `NOTIFY`; accepted and ignored since 0.3 (events are rows of
/// `chat_events`), so that a `SET` or `ALTER DATABASE` made for 0.2 keeps working.
pub static NOTIFY: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Write a `chat_events` row for every state change.
pub static EVENTS: GucSetting<bool> = GucSetting::<bool>::new(true);

/// On for the length of a call that writes events: the totals triggers on `chats` skip its
/// writes, which its events count (sql/state_totals.sql). Internal: no SET can change it.
pub static API_WRITE: GucSetting<bool> = GucSetting::<bool>::new(false);

/// On for the length of every call, change events or not: the triggers that list a chat
/// given by a direct write in its operator's `held_chat_ids` skip the calls' writes, which
/// list their chats in the statement (sql/references.sql). Internal like `API_WRITE`.
pub static API_CALL: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Milliseconds between two wake-up `NOTIFY chat_assign` of the worker (0: none).
pub static NOTIFY_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(100);

/// Seconds an event is kept before the worker or `prune_chat_events()` deletes it.
pub static EVENT_RETENTION_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);

/// Name of the JWT claim (in `request.jwt.claims`) that must equal `p_operator_id` in the
/// operator-facing functions of a call that carries JWT claims; empty: no check. On by
/// default (`sub`): through an RPC layer an operator acts only as itself unless the DBA
/// turns the check off.
pub static OPERATOR_ID_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"sub"));

/// Longest message content, release reason and operator name the functions store, in
/// characters.
pub static MAX_MESSAGE_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(20_000);
pub static MAX_REASON_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static MAX_NAME_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(200);

/// Comma-separated databases in which the idle worker runs (read at server start).
pub static DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Longest wait of a call for a lock another session holds, in milliseconds.
pub static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(5_000);

/// Seconds between two passes of the idle worker.
pub static IDLE_CHECK_INTERVAL_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(30);

/// Defines every setting; called from `_PG_init` when the library is loaded.
pub fn register() {
    GucRegistry::define_int_guc(
        c"chat_assign.idle_timeout",
        c"Idle time after which release_idle_assignments() releases an assigned chat.",
        c"Used when release_idle_assignments is called without p_idle_after. Accepts units, e.g. '5min'.",
        &IDLE_TIMEOUT_SECONDS,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_enum_guc(
        c"chat_assign.default_routing",
        c"How chats without a team reach operators: manual, least_loaded or round_robin.",
        c"manual (the default): operators ask with assign_chat_to_operator. Teams have their own routing (create_team, set_team_routing).",
        &DEFAULT_ROUTING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"chat_assign.away_after",
        c"Time without a heartbeat, assignment or status change after which the worker marks an online operator away.",
        c"0 (the default) never does. Read by the background worker at each idle pass. Accepts units, e.g. '10min'.",
        &AWAY_AFTER_SECONDS,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"chat_assign.avoid_same_operator",
        c"Prefer chats whose last operator is someone else.",
        c"When on, assign_chat_to_operator gives an operator their own last chat only when no other chat waits.",
        &AVOID_SAME_OPERATOR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"chat_assign.notify",
        c"Ignored since 0.3: change events are rows of chat_events (see chat_assign.events).",
        c"Kept so that settings made for 0.2 still load; it changes nothing.",
        &NOTIFY,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SUSET: the events are an audit trail that consumers rely on; the role an app or an
    // RPC layer runs as must not be able to switch them off for its own calls.
    GucRegistry::define_bool_guc(
        c"chat_assign.events",
        c"Write a chat_events row for every chat state change.",
        c"Off: no events are written (for databases where nothing reads them). Only superusers may change it.",
        &EVENTS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"chat_assign.api_write",
        c"Set by chat_assign while one of its calls writes change events (read-only).",
        c"The monitoring totals triggers skip the writes of such a call: its events count them.",
        &API_WRITE,
        GucContext::Internal,
        GucFlags::NO_SHOW_ALL | GucFlags::DISALLOW_IN_FILE,
    );
    GucRegistry::define_bool_guc(
        c"chat_assign.api_call",
        c"Set by chat_assign for the length of each of its calls (read-only).",
        c"The triggers that keep operators.held_chat_ids for direct writes skip the calls' writes: the calls keep it themselves.",
        &API_CALL,
        GucContext::Internal,
        GucFlags::NO_SHOW_ALL | GucFlags::DISALLOW_IN_FILE,
    );
    GucRegistry::define_int_guc(
        c"chat_assign.notify_interval",
        c"Milliseconds between two wake-up NOTIFY chat_assign sent by the background worker.",
        c"At most one wake-up per database per interval, payload the newest event id; 0 turns wake-ups off. Needs the worker (shared_preload_libraries).",
        &NOTIFY_INTERVAL_MS,
        0,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"chat_assign.event_retention",
        c"How long chat_events rows are kept.",
        c"Older events are deleted in bounded batches by the background worker, or by prune_chat_events(). Accepts units, e.g. '7d'.",
        &EVENT_RETENTION_SECONDS,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"chat_assign.operator_id_claim",
        c"JWT claim that must equal p_operator_id in the operator-facing functions.",
        c"Checked in calls that carry request.jwt.claims (as PostgREST sets them); a direct SQL session without claims is not checked. Empty turns the check off. Only superusers may change it.",
        &OPERATOR_ID_CLAIM,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SUSET: a limit the role an app calls as could raise for itself would limit nothing.
    for (name, short, setting) in [
        (
            c"chat_assign.max_message_length",
            c"Longest message content the functions store, in characters.",
            &MAX_MESSAGE_LENGTH,
        ),
        (
            c"chat_assign.max_reason_length",
            c"Longest release reason release_and_reassign_chat stores, in characters.",
            &MAX_REASON_LENGTH,
        ),
        (
            c"chat_assign.max_name_length",
            c"Longest operator name create_operator stores, in characters.",
            &MAX_NAME_LENGTH,
        ),
    ] {
        GucRegistry::define_int_guc(
            name,
            short,
            c"Longer text is refused with 22023. Only superusers may change it.",
            setting,
            1,
            100_000_000,
            GucContext::Suset,
            GucFlags::default(),
        );
    }
    GucRegistry::define_int_guc(
        c"chat_assign.lock_timeout",
        c"Longest time a call waits for a lock another session holds.",
        c"Past it the call fails with 55P03 (lock_not_available) and changes nothing. A smaller lock_timeout of the session wins. Accepts units, e.g. '2s'.",
        &LOCK_TIMEOUT_MS,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"chat_assign.idle_check_interval",
        c"Seconds between two idle-release passes of the background worker.",
        c"Only used when chat_assign is in shared_preload_libraries. Accepts units, e.g. '1min'.",
        &IDLE_CHECK_INTERVAL_SECONDS,
        1,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    // A PGC_POSTMASTER setting may only be defined while shared_preload_libraries loads
    // (Postgres stops the backend otherwise); that is also the only time it is read.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_string_guc(
            c"chat_assign.databases",
            c"Databases (comma-separated) in which the idle-release background worker runs.",
            c"One background worker per database is started with the server. Empty: none.",
            &DATABASES,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
}

/// Sets a setting until the current function call (or subtransaction) ends: saved the way a
/// function's own SET clause saves it (GUC_ACTION_SAVE: PostgreSQL restores it when that
/// level ends, however it ends; SET LOCAL would outlive it). Source SESSION, as SET: an
/// OVERRIDE would also become the reset value, and then survive the restore.
fn set_saved(name: &CStr, value: &CStr, context: pg_sys::GucContext::Type) {
    // SAFETY: a registered setting and a valid value for it, elevel 0: it cannot fail. The
    // context is the extension's own (its code sets these for its own statements, whoever
    // the caller is), never the caller's.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}

/// Sets `chat_assign.api_write` for the rest of the current function call: the setting
/// goes back when the call returns (every API function has its own `SET search_path`, so
/// PostgreSQL restores the settings the call changed) or fails.
pub fn mark_api_write() {
    set_saved(
        c"chat_assign.api_write",
        c"on",
        pg_sys::GucContext::PGC_INTERNAL,
    );
}

/// Sets `chat_assign.api_call` for the rest of the current function call, as
/// [`mark_api_write`].
pub fn mark_api_call() {
    set_saved(
        c"chat_assign.api_call",
        c"on",
        pg_sys::GucContext::PGC_INTERNAL,
    );
}

/// Bounds every lock wait of the current call by `chat_assign.lock_timeout`, unless the
/// session's own `lock_timeout` is already shorter; restored when the call returns, as
/// [`mark_api_write`].
pub fn bound_lock_waits() {
    let ours = LOCK_TIMEOUT_MS.get();
    // SAFETY: the server's current lock_timeout, in milliseconds (0: none).
    let current = unsafe { pg_sys::LockTimeout };
    if current != 0 && current <= ours {
        return;
    }
    let value = CString::new(ours.to_string()).expect("digits have no NUL");
    set_saved(c"lock_timeout", &value, pg_sys::GucContext::PGC_USERSET);
}

/// Sets a server setting in milliseconds for the current subtransaction only: PostgreSQL
/// puts the value back when the subtransaction ends, committed or rolled back. Context
/// SUSET, for `deadlock_timeout`.
pub fn set_for_subtransaction(name: &CStr, milliseconds: i32) {
    let value = CString::new(milliseconds.to_string()).expect("digits have no NUL");
    set_saved(name, &value, pg_sys::GucContext::PGC_SUSET);
}

/// A string setting as Rust text; unset and empty are both `None`.
pub fn text(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting
        .get()
        .map(|value| value.to_string_lossy().trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Any setting by name, including placeholders such as `request.jwt.claims` that an RPC
/// layer sets with `set_config`; `None` when it was never set.
pub fn setting(name: &CStr) -> Option<String> {
    // SAFETY: `missing_ok` makes GetConfigOption return NULL instead of raising; the value
    // is copied before any other GUC call could change it.
    let raw = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    (!raw.is_null()).then(|| {
        unsafe { CStr::from_ptr(raw) }
            .to_string_lossy()
            .into_owned()
    })
}

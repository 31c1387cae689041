//! What an admin watches. Read-only: these functions take no locks and change nothing.

use super::{required, MAX_AGE_SECONDS};
use crate::error::{echo, ChatError};
use crate::store;
use pgrx::datum::{AnyNumeric, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::Uuid;

/// One row describing the queue now: chats waiting for an operator, assigned, waiting for
/// the user's reply; the oldest and average wait (seconds) of the waiting ones; active
/// operators, how many are busy (at capacity) and how many can take a chat.
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
// The column names live in the `name!` tuple, which pg_extern must see spelled out.
#[allow(clippy::type_complexity)]
pub fn get_assignment_queue_status() -> Result<
    TableIterator<
        'static,
        (
            name!(waiting_count, i64),
            name!(assigned_count, i64),
            name!(waiting_reply_count, i64),
            name!(oldest_waiting_seconds, Option<f64>),
            name!(avg_waiting_seconds, Option<f64>),
            name!(active_operators, i64),
            name!(busy_operators, i64),
            name!(available_operators, i64),
        ),
    >,
    ErrorReport,
> {
    let s = store::queue_status()?;
    Ok(TableIterator::once((
        s.waiting,
        s.assigned,
        s.waiting_reply,
        s.oldest_waiting_seconds,
        s.avg_waiting_seconds,
        s.active_operators,
        s.busy_operators,
        s.available_operators,
    )))
}

/// Active chats in `waiting_assignment` or `assigned` whose state has not changed for
/// longer than `p_hours`, oldest first, with the operator who holds (or last held) them.
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
// The column names live in the `name!` tuple, which pg_extern must see spelled out.
#[allow(clippy::type_complexity)]
pub fn detect_stuck_chats(
    p_hours: default!(Option<AnyNumeric>, 1),
) -> Result<
    TableIterator<
        'static,
        (
            name!(chat_id, Uuid),
            name!(chat_state, String),
            name!(real_user_id, Uuid),
            name!(state_changed_at, TimestampWithTimeZone),
            name!(hours_in_state, AnyNumeric),
            name!(assigned_operator_id, Option<Uuid>),
            name!(last_operator_id, Option<Uuid>),
            name!(operator_name, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let hours = required(p_hours, "p_hours")?;
    let as_float = f64::try_from(hours.clone()).unwrap_or(f64::NAN);
    if !(as_float.is_finite() && as_float > 0.0 && as_float * 3600.0 <= MAX_AGE_SECONDS) {
        return Err(ChatError::InvalidParameter(format!(
            "p_hours must be a positive number of at most 864000 (100 years), got {}",
            echo(&hours.to_string())
        ))
        .into());
    }
    let rows = store::stuck_chats(as_float)?;
    Ok(TableIterator::new(rows.into_iter().map(|r| {
        (
            r.chat_id,
            r.chat_state,
            r.real_user_id,
            r.state_changed_at,
            r.hours_in_state,
            r.assigned_operator_id,
            r.last_operator_id,
            r.operator_name,
        )
    })))
}

/// Service figures of the chats started since `p_since` (default: the last 24 hours): one
/// row for all chats (`scope` `all`), one for the chats without a team (`no_team`) and one
/// per team (`team`), or only team `p_team_id`'s row when given (unknown: `P0002`). Chats
/// started; first response (start to the first operator reply) and wait to assignment (start
/// to the first assignment) p50 and p90 in seconds (NULL when no chat had one); transfers
/// out of the scope; idle releases of assignments made since `p_since`; chats completed
/// without an operator's reply (abandoned).
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
// The column names live in the `name!` tuple, which pg_extern must see spelled out.
#[allow(clippy::type_complexity)]
pub fn get_service_metrics(
    p_since: default!(Option<TimestampWithTimeZone>, "now() - interval '24 hours'"),
    p_team_id: default!(Option<Uuid>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(scope, String),
            name!(team_id, Option<Uuid>),
            name!(team_name, Option<String>),
            name!(chats_started, i64),
            name!(first_response_p50, Option<f64>),
            name!(first_response_p90, Option<f64>),
            name!(wait_to_assignment_p50, Option<f64>),
            name!(wait_to_assignment_p90, Option<f64>),
            name!(transfers, i64),
            name!(idle_releases, i64),
            name!(abandoned, i64),
        ),
    >,
    ErrorReport,
> {
    let since = required(p_since, "p_since")?;
    let rows = store::service_metrics(since, p_team_id)?;
    Ok(TableIterator::new(rows.into_iter().map(|r| {
        (
            r.scope,
            r.team_id,
            r.team_name,
            r.chats_started,
            r.first_response_p50,
            r.first_response_p90,
            r.wait_to_assignment_p50,
            r.wait_to_assignment_p90,
            r.transfers,
            r.idle_releases,
            r.abandoned,
        )
    })))
}

/// What each background worker did since the server started (one row per database in
/// `chat_assign.databases`; none without `shared_preload_libraries`): its idle passes, the
/// units of work that failed (idle pass, fold, wake-up, prune) and the last error, so that
/// a worker that keeps failing shows in monitoring, not only in the server log.
#[pg_extern(volatile, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
// The column names live in the `name!` tuple, which pg_extern must see spelled out.
#[allow(clippy::type_complexity)]
pub fn worker_status() -> TableIterator<
    'static,
    (
        name!(database, String),
        name!(started_at, Option<TimestampWithTimeZone>),
        name!(idle_passes, i64),
        name!(failed_passes, i64),
        name!(last_pass_at, Option<TimestampWithTimeZone>),
        name!(last_error, Option<String>),
        name!(last_error_at, Option<TimestampWithTimeZone>),
    ),
> {
    let at = |micros: i64| TimestampWithTimeZone::try_from(micros).ok();
    TableIterator::new(crate::worker::status().into_iter().map(
        move |(database, started, passes, failed, last_pass, error, error_at)| {
            (
                database,
                (started != 0).then(|| at(started)).flatten(),
                passes,
                failed,
                last_pass.and_then(at),
                error,
                error_at.and_then(at),
            )
        },
    ))
}

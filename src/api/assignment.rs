//! Taking chats from the queue and giving them back.

use super::{acting_as, non_blank, required, TextKind, MAX_AGE_SECONDS};
use crate::error::{echo, ApiResult, ChatError};
use crate::{guc, store};
use pgrx::datum::Interval;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::Uuid;

/// Gives the operator the next waiting chat (highest `priority`, then oldest
/// `waiting_since`) and returns its id, or NULL when nothing waits. Chats that concurrent
/// callers are taking are skipped, never waited for. With `chat_assign.avoid_same_operator`
/// on (the default) a chat this operator handled last is given back to them only when no
/// other chat waits. Refuses (`55000`) an inactive operator or one at capacity.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn assign_chat_to_operator(p_operator_id: Option<Uuid>) -> ApiResult<Option<Uuid>> {
    let operator = acting_as(required(p_operator_id, "p_operator_id")?)?;
    Ok(store::assign_chat(
        operator,
        guc::AVOID_SAME_OPERATOR.get(),
    )?)
}

/// Puts an assigned chat back in the queue, keeping its `waiting_since` (so it keeps its
/// place), and records `p_reason` on the assignment. The admin "unassign". Returns false,
/// changing nothing, when the chat was not assigned.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn release_and_reassign_chat(
    p_chat_id: Option<Uuid>,
    p_reason: default!(Option<&str>, "'manual_unassign'"),
) -> ApiResult<bool> {
    let chat = required(p_chat_id, "p_chat_id")?;
    let reason = non_blank(p_reason, "p_reason", TextKind::Reason)?;
    Ok(store::release_and_reassign_chat(chat, reason)?)
}

/// The idle-detection job: releases (reason `idle_timeout`) every `assigned` chat whose
/// operator has shown no activity for `p_idle_after` (NULL: the `chat_assign.idle_timeout`
/// setting, 5 minutes by default). Never touches chats waiting for the user's reply, never
/// waits for rows other sessions hold. Returns what it released.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn release_idle_assignments(
    p_idle_after: default!(Option<Interval>, "NULL"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(chat_id, Uuid),
            name!(operator_id, Uuid),
            name!(idle_seconds, f64),
        ),
    >,
    ErrorReport,
> {
    let seconds = match p_idle_after {
        None => f64::from(guc::IDLE_TIMEOUT_SECONDS.get()),
        Some(interval) => {
            let seconds = interval.as_micros() as f64 / 1_000_000.0;
            if !(seconds > 0.0 && seconds <= MAX_AGE_SECONDS) {
                return Err(ChatError::InvalidParameter(format!(
                    "p_idle_after must be a positive interval of at most 100 years, got {}",
                    echo(&interval.to_string())
                ))
                .into());
            }
            seconds
        }
    };
    Ok(TableIterator::new(store::release_idle_assignments(
        seconds,
    )?))
}

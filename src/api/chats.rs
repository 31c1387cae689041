//! The real user's side of a chat, and its end.

use super::{idempotency_key, non_blank, required, TextKind};
use crate::error::ApiResult;
use crate::store;
use pgrx::prelude::*;
use pgrx::Uuid;

/// Opens a chat for `p_real_user_id` with its first message; the chat waits in the queue
/// (`waiting_assignment`) from now: the queue of team `p_team_id` (only its members take
/// it; an unknown team is `P0002`) or, without a team, the queue anyone takes from, with
/// priority `p_priority` (higher is taken first). Returns the chat id. Repeated with the
/// same `p_idempotency_key` for the same user, returns that chat and writes nothing.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn start_chat(
    p_real_user_id: Option<Uuid>,
    p_content: Option<&str>,
    p_idempotency_key: default!(Option<&str>, "NULL"),
    p_team_id: default!(Option<Uuid>, "NULL"),
    p_priority: default!(Option<i32>, 0),
) -> ApiResult<Uuid> {
    let user = required(p_real_user_id, "p_real_user_id")?;
    let content = non_blank(p_content, "p_content", TextKind::Message)?;
    let key = idempotency_key(p_idempotency_key)?;
    let priority = required(p_priority, "p_priority")?;
    Ok(store::start_chat(user, content, key, p_team_id, priority)?)
}

/// Stores a message from the chat's real user and returns its id. A chat that was assigned
/// or waiting for the user's reply goes back to the queue (`waiting_since = now()`, any open
/// assignment released with reason `real_user_message`); a chat already waiting keeps its
/// place; a completed chat reopens. Repeated with the same `p_idempotency_key` in the same
/// chat, returns that message's id and writes nothing.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn real_user_send_message(
    p_chat_id: Option<Uuid>,
    p_content: Option<&str>,
    p_idempotency_key: default!(Option<&str>, "NULL"),
) -> ApiResult<i64> {
    let chat = required(p_chat_id, "p_chat_id")?;
    let content = non_blank(p_content, "p_content", TextKind::Message)?;
    let key = idempotency_key(p_idempotency_key)?;
    Ok(store::real_user_send_message(chat, content, key)?)
}

/// Ends a chat: `completed`, inactive, any open assignment released (reason `completed`).
/// Returns false, changing nothing, when the chat was already completed.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn complete_chat(p_chat_id: Option<Uuid>) -> ApiResult<bool> {
    let chat = required(p_chat_id, "p_chat_id")?;
    Ok(store::complete_chat(chat)?)
}

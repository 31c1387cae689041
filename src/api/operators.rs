//! Operators: who they are, whether they work, what they write.

use super::{acting_as, idempotency_key, non_blank, required, TextKind};
use crate::error::{ApiResult, ChatError};
use crate::store;
use pgrx::prelude::*;
use pgrx::Uuid;

/// Creates an operator who may hold up to `p_max_concurrent_chats` chats at once.
/// Returns the operator id.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn create_operator(
    p_name: Option<&str>,
    p_max_concurrent_chats: default!(Option<i32>, 1),
) -> ApiResult<Uuid> {
    let name = non_blank(p_name, "p_name", TextKind::Name)?;
    let max = required(p_max_concurrent_chats, "p_max_concurrent_chats")?;
    if max < 1 {
        return Err(ChatError::InvalidParameter(format!(
            "p_max_concurrent_chats must be at least 1, got {max}"
        ))
        .into());
    }
    Ok(store::create_operator(name, max)?)
}

/// Activates or deactivates an operator. Deactivating releases every chat the operator
/// holds back to the queue (reason `operator_inactive`). Returns whether `is_active` changed.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn set_operator_active(
    p_operator_id: Option<Uuid>,
    p_is_active: Option<bool>,
) -> ApiResult<bool> {
    let operator = required(p_operator_id, "p_operator_id")?;
    let active = required(p_is_active, "p_is_active")?;
    Ok(store::set_operator_active(operator, active)?)
}

/// Stores a message from the operator assigned to the chat and returns its id. The chat
/// then waits for the real user (`waiting_real_user_reply`), the assignment is released
/// (reason `operator_replied`) and the operator is free for another chat. While the chat
/// waits for the user, the operator who answered may add follow-ups. Anyone else: `55000`.
/// Repeated with the same `p_idempotency_key` by the same operator in the same chat, returns
/// that message's id and writes nothing.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn operator_send_message(
    p_chat_id: Option<Uuid>,
    p_operator_id: Option<Uuid>,
    p_content: Option<&str>,
    p_idempotency_key: default!(Option<&str>, "NULL"),
) -> ApiResult<i64> {
    let chat = required(p_chat_id, "p_chat_id")?;
    let operator = required(p_operator_id, "p_operator_id")?;
    let content = non_blank(p_content, "p_content", TextKind::Message)?;
    let key = idempotency_key(p_idempotency_key)?;
    acting_as(operator)?;
    Ok(store::operator_send_message(chat, operator, content, key)?)
}

/// Heartbeat of the operator working on a chat: keeps idle detection away. Returns false
/// when the chat is not assigned to this operator.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn touch_operator_activity(
    p_operator_id: Option<Uuid>,
    p_chat_id: Option<Uuid>,
) -> ApiResult<bool> {
    let operator = required(p_operator_id, "p_operator_id")?;
    let chat = required(p_chat_id, "p_chat_id")?;
    acting_as(operator)?;
    Ok(store::touch_operator_activity(operator, chat)?)
}

//! Operators: creation, and (de)activation, which releases the chats an operator holds.
//! Presence and teams are in [`super::teams`].

use super::queries::*;
use super::{chats::*, spi::*};
use crate::error::{ChatError, ChatResult};
use pgrx::spi::SpiClient;
use pgrx::Uuid;

/// A new operator with room for `max_concurrent_chats` chats.
pub fn create_operator(name: &str, max_concurrent_chats: i32) -> ChatResult<Uuid> {
    connect_write(|client| {
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
    connect_write(|client| {
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
            release_operator_chats(client, operator_id, None, "operator_inactive")?;
        } else if changed {
            pull_for(client, operator_id, &[])?;
        }
        Ok(changed)
    })
}

/// Releases every chat a locked operator holds (of `team` only, when given) back to the
/// queue, each keeping its place, with `reason`; returns how many.
pub(super) fn release_operator_chats(
    client: &mut SpiClient<'_>,
    operator_id: Uuid,
    team: Option<Uuid>,
    reason: &str,
) -> ChatResult<usize> {
    let mut held = Vec::new();
    for row in exec(
        client,
        &LOCK_OPERATOR_CHATS,
        &[operator_id.into(), team.into()],
    )? {
        if let Some(chat) = row.get::<Uuid>(1)? {
            held.push((chat, Place::read(&row, 2)?));
        }
    }
    if held.is_empty() {
        return Ok(0);
    }
    release_locked(client, &held, reason)
}

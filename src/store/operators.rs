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
    let held = lock_operator_chats(client, operator_id, team)?;
    if held.is_empty() {
        return Ok(0);
    }
    release_locked(client, &held, reason)
}

/// Locks every chat the operator holds (of `team` only, when given), in id order, waiting
/// for each. It waits while holding the chats locked before, and a claim or an idle release
/// can wait for one of those through the one case where `SKIP LOCKED` waits (see
/// `in_subtransaction`): a cycle that the other call closes, and that the server's
/// deadlock check would break by failing that call. So no wait here lasts longer than
/// [`retry_wait_ms`] while chats are held: past it the chats locked so far are given back
/// and it starts again. Once the call's own lock bound (`chat_assign.lock_timeout`, or the
/// session's shorter `lock_timeout`) has passed in retries, a last try waits as any lock
/// does and fails with `55P03` past the bound.
fn lock_operator_chats(
    client: &mut SpiClient<'_>,
    operator_id: Uuid,
    team: Option<Uuid>,
) -> ChatResult<Vec<(Uuid, Place)>> {
    let read = |client: &mut SpiClient<'_>| -> ChatResult<Vec<(Uuid, Place)>> {
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
        Ok(held)
    };
    // SAFETY: a read of the lock bound connect() set for this call (0: none).
    let bound_ms = i64::from(unsafe { pgrx::pg_sys::LockTimeout });
    // A shorter bound of the session's own is never stretched by a retry.
    let wait = if bound_ms > 0 {
        i64::from(retry_wait_ms()).min(bound_ms) as i32
    } else {
        retry_wait_ms()
    };
    let started = std::time::Instant::now();
    loop {
        if bound_ms > 0 && started.elapsed().as_millis() as i64 >= bound_ms {
            return read(client);
        }
        if let Ok(held) = in_subtransaction(client, Some(wait), read)? {
            return Ok(held);
        }
    }
}

/// The longest [`lock_operator_chats`] waits with chats held: 50 ms, or a quarter of the
/// server's `deadlock_timeout` if that is shorter, so that it lets go before the deadlock
/// check of a call waiting for it runs.
fn retry_wait_ms() -> i32 {
    // SAFETY: a read of the server's setting, in milliseconds.
    (unsafe { pgrx::pg_sys::DeadlockTimeout } / 4).clamp(1, 50)
}

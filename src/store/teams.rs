//! Teams, presence, transfers and queue positions: who may take which chats, who is
//! there to take them, handing a chat on, and where a waiting chat stands.

use super::operators::release_operator_chats;
use super::queries::*;
use super::{chats::*, events::*, spi::*};
use crate::error::{ChatError, ChatResult};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::Uuid;

/// A new team with its routing; a name another team has is `23505`.
pub fn create_team(name: &str, routing: &str) -> ChatResult<Uuid> {
    connect_write(|client| {
        let made = exec(client, &CREATE_TEAM, &[name.into(), routing.into()])?;
        if made.is_empty() {
            return Err(ChatError::TeamNameTaken(name.to_owned()));
        }
        returned(made, "create_team")
    })
}

/// Sets a team's routing; false when it already was.
pub fn set_team_routing(team_id: Uuid, routing: &str) -> ChatResult<bool> {
    connect_write(|client| {
        if exec(client, &LOCK_TEAM, &[team_id.into()])?.is_empty() {
            return Err(ChatError::TeamNotFound(team_id));
        }
        Ok(!exec(client, &SET_TEAM_ROUTING, &[team_id.into(), routing.into()])?.is_empty())
    })
}

/// The operator joins the team (operator locked, then the team kept from a DELETE); false
/// when it was a member already.
pub fn add_team_member(team_id: Uuid, operator_id: Uuid) -> ChatResult<bool> {
    connect_write(|client| {
        lock_operator(client, operator_id)?;
        if exec(client, &KEEP_TEAM, &[team_id.into()])?.is_empty() {
            return Err(ChatError::TeamNotFound(team_id));
        }
        let joined = !exec(
            client,
            &ADD_TEAM_MEMBER,
            &[operator_id.into(), team_id.into()],
        )?
        .is_empty();
        if joined {
            pull_for(client, operator_id, &[])?;
        }
        Ok(joined)
    })
}

/// The operator leaves the team, under its lock; the team's chats it holds go back to the
/// queue, each keeping its place (`removed_from_team`). False when it was not a member.
pub fn remove_team_member(team_id: Uuid, operator_id: Uuid) -> ChatResult<bool> {
    connect_write(|client| {
        lock_operator(client, operator_id)?;
        let left = !exec(
            client,
            &REMOVE_TEAM_MEMBER,
            &[operator_id.into(), team_id.into()],
        )?
        .is_empty();
        if !left {
            if !team_exists(client, team_id)? {
                return Err(ChatError::TeamNotFound(team_id));
            }
            return Ok(false);
        }
        release_operator_chats(client, operator_id, Some(team_id), "removed_from_team")?;
        // Room freed: the next chats of its other pushed queues.
        pull_for(client, operator_id, &[])?;
        Ok(true)
    })
}

/// Whether the team exists (no lock).
pub(super) fn team_exists(
    client: &mut pgrx::spi::SpiClient<'_>,
    team_id: Uuid,
) -> ChatResult<bool> {
    Ok(exec(client, &TEAM_EXISTS, &[team_id.into()])?
        .first()
        .get_one::<bool>()?
        == Some(true))
}

/// Sets the operator's presence under its lock and returns the one it had. Going offline
/// releases every chat it holds, each keeping its place (`operator_offline`).
pub fn set_operator_status(operator_id: Uuid, status: &str) -> ChatResult<String> {
    connect_write(|client| {
        let previous = lock_operator(client, operator_id)?.status;
        exec(
            client,
            &SET_OPERATOR_STATUS,
            &[operator_id.into(), status.into()],
        )?;
        if status == "offline" {
            release_operator_chats(client, operator_id, None, "operator_offline")?;
        } else if status == "online" && previous != "online" {
            pull_for(client, operator_id, &[])?;
        }
        Ok(previous)
    })
}

/// Where a transfer sends a chat.
#[derive(Clone, Copy)]
pub enum TransferTarget {
    Operator(Uuid),
    Team(Uuid),
}

/// Hands a chat to an operator (who must be online and active, may take the chat's team's
/// chats and has room: else `55000`, nothing changes) or to a team's queue (keeping its
/// `waiting_since`). False, and nothing written, when the chat is completed or already
/// where it is sent. Recorded in `chat_transfers` and announced with `reason`.
pub fn transfer_chat(chat_id: Uuid, target: TransferTarget, reason: &str) -> ChatResult<bool> {
    connect_write(|client| match target {
        TransferTarget::Operator(operator_id) => {
            // Step 1, the operator; step 2, the chat.
            let op = lock_operator(client, operator_id)?;
            let chat = lock_chat(client, chat_id)?;
            if chat.state == ChatState::Completed || holder(&chat) == Some(operator_id) {
                return Ok(false);
            }
            if !op.is_active {
                return Err(ChatError::OperatorInactive(operator_id));
            }
            if op.status != "online" {
                return Err(ChatError::OperatorNotOnline {
                    operator_id,
                    status: op.status,
                });
            }
            let room = exec(
                client,
                &OPERATOR_ROOM,
                &[operator_id.into(), chat.place.team.into()],
            )?;
            let room = room.first();
            let (open, member) = room.get_two::<i64, bool>()?;
            if let (Some(team_id), false) = (chat.place.team, member == Some(true)) {
                return Err(ChatError::NotTeamMember {
                    operator_id,
                    team_id,
                });
            }
            let open = open.unwrap_or(0);
            if open >= i64::from(op.max) {
                return Err(ChatError::OperatorAtCapacity {
                    operator_id,
                    active: open,
                    max: op.max,
                });
            }
            let from = holder(&chat).or(chat.last_operator_id);
            returned::<Uuid>(
                exec(
                    client,
                    &TRANSFER_TO_OPERATOR,
                    &[
                        chat_id.into(),
                        operator_id.into(),
                        reason.into(),
                        from.into(),
                    ],
                )?,
                "transfer_chat",
            )?;
            announce(
                client,
                Changes::one(
                    chat_id,
                    Some(operator_id),
                    chat.place,
                    Some(chat.state),
                    ChatState::Assigned,
                    reason,
                ),
            )?;
            if let Some(freed) = holder(&chat) {
                pull_for(client, freed, &[chat_id])?;
            }
            Ok(true)
        }
        TransferTarget::Team(team_id) => {
            let chat = lock_chat(client, chat_id)?;
            let held = holder(&chat);
            if chat.state == ChatState::Completed
                || (chat.place.team == Some(team_id) && held.is_none())
            {
                if !team_exists(client, team_id)? {
                    return Err(ChatError::TeamNotFound(team_id));
                }
                return Ok(false);
            }
            let from = held.or(chat.last_operator_id);
            let moved = exec(
                client,
                &TRANSFER_TO_TEAM,
                &[chat_id.into(), team_id.into(), reason.into(), from.into()],
            )?;
            if moved.first().get_one::<Uuid>()?.is_none() {
                return Err(ChatError::TeamNotFound(team_id));
            }
            // In another queue, at its old place.
            super::heads::placed_anywhere();
            let new = if chat.state == ChatState::Assigned {
                ChatState::WaitingAssignment
            } else {
                chat.state
            };
            // The event names the team the chat is in now, and who lost it, if anyone.
            let place = Place {
                team: Some(team_id),
                ..chat.place
            };
            announce(
                client,
                Changes::one(chat_id, held, place, Some(chat.state), new, reason),
            )?;
            if new == ChatState::WaitingAssignment {
                // Never back to the operator who passed it on.
                let passed_on: Vec<Uuid> = held.into_iter().collect();
                push_chat_except(client, chat_id, Some(team_id), from, &passed_on)?;
            }
            if let Some(freed) = held {
                pull_for(client, freed, &[chat_id])?;
            }
            Ok(true)
        }
    })
}

/// Sets a chat's priority under its lock; false when it already was.
pub fn set_chat_priority(chat_id: Uuid, priority: i32) -> ChatResult<bool> {
    connect_write(|client| {
        lock_chat(client, chat_id)?;
        let changed = !exec(
            client,
            &SET_CHAT_PRIORITY,
            &[chat_id.into(), priority.into()],
        )?
        .is_empty();
        if changed {
            // A waiting chat moves within its queue, maybe before its head.
            super::heads::placed_anywhere();
        }
        Ok(changed)
    })
}

/// A waiting chat's place in its queue: (position, 1 = next; chats ahead; estimated seconds
/// until it is taken). `None` when the chat is not waiting.
pub type QueuePosition = (i32, i32, Option<f64>);

/// Where a chat stands in its queue, counted exactly; the estimate divides the position by
/// the rate at which the queue was served lately (none without recent assignments).
pub fn queue_position(chat_id: Uuid) -> ChatResult<Option<QueuePosition>> {
    connect(|client| {
        let place = exec(client, &QUEUE_PLACE, &[chat_id.into()])?;
        if place.is_empty() {
            return Err(ChatError::ChatNotFound(chat_id));
        }
        let place = place.first();
        if place.get::<bool>(1)? != Some(true) {
            return Ok(None);
        }
        let queue = place.get::<Uuid>(2)?;
        let priority = place.get::<i32>(3)?;
        let since = place.get::<TimestampWithTimeZone>(4)?;
        let ahead = exec(
            client,
            &QUEUE_AHEAD,
            &[queue.into(), priority.into(), since.into(), chat_id.into()],
        )?
        .first()
        .get_one::<i64>()?
        .unwrap_or(0);
        let rate = exec(client, &QUEUE_RATE, &[queue.into()])?;
        let rate = rate.first();
        let (served, seconds) = rate.get_two::<i64, f64>()?;
        let position = ahead + 1;
        let estimate = match (served, seconds) {
            (Some(served), Some(seconds)) if served > 0 && seconds > 0.0 => {
                Some(position as f64 * seconds / served as f64)
            }
            _ => None,
        };
        let clamp = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Some((clamp(position), clamp(ahead), estimate)))
    })
}

/// The worker's presence pass: online operators with no sign of life for `after_seconds`
/// become away. Returns how many.
pub fn mark_away(after_seconds: f64) -> ChatResult<usize> {
    connect_write(|client| Ok(exec(client, &MARK_AWAY, &[after_seconds.into()])?.len()))
}

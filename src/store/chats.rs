//! The state machine on chats: the calls that start, answer, assign, release and end a
//! chat, each under the chat's row lock, checking existence and state under it so that
//! what it reports is what it stored.

use super::queries::*;
use super::{events::*, heads, spi::*};
use crate::error::{ChatError, ChatResult};
use crate::guc::Routing;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData, SpiTupleTable};
use pgrx::Uuid;

/// A chat's state: the schema's `chat_state` enum.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ChatState {
    WaitingAssignment,
    Assigned,
    WaitingRealUserReply,
    Completed,
}

impl ChatState {
    /// The enum label, as SQL spells it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ChatState::WaitingAssignment => "waiting_assignment",
            ChatState::Assigned => "assigned",
            ChatState::WaitingRealUserReply => "waiting_real_user_reply",
            ChatState::Completed => "completed",
        }
    }

    /// A label read from the database.
    pub(super) fn parse(label: &str) -> ChatResult<Self> {
        Ok(match label {
            "waiting_assignment" => ChatState::WaitingAssignment,
            "assigned" => ChatState::Assigned,
            "waiting_real_user_reply" => ChatState::WaitingRealUserReply,
            "completed" => ChatState::Completed,
            other => return Err(ChatError::Internal(format!("unknown chat state {other:?}"))),
        })
    }
}

/// A chat row as seen under its lock.
pub(super) struct LockedChat {
    pub(super) state: ChatState,
    pub(super) assigned_operator_id: Option<Uuid>,
    pub(super) last_operator_id: Option<Uuid>,
    pub(super) place: Place,
}

/// Since when a chat is in its state, its place in the queue (`waiting_since`, when
/// active) and its team: what its change event carries (the first two for the monitoring
/// totals).
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub(super) since: Option<TimestampWithTimeZone>,
    pub(super) waiting_since: Option<TimestampWithTimeZone>,
    pub(super) team: Option<Uuid>,
}

impl Place {
    pub(super) const NEW: Place = Place {
        since: None,
        waiting_since: None,
        team: None,
    };

    /// From three columns of a row: `since` at `at`, `waiting_since` and the team after it.
    pub(super) fn read(row: &impl PlaceColumns, at: usize) -> ChatResult<Place> {
        Ok(Place {
            since: row.timestamp(at)?,
            waiting_since: row.timestamp(at + 1)?,
            team: row.uuid(at + 2)?,
        })
    }
}

/// The two kinds of SPI row (a statement's first row, a row met while iterating), as far as
/// [`Place::read`] needs them.
pub(super) trait PlaceColumns {
    fn timestamp(&self, ordinal: usize) -> ChatResult<Option<TimestampWithTimeZone>>;
    fn uuid(&self, ordinal: usize) -> ChatResult<Option<Uuid>>;
}

impl PlaceColumns for SpiTupleTable<'_> {
    fn timestamp(&self, ordinal: usize) -> ChatResult<Option<TimestampWithTimeZone>> {
        Ok(self.get::<TimestampWithTimeZone>(ordinal)?)
    }
    fn uuid(&self, ordinal: usize) -> ChatResult<Option<Uuid>> {
        Ok(self.get::<Uuid>(ordinal)?)
    }
}

impl PlaceColumns for SpiHeapTupleData<'_> {
    fn timestamp(&self, ordinal: usize) -> ChatResult<Option<TimestampWithTimeZone>> {
        Ok(self.get::<TimestampWithTimeZone>(ordinal)?)
    }
    fn uuid(&self, ordinal: usize) -> ChatResult<Option<Uuid>> {
        Ok(self.get::<Uuid>(ordinal)?)
    }
}

pub(super) fn locked_chat(row: &SpiTupleTable<'_>) -> ChatResult<LockedChat> {
    Ok(LockedChat {
        state: ChatState::parse(&row.get::<String>(1)?.unwrap_or_default())?,
        assigned_operator_id: row.get::<Uuid>(2)?,
        last_operator_id: row.get::<Uuid>(3)?,
        place: Place::read(row, 4)?,
    })
}

pub(super) fn lock_chat(client: &mut SpiClient<'_>, chat_id: Uuid) -> ChatResult<LockedChat> {
    let row = exec(client, &LOCK_CHAT, &[chat_id.into()])?;
    if row.is_empty() {
        return Err(ChatError::ChatNotFound(chat_id));
    }
    locked_chat(&row.first())
}

/// Locks a chat for an operator's call, only when it is this operator's (assigned to it, or
/// waiting for the user's reply to its answer): `None`, and no lock, otherwise.
pub(super) fn lock_own_chat(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    operator_id: Uuid,
) -> ChatResult<Option<LockedChat>> {
    let row = exec(
        client,
        &LOCK_CHAT_FOR_OPERATOR,
        &[chat_id.into(), operator_id.into()],
    )?;
    if row.is_empty() {
        return Ok(None);
    }
    locked_chat(&row.first()).map(Some)
}

/// Why a chat is not this operator's, read without a lock: an unknown chat, then an unknown
/// operator, is `P0002`; otherwise it is someone else's.
pub(super) fn unknown_chat_or_operator(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    operator_id: Uuid,
) -> ChatResult<()> {
    let row = exec(
        client,
        &PEEK_CHAT_FOR_OPERATOR,
        &[chat_id.into(), operator_id.into()],
    )?;
    if row.is_empty() {
        return Err(ChatError::ChatNotFound(chat_id));
    }
    if row.first().get::<bool>(4)? != Some(true) {
        return Err(ChatError::OperatorNotFound(operator_id));
    }
    Ok(())
}

/// The id in the first column of a statement that must return one (an id it just stored).
pub(super) fn returned<T: FromDatum + IntoDatum>(
    table: SpiTupleTable<'_>,
    what: &str,
) -> ChatResult<T> {
    table
        .first()
        .get_one::<T>()?
        .ok_or_else(|| ChatError::Internal(format!("{what} stored no row")))
}

/// The operator holding a locked chat, if it is assigned.
pub(super) fn holder(chat: &LockedChat) -> Option<Uuid> {
    (chat.state == ChatState::Assigned)
        .then_some(chat.assigned_operator_id)
        .flatten()
}

/// The message an earlier call with this idempotency key stored in the chat for this sender
/// (`operator`: `None` for the real user), if any.
pub(super) fn keyed_message(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    key: Option<&str>,
    operator: Option<Uuid>,
) -> ChatResult<Option<i64>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let sender = if operator.is_some() {
        "operator"
    } else {
        "real_user"
    };
    let found = exec(
        client,
        &FIND_KEYED_MESSAGE,
        &[chat_id.into(), key.into(), sender.into(), operator.into()],
    )?;
    if found.is_empty() {
        return Ok(None);
    }
    Ok(found.first().get_one::<i64>()?)
}

/// A new chat waiting in the queue of `team` (`None`: the queue without a team) with its
/// first message; announces `chat_started`. With an idempotency key this user already
/// started a chat with, that chat, and nothing written. An unknown team is `P0002`.
pub fn start_chat(
    real_user_id: Uuid,
    content: &str,
    key: Option<&str>,
    team: Option<Uuid>,
    priority: i32,
) -> ChatResult<Uuid> {
    connect_write(|client| {
        let started = exec(
            client,
            &START_CHAT,
            &[
                real_user_id.into(),
                content.into(),
                key.into(),
                team.into(),
                priority.into(),
            ],
        )?;
        if started.is_empty() {
            // The key's chat exists (ON CONFLICT waited for the call that made it to commit).
            if let Some(key) = key {
                let found = exec(
                    client,
                    &FIND_STARTED_CHAT,
                    &[real_user_id.into(), key.into()],
                )?;
                if !found.is_empty() {
                    return returned(found, "start_chat (its idempotency key)");
                }
            }
            // Else the team does not exist (the statement looked for it).
            if let Some(team) = team {
                return Err(ChatError::TeamNotFound(team));
            }
        }
        let chat = returned(started, "start_chat")?;
        heads::placed_now(team, priority);
        let place = Place { team, ..Place::NEW };
        announce(
            client,
            Changes::one(
                chat,
                None,
                place,
                None,
                ChatState::WaitingAssignment,
                "chat_started",
            ),
        )?;
        // The new chat is this call's alone (no one else can see it to lock it).
        push_chat(client, chat, team, None)?;
        Ok(chat)
    })
}

/// Stores the user's message under the chat lock; a chat not already waiting goes back to
/// the queue (announced as `real_user_message`). With an idempotency key the user already
/// sent in this chat, that message's id, and nothing written.
pub fn real_user_send_message(chat_id: Uuid, content: &str, key: Option<&str>) -> ChatResult<i64> {
    connect_write(|client| {
        if let Some(message) = keyed_message(client, chat_id, key, None)? {
            return Ok(message);
        }
        let chat = lock_chat(client, chat_id)?;
        // A call with the same key that committed while this one waited for the lock.
        if let Some(message) = keyed_message(client, chat_id, key, None)? {
            return Ok(message);
        }
        // The state it leaves, when it changes: the statement releases, and announces the
        // change (the chat waits from now on, not from an old waiting_since it kept).
        let changes = chat.state != ChatState::WaitingAssignment;
        let events = changes && event_in_statement();
        let stored = exec(
            client,
            &REAL_USER_MESSAGE,
            &[
                chat_id.into(),
                content.into(),
                key.into(),
                changes.then_some(chat.state.as_str()).into(),
                holder(&chat).into(),
                chat.place.since.into(),
                chat.place.team.into(),
                events.into(),
            ],
        )?
        .first();
        let (message, priority) = stored.get_two::<i64, i32>()?;
        let message = message
            .ok_or_else(|| ChatError::Internal("real_user_send_message stored no row".into()))?;
        if changes {
            // It waits from now on, at the end of its priority's part of the queue.
            heads::placed_now(chat.place.team, priority.unwrap_or(0));
            if events {
                after_events(client)?;
            }
            push_chat(client, chat_id, chat.place.team, chat.last_operator_id)?;
            if let Some(freed) = holder(&chat) {
                pull_for(client, freed, &[])?;
            }
        }
        Ok(message)
    })
}

/// Stores the assigned operator's reply (announced as `operator_replied`) or a follow-up by
/// the operator who answered (no state change); anyone else is refused. With an idempotency
/// key this operator already sent in this chat, that message's id, and nothing written
/// (whatever the chat's state now: the call it repeats succeeded).
pub fn operator_send_message(
    chat_id: Uuid,
    operator_id: Uuid,
    content: &str,
    key: Option<&str>,
) -> ChatResult<i64> {
    connect_write(|client| {
        if let Some(message) = keyed_message(client, chat_id, key, Some(operator_id))? {
            return Ok(message);
        }
        // Someone else's chat is refused without taking its lock.
        let Some(chat) = lock_own_chat(client, chat_id, operator_id)? else {
            unknown_chat_or_operator(client, chat_id, operator_id)?;
            return Err(ChatError::NotAssignedOperator {
                chat_id,
                operator_id,
            });
        };
        if let Some(message) = keyed_message(client, chat_id, key, Some(operator_id))? {
            return Ok(message);
        }
        // Assigned to this operator: its reply; else waiting for the user: a follow-up.
        let first_reply = chat.state == ChatState::Assigned;
        let message = if first_reply {
            // The statement announces the change (`operator_replied`).
            let events = event_in_statement();
            let message = exec(
                client,
                &OPERATOR_REPLY,
                &[
                    chat_id.into(),
                    operator_id.into(),
                    content.into(),
                    key.into(),
                    chat.place.since.into(),
                    chat.place.team.into(),
                    events.into(),
                ],
            )?;
            if events {
                after_events(client)?;
            }
            message
        } else {
            exec(
                client,
                &OPERATOR_FOLLOW_UP,
                &[
                    chat_id.into(),
                    operator_id.into(),
                    content.into(),
                    key.into(),
                ],
            )?
        };
        let message = returned(message, "operator_send_message")?;
        if first_reply {
            pull_for(client, operator_id, &[])?;
        }
        Ok(message)
    })
}

/// An operator as its lock (step 1) read it.
pub(super) struct LockedOperator {
    pub(super) is_active: bool,
    pub(super) max: i32,
    pub(super) row: pg_sys::ItemPointerData,
    pub(super) status: String,
    /// A member of some team: claims read the team queues too.
    pub(super) in_team: bool,
    /// `held_chat_ids`: the chats it may hold, which a claim looks up (`open_count!`).
    pub(super) held: Vec<Uuid>,
}

impl LockedOperator {
    /// The claim statement for this operator: one that reads no team table when it is a
    /// member of none (see [`CLAIM_NEXT_CHAT_NO_TEAM`]).
    fn claim_statement(&self) -> &'static Statement {
        if self.in_team {
            &CLAIM_NEXT_CHAT
        } else {
            &CLAIM_NEXT_CHAT_NO_TEAM
        }
    }
}

/// The claim statement's last parameters: where the queues it reads begin
/// (src/store/heads.rs), as [`LockedOperator::claim_statement`]'s statement takes them: the
/// heads of every queue of this database for a member of a team, else the head of the queue
/// without a team.
fn head_args(in_team: bool) -> Vec<DatumWithOid<'static>> {
    if in_team {
        let (keys, priorities, sinces) = heads::heads_here();
        vec![keys.into(), priorities.into(), sinces.into()]
    } else {
        let head = heads::head_of_no_team();
        vec![
            head.map(|h| h.priority).into(),
            head.map(|h| h.since_param()).into(),
        ]
    }
}

/// Locks an operator (step 1); an unknown one is `P0002`.
pub(super) fn lock_operator(
    client: &mut SpiClient<'_>,
    operator_id: Uuid,
) -> ChatResult<LockedOperator> {
    lock_operator_with(client, &LOCK_OPERATOR, operator_id)?
        .ok_or(ChatError::OperatorNotFound(operator_id))
}

/// The operator's row as `stmt` (a lock of step 1, waiting or `SKIP LOCKED`) returns it;
/// `None` when it returned no row.
fn lock_operator_with(
    client: &mut SpiClient<'_>,
    stmt: &'static Statement,
    operator_id: Uuid,
) -> ChatResult<Option<LockedOperator>> {
    let op = exec(client, stmt, &[operator_id.into()])?;
    if op.is_empty() {
        return Ok(None);
    }
    let op = op.first();
    let (is_active, max) = op.get_two::<bool, i32>()?;
    Ok(Some(LockedOperator {
        is_active: is_active == Some(true),
        max: max.unwrap_or(1),
        row: op
            .get::<pg_sys::ItemPointerData>(3)?
            .ok_or_else(|| ChatError::Internal("operator row without ctid".into()))?,
        status: op.get::<String>(4)?.unwrap_or_default(),
        in_team: op.get::<bool>(5)? != Some(false),
        held: op.get::<Vec<Uuid>>(6)?.unwrap_or_default(),
    }))
}

/// Locks the operator, then claims the next free chat in queue order from the queues it may
/// take from (announced as `assigned`); refuses an inactive or offline operator or one at
/// capacity. An `away` operator who asks is back: it becomes `online`.
pub fn assign_chat(operator_id: Uuid, avoid_same_operator: bool) -> ChatResult<Option<Uuid>> {
    connect_write(|client| {
        let operator = lock_operator(client, operator_id)?;
        let claim = operator.claim_statement();
        let in_team = operator.in_team;
        let LockedOperator {
            is_active,
            max,
            mut row,
            status,
            held,
            ..
        } = operator;
        if !is_active {
            return Err(ChatError::OperatorInactive(operator_id));
        }
        match status.as_str() {
            "online" => {}
            "away" => {
                // Back online: the update moves the row, and the claim finds it by its ctid.
                let moved = exec(
                    client,
                    &SET_OPERATOR_STATUS,
                    &[operator_id.into(), "online".into()],
                )?;
                if !moved.is_empty() {
                    if let Some(tid) = moved.first().get::<pg_sys::ItemPointerData>(1)? {
                        row = tid;
                    }
                }
            }
            _ => {
                return Err(ChatError::OperatorNotOnline {
                    operator_id,
                    status,
                })
            }
        }
        // The claim announces what it takes (`assigned`).
        let events = event_in_statement();
        let args = || -> [DatumWithOid<'static>; 9] {
            [
                operator_id.into(),
                max.into(),
                avoid_same_operator.into(),
                row.into(),
                false.into(),
                false.into(),
                Vec::<Uuid>::new().into(),
                "assigned".into(),
                events.into(),
            ]
        };
        // With a head known, its range first, in a statement a fraction of the full claim's
        // size; the full claim when that takes nothing (see CLAIM_HEAD_NO_TEAM).
        let head = if in_team {
            None
        } else {
            heads::head_of_no_team()
        };
        let mut claimed = None;
        if let Some(head) = head {
            let fast = claim_with(
                client,
                &CLAIM_HEAD_NO_TEAM,
                args().into_iter().chain([
                    head.priority.into(),
                    head.since_param().into(),
                    held.clone().into(),
                ]),
            )?;
            if fast.chat.is_some() || fast.open >= i64::from(max) {
                claimed = Some(fast);
            }
        }
        let Claimed { open, chat, .. } = match claimed {
            Some(claimed) => claimed,
            None => claim_with(
                client,
                claim,
                args()
                    .into_iter()
                    .chain(head_args(in_team))
                    .chain([held.into()]),
            )?,
        };
        if open >= i64::from(max) {
            return Err(ChatError::OperatorAtCapacity {
                operator_id,
                active: open,
                max,
            });
        }
        if chat.is_some() && events {
            after_events(client)?;
        }
        Ok(chat)
    })
}

/// What a claim statement did: the chats the operator held before it, the chat it took, and
/// where the operator's row is after it and its new `held_chat_ids` (when it took a chat).
struct Claimed {
    open: i64,
    chat: Option<Uuid>,
    row: Option<pg_sys::ItemPointerData>,
    held: Vec<Uuid>,
}

/// Runs a claim statement. A chat taken without the update of the operator's row (the
/// `ctid` passed was not the row's: a version this transaction's own update replaced) would
/// leave the chat out of the operator's `held_chat_ids`: an error, which undoes the claim.
fn claim_with<'a>(
    client: &mut SpiClient<'_>,
    stmt: &'static Statement,
    args: impl Iterator<Item = DatumWithOid<'a>>,
) -> ChatResult<Claimed> {
    let args: Vec<_> = args.collect();
    let claimed = exec(client, stmt, &args)?;
    let claimed = claimed.first();
    let (open, chat) = claimed.get_two::<i64, Uuid>()?;
    let row = claimed.get::<pg_sys::ItemPointerData>(3)?;
    if chat.is_some() && row.is_none() {
        return Err(ChatError::Internal(
            "the claim did not find the operator's row at its ctid".into(),
        ));
    }
    Ok(Claimed {
        open: open.unwrap_or(0),
        chat,
        row,
        held: claimed.get::<Vec<Uuid>>(4)?.unwrap_or_default(),
    })
}

/// Puts locked chats that are still assigned back in the queue and announces it; returns
/// how many it released. Each chat comes with where it was, as its lock read it.
pub(super) fn release_locked(
    client: &mut SpiClient<'_>,
    locked: &[(Uuid, Place)],
    reason: &str,
) -> ChatResult<usize> {
    let ids: Vec<Uuid> = locked.iter().map(|(chat, _)| *chat).collect();
    // By id, not searched per row: an idle pass or a deactivation releases thousands.
    let places: std::collections::HashMap<Uuid, Place> = locked.iter().copied().collect();
    let mut released = Vec::with_capacity(locked.len());
    for row in exec(client, &RELEASE_TO_QUEUE, &[ids.into(), reason.into()])? {
        if let Some(chat) = row.get::<Uuid>(1)? {
            let place = places.get(&chat).copied().unwrap_or(Place::NEW);
            released.push((chat, row.get::<Uuid>(2)?, place));
        }
    }
    let count = released.len();
    if count > 0 {
        // Back in their queues at their old places, which may be before the heads.
        heads::placed_anywhere();
    }
    // Pushed in queue order (the oldest waiting first), as a claim would take them.
    let mut in_order: Vec<&(Uuid, Option<Uuid>, Place)> = released.iter().collect();
    in_order.sort_by(|a, b| {
        let key = |r: &(Uuid, Option<Uuid>, Place)| r.2.waiting_since.map(i64::from);
        (key(a).is_none(), key(a), a.0).cmp(&(key(b).is_none(), key(b), b.0))
    });
    let pushed: Vec<(Uuid, Option<Uuid>, Option<Uuid>)> = in_order
        .into_iter()
        .map(|(chat, operator, place)| (*chat, place.team, *operator))
        .collect();
    announce(
        client,
        Changes {
            old: Some(ChatState::Assigned),
            new: ChatState::WaitingAssignment,
            reason,
            chats: released,
        },
    )?;
    // Back in the queue: where the routing pushes, to another operator. Never to one that
    // lost a chat in this same release: an idle, offline, inactive or removed operator, or
    // the one an admin took the chat from.
    let released_from: Vec<Uuid> = pushed.iter().filter_map(|(_, _, op)| *op).collect();
    let mut routed = Vec::with_capacity(pushed.len());
    for (chat, team, last_operator) in pushed {
        let routing = routing_of(client, team)?;
        if routing != Routing::Manual {
            routed.push((chat, team, routing, last_operator));
        }
    }
    if !routed.is_empty() {
        // All the pushes in one subtransaction, not one each: a subtransaction that writes
        // takes a transaction id of its own, and past 64 of them in one transaction every
        // snapshot taken meanwhile must look them up in pg_subtrans. Undone, every chat of
        // this release stays waiting.
        in_subtransaction(client, None, |client| {
            for (chat, team, routing, last_operator) in routed {
                push_to_candidate(client, chat, team, routing, last_operator, &released_from)?;
            }
            Ok(())
        })?
        .ok();
    }
    Ok(count)
}

/// Puts an assigned chat back in the queue with `reason`; false for any other state.
pub fn release_and_reassign_chat(chat_id: Uuid, reason: &str) -> ChatResult<bool> {
    connect_write(|client| {
        let chat = lock_chat(client, chat_id)?;
        if chat.state != ChatState::Assigned {
            return Ok(false);
        }
        let released = release_locked(client, &[(chat_id, chat.place)], reason)? == 1;
        if let Some(freed) = holder(&chat) {
            pull_for(client, freed, &[chat_id])?;
        }
        Ok(released)
    })
}

/// Refreshes the heartbeat of the operator holding the chat; false if they do not hold it.
pub fn touch_operator_activity(operator_id: Uuid, chat_id: Uuid) -> ChatResult<bool> {
    connect_write(|client| {
        // Someone else's chat is answered without taking its lock. This operator's is
        // locked first, like every call that writes a chat (chat, then assignment: no
        // deadlock with a release or a reply in the same transaction).
        let Some(chat) = lock_own_chat(client, chat_id, operator_id)? else {
            unknown_chat_or_operator(client, chat_id, operator_id)?;
            return Ok(false);
        };
        if chat.state != ChatState::Assigned {
            return Ok(false);
        }
        Ok(!exec(
            client,
            &TOUCH_ACTIVITY,
            &[operator_id.into(), chat_id.into()],
        )?
        .is_empty())
    })
}

/// A chat released for idleness: (chat, operator, seconds since its last heartbeat).
pub type IdleRelease = (Uuid, Uuid, f64);

/// Releases every assigned chat whose heartbeat is older than `idle_seconds`, passing over
/// rows others hold; announced as `idle_timeout`. An operator in a pushed queue left with no
/// chat becomes `away`: it stopped answering, and automatic assignment must not keep
/// handing it chats (asking for one, or setting its status, makes it online again).
pub fn release_idle_assignments(idle_seconds: f64) -> ChatResult<Vec<IdleRelease>> {
    connect_write(|client| {
        // SKIP LOCKED can still wait (see `in_subtransaction`), here while holding the chats
        // the scan locked before: undone, this pass releases nothing and the next one does.
        let (idle, locked) = in_subtransaction(client, None, |client| {
            let mut idle = Vec::new();
            let mut locked = Vec::new();
            for row in exec(client, &LOCK_IDLE_CHATS, &[idle_seconds.into()])? {
                if let (Some(chat), Some(op)) = (row.get::<Uuid>(1)?, row.get::<Uuid>(2)?) {
                    idle.push((chat, op, row.get::<f64>(3)?.unwrap_or(0.0)));
                    locked.push((chat, Place::read(&row, 4)?));
                }
            }
            Ok((idle, locked))
        })?
        .unwrap_or_default();
        if !locked.is_empty() {
            release_locked(client, &locked, "idle_timeout")?;
            let mut operators: Vec<Uuid> = idle.iter().map(|(_, op, _)| *op).collect();
            operators.sort();
            operators.dedup();
            let default_pushes = crate::guc::DEFAULT_ROUTING.get() != Routing::Manual;
            // Operators after chats, SKIP LOCKED: undone on a deadlock like the pushes.
            in_subtransaction(client, None, |client| {
                exec(
                    client,
                    &MARK_IDLE_AWAY,
                    &[operators.into(), default_pushes.into()],
                )
                .map(|_| ())
            })?
            .ok();
        }
        Ok(idle)
    })
}

/// Ends a chat (announced as `completed`); false when it already was.
pub fn complete_chat(chat_id: Uuid) -> ChatResult<bool> {
    connect_write(|client| {
        let chat = lock_chat(client, chat_id)?;
        if chat.state == ChatState::Completed {
            return Ok(false);
        }
        exec(client, &COMPLETE_CHAT, &[chat_id.into()])?;
        let change = Changes::one(
            chat_id,
            holder(&chat),
            chat.place,
            Some(chat.state),
            ChatState::Completed,
            "completed",
        );
        announce(client, change)?;
        if let Some(freed) = holder(&chat) {
            pull_for(client, freed, &[])?;
        }
        Ok(true)
    })
}

// ---------------------------------------------------------------- automatic assignment

/// How chats of a queue (`team`, or the queue without a team) reach operators.
pub(super) fn routing_of(client: &mut SpiClient<'_>, team: Option<Uuid>) -> ChatResult<Routing> {
    let Some(team) = team else {
        return Ok(crate::guc::DEFAULT_ROUTING.get());
    };
    let row = exec(client, &TEAM_ROUTING, &[team.into()])?;
    if row.is_empty() {
        return Ok(Routing::Manual);
    }
    Ok(Routing::parse(
        &row.first().get_one::<String>()?.unwrap_or_default(),
    ))
}

/// How many operators a push tries before it leaves the chat waiting: the first candidate
/// is almost always right; a few more cover those whose room ran out between the snapshot
/// and the lock.
const PUSH_TRIES: usize = 3;

/// A chat that has just started waiting (locked by this call, or created by it) in a queue
/// whose routing pushes is given to the operator the routing picks, in this call, and
/// announced as `auto_assigned`. Operators in the middle of a call of their own are passed
/// by (this call holds the chat's lock and so must not wait for an operator's): such an
/// operator pulls the chat itself if its call frees room, else the worker's next pass or the
/// next call that frees an operator gives it. Returns the operator, if any.
pub(super) fn push_chat(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    team: Option<Uuid>,
    last_operator: Option<Uuid>,
) -> ChatResult<Option<Uuid>> {
    push_chat_except(client, chat_id, team, last_operator, &[])
}

/// [`push_chat`], never to one of `excluded`.
pub(super) fn push_chat_except(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    team: Option<Uuid>,
    last_operator: Option<Uuid>,
    excluded: &[Uuid],
) -> ChatResult<Option<Uuid>> {
    let routing = routing_of(client, team)?;
    if routing == Routing::Manual {
        return Ok(None);
    }
    // The caller holds the chat: the operator's lock is taken out of order, so the push runs
    // where a wait that closes a deadlock undoes it (see `in_subtransaction`). Undone, the
    // chat stays waiting, as when every candidate is busy.
    let pushed = in_subtransaction(client, None, |client| {
        push_to_candidate(client, chat_id, team, routing, last_operator, excluded)
    })?;
    Ok(pushed.unwrap_or(None))
}

/// The push itself: the first candidate that fits gets the chat.
fn push_to_candidate(
    client: &mut SpiClient<'_>,
    chat_id: Uuid,
    team: Option<Uuid>,
    routing: Routing,
    last_operator: Option<Uuid>,
    excluded: &[Uuid],
) -> ChatResult<Option<Uuid>> {
    let avoid = crate::guc::AVOID_SAME_OPERATOR.get();
    let mut tried: Vec<Uuid> = excluded.to_vec();
    let mut tries = 0;
    while tries < PUSH_TRIES {
        tries += 1;
        let candidate = exec(
            client,
            &PUSH_CANDIDATE,
            &[
                team.into(),
                (routing == Routing::RoundRobin).into(),
                avoid.into(),
                last_operator.into(),
                tried.clone().into(),
            ],
        )?;
        if candidate.is_empty() {
            return Ok(None);
        }
        let Some(operator) = candidate.first().get_one::<Uuid>()? else {
            return Ok(None);
        };
        let fits = exec(client, &OPERATOR_FIT, &[operator.into(), team.into()])?
            .first()
            .get_one::<bool>()?
            == Some(true);
        if fits {
            let assigned = exec(
                client,
                &ASSIGN_WAITING_CHAT,
                &[chat_id.into(), operator.into()],
            )?;
            let assigned = assigned.first();
            if assigned.get::<Uuid>(1)?.is_none() {
                return Ok(None);
            }
            let place = Place {
                since: assigned.get::<TimestampWithTimeZone>(2)?,
                waiting_since: assigned.get::<TimestampWithTimeZone>(3)?,
                team,
            };
            announce(
                client,
                Changes::one(
                    chat_id,
                    Some(operator),
                    place,
                    Some(ChatState::WaitingAssignment),
                    ChatState::Assigned,
                    "auto_assigned",
                ),
            )?;
            return Ok(Some(operator));
        }
        tried.push(operator);
    }
    Ok(None)
}

/// An operator whose capacity this call freed (or who came online, was activated or joined
/// a team) is given the next chats it may take from queues whose routing pushes, up to its
/// capacity, in this call (announced as `auto_assigned`). Its row is locked only if no one
/// else holds it: this call may hold a chat's lock already, so it must not wait (step 1
/// after step 2); the holder of the operator's lock is either making the operator's own
/// call (which assigns what it can) or changing what it may hold. Chats in `except` (just
/// taken from this operator by the same call) are passed over. Returns how many chats.
pub(super) fn pull_for(
    client: &mut SpiClient<'_>,
    operator_id: Uuid,
    except: &[Uuid],
) -> ChatResult<usize> {
    let default_pushes = crate::guc::DEFAULT_ROUTING.get() != Routing::Manual;
    if !default_pushes
        && exec(client, &IN_PUSH_TEAM, &[operator_id.into()])?
            .first()
            .get_one::<bool>()?
            != Some(true)
    {
        return Ok(0);
    }
    // The caller may hold chats: the operator's lock and the chats' are taken out of order,
    // so the pull runs where a wait that closes a deadlock undoes it (see
    // `in_subtransaction`). Undone, it gave nothing; the worker's pass gives it.
    let given = in_subtransaction(client, None, |client| {
        pull_now(client, operator_id, except, default_pushes)
    })?;
    Ok(given.unwrap_or(0))
}

/// The pull itself, for [`pull_for`].
fn pull_now(
    client: &mut SpiClient<'_>,
    operator_id: Uuid,
    except: &[Uuid],
    default_pushes: bool,
) -> ChatResult<usize> {
    let Some(operator) = lock_operator_with(client, &LOCK_OPERATOR_IF_FREE, operator_id)? else {
        return Ok(0);
    };
    let claim = operator.claim_statement();
    let in_team = operator.in_team;
    let LockedOperator {
        is_active,
        max,
        mut row,
        status,
        mut held,
        ..
    } = operator;
    if !is_active || status != "online" {
        return Ok(0);
    }
    let avoid = crate::guc::AVOID_SAME_OPERATOR.get();
    let mut given = 0;
    loop {
        // The claim announces what it takes (`auto_assigned`).
        let events = event_in_statement();
        let claimed = claim_with(
            client,
            claim,
            [
                operator_id.into(),
                max.into(),
                avoid.into(),
                row.into(),
                true.into(),
                default_pushes.into(),
                except.to_vec().into(),
                "auto_assigned".into(),
                events.into(),
            ]
            .into_iter()
            .chain(head_args(in_team))
            .chain([held.clone().into()]),
        )?;
        let (Some(_), Some(moved)) = (claimed.chat, claimed.row) else {
            return Ok(given);
        };
        // The claim updated the operator's row: the next one finds it where it is now, with
        // the list it wrote.
        row = moved;
        held = claimed.held;
        if events {
            after_events(client)?;
        }
        given += 1;
        if claimed.open + 1 >= i64::from(max) {
            return Ok(given);
        }
    }
}

/// The worker's assignment pass: every active, online operator with room in a pushed queue
/// pulls what waits there. Catches the chats a push passed by (its candidates were in the
/// middle of calls of their own) and queues whose routing was just switched to a push.
pub fn assign_waiting_chats() -> ChatResult<usize> {
    connect_write(|client| {
        let default_pushes = crate::guc::DEFAULT_ROUTING.get() != Routing::Manual;
        let mut operators = Vec::new();
        for row in exec(client, &PUSH_SWEEP, &[default_pushes.into()])? {
            if let Some(id) = row.get::<Uuid>(1)? {
                operators.push(id);
            }
        }
        // Every operator of the pass pulls in one subtransaction (see release_locked); PUSH_SWEEP
        // chose only operators of pushed queues. Undone, the next pass gives what it would have.
        let given = in_subtransaction(client, None, |client| {
            let mut given = 0;
            for operator in operators {
                given += pull_now(client, operator, &[], default_pushes)?;
            }
            Ok(given)
        })?;
        Ok(given.unwrap_or(0))
    })
}

//! Teams, presence, transfers and queue positions.

use super::{acting_as, non_blank, required, TextKind};
use crate::error::{echo, ApiResult, ChatError, ChatResult};
use crate::store::{self, TransferTarget};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::Uuid;

/// The routings a team may have (`22023` otherwise).
const ROUTINGS: [&str; 3] = ["manual", "least_loaded", "round_robin"];

/// The presences an operator may have (`22023` otherwise).
const STATUSES: [&str; 3] = ["online", "away", "offline"];

/// One of `allowed`: NULL is `22004`, anything else `22023`.
fn one_of<'a>(value: Option<&'a str>, name: &'static str, allowed: &[&str]) -> ChatResult<&'a str> {
    let value = required(value, name)?;
    if allowed.contains(&value) {
        return Ok(value);
    }
    Err(ChatError::InvalidParameter(format!(
        "{name} must be one of {}, not \"{}\"",
        allowed.join(", "),
        echo(value)
    )))
}

/// Creates a team whose chats only its members take. `p_routing` says how chats reach
/// them: `manual` (they ask, with `assign_chat_to_operator`), `least_loaded` or
/// `round_robin`. A name another team has is `23505`. Returns the team id.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn create_team(
    p_name: Option<&str>,
    p_routing: default!(Option<&str>, "'manual'"),
) -> ApiResult<Uuid> {
    let name = non_blank(p_name, "p_name", TextKind::Name)?;
    let routing = one_of(p_routing, "p_routing", &ROUTINGS)?;
    Ok(store::create_team(name, routing)?)
}

/// Sets a team's routing. Returns false when it already was that.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn set_team_routing(p_team_id: Option<Uuid>, p_routing: Option<&str>) -> ApiResult<bool> {
    let team = required(p_team_id, "p_team_id")?;
    let routing = one_of(p_routing, "p_routing", &ROUTINGS)?;
    Ok(store::set_team_routing(team, routing)?)
}

/// Makes the operator a member of the team: it may take the team's chats. Returns false
/// when it already was one.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn add_team_member(p_team_id: Option<Uuid>, p_operator_id: Option<Uuid>) -> ApiResult<bool> {
    let team = required(p_team_id, "p_team_id")?;
    let operator = required(p_operator_id, "p_operator_id")?;
    Ok(store::add_team_member(team, operator)?)
}

/// Takes the operator out of the team; the team's chats it holds go back to the queue,
/// each keeping its place (reason `removed_from_team`). Returns false when it was not a
/// member.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn remove_team_member(p_team_id: Option<Uuid>, p_operator_id: Option<Uuid>) -> ApiResult<bool> {
    let team = required(p_team_id, "p_team_id")?;
    let operator = required(p_operator_id, "p_operator_id")?;
    Ok(store::remove_team_member(team, operator)?)
}

/// Sets the operator's presence: `online`, `away` or `offline`, and returns the previous
/// one. Only online operators are given chats; going offline releases every chat the
/// operator holds back to the queue, each keeping its place (reason `operator_offline`).
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn set_operator_status(
    p_operator_id: Option<Uuid>,
    p_status: Option<&str>,
) -> ApiResult<String> {
    let operator = required(p_operator_id, "p_operator_id")?;
    let status = one_of(p_status, "p_status", &STATUSES)?;
    acting_as(operator)?;
    Ok(store::set_operator_status(operator, status)?)
}

/// Hands a chat on: to an operator (exactly one of `p_to_operator_id`, `p_to_team_id`, else
/// `22023`) who is online and active, a member of the chat's team if it has one, and has
/// room (else `55000`, nothing changes): the chat is assigned to them; or to a team: the
/// chat goes back to the queue of that team keeping its `waiting_since` (a chat waiting for
/// its user's reply will queue there). Recorded in `chat_transfers` with `p_reason`. Returns
/// false, changing nothing, when the chat is completed or already where it is sent.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn transfer_chat(
    p_chat_id: Option<Uuid>,
    p_to_operator_id: default!(Option<Uuid>, "NULL"),
    p_to_team_id: default!(Option<Uuid>, "NULL"),
    p_reason: default!(Option<&str>, "'transfer'"),
) -> ApiResult<bool> {
    let chat = required(p_chat_id, "p_chat_id")?;
    let target = match (p_to_operator_id, p_to_team_id) {
        (Some(operator), None) => TransferTarget::Operator(operator),
        (None, Some(team)) => TransferTarget::Team(team),
        _ => {
            return Err(ChatError::InvalidParameter(
                "give exactly one of p_to_operator_id and p_to_team_id".into(),
            )
            .into())
        }
    };
    let reason = non_blank(p_reason, "p_reason", TextKind::Reason)?;
    Ok(store::transfer_chat(chat, target, reason)?)
}

/// Sets a chat's priority (higher is taken first). Returns false when it already was that.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn set_chat_priority(p_chat_id: Option<Uuid>, p_priority: Option<i32>) -> ApiResult<bool> {
    let chat = required(p_chat_id, "p_chat_id")?;
    let priority = required(p_priority, "p_priority")?;
    Ok(store::set_chat_priority(chat, priority)?)
}

/// For a waiting chat, its place among the waiting chats of its team (or among the chats
/// without a team): `queue_position` 1 is next, `waiting_ahead` chats come before it, and
/// `estimated_wait_seconds` is the position divided by the rate at which that queue was
/// served lately (NULL without recent assignments). NULLs when the chat is not waiting.
/// Counted exactly: the cost grows with the position, not with the queue.
// The column names live in the `name!` tuple, which pg_extern must see spelled out.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_restricted, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn get_queue_position(
    p_chat_id: Option<Uuid>,
) -> Result<
    TableIterator<
        'static,
        (
            name!(queue_position, Option<i32>),
            name!(waiting_ahead, Option<i32>),
            name!(estimated_wait_seconds, Option<f64>),
        ),
    >,
    ErrorReport,
> {
    let chat = required(p_chat_id, "p_chat_id")?;
    let row = match store::queue_position(chat)? {
        Some((position, ahead, estimate)) => (Some(position), Some(ahead), estimate),
        None => (None, None, None),
    };
    Ok(TableIterator::once(row))
}

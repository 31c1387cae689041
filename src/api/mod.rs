//! The SQL functions of the extension, one module per API area. Each entry point is thin:
//! it turns its (nullable) arguments into checked values and hands over to `crate::store`.
//!
//! Every parameter is an `Option` so that pgrx does not mark the function STRICT: a NULL
//! argument must raise `22004`, not silently return NULL. Every function runs under
//! `SECURITY DEFINER` with `SET search_path = pg_catalog, pg_temp` (see `store::queries`).

pub mod assignment;
pub mod chats;
pub mod events;
pub mod monitoring;
pub mod operators;

use crate::error::{ChatError, ChatResult};
use crate::guc;
use pgrx::Uuid;

/// A required argument: NULL is `22004`.
fn required<T>(value: Option<T>, name: &'static str) -> ChatResult<T> {
    value.ok_or(ChatError::NullArgument(name))
}

/// Text that must say something: NULL is `22004`, empty or only white space is `22023`.
fn non_blank<'a>(value: Option<&'a str>, name: &'static str) -> ChatResult<&'a str> {
    let text = required(value, name)?;
    if text.trim().is_empty() {
        return Err(ChatError::InvalidParameter(format!(
            "{name} must not be empty or blank"
        )));
    }
    Ok(text)
}

/// Checks that the caller may act as this operator, after the arguments were validated:
/// with `chat_assign.operator_id_claim` set, anything but the operator named by that claim
/// of the caller's JWT (`request.jwt.claims`, as PostgREST sets it per request) is `42501`.
/// Missing or unreadable claims are refused too: the check fails closed.
fn acting_as(operator_id: Uuid) -> ChatResult<Uuid> {
    let Some(claim) = guc::text(&guc::OPERATOR_ID_CLAIM) else {
        return Ok(operator_id);
    };
    let refuse = |reason: String| ChatError::NotClaimedOperator {
        operator_id,
        reason,
    };
    let claims = guc::setting(c"request.jwt.claims")
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| refuse("request.jwt.claims is not set".into()))?;
    let claims: serde_json::Value = serde_json::from_str(&claims)
        .map_err(|_| refuse("request.jwt.claims is not valid JSON".into()))?;
    match claims.get(&claim) {
        Some(serde_json::Value::String(id))
            if id.eq_ignore_ascii_case(&operator_id.to_string()) =>
        {
            Ok(operator_id)
        }
        Some(serde_json::Value::String(id)) => Err(refuse(format!(
            "the JWT claim \"{claim}\" names operator {id}"
        ))),
        _ => Err(refuse(format!(
            "request.jwt.claims has no string claim \"{claim}\""
        ))),
    }
}

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
pub mod teams;

use crate::error::{echo, ChatError, ChatResult};
use crate::guc;
use pgrx::Uuid;

/// A required argument: NULL is `22004`.
fn required<T>(value: Option<T>, name: &'static str) -> ChatResult<T> {
    value.ok_or(ChatError::NullArgument(name))
}

/// The kinds of text the API stores, each with its length limit (a SUSET setting, so the
/// role an app calls as cannot raise it for itself).
#[derive(Clone, Copy)]
pub enum TextKind {
    /// A message's content (`chat_assign.max_message_length`).
    Message,
    /// A release reason (`chat_assign.max_reason_length`).
    Reason,
    /// An operator's name (`chat_assign.max_name_length`).
    Name,
}

impl TextKind {
    fn limit(self) -> (i32, &'static str) {
        match self {
            TextKind::Message => (
                guc::MAX_MESSAGE_LENGTH.get(),
                "chat_assign.max_message_length",
            ),
            TextKind::Reason => (
                guc::MAX_REASON_LENGTH.get(),
                "chat_assign.max_reason_length",
            ),
            TextKind::Name => (guc::MAX_NAME_LENGTH.get(), "chat_assign.max_name_length"),
        }
    }
}

/// A character that shows nothing: white space, control characters, and the invisible
/// format characters (zero-width space and joiners, byte-order mark, direction marks,
/// soft hyphen, variation selectors, Hangul fillers and the like).
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// Text that must say something: NULL is `22004`; empty, or made only of characters that
/// show nothing, or longer than its kind's limit (in characters) is `22023`.
fn non_blank<'a>(
    value: Option<&'a str>,
    name: &'static str,
    kind: TextKind,
) -> ChatResult<&'a str> {
    let text = required(value, name)?;
    if text.chars().all(invisible) {
        return Err(ChatError::InvalidParameter(format!(
            "{name} must not be empty or blank"
        )));
    }
    let (limit, setting) = kind.limit();
    let length = text.chars().count();
    if length > usize::try_from(limit).unwrap_or(0) {
        return Err(ChatError::InvalidParameter(format!(
            "{name} is {length} characters long; the limit is {limit} ({setting})"
        )));
    }
    Ok(text)
}

/// Longest idempotency key, in characters.
const MAX_KEY_LENGTH: usize = 200;

/// An optional idempotency key: NULL is none; given, it must say something and be at most
/// [`MAX_KEY_LENGTH`] characters (`22023`).
fn idempotency_key(value: Option<&str>) -> ChatResult<Option<&str>> {
    let Some(key) = value else {
        return Ok(None);
    };
    if key.chars().all(invisible) {
        return Err(ChatError::InvalidParameter(
            "p_idempotency_key must not be empty or blank".into(),
        ));
    }
    let length = key.chars().count();
    if length > MAX_KEY_LENGTH {
        return Err(ChatError::InvalidParameter(format!(
            "p_idempotency_key is {length} characters long; the limit is {MAX_KEY_LENGTH}"
        )));
    }
    Ok(Some(key))
}

/// The longest threshold an age argument may give: 100 years as PostgreSQL counts an
/// interval (1,200 months of 30 days; 864,000 hours). Far beyond it the time it names is out
/// of the range of timestamps, which would be `22008` from deep inside a statement.
const MAX_AGE_SECONDS: f64 = 36_000.0 * 86_400.0;

/// Checks that the caller may act as this operator, after the arguments were validated:
/// in a call that carries JWT claims (`request.jwt.claims`, as PostgREST sets them per
/// request), anything but the operator named by the claim `chat_assign.operator_id_claim`
/// (`sub` unless the DBA changed it; empty: no check) is `42501`, and so are claims that are
/// not JSON or lack that claim: through an RPC layer the check fails closed. A session
/// without claims is a direct SQL connection, whose database role is its identity (such a
/// role could set any claims itself): not checked.
fn acting_as(operator_id: Uuid) -> ChatResult<Uuid> {
    let Some(claim) = guc::text(&guc::OPERATOR_ID_CLAIM) else {
        return Ok(operator_id);
    };
    let refuse = |reason: String| ChatError::NotClaimedOperator {
        operator_id,
        reason,
    };
    let Some(claims) = guc::setting(c"request.jwt.claims").filter(|text| !text.trim().is_empty())
    else {
        return Ok(operator_id);
    };
    let claims: serde_json::Value = serde_json::from_str(&claims)
        .map_err(|_| refuse("request.jwt.claims is not valid JSON".into()))?;
    match claims.get(&claim) {
        Some(serde_json::Value::String(id))
            if id.eq_ignore_ascii_case(&operator_id.to_string()) =>
        {
            Ok(operator_id)
        }
        Some(serde_json::Value::String(id)) => Err(refuse(format!(
            "the JWT claim \"{}\" names operator {}",
            echo(&claim),
            echo(id)
        ))),
        _ => Err(refuse(format!(
            "request.jwt.claims has no string claim \"{}\"",
            echo(&claim)
        ))),
    }
}

#[cfg(test)]
mod unit {
    use super::invisible;

    #[test]
    fn text_made_of_invisible_characters_counts_as_blank() {
        for blank in [
            " \t\n",
            "\u{200B}\u{FEFF}",
            "\u{200D}\u{1}\u{7F}",
            "\u{A0}\u{2060}",
            "\u{E0020}",
        ] {
            assert!(blank.chars().all(invisible), "{blank:?}");
        }
        for visible in ["a", "\u{200B}x", "é", "😀", "\u{200D}\u{1F469}"] {
            assert!(!visible.chars().all(invisible), "{visible:?}");
        }
    }
}

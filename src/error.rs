//! The one error type of the extension. Each variant has exactly one SQLSTATE, which is the
//! contract clients match on (the message is for humans and names the ids involved).
//!
//! | variant | SQLSTATE |
//! |---|---|
//! | `NullArgument` | `22004` null_value_not_allowed |
//! | `InvalidParameter` | `22023` invalid_parameter_value |
//! | `ChatNotFound`, `OperatorNotFound`, `TeamNotFound` | `P0002` no_data_found |
//! | `OperatorAtCapacity`, `OperatorInactive`, `OperatorNotOnline`, `NotAssignedOperator`, `NotTeamMember` | `55000` object_not_in_prerequisite_state |
//! | `TeamNameTaken` | `23505` unique_violation |
//! | `NotClaimedOperator` | `42501` insufficient_privilege |
//! | `ReadOnlyStandby` | `25006` read_only_sql_transaction |
//! | `Internal` | `XX000` internal_error (a bug in the extension, never a user error) |
//!
//! Every function validates and locks before it writes, and Postgres aborts the statement
//! on ERROR, so a call that raises one of these has changed nothing.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgSqlErrorCode, Uuid};
use std::fmt;

#[derive(Debug)]
pub enum ChatError {
    /// A required argument was SQL NULL (the functions are not STRICT so that NULL is an
    /// error instead of a silent NULL result).
    NullArgument(&'static str),
    /// Blank content or name, non-positive hours or interval, capacity below 1.
    InvalidParameter(String),
    ChatNotFound(Uuid),
    OperatorNotFound(Uuid),
    TeamNotFound(Uuid),
    /// Another team has this name.
    TeamNameTaken(String),
    /// The operator already holds `max_concurrent_chats` open assignments.
    OperatorAtCapacity {
        operator_id: Uuid,
        active: i64,
        max: i32,
    },
    OperatorInactive(Uuid),
    /// The operator is `offline` (asking for a chat), or not `online` (a transfer to it).
    OperatorNotOnline {
        operator_id: Uuid,
        status: String,
    },
    /// A chat of a team goes only to that team's members.
    NotTeamMember {
        operator_id: Uuid,
        team_id: Uuid,
    },
    /// Only the operator assigned to a chat (or, while it waits for the user, the operator
    /// who answered it) may write into it.
    NotAssignedOperator {
        chat_id: Uuid,
        operator_id: Uuid,
    },
    /// `chat_assign.operator_id_claim` is set and the caller's JWT does not name this
    /// operator (or carries no such claim): one operator may not act as another.
    NotClaimedOperator {
        operator_id: Uuid,
        reason: String,
    },
    /// The library was replaced by a newer one, but `ALTER EXTENSION chat_assign UPDATE`
    /// has not run in this database yet: the tables still have the old version's shape.
    UpdatePending {
        installed: String,
    },
    /// A call that writes, on a hot standby (which answers the monitoring only).
    ReadOnlyStandby,
    /// An SPI failure or a statement that returned no row where it must: a bug.
    Internal(String),
}

pub type ChatResult<T> = Result<T, ChatError>;

/// How much of a caller's text an error message repeats: enough to recognise it, never so
/// much that a huge argument makes a huge error (and server log line) on every call.
const ECHO_CHARS: usize = 64;

/// A caller's text as an error message quotes it: the first [`ECHO_CHARS`] characters, and
/// how long it was when that is not all of it.
pub fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
    }
}

impl ChatError {
    /// The one SQLSTATE of this variant (the table above).
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            ChatError::NullArgument(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ChatError::InvalidParameter(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            ChatError::ChatNotFound(_)
            | ChatError::OperatorNotFound(_)
            | ChatError::TeamNotFound(_) => ERRCODE_NO_DATA_FOUND,
            ChatError::TeamNameTaken(_) => ERRCODE_UNIQUE_VIOLATION,
            ChatError::OperatorAtCapacity { .. }
            | ChatError::OperatorInactive(_)
            | ChatError::OperatorNotOnline { .. }
            | ChatError::NotAssignedOperator { .. }
            | ChatError::NotTeamMember { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ChatError::NotClaimedOperator { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            ChatError::UpdatePending { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            ChatError::ReadOnlyStandby => ERRCODE_READ_ONLY_SQL_TRANSACTION,
            ChatError::Internal(_) => ERRCODE_INTERNAL_ERROR,
        }
    }
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::NullArgument(name) => write!(f, "{name} must not be NULL"),
            ChatError::InvalidParameter(msg) => f.write_str(msg),
            ChatError::ChatNotFound(id) => write!(f, "chat {id} does not exist"),
            ChatError::OperatorNotFound(id) => write!(f, "operator {id} does not exist"),
            ChatError::TeamNotFound(id) => write!(f, "team {id} does not exist"),
            ChatError::TeamNameTaken(name) => {
                write!(f, "a team named \"{}\" already exists", echo(name))
            }
            ChatError::OperatorNotOnline {
                operator_id,
                status,
            } => write!(f, "operator {operator_id} is {status}, not online"),
            ChatError::NotTeamMember {
                operator_id,
                team_id,
            } => write!(
                f,
                "operator {operator_id} is not a member of team {team_id}, whose chat this is"
            ),
            ChatError::OperatorAtCapacity { operator_id, active, max } => write!(
                f,
                "operator {operator_id} already has an active assignment ({active} of {max} allowed)"
            ),
            ChatError::OperatorInactive(id) => write!(f, "operator {id} is not active"),
            ChatError::NotAssignedOperator { chat_id, operator_id } => {
                write!(f, "operator {operator_id} is not assigned to chat {chat_id}")
            }
            ChatError::NotClaimedOperator { operator_id, reason } => {
                write!(f, "may not act as operator {operator_id}: {reason}")
            }
            ChatError::UpdatePending { installed } => write!(
                f,
                "chat_assign {installed} is installed in this database but the library is {}: run ALTER EXTENSION chat_assign UPDATE",
                env!("CARGO_PKG_VERSION")
            ),
            ChatError::ReadOnlyStandby => f.write_str(
                "this call writes, and this server is a standby: call it on the primary (the monitoring functions and views run here)",
            ),
            ChatError::Internal(what) => write!(f, "chat_assign internal error: {what}"),
        }
    }
}

impl From<pgrx::spi::Error> for ChatError {
    fn from(e: pgrx::spi::Error) -> Self {
        ChatError::Internal(e.to_string())
    }
}

impl From<ChatError> for ErrorReport {
    fn from(e: ChatError) -> Self {
        ErrorReport::new(e.sqlstate(), e.to_string(), "chat_assign")
    }
}

/// What every `#[pg_extern]` returns: pgrx raises an `Err(ErrorReport)` with its own SQLSTATE.
pub type ApiResult<T> = Result<T, ErrorReport>;

#[cfg(test)]
mod unit {
    use super::echo;

    #[test]
    fn echo_keeps_short_text_and_cuts_long_text_on_a_character() {
        assert_eq!(echo("abc"), "abc");
        let exact = "x".repeat(64);
        assert_eq!(echo(&exact), exact);
        let long = "é".repeat(1_000_000);
        let shown = echo(&long);
        assert!(shown.starts_with(&"é".repeat(64)));
        assert!(shown.ends_with("... (2000000 bytes)"), "{shown}");
        assert!(shown.len() < 200);
    }
}

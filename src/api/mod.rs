//! The SQL functions of the extension, one module per API area. Each entry point is thin:
//! it turns its (nullable) arguments into checked values and hands over to `crate::store`.
//!
//! Every parameter is an `Option` so that pgrx does not mark the function STRICT: a NULL
//! argument must raise `22004`, not silently return NULL. Every function runs under
//! `SET search_path = pg_catalog, @extschema@, pg_temp` (see `store::queries`).

pub mod assignment;
pub mod chats;
pub mod monitoring;
pub mod operators;

use crate::error::{ChatError, ChatResult};

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

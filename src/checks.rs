//! The row rules of the CHECK constraints on `chats`, `messages` and `chat_assignments`, as
//! native functions (sql/schema.sql declares them and calls them from the constraints).
//!
//! Why not plain SQL expressions: PostgreSQL keeps a CHECK as the text of its expression
//! tree and parses, plans and compiles it again in every statement that writes the table
//! (`ExecRelCheck` of each new executor state). `chats_state_consistent` as an expression
//! was 3,854 characters of node text, read three times per assign-answer-reply cycle: the
//! CHECKs were about a tenth of the cycle's CPU. As one call of a function over the columns
//! they name, the text is a quarter of that and the rule is evaluated here at no cost.
//!
//! Each function returns exactly what its SQL expression (kept in its comment) would,
//! NULL included: a CHECK passes on NULL, so the three-valued logic is part of the rule.
//! `tests/pg_regress/sql/checks.sql` compares each with its expression over every
//! combination of NULL and non-NULL, true and false.

use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum, pg_return_null};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// SQL's three-valued truth: `None` is NULL.
type Truth = Option<bool>;

/// SQL `AND` over several operands: false wins, then NULL.
fn all(terms: &[Truth]) -> Truth {
    if terms.contains(&Some(false)) {
        Some(false)
    } else if terms.contains(&None) {
        None
    } else {
        Some(true)
    }
}

/// SQL `OR` of two operands: true wins, then NULL.
fn either(a: Truth, b: Truth) -> Truth {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// SQL `=` of two truths (NULL if either is).
fn same(a: Truth, b: Truth) -> Truth {
    Some(a? == b?)
}

/// Argument `n`, or `None` when it is NULL.
///
/// # Safety
/// `fcinfo` is the call's, with at least `n + 1` arguments.
unsafe fn arg(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<pg_sys::Datum> {
    if pg_arg_is_null(fcinfo, n) {
        None
    } else {
        pg_getarg_datum(fcinfo, n)
    }
}

/// The return value for a truth: NULL for `None`.
///
/// # Safety
/// `fcinfo` is the call's.
unsafe fn truth(fcinfo: pg_sys::FunctionCallInfo, value: Truth) -> pg_sys::Datum {
    match value {
        Some(b) => pg_sys::Datum::from(b),
        None => pg_return_null(fcinfo),
    }
}

/// Whether a `chat_state` value (the oid of its `pg_enum` row) is the label `label`.
///
/// # Safety
/// `value` is a datum of an enum type.
unsafe fn state_is(value: pg_sys::Datum, label: &CStr) -> bool {
    let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::ENUMOID as _, value);
    if tuple.is_null() {
        // What enum_out says of a value whose row is gone.
        error!("invalid internal value for enum: {}", value.value());
    }
    let row = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_enum>(tuple);
    let same = CStr::from_ptr((*row).enumlabel.data.as_ptr()) == label;
    pg_sys::ReleaseSysCache(tuple);
    same
}

/// `chats_state_consistent(chat_state, assigned_operator_id, last_operator_id, assigned_at,
/// operator_replied_at, is_active, waiting_since)`:
///
/// ```sql
/// (chat_state = 'assigned') = (assigned_operator_id IS NOT NULL)
/// AND (assigned_operator_id IS NULL OR assigned_operator_id = last_operator_id)
/// AND (chat_state <> 'assigned' OR assigned_at IS NOT NULL)
/// AND (chat_state <> 'waiting_real_user_reply' OR operator_replied_at IS NOT NULL)
/// AND (chat_state <> 'completed' OR NOT is_active)
/// AND (chat_state <> 'waiting_assignment' OR waiting_since IS NOT NULL)
/// ```
///
/// # Safety
/// Called by PostgreSQL with the seven arguments its SQL declaration names.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn chats_state_consistent(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let state = arg(fcinfo, 0);
    let is = |label: &CStr| state.map(|s| state_is(s, label));
    let isnt = |label: &CStr| is(label).map(|b| !b);
    let assigned_operator = arg(fcinfo, 1).map(|d| uuid_bytes(d));
    let last_operator = arg(fcinfo, 2).map(|d| uuid_bytes(d));
    let assigned_at = !pg_arg_is_null(fcinfo, 3);
    let replied_at = !pg_arg_is_null(fcinfo, 4);
    let is_active = arg(fcinfo, 5).map(|d| d.value() != 0);
    let waiting_since = !pg_arg_is_null(fcinfo, 6);
    let holder_is_last = match (assigned_operator, last_operator) {
        (None, _) => Some(true),
        (Some(a), Some(l)) => Some(a == l),
        (Some(_), None) => None,
    };
    truth(
        fcinfo,
        all(&[
            same(is(c"assigned"), Some(assigned_operator.is_some())),
            holder_is_last,
            either(isnt(c"assigned"), Some(assigned_at)),
            either(isnt(c"waiting_real_user_reply"), Some(replied_at)),
            either(isnt(c"completed"), is_active.map(|b| !b)),
            either(isnt(c"waiting_assignment"), Some(waiting_since)),
        ]),
    )
}

/// `messages_valid(sender_type, operator_id, content)`:
///
/// ```sql
/// sender_type IN ('real_user', 'operator')
/// AND (sender_type = 'operator') = (operator_id IS NOT NULL)
/// AND btrim(content) <> ''
/// ```
///
/// # Safety
/// Called by PostgreSQL with the three arguments its SQL declaration names.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn messages_valid(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let sender = arg(fcinfo, 0).map(|d| text_bytes(d));
    let operator = !pg_arg_is_null(fcinfo, 1);
    // btrim() takes only spaces off: what is left is empty exactly when there is nothing
    // but spaces (no server encoding has 0x20 inside a multibyte character).
    let not_blank = arg(fcinfo, 2).map(|d| text_bytes(d).iter().any(|&b| b != b' '));
    let is_operator = sender.map(|s| s == b"operator");
    truth(
        fcinfo,
        all(&[
            sender.map(|s| s == b"real_user" || s == b"operator"),
            same(is_operator, Some(operator)),
            not_blank,
        ]),
    )
}

/// `chat_assignments_release_valid(released_at, release_reason, assigned_at)`:
///
/// ```sql
/// (released_at IS NULL) = (release_reason IS NULL)
/// AND (released_at IS NULL OR released_at >= assigned_at)
/// ```
///
/// # Safety
/// Called by PostgreSQL with the three arguments its SQL declaration names.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn chat_assignments_release_valid(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // timestamptz is an int64 by value: its order is the integers'.
    let released = arg(fcinfo, 0).map(|d| d.value() as i64);
    let no_reason = pg_arg_is_null(fcinfo, 1);
    let assigned = arg(fcinfo, 2).map(|d| d.value() as i64);
    let after_assigned = match (released, assigned) {
        (None, _) => Some(true),
        (Some(r), Some(a)) => Some(r >= a),
        (Some(_), None) => None,
    };
    truth(
        fcinfo,
        all(&[Some(released.is_none() == no_reason), after_assigned]),
    )
}

/// The 16 bytes of a uuid datum (passed by reference).
///
/// # Safety
/// `d` is a uuid datum.
unsafe fn uuid_bytes(d: pg_sys::Datum) -> [u8; 16] {
    *d.cast_mut_ptr::<[u8; 16]>()
}

/// The bytes of a text datum, detoasted (a short or compressed value is expanded in the
/// current memory context, freed with it).
///
/// # Safety
/// `d` is a text datum.
unsafe fn text_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    let value = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
    pgrx::varlena::varlena_to_byte_slice(value)
}

/// The version-1 calling convention record PostgreSQL asks each C function for.
macro_rules! finfo_v1 {
    ($($name:ident),*) => {$(
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $name() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    )*};
}
finfo_v1!(
    pg_finfo_chats_state_consistent,
    pg_finfo_messages_valid,
    pg_finfo_chat_assignments_release_valid
);

//! Settings, registered when the library is loaded. Both are USERSET: an app may change them
//! per session or per transaction (`SET LOCAL chat_assign.avoid_same_operator = off`).

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Seconds without a heartbeat after which `release_idle_assignments()` releases a chat.
pub static IDLE_TIMEOUT_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(300);

/// Prefer chats last handled by someone else; fall back to the caller's own only when
/// nothing else waits.
pub static AVOID_SAME_OPERATOR: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn register() {
    GucRegistry::define_int_guc(
        c"chat_assign.idle_timeout",
        c"Idle time after which release_idle_assignments() releases an assigned chat.",
        c"Used when release_idle_assignments is called without p_idle_after. Accepts units, e.g. '5min'.",
        &IDLE_TIMEOUT_SECONDS,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"chat_assign.avoid_same_operator",
        c"Prefer chats whose last operator is someone else.",
        c"When on, assign_chat_to_operator gives an operator their own last chat only when no other chat waits.",
        &AVOID_SAME_OPERATOR,
        GucContext::Userset,
        GucFlags::default(),
    );
}

//! Everything the SQL functions do inside the database. Every statement is in [`queries`]
//! and runs through [`spi`], which prepares it once per backend and keeps the plan. The
//! operations validate nothing about their arguments (the `api` layer did) but check
//! existence and state under the row locks, so that what they report is what they stored.
//!
//! - [`chats`]: the state machine on chats (start, messages, assignment, release, end);
//! - [`operators`]: creating and (de)activating operators;
//! - [`teams`]: teams and memberships, presence, transfers, queue positions;
//! - [`events`]: change events, the monitoring totals' fold, pruning, wake-ups;
//! - [`monitoring`]: queue status and stuck chats;
//! - [`heads`]: where each queue's waiting chats begin, in shared memory, for the claims;
//! - [`background`]: what only the background worker runs;
//! - [`spi`]: connections, kept plans, where the extension lives.

mod background;
mod chats;
mod events;
pub mod heads;
mod monitoring;
mod operators;
pub mod queries;
mod spi;
mod teams;

pub use background::{
    pin_worker_search_path, worker_advance_heads, worker_assign_waiting, worker_mark_away,
    worker_release_idle,
};
pub use chats::{
    assign_chat, complete_chat, operator_send_message, real_user_send_message,
    release_and_reassign_chat, release_idle_assignments, start_chat, touch_operator_activity,
    IdleRelease,
};
pub use events::{prune_chat_events, wake_up, worker_fold_events, EVENT_FLOOR_LOCK_MARK};
pub use monitoring::{
    queue_status, service_metrics, service_metrics_within, stuck_chats, QueueStatus,
    ServiceMetrics, StuckChat,
};
pub use operators::{create_operator, set_operator_active};
#[cfg(any(test, feature = "pg_test"))]
pub use spi::resolved_sql;
pub use teams::{
    add_team_member, create_team, queue_position, remove_team_member, set_chat_priority,
    set_operator_status, set_team_routing, transfer_chat, QueuePosition, TransferTarget,
};

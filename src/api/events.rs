//! Change events: housekeeping. Reading them is `read_chat_events` (sql/events.sql), which
//! must run its three steps as separate statements.

use crate::error::ApiResult;
use crate::{guc, store};
use pgrx::prelude::*;

/// Events deleted per batch: one batch is one short statement over the head of the
/// primary key, whatever the table holds.
pub const PRUNE_BATCH: i64 = 10_000;

/// Deletes up to 10,000 of the oldest events older than `chat_assign.event_retention` and
/// returns how many it deleted: call it again while it returns 10000. For databases without
/// the background worker, which does this by itself.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub fn prune_chat_events() -> ApiResult<i64> {
    let retention = f64::from(guc::EVENT_RETENTION_SECONDS.get());
    Ok(store::prune_chat_events(retention, PRUNE_BATCH)?)
}

//! What the background worker runs that the SQL functions do not.

use super::queries::*;
use super::{chats::*, spi::*};
use crate::error::{ChatError, ChatResult};
use pgrx::prelude::*;

/// Sets the worker's own search_path for the rest of its transaction's statements.
pub fn pin_worker_search_path() -> ChatResult<()> {
    Spi::connect_mut(|client| {
        client.update(WORKER_SEARCH_PATH, None, &[])?;
        Ok(())
    })
}

/// The idle worker's pass in the current transaction: `None` when the extension is not
/// installed in this database, else what `release_idle_assignments()` released. It runs the
/// function's Rust code, not the SQL function (whose name the database owner could shadow
/// in the extension's schema), with the settings the SQL function would set for its call
/// (for this transaction) and the `chat_assign.idle_timeout` the worker sees.
pub fn worker_release_idle() -> ChatResult<Option<Vec<IdleRelease>>> {
    if !worker_installed()? {
        return Ok(None);
    }
    release_idle_assignments(f64::from(crate::guc::IDLE_TIMEOUT_SECONDS.get())).map(Some)
}

/// The worker's presence pass in the current transaction (`chat_assign.away_after` > 0):
/// online operators with no sign of life for that long become `away`. Returns how many.
pub fn worker_mark_away(after_seconds: f64) -> ChatResult<usize> {
    if !worker_installed()? {
        return Ok(0);
    }
    super::teams::mark_away(after_seconds)
}

/// Whether the extension is installed here; if so, this transaction plans as the SQL
/// functions do (the settings they set for their calls).
fn worker_installed() -> ChatResult<bool> {
    Spi::connect_mut(|client| {
        client.update(WORKER_SEARCH_PATH, None, &[])?;
        if home(client)?.is_none() {
            return Ok(false);
        }
        client.update(WORKER_PLAN_SETTINGS, None, &[])?;
        Ok::<bool, ChatError>(true)
    })
}

/// The worker's assignment pass in the current transaction: waiting chats of pushed queues
/// given to operators with room. Returns how many.
pub fn worker_assign_waiting() -> ChatResult<usize> {
    if !worker_installed()? {
        return Ok(0);
    }
    assign_waiting_chats()
}

/// The worker's tick for the queue heads (src/store/heads.rs): moves each queue's head to
/// its first waiting chat. `false` when the extension is not installed here (the heads of
/// this database are then forgotten: a new installation starts from its queues' starts).
pub fn worker_advance_heads() -> ChatResult<bool> {
    if !worker_installed()? {
        super::heads::forget_database();
        return Ok(false);
    }
    Spi::connect_mut(super::heads::advance)?;
    Ok(true)
}

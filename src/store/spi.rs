//! SPI plumbing: where the extension lives, one connection per operation, and every
//! statement of [`super::queries`] prepared once per backend and kept.

use super::queries::*;
use crate::error::{ChatError, ChatResult};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::PgOid;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// Plans kept for the life of the backend, keyed by the statement's address. Postgres'
    /// plan cache revalidates them after DDL on the objects they use.
    pub(super) static PLANS: RefCell<HashMap<usize, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
    /// The installed extension the kept plans name (its oid) and its schema, quoted.
    pub(super) static HOME: RefCell<Option<(pg_sys::Oid, String)>> = const { RefCell::new(None) };
    /// The oid of `chat_events_id_seq` in the installed extension (see [`event_id_floor`]).
    pub(super) static EVENT_SEQUENCE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Where the extension lives now, or `None` when it is not installed in this database.
/// The statements name our objects by schema, so a reinstall (a new extension oid, maybe
/// in another schema) makes every kept plan stale: they are dropped and prepared again.
/// Costs one index probe of `pg_extension` per operation.
pub(super) fn home(client: &SpiClient<'_>) -> ChatResult<Option<String>> {
    // SAFETY: a catalog lookup by name inside the caller's transaction; missing_ok.
    let oid = unsafe { pg_sys::get_extension_oid(c"chat_assign".as_ptr(), true) };
    if oid == pg_sys::InvalidOid {
        return Ok(None);
    }
    if let Some(schema) = HOME.with(|home| match &*home.borrow() {
        Some((known, schema)) if *known == oid => Some(schema.clone()),
        _ => None,
    }) {
        return Ok(Some(schema));
    }
    PLANS.with(|plans| plans.borrow_mut().clear());
    let (schema, version) = client
        .select(EXTENSION_SCHEMA, None, &[oid.into()])?
        .first()
        .get_two::<String, String>()?;
    let schema = schema
        .ok_or_else(|| ChatError::Internal(format!("no schema for extension oid {oid:?}")))?;
    // The statements name this version's tables and columns: with the previous version's
    // schema still in place they would fail half-way, or write the wrong thing.
    let version = version.unwrap_or_default();
    if version != env!("CARGO_PKG_VERSION") {
        return Err(ChatError::UpdatePending { installed: version });
    }
    let sequence = client
        .select(EVENT_SEQUENCE_OID, None, &[schema.as_str().into()])?
        .first()
        .get_one::<pg_sys::Oid>()?
        .ok_or_else(|| ChatError::Internal("no chat_events_id_seq".into()))?;
    EVENT_SEQUENCE.with(|seq| seq.set(sequence));
    HOME.with(|home| *home.borrow_mut() = Some((oid, schema.clone())));
    Ok(Some(schema))
}

/// Every operation runs in here: one SPI connection, with the kept plans checked against
/// where the extension lives now.
pub(super) fn connect<R>(
    operation: impl FnOnce(&mut SpiClient<'_>) -> ChatResult<R>,
) -> ChatResult<R> {
    Spi::connect_mut(|client| {
        if home(client)?.is_none() {
            return Err(ChatError::Internal(
                "extension chat_assign is not installed in this database".into(),
            ));
        }
        if crate::guc::EVENTS.get() {
            crate::guc::mark_api_write();
        }
        crate::guc::bound_lock_waits();
        operation(client)
    })
}

/// [`connect`] for an operation that writes: on a hot standby, where nothing can be written,
/// it is refused at once with `25006` (the monitoring, which only reads, runs there).
pub(super) fn connect_write<R>(
    operation: impl FnOnce(&mut SpiClient<'_>) -> ChatResult<R>,
) -> ChatResult<R> {
    // SAFETY: a read of the server's recovery state.
    if unsafe { pg_sys::RecoveryInProgress() } {
        return Err(ChatError::ReadOnlyStandby);
    }
    connect(operation)
}

/// A statement's text as it runs in this database, the extension's schema in place (for
/// EXPLAIN in tests).
#[cfg(any(test, feature = "pg_test"))]
pub fn resolved_sql(stmt: &'static Statement) -> ChatResult<String> {
    Spi::connect_mut(|client| {
        let schema = home(client)?.ok_or_else(|| ChatError::Internal("not installed".into()))?;
        Ok(stmt.sql.replace("@extschema@", &schema))
    })
}

pub(super) fn plan(
    client: &SpiClient<'_>,
    stmt: &'static Statement,
) -> ChatResult<Rc<OwnedPreparedStatement>> {
    let key = stmt as *const Statement as usize;
    if let Some(p) = PLANS.with(|plans| plans.borrow().get(&key).cloned()) {
        return Ok(p);
    }
    let schema = HOME
        .with(|home| home.borrow().as_ref().map(|(_, schema)| schema.clone()))
        .ok_or_else(|| ChatError::Internal("statement prepared outside connect()".into()))?;
    // The schema name comes from the catalog, quoted by quote_ident: never from input.
    let sql = stmt.sql.replace("@extschema@", &schema);
    let args: Vec<PgOid> = stmt.args.iter().map(|oid| PgOid::from(*oid)).collect();
    let prepared = if stmt.read_only {
        client.prepare(&sql, &args)?
    } else {
        client.prepare_mut(&sql, &args)?
    };
    let kept = Rc::new(prepared.keep());
    PLANS.with(|plans| plans.borrow_mut().insert(key, kept.clone()));
    Ok(kept)
}

/// Runs a statement with its kept plan. The `Rc` is cloned out of the cache before running
/// so that no borrow of the cache is held while Postgres executes.
pub(super) fn exec<'c>(
    client: &mut SpiClient<'c>,
    stmt: &'static Statement,
    args: &[DatumWithOid<'_>],
) -> ChatResult<SpiTupleTable<'c>> {
    let p = plan(client, stmt)?;
    Ok(if stmt.read_only {
        client.select(&*p, None, args)?
    } else {
        client.update(&*p, None, args)?
    })
}

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
///
/// Known once, the installation is still there while its event sequence is: a member of
/// the extension, dropped with it, and a new installation makes a new one. That is one
/// probe of the relation cache per operation; the catalog scan of `pg_extension` by name it
/// replaces was about 3% of a chat cycle's server CPU (three operations per cycle).
pub(super) fn home(client: &SpiClient<'_>) -> ChatResult<Option<String>> {
    let known = HOME.with(|home| home.borrow().as_ref().map(|(_, schema)| schema.clone()));
    if let Some(schema) = known {
        let sequence = EVENT_SEQUENCE.with(|seq| seq.get());
        // SAFETY: a syscache lookup by oid inside the caller's transaction, whose
        // invalidations (a DROP EXTENSION that committed) are processed when it starts.
        let present = unsafe {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::RELOID as _,
                sequence.into(),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
            )
        };
        if present {
            return Ok(Some(schema));
        }
    }
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
        crate::guc::mark_api_call();
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

/// How many rows [`fold_rows`] fetches at a time: its memory is one batch, not the result.
const FOLD_BATCH: i64 = 10_000;

/// One row handed to [`fold_rows`]'s callback: its columns as the executor left them, read
/// without building a Rust value per column. The types were checked against the statement's
/// declared columns before the first row, which is what makes the reads below sound.
pub(super) struct FoldRow<'a> {
    values: &'a [pg_sys::Datum],
    nulls: &'a [bool],
}

impl FoldRow<'_> {
    fn datum(&self, column: usize) -> Option<pg_sys::Datum> {
        (!self.nulls[column]).then(|| self.values[column])
    }

    /// A `timestamptz` column (0-based), in microseconds since 2000-01-01.
    pub fn micros(&self, column: usize) -> Option<i64> {
        self.datum(column).map(|d| d.value() as i64)
    }

    /// An `integer` column (0-based).
    pub fn int(&self, column: usize) -> Option<i32> {
        self.datum(column).map(|d| d.value() as i32)
    }

    /// A `boolean` column (0-based); NULL reads as false.
    pub fn flag(&self, column: usize) -> bool {
        self.datum(column).is_some_and(|d| d.value() != 0)
    }

    /// A `uuid` column (0-based).
    pub fn uuid(&self, column: usize) -> Option<pgrx::Uuid> {
        self.datum(column).map(|d| {
            // SAFETY: the column is a uuid (checked in fold_rows), whose datum points at its
            // 16 bytes in the tuple, alive until the batch is freed after the callback.
            let bytes =
                unsafe { std::slice::from_raw_parts(d.cast_mut_ptr::<u8>() as *const u8, 16) };
            pgrx::Uuid::from_slice(bytes).expect("a uuid datum is 16 bytes")
        })
    }
}

/// Runs a read-only statement through a cursor and hands each row to `each`. For statements
/// that return many rows to fold into a few (service metrics reads every chat of a window):
/// going through `SpiTupleTable`'s iterator builds a value per column and costs several times
/// the scan. `columns` are the result's types, checked before the first row. `each` returns
/// whether to go on: false stops the read (the result is then false too).
pub(super) fn fold_rows(
    client: &mut SpiClient<'_>,
    stmt: &'static Statement,
    args: &[DatumWithOid<'_>],
    columns: &[pg_sys::Oid],
    mut each: impl FnMut(&FoldRow<'_>) -> bool,
) -> ChatResult<bool> {
    let p = plan(client, stmt)?;
    let mut cursor = client.try_open_cursor(&*p, args)?;
    let mut values = vec![pg_sys::Datum::from(0); columns.len()];
    let mut nulls = vec![false; columns.len()];
    loop {
        let rows = cursor.fetch(FOLD_BATCH)?.len();
        if rows == 0 {
            return Ok(true);
        }
        // SAFETY: the fetch above left its rows in SPI_tuptable; they are read here and
        // freed before the next fetch. Each tuple is deformed into exactly `columns.len()`
        // slots after the descriptor was checked to have those types.
        unsafe {
            let table = pg_sys::SPI_tuptable;
            let desc = (*table).tupdesc;
            let natts = (*desc).natts as usize;
            let types: Vec<pg_sys::Oid> = (1..=natts as i32)
                .map(|i| pg_sys::SPI_gettypeid(desc, i))
                .collect();
            if types != columns {
                return Err(ChatError::Internal(format!(
                    "statement returns columns of types {types:?}, expected {columns:?}"
                )));
            }
            let mut go_on = true;
            for &tuple in std::slice::from_raw_parts((*table).vals, rows) {
                pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
                go_on = each(&FoldRow {
                    values: &values,
                    nulls: &nulls,
                });
                if !go_on {
                    break;
                }
            }
            pg_sys::SPI_freetuptable(table);
            if !go_on {
                return Ok(false);
            }
        }
    }
}

/// Why [`in_subtransaction`] rolled its part back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Undone {
    /// This backend found itself in a deadlock (`40P01`) and was chosen to break it.
    Deadlock,
    /// A lock wait ran past the part's own bound (`55P03`).
    LockTimeout,
}

/// Runs `part` in a subtransaction, so that the locks it takes can be given back: a part
/// whose lock wait closes a deadlock is rolled back, row locks included, and the caller goes
/// on without what it would have done (`Err(Undone::Deadlock)`).
///
/// Why a part that only takes locks with `SKIP LOCKED` needs this: `SKIP LOCKED` does not
/// always skip. When the row version a statement sees was being updated, and that update
/// commits at the moment the statement asks for the row, PostgreSQL goes on to lock the
/// newer version and waits for whoever holds that one, whatever the wait policy
/// (`heap_lock_updated_tuple`; the log says "while locking updated version ... of tuple").
/// The stress test saw it about once a minute, and twice it closed a deadlock: a call that
/// held chats waiting that way on a call that waited for one of them. Inside the part,
/// this backend checks for a deadlock after [`guard_deadlock_ms`] instead of the server's
/// `deadlock_timeout`, so that it, not the other call, is the one whose wait is broken.
///
/// With `lock_wait_ms`, any lock wait of the part longer than that is given up too
/// (`Err(Undone::LockTimeout)`): for a part that waits on purpose while it holds rows other
/// calls may wait for (see `lock_operator_chats`). Any other error rolls the part back and
/// is raised as it was.
pub(super) fn in_subtransaction<R>(
    client: &mut SpiClient<'_>,
    lock_wait_ms: Option<i32>,
    part: impl FnOnce(&mut SpiClient<'_>) -> ChatResult<R>,
) -> ChatResult<Result<R, Undone>> {
    // SAFETY: what PL/pgSQL's exception blocks do (pl_exec.c, exec_stmt_block): begin an
    // internal subtransaction, keep running in the caller's memory context, and on the way
    // out, commit or roll it back and restore the caller's memory context and resource
    // owner. The SPI connection was opened outside the subtransaction and survives it.
    let (context, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
    }
    let end = move |commit: bool| unsafe {
        if commit {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    };
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        // Both settings are the subtransaction's own: undone when it ends, either way.
        crate::guc::set_for_subtransaction(c"deadlock_timeout", guard_deadlock_ms());
        if let Some(ms) = lock_wait_ms {
            crate::guc::set_for_subtransaction(c"lock_timeout", ms);
        }
        let done = part(client);
        end(done.is_ok());
        done.map(Ok)
    }))
    .catch_when(PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED, |_| {
        end(false);
        Ok(Err(Undone::Deadlock))
    })
    .catch_when(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, |caught| {
        end(false);
        if lock_wait_ms.is_none() {
            // The call's own bound (chat_assign.lock_timeout) ran out: the call fails.
            caught.rethrow();
        }
        Ok(Err(Undone::LockTimeout))
    })
    .catch_others(|caught| {
        end(false);
        caught.rethrow()
    })
    .execute()
}

/// How long a part run by [`in_subtransaction`] waits for a lock before it looks for a
/// deadlock: 10 ms, or the server's `deadlock_timeout` if that is shorter. Shorter than the
/// `deadlock_timeout` of the other calls, so this backend looks first.
pub(super) fn guard_deadlock_ms() -> i32 {
    // SAFETY: a read of the server's setting, in milliseconds.
    unsafe { pg_sys::DeadlockTimeout }.clamp(1, 10)
}

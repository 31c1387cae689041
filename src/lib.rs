//! chat_assign: live-chat operator assignment inside PostgreSQL.
//!
//! Layout: `sql/*.sql` holds the schema and views (wired in below), `src/api/*` the thin
//! `#[pg_extern]` entry points, `src/store` every SQL statement and the SPI that runs it,
//! `src/error.rs` the SQLSTATE contract, `src/guc.rs` the settings, `src/worker.rs` the
//! idle-release background worker.

// Entry points return `Result<T, ErrorReport>`: pgrx raises an `Err` with its own SQLSTATE
// only when the error type is exactly `ErrorReport` (boxed, it would arrive as 22000), so its
// size is not ours to shrink.
#![allow(clippy::result_large_err)]

use pgrx::prelude::*;

pub mod api;
pub mod checks;
pub mod error;
pub mod guc;
pub mod store;
pub mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/references.sql",
    name = "references",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/events.sql",
    name = "events",
    requires = ["references"]
);
// The totals read the events.
extension_sql_file!(
    "../sql/state_totals.sql",
    name = "state_totals",
    requires = ["events"]
);
extension_sql_file!(
    "../sql/views.sql",
    name = "views",
    requires = ["state_totals"]
);
// Moving an existing app onto the extension.
extension_sql_file!("../sql/import.sql", name = "import", requires = ["views"]);
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    worker::register();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

//! pg_segment: customer segmentation inside PostgreSQL.
//!
//! Wiring only. The numeric work lives in [`engine`] (the `pg_segment_engine` crate,
//! pure Rust, no pgrx); the SQL
//! surface lives in [`sql`] (thin pgrx wrappers); hand-written SQL (catalog tables,
//! views, aggregates) lives in `sql/` and is pulled in with `extension_sql_file!`.
pub(crate) mod alloc;
pub mod sql;
/// The numeric core, a crate of its own (`crates/engine`) with no pgrx in its
/// dependency tree.
pub use pg_segment_engine as engine;

#[global_allocator]
static ALLOCATOR: alloc::HugePageHint = alloc::HugePageHint;

::pgrx::pg_module_magic!(name, version);

/// Library load: defines pg_segment's settings (`pg_segment.huge_pages`,
/// `pg_segment.direct_writes`).
#[pgrx::pg_guard]
#[allow(non_snake_case)]
pub extern "C-unwind" fn _PG_init() {
    alloc::define_gucs();
    sql::writer::define_gucs();
}

#[cfg(test)]
pub mod pg_test {
    /// Called once by the pgrx test framework before the test cluster starts.
    pub fn setup(_options: Vec<&str>) {}

    /// postgresql.conf settings for the pgrx test cluster.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

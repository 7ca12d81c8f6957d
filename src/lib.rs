//! pg_segment: customer segmentation inside PostgreSQL.
//!
//! Where things live:
//! - [`engine`]: the numeric core (encoders, k-means, metrics, matching), the
//!   `pg_segment_engine` crate in `crates/engine`, pure Rust with no pgrx in its
//!   dependency tree.
//! - The SQL surface, one module per area as users see it, each a set of thin
//!   `#[pg_extern]` wrappers: [`train`] (`segment_train`), [`assign`] (`segment_assign`,
//!   `segment_assign_detail`, `segment_encode`: the per-row path), [`model_value`] (the
//!   by-value model `segment_model` and the assignment forms taking it), [`lifecycle`]
//!   (`segment_label`, `segment_drop`, `segment_grant`, `segment_revoke`), [`aggregates`]
//!   (the metric and k-means aggregates), [`adhoc`] (`segment_nearest`) and [`marketing`]
//!   (`segment.health`, `segment_rfm`, the uplift aggregates).
//! - [`catalog`]: every read and write of the `segment` schema's tables.
//! - [`error`]: engine errors to SQLSTATEs, and `raise`.
//! - [`pg`]: all PostgreSQL plumbing that needs `unsafe` (SPI under a fixed
//!   search_path, the source reader, the assignment writer and its page writer, Datum
//!   decoding, aggregate states, memory contexts, the planner support function, the
//!   allocator). Its module header states the invariants it relies on.
//! - Hand-written SQL (catalog tables and views, aggregates, wrappers, comments) lives in
//!   `sql/*.sql`, one file per area, in the order stated below.
#![deny(unsafe_code)]

pub mod adhoc;
pub mod aggregates;
pub mod assign;
pub mod catalog;
pub mod error;
pub mod lifecycle;
pub mod marketing;
pub mod model_value;
#[allow(unsafe_code)]
pub mod pg;
pub mod train;

/// The numeric core, a crate of its own (`crates/engine`) with no pgrx in its
/// dependency tree.
pub use pg_segment_engine as engine;

#[global_allocator]
static ALLOCATOR: pg::alloc::HugePageHint = pg::alloc::HugePageHint;

::pgrx::pg_module_magic!(name, version);

/// Library load: defines pg_segment's settings (`pg_segment.huge_pages`,
/// `pg_segment.direct_writes`, `pg_segment.fit_method`).
#[pgrx::pg_guard]
#[allow(non_snake_case, unsafe_code)]
pub extern "C-unwind" fn _PG_init() {
    pg::alloc::define_gucs();
    pg::writer::define_gucs();
    train::passes::define_gucs();
}

// Hand-written SQL, in this order: the catalog first (bootstrap, here: schema `segment`,
// its tables, views and policies); then, each after the functions it names, sql/train.sql
// (src/train/mod.rs), sql/assign.sql (src/assign.rs) and sql/lifecycle.sql
// (src/lifecycle.rs); sql/aggregates.sql last (finalize, src/aggregates.rs).
pgrx::extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);

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

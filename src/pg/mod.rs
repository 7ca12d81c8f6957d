//! All PostgreSQL plumbing that needs `unsafe`, in one place (the rest of the crate is
//! `#![deny(unsafe_code)]`). What each file relies on:
//!
//! - Backends are single-threaded. Only the thread PostgreSQL called us on touches
//!   PostgreSQL (palloc, SPI, ereport, Datums); `segment_train`'s helper threads run
//!   engine code on plain Rust memory and never call back (see `train/write.rs`).
//! - Errors unwind through `#[pg_guard]` / pgrx's error boundary: nothing here holds a
//!   PostgreSQL resource across a call that may raise without it being owned by a
//!   memory context or resource owner that PostgreSQL releases on abort.
//! - Memory: Rust values that must outlive one call live in a PostgreSQL memory context
//!   that drops them with it: the call site's `fn_mcxt` ([`call_site`]), the aggregate's
//!   context ([`agg_state`]), an expanded object's own context, a child of the
//!   aggregate's ([`expanded`]). All check the value's Rust type before every cast.
//! - Datums are read as what their type says: argument types come from the call's
//!   expression (`get_fn_expr_argtype`) or the row type's descriptor ([`rows`],
//!   [`values`]); varlenas are detoasted before their bytes are read.
//! - Every SQL statement we issue runs through [`spi`], under
//!   `search_path = pg_catalog, pg_temp`; only the read of the training source
//!   ([`reader`]) runs under the caller's path, with everything it names qualified.
//! - Heap pages are written directly ([`pages`]) only into a table created in this
//!   transaction, under the conditions stated in pages.rs; everything else goes through
//!   `heap_multi_insert` or SQL ([`writer`]).
//! - The planner support function ([`planner`]) only rewrites calls it can prove
//!   equivalent, and records the dependencies that invalidate its plans.
//!
//! Files: [`spi`] (internal SQL, extension-owner context), [`args`] (raw jsonb and
//! regclass arguments), [`arrays`] (float8[] and float8[][]), [`values`] (Datum to
//! engine values), [`rows`] (deforming row arguments), [`call_site`] (per-call-site
//! state), [`agg_state`] (`internal` aggregate states), [`expanded`] (the
//! `segment.agg_state` type's values), [`tagged`] (the type tag both carry),
//! [`reader`] (the source scan), [`writer`] and [`pages`] (the assignment table),
//! [`planner`] (support function, plan invalidation, the planned C entry points),
//! [`citus`] (whether and how a table is distributed),
//! [`alloc`] (the allocator's huge-page hint), [`compat`] (differences between
//! PostgreSQL versions).
pub mod agg_state;
pub mod alloc;
pub mod args;
pub mod arrays;
pub mod call_site;
pub mod citus;
pub mod compat;
pub mod expanded;
pub mod pages;
pub mod planner;
pub mod progress;
pub mod reader;
pub mod rows;
pub mod spi;
pub mod tagged;
pub mod values;
pub mod varlena;
pub mod window;
pub mod writer;

/// `maintenance_work_mem` in bytes: the memory budget of training and of the
/// aggregates that hold their rows.
pub fn maintenance_work_mem() -> usize {
    // SAFETY: reading a GUC variable of this backend, on its own thread.
    let kb = unsafe { pg_sys::maintenance_work_mem } as usize;
    kb.saturating_mul(1024)
}

use crate::engine::{kmeans, EngineError};
use pgrx::prelude::*;

/// Engine hooks: interrupts and progress go to Postgres from the calling thread.
pub struct PgHooks;

impl kmeans::Hooks for PgHooks {
    fn check_interrupt(&mut self) -> Result<(), EngineError> {
        check_for_interrupts!();
        Ok(())
    }
    fn progress(&mut self, p: &kmeans::Progress) {
        progress::iteration(p.iteration, p.inertia, p.k);
        debug2!(
            "segment_train: run {} iteration {} inertia {} moved {}",
            p.run,
            p.iteration,
            p.inertia,
            p.moved
        );
    }
}

//! The SQL surface: thin `#[pg_extern]` and aggregate wrappers around [`crate::engine`].
//! This layer converts Datums to `&[f64]` / ndarray views, maps [`EngineError`]s to
//! SQLSTATEs, and talks to the catalog through SPI. It does no arithmetic of its own.
//!
//! [`EngineError`]: crate::engine::EngineError

pub mod adhoc;
pub mod aggregates;
pub mod args;
pub mod arrays;
pub mod assign;
pub mod call_site;
pub mod error;
pub mod model;
pub mod pages;
pub mod pg_compat;
pub mod planner;
pub mod reader;
pub mod spi;
pub mod train;
pub mod values;
pub mod writer;

pgrx::extension_sql_file!("../../sql/catalog.sql", name = "catalog", bootstrap);

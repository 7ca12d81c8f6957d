//! The numeric core of pg_segment: feature encoding, k-means, quality metrics and
//! centroid matching. Pure Rust over `&[f64]` / ndarray views: this crate does not
//! depend on the PostgreSQL bindings and knows nothing of Datums (it has no pgrx
//! dependency, so the compiler enforces that). The extension's SQL layer adapts
//! Postgres values to these types and maps [`EngineError`] to SQLSTATEs.
#![deny(unsafe_code)]

pub mod codec;
pub mod encode;
pub mod error;
pub mod hash;
pub mod kmeans;
pub mod matching;
pub mod metrics;
pub mod quality;
pub mod report;
pub mod sample;
mod simd;

pub use error::{EngineError, ErrorKind};

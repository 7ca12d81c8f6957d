//! The numeric core of pg_segment: feature encoding, k-means, quality metrics and
//! centroid matching. Pure Rust over `&[f64]` / ndarray views: this crate does not
//! depend on the PostgreSQL bindings and knows nothing of Datums (it has no pgrx
//! dependency, so the compiler enforces that). The extension's SQL layer adapts
//! Postgres values to these types and maps [`EngineError`] to SQLSTATEs.
//!
//! # Where things are (one job per file)
//! - k-means (`kmeans/`): parameters and their validation `params.rs`; k-means++
//!   seeding and random init `init.rs` (its pruned passes `plusplus.rs`);
//!   nearest-centroid search (`nearest`, `CentroidIndex`, the scalar distance kernel)
//!   `nearest.rs`; the E-step bound tests `estep.rs`; the Lloyd iterations and
//!   empty-cluster relocation `lloyd.rs`; `fit` / `assign` `fit.rs`; the threads
//!   `threads.rs`; the aggregate's mergeable step `step.rs`; distinct rows `distinct.rs`.
//! - choosing k by the best sampled silhouette over a range: `choose_k.rs`.
//! - metrics (`metrics/`): inertia, Davies–Bouldin, Calinski–Harabasz, summaries
//!   `dispersion.rs` (shared passes `passes.rs`); the silhouette API `silhouette.rs` and
//!   its kernel `silhouette_kernel.rs`; ARI / NMI / contingency `agreement.rs`;
//!   `cluster_stats.rs`.
//! - encoding (`encode/`): spec types `spec.rs`, grammar parser `parse.rs`, column
//!   storage `columns.rs`, fitted models `model.rs`, `fit.rs`, `transform.rs`,
//!   statistics `stats.rs`, catalog JSON `stored.rs`.
//! - sampling (`sample/`): `sample_indices`, and the reservoir sample `reservoir.rs`.
//! - `simd/`: the only `unsafe` code: CPU detection, k-means' AVX2 kernels
//!   (`kmeans_avx2.rs`, no FMA) and the silhouette's AVX2+FMA tile
//!   (`silhouette_avx2.rs`), with their dispatch.
//! - `gathered.rs`: rows held whole for the aggregates that need them all.
//! - `codec.rs`: the byte format of every aggregate state; `hash.rs`: every hash;
//!   `defaults.rs`: shared limits and defaults; `quality.rs`: a trained model's quality
//!   figures; `report.rs`: segment facts and profiles; `matching.rs`: centroid matching (the Hungarian method);
//!   `lineage.rs`: segment ids across versions (transitions, Jaccard, matching, bands);
//!   `drift.rs`: reference distributions, PSI and Jensen-Shannon distance;
//!   `error.rs`: [`EngineError`].
#![deny(unsafe_code)]

pub mod choose_k;
mod codec;
pub mod defaults;
pub mod drift;
pub mod encode;
pub mod error;
pub mod gathered;
pub mod hash;
pub mod kmeans;
pub mod lineage;
pub mod matching;
pub mod metrics;
pub mod quality;
pub mod report;
pub mod sample;
mod simd;
pub mod uplift;

pub use codec::{
    CENTROID_STEP_MAGIC, CLUSTER_STATS_MAGIC, CONTINGENCY_MAGIC, UPLIFT_MEAN_MAGIC,
    UPLIFT_RATE_MAGIC,
};
pub use error::{EngineError, ErrorKind};

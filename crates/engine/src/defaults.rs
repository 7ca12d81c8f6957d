//! Shared limits and defaults, in one place. The modules that use them re-export them
//! under their historical names (`metrics::DEFAULT_MAX_THREADS`,
//! `quality::SILHOUETTE_SAMPLE`).

/// Most worker threads k-means training uses (`KMeansParams::threads` = 0 picks the
/// available cores up to this).
pub const KMEANS_MAX_THREADS: usize = 4;

/// Upper bound on the threads the exact silhouette uses by default (the calling thread
/// counts as one): it runs next to other work of the same statement.
pub const SILHOUETTE_MAX_THREADS: usize = 2;

/// Rows of the seeded silhouette sample `segment_train` stores with a model
/// ([`quality::silhouette_sample`](crate::quality::silhouette_sample)): training already
/// spent its budget on k-means, and the figure is informative only.
pub const TRAINING_SILHOUETTE_SAMPLE: usize = 10_000;

/// Rows of the seeded silhouette sample of the ad-hoc SQL aggregate (exact up to this
/// many rows): the aggregate's whole job is that figure, so it affords twice the training
/// sample. The extension declares the same value as `SILHOUETTE_MAX_SAMPLE` in
/// `src/sql/aggregates.rs` (outside this crate; it should use this constant).
pub const AGGREGATE_SILHOUETTE_SAMPLE: usize = 20_000;

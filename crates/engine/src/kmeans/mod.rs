//! K-means training and nearest-centroid assignment: seeded greedy k-means++ (as in
//! scikit-learn's `_kmeans_plusplus`), random init, Lloyd iterations with exact
//! Hamerly / Elkan bound pruning, `n_init` restarts, empty-cluster relocation, and the
//! mergeable state of one Lloyd step ([`StepState`]) for a parallel SQL aggregate.
//!
//! Semantics follow scikit-learn's `KMeans(algorithm="lloyd")`: the same tolerance
//! (`tol` times the mean per-feature variance, compared with the total squared centre
//! shift), strict label convergence, the same iteration count (`n_iter_`), a final
//! E-step so that labels and inertia refer to the returned centroids, and the same
//! empty-cluster relocation (the point farthest from its centre becomes the new centre).
//!
//! Exactness: every algorithm computes point-centroid distances with one kernel
//! ([`nearest`] uses it too) and breaks ties towards the lower centroid index. The bound
//! algorithms only skip a distance when the bounds prove, with a safety margin far above
//! floating-point rounding, that it cannot win; centroid sums are recomputed from scratch
//! every iteration in a fixed block order. Lloyd, Hamerly and Elkan therefore return
//! bit-identical results, independent of the number of threads. On x86-64 CPUs with
//! AVX2 (detected at run time) the all-centroid searches and [`nearest`] use a 256-bit
//! kernel that performs the same floating-point operations in the same order as the
//! portable one (no FMA), so results are also identical across CPUs. The greedy
//! k-means++ skips distances that the triangle inequality proves cannot lower a row's
//! closest distance (with the same safety margin) and reads each row once for all
//! candidates of a step; its centres are bit-identical to the unpruned computation.
//!
//! Layout (one job per file):
//! - `params.rs`: [`Init`], [`Algorithm`], [`KMeansParams`] and its validation
//!   ([`KMeansParams::check`]) and memory estimate, the limits [`MAX_K`], [`MAX_N_INIT`],
//!   [`MAX_ITER`].
//! - `nearest.rs`: the scalar distance kernel (`sqdist`, `argmin`, `argmin2`),
//!   [`nearest`] and [`CentroidIndex`] (nearest-centroid search).
//! - The AVX2 kernels and their run-time dispatch live in `crate::simd`
//!   (`simd/kmeans.rs`, `simd/kmeans_avx2.rs`).
//! - `threads.rs`: the deterministic block-parallel driver (`run_blocks`, block sizes).
//! - `estep.rs`: one E-step block (Lloyd, Hamerly and Elkan bound tests).
//! - `lloyd.rs`: one run of Lloyd iterations (`run_once`), centre geometry for the
//!   bounds, empty-cluster relocation.
//! - `plusplus.rs`: the pruned passes of greedy k-means++ (potentials, updates,
//!   sampling); `init.rs`: k-means++ seeding and random init built on them.
//! - `fit.rs`: [`fit`], [`assign`] and scikit-learn's tolerance.
//! - `step.rs`: [`StepState`], one mergeable Lloyd step for the SQL aggregate.
//! - `distinct.rs`: [`count_distinct_rows`].
//! - `tests/`: the tests, one file per topic.

mod distinct;
pub(crate) mod estep;
mod fit;
mod init;
mod lloyd;
pub(crate) mod nearest;
mod params;
mod passes;
pub(crate) mod plusplus;
mod step;
#[cfg(test)]
mod tests;
mod threads;

pub use distinct::count_distinct_rows;
#[cfg(test)]
use fit::assign_with_hooks;
pub use fit::{assign, fit};
pub use init::extend_seeds;
#[cfg(test)]
use init::kmeans_plus_plus;
pub use nearest::{nearest, CentroidIndex, Nearest};
pub use params::{check_limits, Algorithm, Init, KMeansParams, MAX_ITER, MAX_K, MAX_N_INIT};
pub use passes::{lloyd_passes, tolerance_from_total, PassFit};
pub use step::{CentroidStep, StepState};

#[cfg(test)]
use crate::simd::FORCE_PORTABLE;
#[allow(unused_imports)]
use crate::simd::{kmeans::*, prefetch_row, Simd};
#[allow(unused_imports)]
use {
    distinct::*, estep::*, fit::*, init::*, lloyd::*, nearest::*, params::*, plusplus::*, step::*,
    threads::*,
};

use crate::error::EngineError;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Rows per work block (at least; see [`block_rows`]). Blocks are the unit of threading
/// and of interrupt checks; each block accumulates its own partial sums, and blocks are
/// summed in block order, so results do not depend on the thread count.
pub(super) const BLOCK: usize = 8192;
/// Upper bound of the memory held by per-block partial sums.
pub(super) const PARTIAL_BUDGET: usize = 32 << 20;
/// Most worker threads used.
pub(super) const MAX_THREADS: usize = crate::defaults::KMEANS_MAX_THREADS;
/// Relative safety margin of the pruning bounds (far above f64 rounding of a distance
/// over up to ~10^5 features), so a skipped distance can never tie with the winner.
pub(super) const DELTA: f64 = 1e-10;
/// How many rows of sequential work may pass between two interrupt checks.
pub(super) const CHECK_EVERY: usize = 65_536;

/// One line of training progress, reported once per iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// 0-based restart index.
    pub run: usize,
    /// 1-based iteration within the run.
    pub iteration: usize,
    /// Inertia of this iteration's assignment, against the centroids it was made with.
    pub inertia: f64,
    /// Rows whose label changed in this iteration (all rows in the first).
    pub moved: usize,
    /// Clusters being fitted.
    pub k: usize,
}

/// Callbacks from a long computation. Only ever called from the calling thread.
pub trait Hooks {
    /// Called at least once per iteration and every ~100k rows of work; an `Err`
    /// (typically [`EngineError::Canceled`]) aborts the computation with that error.
    fn check_interrupt(&mut self) -> Result<(), EngineError> {
        Ok(())
    }
    /// Called once per iteration.
    fn progress(&mut self, _p: &Progress) {}
}

/// Hooks that do nothing.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Result of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansResult {
    /// Final centroids, shape (k, d).
    pub centroids: Array2<f64>,
    /// Label (0..k) of each row against `centroids`.
    pub labels: Vec<u32>,
    /// Sum of squared distances of the rows to their centroid.
    pub inertia: f64,
    /// Iterations of the winning run, counted like scikit-learn's `n_iter_`.
    pub n_iter: usize,
    /// Whether the winning run stopped by strict or tolerance convergence (not max_iter).
    pub converged: bool,
    /// 0-based index of the winning restart.
    pub best_run: usize,
}

impl KMeansResult {
    /// Number the clusters canonically: by size, largest first; clusters of equal size by
    /// their centroids, compared coordinate by coordinate (`f64::total_cmp`). Centroids
    /// and labels are permuted together, so the model is the same, only numbered by a
    /// rule that does not depend on how the fit happened to order them.
    pub fn canonicalize(&mut self) {
        let k = self.centroids.nrows();
        let mut sizes = vec![0u64; k];
        for &l in &self.labels {
            sizes[l as usize] += 1;
        }
        self.canonicalize_by(&sizes);
    }

    /// [`KMeansResult::canonicalize`] by given cluster sizes (a fit whose labels cover a
    /// sample only: the sizes then come from a pass over every row).
    pub fn canonicalize_by(&mut self, sizes: &[u64]) {
        let k = self.centroids.nrows();
        assert_eq!(sizes.len(), k, "one size per centroid");
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| {
            sizes[b].cmp(&sizes[a]).then_with(|| {
                let (ra, rb) = (self.centroids.row(a), self.centroids.row(b));
                ra.iter()
                    .zip(rb.iter())
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        });
        let mut new_label = vec![0u32; k];
        for (new, &old) in order.iter().enumerate() {
            new_label[old] = new as u32;
        }
        self.centroids = self.centroids.select(ndarray::Axis(0), &order);
        for l in &mut self.labels {
            *l = new_label[*l as usize];
        }
    }
}

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

use super::error::EngineError;
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
const BLOCK: usize = 8192;
/// Upper bound of the memory held by per-block partial sums.
const PARTIAL_BUDGET: usize = 32 << 20;
/// Most worker threads used.
const MAX_THREADS: usize = 4;
/// Relative safety margin of the pruning bounds (far above f64 rounding of a distance
/// over up to ~10^5 features), so a skipped distance can never tie with the winner.
const DELTA: f64 = 1e-10;
/// How many rows of sequential work may pass between two interrupt checks.
const CHECK_EVERY: usize = 65_536;

/// How initial centroids are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Greedy k-means++ (scikit-learn's variant: `2 + floor(ln k)` local trials per centre).
    KMeansPlusPlus,
    /// k distinct rows picked uniformly at random.
    Random,
    /// Given centroids, shape (k, n_features). Restarts are pointless, so `n_init` is 1.
    Given(Array2<f64>),
}

/// Which exact Lloyd implementation runs. All give identical results; they differ in
/// speed and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Pick by n, k, d (see [`Algorithm::resolve`]).
    Auto,
    /// Plain Lloyd: every point against every centroid, every iteration.
    Lloyd,
    /// Hamerly: one upper and one lower bound per point (16 extra bytes per row).
    Hamerly,
    /// Elkan: one upper bound and k lower bounds per point (8 + 4k extra bytes per row).
    Elkan,
}

impl Algorithm {
    /// The concrete algorithm [`Algorithm::Auto`] stands for on data of this shape.
    /// Measured on 1M standardized rows, 2-core EPYC (docs/benchmarks.md, "Engine:
    /// k-means"): Hamerly beat Lloyd and Elkan at (d, k) = (8, 8), (16, 64) and
    /// (64, 64) alike. Its first iteration costs about one Lloyd pass, later ones only
    /// the rows whose bounds fail; Elkan's k bounds per row cost more to maintain than
    /// they save there (and 4k bytes per row). k = 1 needs no bounds: Lloyd. Other
    /// variants are returned unchanged.
    pub fn resolve(self, _n: usize, k: usize, _d: usize) -> Algorithm {
        match self {
            Algorithm::Auto if k <= 1 => Algorithm::Lloyd,
            Algorithm::Auto => Algorithm::Hamerly,
            other => other,
        }
    }
}

/// Parameters of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansParams {
    /// Number of clusters, >= 1 and <= number of distinct rows.
    pub k: usize,
    /// Initialisation method.
    pub init: Init,
    /// Number of restarts (each from its own seed derived from `seed`); the run with the
    /// lowest inertia wins. Ignored (treated as 1) for [`Init::Given`].
    pub n_init: usize,
    /// Maximum Lloyd iterations per run, >= 1.
    pub max_iter: usize,
    /// Relative tolerance: a run stops when the total squared centre shift is
    /// <= `tol` * (mean per-feature variance of x). 0 means "only strict convergence".
    pub tol: f64,
    /// Seed of the ChaCha8 generator; run `r` uses stream `r` of this seed.
    pub seed: u64,
    /// Implementation to use.
    pub algorithm: Algorithm,
    /// Worker threads for the assignment step (0 = automatic: the available cores, at
    /// most 4). Results do not depend on it.
    pub threads: usize,
    /// k-means++ draws its seeds from a uniform random sample of this many rows (taken
    /// with the run's generator) when there are more than twice as many rows; the Lloyd
    /// iterations always use every row. 0 (the default) seeds from every row, exactly as
    /// scikit-learn does. A sample with fewer than k distinct rows falls back to every
    /// row.
    pub init_sample: usize,
}

impl KMeansParams {
    /// k-means++ init, `n_init` 1, `max_iter` 300, `tol` 1e-4, seed 0, automatic
    /// algorithm and threads.
    pub fn new(k: usize) -> Self {
        KMeansParams {
            k,
            init: Init::KMeansPlusPlus,
            n_init: 1,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
            algorithm: Algorithm::Auto,
            threads: 0,
            init_sample: 0,
        }
    }

    /// Sets the initialisation method.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Sets the number of restarts.
    pub fn n_init(mut self, n_init: usize) -> Self {
        self.n_init = n_init;
        self
    }

    /// Sets the iteration limit per run.
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the relative tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the algorithm.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of worker threads (0 = automatic).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Seeds k-means++ from a sample of `rows` rows on large inputs (see
    /// [`KMeansParams::init_sample`]; 0 = every row).
    pub fn init_sample(mut self, rows: usize) -> Self {
        self.init_sample = rows;
        self
    }

    /// Validates the parameters against the data: k >= 1, n_init >= 1, max_iter >= 1,
    /// 0 <= tol < inf, at least one row and one feature, only finite values, a given
    /// init of shape (k, d) with finite values, and at least k distinct rows.
    pub fn check(&self, x: ArrayView2<f64>) -> Result<(), EngineError> {
        for (name, value, max) in [
            ("k", self.k, MAX_K),
            ("n_init", self.n_init, MAX_N_INIT),
            ("max_iter", self.max_iter, MAX_ITER),
        ] {
            if !(1..=max).contains(&value) {
                return Err(EngineError::invalid(
                    name,
                    format!("must be between 1 and {max}, got {value}"),
                ));
            }
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(EngineError::invalid(
                "tol",
                format!("must be a finite number >= 0, got {}", self.tol),
            ));
        }
        let (n, d) = x.dim();
        if n == 0 {
            return Err(EngineError::NoRows);
        }
        if d == 0 {
            return Err(EngineError::NoFeatures);
        }
        if self.k > u32::MAX as usize {
            return Err(EngineError::invalid("k", "must be < 2^32"));
        }
        // Fast vectorisable scan of contiguous data; locate the culprit only on failure.
        let all_finite = match x.as_slice() {
            Some(s) => s
                .chunks(4096)
                .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite())),
            None => false,
        };
        if !all_finite {
            for (row, r) in x.outer_iter().enumerate() {
                for (feature, &value) in r.iter().enumerate() {
                    if !value.is_finite() {
                        return Err(EngineError::NonFinite {
                            row,
                            feature,
                            value,
                        });
                    }
                }
            }
        }
        if let Init::Given(c) = &self.init {
            if c.nrows() != self.k {
                return Err(EngineError::invalid(
                    "init",
                    format!("has {} initial centroids but k = {}", c.nrows(), self.k),
                ));
            }
            if c.ncols() != d {
                return Err(EngineError::DimensionMismatch {
                    expected: d,
                    got: c.ncols(),
                });
            }
            if let Some(((r, f), v)) = c.indexed_iter().find(|(_, v)| !v.is_finite()) {
                return Err(EngineError::invalid(
                    "init",
                    format!("initial centroid {r} has non-finite value {v} in feature {f}"),
                ));
            }
        }
        let distinct = count_distinct_rows(x, self.k);
        if distinct < self.k {
            return Err(EngineError::TooFewDistinctPoints {
                k: self.k,
                distinct,
            });
        }
        Ok(())
    }

    /// Upper bound of the bytes [`fit`] allocates on an (n, d) matrix in addition to the
    /// matrix itself (assumed contiguous, row-major), for a memory-budget check.
    pub fn memory_estimate(&self, n: usize, d: usize) -> usize {
        let k = self.k;
        let per_row = match self.algorithm.resolve(n, k, d) {
            Algorithm::Lloyd => 4,
            Algorithm::Hamerly => 4 + 16,
            Algorithm::Elkan | Algorithm::Auto => 4 + 8 + 4 + 4 * k,
        };
        let best_labels = if self.n_init > 1 { 4 } else { 0 };
        // k-means++ keeps 13 bytes per row (closest distance, its centre, improvement
        // bits); relocating empty clusters needs 16 per row.
        let transient = 16;
        let history = self.max_iter.saturating_add(2).saturating_mul(k * 8);
        let partials = (n_blocks(n, block_rows(n, k, d)) * (k * d + k) * 8)
            .min(PARTIAL_BUDGET + (k * d + k) * 8);
        let fixed = 4 * k * d * 8 + 4 * k * k * 8 + history + partials + (1 << 16);
        n.saturating_mul(per_row + best_labels + transient)
            .saturating_add(fixed)
    }
}

/// The largest k: segmentation, not vector quantization. Each Lloyd pass costs
/// n x k x d, so k beyond this on millions of rows would run for hours.
pub const MAX_K: usize = 1000;
/// The most k-means++ restarts a fit may run.
pub const MAX_N_INIT: usize = 100;
/// The most Lloyd iterations a run may take.
pub const MAX_ITER: usize = 10_000;

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

/// Nearest centroid of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    /// Index of the nearest centroid (lowest index on ties).
    pub index: usize,
    /// Squared euclidean distance to it.
    pub dist_sq: f64,
    /// Second nearest centroid and its squared distance; `None` when k = 1.
    pub runner_up: Option<(usize, f64)>,
}

// ---------------------------------------------------------------------------------------
// Distance kernel

/// Squared euclidean distance with four interleaved accumulators (vectorisable). The
/// one distance used everywhere, so every code path makes the same decisions.
#[inline(always)]
fn sqdist(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let ac = a.chunks_exact(4);
    let bc = b.chunks_exact(4);
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (p, q) in ac.zip(bc) {
        for l in 0..4 {
            let t = p[l] - q[l];
            acc[l] += t * t;
        }
    }
    for (l, (p, q)) in ar.iter().zip(br).enumerate() {
        let t = p - q;
        acc[l] += t * t;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[inline(always)]
fn up(v: f64) -> f64 {
    v * (1.0 + DELTA)
}

#[inline(always)]
fn down(v: f64) -> f64 {
    v * (1.0 - DELTA)
}

/// Largest f32 <= v (0 for v <= 0 or NaN).
#[inline(always)]
fn down32(v: f64) -> f32 {
    if v.is_nan() || v <= 0.0 {
        return 0.0;
    }
    let f = v as f32;
    if f as f64 > v {
        f.next_down()
    } else {
        f
    }
}

/// First index of the minimum distance and that distance.
#[inline(always)]
fn argmin(c: &[f64], k: usize, d: usize, xi: &[f64]) -> (usize, f64) {
    let mut best = f64::INFINITY;
    let mut bi = 0;
    // Plain index arithmetic: `chunks_exact(d)` would divide by d on every call.
    for j in 0..k {
        let v = sqdist(xi, &c[j * d..j * d + d]);
        if v < best {
            best = v;
            bi = j;
        }
    }
    (bi, best)
}

/// Like [`argmin`], plus the second-smallest distance (infinite when k = 1). The
/// update `second = min(second, max(best, v))` equals the branchy "if v < best {second =
/// best} else if v < second {second = v}" and keeps the dependency chains short.
#[inline(always)]
fn argmin2(c: &[f64], k: usize, d: usize, xi: &[f64]) -> (usize, f64, f64) {
    #[inline(always)]
    fn fmin(a: f64, b: f64) -> f64 {
        if a < b {
            a
        } else {
            b
        }
    }
    let mut best = f64::INFINITY;
    let mut second = f64::INFINITY;
    let mut bi = 0;
    for j in 0..k {
        let v = sqdist(xi, &c[j * d..j * d + d]);
        second = fmin(second, if best > v { best } else { v });
        if v < best {
            bi = j;
        }
        best = fmin(best, v);
    }
    (bi, best, second)
}

/// Nearest centroid of `x` (lowest index on ties) with the runner-up. Allocation-free.
///
/// Panics if `x.len()` differs from the number of centroid columns or there are no
/// centroids.
pub fn nearest(centroids: ArrayView2<f64>, x: &[f64]) -> Nearest {
    let (k, d) = centroids.dim();
    assert!(k > 0, "nearest: no centroids");
    assert_eq!(
        x.len(),
        d,
        "nearest: vector length differs from centroid width"
    );
    let mut best = (usize::MAX, f64::INFINITY);
    let mut second: Option<(usize, f64)> = None;
    let mut consider = |j: usize, v: f64| {
        if best.0 == usize::MAX {
            best = (j, v);
        } else if v < best.1 {
            second = Some(best);
            best = (j, v);
        } else if second.is_none_or(|s| v < s.1) {
            second = Some((j, v));
        }
    };
    match centroids.as_slice() {
        #[cfg(target_arch = "x86_64")]
        // Small problems stay scalar: measured, the AVX2 set-up does not pay off below
        // ~128 products (k = 3, d = 3: 33 vs 44 ns). Both give the same bits.
        Some(c) if k * d >= 128 && k <= avx2::NEAREST_MAX_K && Simd::detect() == Simd::Avx2 => {
            // SAFETY: `Simd::Avx2` means `is_x86_feature_detected!("avx2")` held.
            #[allow(unsafe_code)]
            let fast = unsafe { avx2::nearest(c, k, d, x) };
            match fast {
                Some(nb) => return nb,
                None => {
                    for (j, cj) in c.chunks_exact(d).enumerate() {
                        consider(j, sqdist(x, cj));
                    }
                }
            }
        }
        Some(c) => {
            // Distances in batches on the stack (allocation-free), then the scalar
            // decisions, so that NaN inputs behave as they always did.
            const BATCH: usize = 64;
            let simd = Simd::detect();
            let mut buf = [0.0f64; BATCH];
            for j0 in (0..k).step_by(BATCH) {
                let m = (k - j0).min(BATCH);
                let out = &mut buf[..m];
                dists_with(simd, &c[j0 * d..(j0 + m) * d], m, d, x, out);
                for (i, &v) in out.iter().enumerate() {
                    consider(j0 + i, v);
                }
            }
        }
        None => {
            for (j, row) in centroids.outer_iter().enumerate() {
                // Same accumulation order as `sqdist` (element i goes to lane i % 4).
                let mut acc = [0.0f64; 4];
                for (i, (p, q)) in x.iter().zip(row.iter()).enumerate() {
                    let t = p - q;
                    acc[i % 4] += t * t;
                }
                consider(j, (acc[0] + acc[1]) + (acc[2] + acc[3]));
            }
        }
    }
    Nearest {
        index: best.0,
        dist_sq: best.1,
        runner_up: second,
    }
}

// ---------------------------------------------------------------------------------------
// Run-time dispatched distance kernels

/// Which implementation of the all-centroid kernels ([`argmin2_with`], [`nearest`]) runs.
/// Both compute every distance exactly as [`sqdist`] does (same operations, same order,
/// no fused multiply-add), so they return the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    /// [`sqdist`] per centroid, as the compiler vectorizes it for the baseline target.
    Portable,
    /// 256-bit AVX2 code (see [`avx2`]), only ever constructed after
    /// `is_x86_feature_detected!("avx2")`.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

#[cfg(test)]
thread_local! {
    /// Tests force the portable kernel on the calling thread to compare both paths.
    static FORCE_PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Simd {
    /// The fastest kernel this CPU runs (feature detection is cached by std).
    #[inline]
    fn detect() -> Simd {
        #[cfg(test)]
        if FORCE_PORTABLE.with(|f| f.get()) {
            return Simd::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
        Simd::Portable
    }
}

/// Centroids in the layout of the AVX2 E-step kernel: groups of four centroids (the last
/// centroid repeated past k), each stored as `ceil(d / 4)` chunks of 4 centroids x 4
/// features (zeros past d), so the kernel reads them with aligned-free contiguous loads
/// and no bounds checks per centroid. Empty for the portable kernel or when d > 4 *
/// [`PACK_MAX_CHUNKS`] (the AVX2 kernel then reads the k x d matrix directly).
struct Packed {
    /// Chunks of four features per row (0 when not packed).
    chunks: usize,
    v: Vec<f64>,
}

/// Widest rows (in chunks of four features) the packed AVX2 kernel handles.
const PACK_MAX_CHUNKS: usize = 16;

impl Packed {
    fn new(simd: Simd, centers: &[f64], k: usize, d: usize) -> Packed {
        let chunks = d.div_ceil(4);
        if simd == Simd::Portable || chunks > PACK_MAX_CHUNKS || k == 0 {
            return Packed {
                chunks: 0,
                v: Vec::new(),
            };
        }
        let groups = k.div_ceil(4);
        let mut v = vec![0.0; groups * chunks * 16];
        for g in 0..groups {
            for q in 0..chunks {
                for i in 0..4 {
                    let j = (4 * g + i).min(k - 1);
                    for l in 0..4 {
                        let f = 4 * q + l;
                        if f < d {
                            v[((g * chunks + q) * 4 + i) * 4 + l] = centers[j * d + f];
                        }
                    }
                }
            }
        }
        Packed { chunks, v }
    }
}

/// [`argmin2`] through the kernel `simd` selects: (first index of the minimum, minimum,
/// second smallest distance (infinite when k = 1)). Bit-identical for every kernel as
/// long as no distance is NaN (the training paths validate their input as finite).
#[inline(always)]
#[allow(unsafe_code)]
fn argmin2_with(
    simd: Simd,
    p: &Packed,
    c: &[f64],
    k: usize,
    d: usize,
    xi: &[f64],
) -> (usize, f64, f64) {
    match simd {
        Simd::Portable => argmin2(c, k, d, xi),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` only exists after `is_x86_feature_detected!("avx2")`
        // confirmed AVX2 on this CPU; the callees have no other requirement (no raw
        // pointers, every slice access is bounds-checked).
        Simd::Avx2 => unsafe {
            if p.chunks > 0 {
                avx2::argmin2_packed(p, k, xi)
            } else {
                avx2::argmin2(c, k, d, xi)
            }
        },
    }
}

/// Centroids prepared for many single-row nearest-centroid lookups (what
/// `segment_assign` does per row): the packed layout the training E-step uses, built
/// once. For rows whose distances are all finite (every encoded row), `index(x)` equals
/// `nearest(centroids, x).index`: the same distance bits, the same first minimum.
pub struct CentroidIndex {
    simd: Simd,
    packed: Packed,
    c: Vec<f64>,
    k: usize,
    d: usize,
}

impl CentroidIndex {
    /// Pack a k x d centroid matrix (k >= 1).
    ///
    /// Panics if there are no centroids.
    pub fn new(centroids: ArrayView2<f64>) -> CentroidIndex {
        let (k, d) = centroids.dim();
        assert!(k > 0, "CentroidIndex: no centroids");
        let simd = Simd::detect();
        let c = contiguous(centroids).into_owned();
        let packed = Packed::new(simd, &c, k, d);
        CentroidIndex {
            simd,
            packed,
            c,
            k,
            d,
        }
    }

    /// Index of the nearest centroid (lowest on ties).
    ///
    /// Panics if `x.len()` is not the centroid width.
    #[inline]
    pub fn index(&self, x: &[f64]) -> usize {
        self.nearest(x).0
    }

    /// Index of the nearest centroid (lowest on ties) and its squared distance, the same
    /// bits as `nearest(centroids, x).dist_sq` for finite rows.
    ///
    /// Panics if `x.len()` is not the centroid width.
    #[inline]
    pub fn nearest(&self, x: &[f64]) -> (usize, f64) {
        assert_eq!(
            x.len(),
            self.d,
            "CentroidIndex: vector length differs from centroid width"
        );
        let (i, dist_sq, _) = argmin2_with(self.simd, &self.packed, &self.c, self.k, self.d, x);
        (i, dist_sq)
    }
}

/// [`argmin`] through the kernel `simd` selects (same conditions as [`argmin2_with`]).
#[inline(always)]
fn argmin_with(simd: Simd, p: &Packed, c: &[f64], k: usize, d: usize, xi: &[f64]) -> (usize, f64) {
    match simd {
        Simd::Portable => argmin(c, k, d, xi),
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => {
            let (a, da, _) = argmin2_with(simd, p, c, k, d, xi);
            (a, da)
        }
    }
}

/// `(a.sqrt(), b.sqrt())`, as one packed square root on AVX2 (correctly rounded either
/// way, so the bits are the same).
#[inline(always)]
#[allow(unsafe_code)]
fn sqrt2_with(simd: Simd, a: f64, b: f64) -> (f64, f64) {
    match simd {
        Simd::Portable => (a.sqrt(), b.sqrt()),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 => unsafe { avx2::sqrt2(a, b) },
    }
}

/// `out[j] = sqdist(x, c_j)` for every row of the k x d matrix `c`, through the kernel
/// `simd` selects (bit-identical for every kernel, NaN included).
#[inline(always)]
#[allow(unsafe_code)]
fn dists_with(simd: Simd, c: &[f64], k: usize, d: usize, x: &[f64], out: &mut [f64]) {
    match simd {
        Simd::Portable => {
            for (o, cj) in out[..k].iter_mut().zip(c.chunks_exact(d)) {
                *o = sqdist(x, cj);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 => unsafe { avx2::dists(c, k, d, x, out) },
    }
}

/// One block of [`pp_potentials`] through the AVX2 kernel (see [`pp_pot_block`]):
/// `false` (nothing done) when it does not apply (portable kernel, rows too wide to
/// pack, more than 8 candidates). `ht` holds the thresholds owner-major with a stride
/// of [`pp_lanes`]`(nc)`.
#[inline(always)]
#[allow(unsafe_code, clippy::too_many_arguments)]
fn pp_pot_block_with(
    simd: Simd,
    p: &Packed,
    nc: usize,
    ht: &[f64],
    x: &[f64],
    d: usize,
    blk: &mut PpBlock,
    out: &mut [f64],
) -> bool {
    let (start, c, o, mk) = blk;
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 if p.chunks > 0 && nc <= 8 => unsafe {
            if nc <= 4 {
                avx2::pot_block::<1>(p, nc, ht, x, d, *start, c, o, mk, out);
            } else {
                avx2::pot_block::<2>(p, nc, ht, x, d, *start, c, o, mk, out);
            }
            true
        },
        _ => false,
    }
}

/// Threshold (and distance buffer) stride of [`pp_pot_block_with`] for `nc`
/// candidates on `simd` with rows packed in `p`: a multiple of four lanes when the
/// vector kernel runs, else `nc`.
fn pp_lanes(simd: Simd, p: &Packed, nc: usize) -> usize {
    if simd != Simd::Portable && p.chunks > 0 && nc <= 8 {
        nc.div_ceil(4) * 4
    } else {
        nc
    }
}

/// `out[j] = sqdist(row, center)` for the listed rows of `x` (row `start + list[j]`)
/// through the kernel `simd` selects (bit-identical for every kernel, NaN included:
/// same operands in the same order). With `ahead > 0`, rows that many list entries
/// ahead are prefetched.
#[inline(always)]
#[allow(unsafe_code)]
fn pp_center_rows_with(
    simd: Simd,
    center: &[f64],
    x: &[f64],
    start: usize,
    list: &[u32],
    out: &mut [f64],
    ahead: usize,
) {
    let d = center.len();
    match simd {
        Simd::Portable => {
            let row = |r: u32| &x[(start + r as usize) * d..(start + r as usize + 1) * d];
            for (j, (&r, o)) in list.iter().zip(out.iter_mut()).enumerate() {
                if ahead > 0 {
                    if let Some(&ra) = list.get(j + ahead) {
                        prefetch_row(row(ra));
                    }
                }
                *o = sqdist(row(r), center);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 => unsafe { avx2::center_rows(center, x, start, list, out, ahead) },
    }
}

/// AVX2 versions of the all-centroid distance loops. One vector holds the distances of
/// one row to four centroids; each of them is accumulated exactly like [`sqdist`]: lane
/// `l` of the per-centroid accumulator sums the squared differences of features `l, l +
/// 4, l + 8, ...` in order (the missing features of a last partial chunk are zeros,
/// which add an exact +0), then `(l0 + l1) + (l2 + l3)`, done for four centroids at once
/// with two `hadd`s, two lane permutes and one add. Multiplies and adds stay separate
/// (no FMA), as in the portable code, so both give the same bits on every input.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    // The hot helpers are macros: `#[inline(always)]` is not allowed on `#[target_feature]`
    // functions, and LLVM does not always inline a plain `#[inline]` one into the loops.

    /// `acc = sq` on the first chunk, else `acc + sq` (`0.0 + sq == sq` bit for bit: a
    /// square is never -0.0, so the first chunk may skip the scalar code's add).
    macro_rules! acc_sq {
        ($acc:expr, $first:expr, $xv:expr, $cv:expr) => {{
            let t = _mm256_sub_pd($xv, $cv);
            let sq = _mm256_mul_pd(t, t);
            $acc = if $first { sq } else { _mm256_add_pd($acc, sq) };
        }};
    }

    /// `(l0 + l1) + (l2 + l3)` of each of four accumulators, as one vector.
    macro_rules! reduce4 {
        ($acc:expr) => {{
            let acc: [__m256d; 4] = $acc;
            // [a0_0+a0_1, a1_0+a1_1, a0_2+a0_3, a1_2+a1_3] and the same for a2, a3.
            let h01 = _mm256_hadd_pd(acc[0], acc[1]);
            let h23 = _mm256_hadd_pd(acc[2], acc[3]);
            let lo = _mm256_permute2f128_pd::<0x20>(h01, h23);
            let hi = _mm256_permute2f128_pd::<0x31>(h01, h23);
            _mm256_add_pd(lo, hi)
        }};
    }

    /// One step of the four-lane running search over the distances `v` of centroids
    /// `jv` (lanes past the last centroid, `jv >= kv`, are made +inf when `partial`:
    /// +inf never changes the minimum, index or second). The operations are those of the
    /// scalar loop: `second = min(second, max(best, v))`, index where `v < best`, `best =
    /// min(best, v)` (`_mm256_min_pd(a, b)` is `a < b ? a : b`, as the scalar `fmin`).
    macro_rules! step {
        ($v:expr, $partial:expr, $jv:ident, $kv:expr, $best:ident, $second:ident, $bi:ident) => {{
            let mut v: __m256d = $v;
            if $partial {
                let inf = _mm256_set1_pd(f64::INFINITY);
                v = _mm256_blendv_pd(v, inf, _mm256_cmp_pd::<_CMP_GE_OQ>($jv, $kv));
            }
            $second = _mm256_min_pd($second, _mm256_max_pd($best, v));
            $bi = _mm256_blendv_pd($bi, $jv, _mm256_cmp_pd::<_CMP_LT_OQ>(v, $best));
            $best = _mm256_min_pd($best, v);
            $jv = _mm256_add_pd($jv, _mm256_set1_pd(4.0));
        }};
    }

    /// Minimum of the four lanes, in every lane (`min` is exact, so any order works).
    macro_rules! hmin {
        ($v:expr) => {{
            let v: __m256d = $v;
            let m = _mm256_min_pd(v, _mm256_permute_pd::<0b0101>(v));
            _mm256_min_pd(m, _mm256_permute2f128_pd::<1>(m, m))
        }};
    }

    /// The lanes of four running (minimum, first index, second smallest) searches merged
    /// into one, branch-free: the minimum, the lowest index among the lanes holding it,
    /// and the second smallest value of the union (`min(seconds, second smallest of the
    /// minima)`). Exact for non-NaN values.
    macro_rules! merge_lanes {
        ($best:expr, $second:expr, $bi:expr) => {{
            let best: __m256d = $best;
            let sw = _mm256_permute_pd::<0b0101>(best);
            let (mn, mx) = (_mm256_min_pd(best, sw), _mm256_max_pd(best, sw));
            let mn_sw = _mm256_permute2f128_pd::<1>(mn, mn);
            let mx_sw = _mm256_permute2f128_pd::<1>(mx, mx);
            let m = _mm256_min_pd(mn, mn_sw);
            let second_of_best = _mm256_min_pd(_mm256_min_pd(mx, mx_sw), _mm256_max_pd(mn, mn_sw));
            let second = _mm256_min_pd(hmin!($second), second_of_best);
            let big = _mm256_set1_pd(f64::INFINITY);
            let eq = _mm256_cmp_pd::<_CMP_EQ_OQ>(best, m);
            let idx = hmin!(_mm256_blendv_pd(big, $bi, eq));
            (
                _mm_cvtsd_f64(_mm256_castpd256_pd128(idx)) as usize,
                _mm_cvtsd_f64(_mm256_castpd256_pd128(m)),
                _mm_cvtsd_f64(_mm256_castpd256_pd128(second)),
            )
        }};
    }

    /// Squared distances of the row (chunks `xc`) to the four centroids of one packed
    /// group `pg` (`xc.len()` chunks of 16 values).
    macro_rules! group_dist {
        ($xc:expr, $pg:expr) => {{
            let pg: &[f64] = $pg;
            let mut acc = [_mm256_setzero_pd(); 4];
            for (c, xv) in $xc.iter().enumerate() {
                let cq = &pg[16 * c..16 * c + 16];
                acc_sq!(acc[0], c == 0, *xv, load4(&cq[0..4]));
                acc_sq!(acc[1], c == 0, *xv, load4(&cq[4..8]));
                acc_sq!(acc[2], c == 0, *xv, load4(&cq[8..12]));
                acc_sq!(acc[3], c == 0, *xv, load4(&cq[12..16]));
            }
            reduce4!(acc)
        }};
    }

    /// The search over all packed groups for the row chunks `xc`.
    macro_rules! search_packed {
        ($p:expr, $k:expr, $xc:expr) => {{
            let (p, k) = ($p, $k);
            let xc = $xc;
            let q = xc.len();
            let inf = _mm256_set1_pd(f64::INFINITY);
            let (mut best, mut second, mut bi) = (inf, inf, _mm256_setzero_pd());
            let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
            let kv = _mm256_set1_pd(k as f64);
            let groups = k.div_ceil(4);
            let partial = k % 4 != 0;
            for g in 0..groups {
                let v = group_dist!(xc, &p.v[16 * q * g..16 * q * (g + 1)]);
                let last = partial && g + 1 == groups;
                step!(v, last, jv, kv, best, second, bi);
            }
            merge_lanes!(best, second, bi)
        }};
    }

    /// Four consecutive values (one 256-bit load after inlining; no raw pointer).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load4(s: &[f64]) -> __m256d {
        let a: &[f64; 4] = s[..4].try_into().expect("four values");
        _mm256_setr_pd(a[0], a[1], a[2], a[3])
    }

    /// Up to four values, zero-filled to four lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn tail4(s: &[f64]) -> __m256d {
        match *s {
            [a] => _mm256_setr_pd(a, 0.0, 0.0, 0.0),
            [a, b] => _mm256_setr_pd(a, b, 0.0, 0.0),
            [a, b, c] => _mm256_setr_pd(a, b, c, 0.0),
            _ => load4(s),
        }
    }

    /// Chunk `i` of a row (zero-filled past its end).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn chunk(x: &[f64], i: usize) -> __m256d {
        tail4(&x[4 * i..x.len().min(4 * i + 4)])
    }

    /// Squared distances of `x` to the four centroid rows `c` (each `x.len()` long), each
    /// bit-identical to `sqdist(x, c[i])`.
    macro_rules! dist4 {
        ($x:expr, $c:expr) => {{
            let (x, c): (&[f64], [&[f64]; 4]) = ($x, $c);
            let mut acc = [_mm256_setzero_pd(); 4];
            for i in 0..x.len().div_ceil(4) {
                let xv = chunk(x, i);
                for (a, cj) in acc.iter_mut().zip(c) {
                    acc_sq!(*a, i == 0, xv, chunk(cj, i));
                }
            }
            reduce4!(acc)
        }};
    }

    /// Centroid rows `g..g + 4` of the k x d matrix `c`, the last one repeated past k.
    #[inline(always)]
    fn rows4(c: &[f64], k: usize, d: usize, g: usize) -> [&[f64]; 4] {
        let row = |i: usize| {
            let j = (g + i).min(k - 1);
            &c[j * d..j * d + d]
        };
        [row(0), row(1), row(2), row(3)]
    }

    /// `super::argmin2` over centroids packed by `super::Packed::new` (`p.chunks > 0`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn argmin2_packed(p: &super::Packed, k: usize, x: &[f64]) -> (usize, f64, f64) {
        match p.chunks {
            1 => search_packed!(p, k, [chunk(x, 0)]),
            2 => search_packed!(p, k, [chunk(x, 0), chunk(x, 1)]),
            3 => search_packed!(p, k, [chunk(x, 0), chunk(x, 1), chunk(x, 2)]),
            4 => search_packed!(p, k, [chunk(x, 0), chunk(x, 1), chunk(x, 2), chunk(x, 3)]),
            // Rows of up to 32 features (typical encoded customer rows) stay in registers.
            5 => search_packed!(
                p,
                k,
                [
                    chunk(x, 0),
                    chunk(x, 1),
                    chunk(x, 2),
                    chunk(x, 3),
                    chunk(x, 4)
                ]
            ),
            6 => search_packed!(
                p,
                k,
                [
                    chunk(x, 0),
                    chunk(x, 1),
                    chunk(x, 2),
                    chunk(x, 3),
                    chunk(x, 4),
                    chunk(x, 5)
                ]
            ),
            7 => search_packed!(
                p,
                k,
                [
                    chunk(x, 0),
                    chunk(x, 1),
                    chunk(x, 2),
                    chunk(x, 3),
                    chunk(x, 4),
                    chunk(x, 5),
                    chunk(x, 6)
                ]
            ),
            8 => search_packed!(
                p,
                k,
                [
                    chunk(x, 0),
                    chunk(x, 1),
                    chunk(x, 2),
                    chunk(x, 3),
                    chunk(x, 4),
                    chunk(x, 5),
                    chunk(x, 6),
                    chunk(x, 7)
                ]
            ),
            q => {
                let mut buf = [_mm256_setzero_pd(); super::PACK_MAX_CHUNKS];
                for (i, v) in buf[..q].iter_mut().enumerate() {
                    *v = chunk(x, i);
                }
                search_packed!(p, k, &buf[..q])
            }
        }
    }

    /// `super::argmin2` on the k x d matrix `c` (rows too wide to pack).
    #[target_feature(enable = "avx2")]
    pub(super) fn argmin2(c: &[f64], k: usize, d: usize, x: &[f64]) -> (usize, f64, f64) {
        let inf = _mm256_set1_pd(f64::INFINITY);
        let (mut best, mut second, mut bi) = (inf, inf, _mm256_setzero_pd());
        let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
        let kv = _mm256_set1_pd(k as f64);
        for g in (0..k).step_by(4) {
            let v = dist4!(x, rows4(c, k, d, g));
            step!(v, g + 4 > k, jv, kv, best, second, bi);
        }
        merge_lanes!(best, second, bi)
    }

    /// [`super::nearest`] on the k x d matrix `c` for 1 <= k <= [`NEAREST_MAX_K`]:
    /// `None` when a distance is NaN (the caller then runs the scalar decisions, whose
    /// NaN behaviour is the reference). Otherwise the index is the first minimum (as
    /// the scalar loop), and the runner-up is the first index other than it holding
    /// the smallest remaining value, which is what the scalar loop keeps: its second is
    /// the second smallest value of the multiset, replaced only by a strictly smaller one
    /// or handed down from an earlier best (itself a first occurrence).
    #[target_feature(enable = "avx2")]
    pub(super) fn nearest(c: &[f64], k: usize, d: usize, x: &[f64]) -> Option<super::Nearest> {
        let mut dv = [_mm256_setzero_pd(); NEAREST_MAX_K / 4];
        let groups = k.div_ceil(4);
        let dv = &mut dv[..groups];
        let inf = _mm256_set1_pd(f64::INFINITY);
        let (mut best, mut second, mut bi) = (inf, inf, _mm256_setzero_pd());
        let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
        let kv = _mm256_set1_pd(k as f64);
        let mut nan = _mm256_setzero_pd();
        for (g, slot) in dv.iter_mut().enumerate() {
            let mut v = dist4!(x, rows4(c, k, d, 4 * g));
            nan = _mm256_or_pd(nan, _mm256_cmp_pd::<_CMP_UNORD_Q>(v, v));
            if 4 * g + 4 > k {
                v = _mm256_blendv_pd(v, inf, _mm256_cmp_pd::<_CMP_GE_OQ>(jv, kv));
            }
            *slot = v;
            step!(v, false, jv, kv, best, second, bi);
        }
        if _mm256_movemask_pd(nan) != 0 {
            return None;
        }
        let (a, dist_sq, s) = merge_lanes!(best, second, bi);
        let mut runner_up = None;
        if k > 1 {
            let sv = _mm256_set1_pd(s);
            let av = _mm256_set1_pd(a as f64);
            let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
            for (g, v) in dv.iter().enumerate() {
                let hit = _mm256_andnot_pd(
                    _mm256_cmp_pd::<_CMP_EQ_OQ>(jv, av),
                    _mm256_cmp_pd::<_CMP_EQ_OQ>(*v, sv),
                );
                let m = _mm256_movemask_pd(hit);
                if m != 0 {
                    runner_up = Some((4 * g + m.trailing_zeros() as usize, s));
                    break;
                }
                jv = _mm256_add_pd(jv, _mm256_set1_pd(4.0));
            }
        }
        Some(super::Nearest {
            index: a,
            dist_sq,
            runner_up,
        })
    }

    /// The four lanes of `v`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lanes(v: __m256d) -> [f64; 4] {
        let lo = _mm256_castpd256_pd128(v);
        let hi = _mm256_extractf128_pd::<1>(v);
        [
            _mm_cvtsd_f64(lo),
            _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)),
            _mm_cvtsd_f64(hi),
            _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)),
        ]
    }

    /// `[sqdist(rows[i], c)]`: four rows against one centre, each accumulated exactly
    /// as [`super::sqdist`] with the same operand order (row minus centre).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rows_dist4(rows: [&[f64]; 4], c: &[f64]) -> __m256d {
        let d = c.len();
        let mut acc = [_mm256_setzero_pd(); 4];
        // Chunk 0 sets the accumulators, full chunks add, then the partial one.
        let cv = chunk(c, 0);
        for (a, r) in acc.iter_mut().zip(rows) {
            acc_sq!(*a, true, chunk(r, 0), cv);
        }
        for i in 1..d / 4 {
            let cv = load4(&c[4 * i..4 * i + 4]);
            for (a, r) in acc.iter_mut().zip(rows) {
                acc_sq!(*a, false, load4(&r[4 * i..4 * i + 4]), cv);
            }
        }
        if d > 4 && !d.is_multiple_of(4) {
            let i = d / 4;
            let cv = tail4(&c[4 * i..]);
            for (a, r) in acc.iter_mut().zip(rows) {
                acc_sq!(*a, false, tail4(&r[4 * i..d]), cv);
            }
        }
        reduce4!(acc)
    }

    /// `super::pp_center_rows_with` on AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) fn center_rows(
        c: &[f64],
        x: &[f64],
        start: usize,
        list: &[u32],
        out: &mut [f64],
        ahead: usize,
    ) {
        let d = c.len();
        for (g, (four, o)) in list.chunks(4).zip(out.chunks_mut(4)).enumerate() {
            if ahead > 0 {
                for &r in list.iter().skip(4 * g + ahead).take(4) {
                    let r = start + r as usize;
                    super::prefetch_row(&x[r * d..(r + 1) * d]);
                }
            }
            let last = four[four.len() - 1];
            let mut rows: [&[f64]; 4] = [&[]; 4];
            for (i, rw) in rows.iter_mut().enumerate() {
                let r = start + *four.get(i).unwrap_or(&last) as usize;
                *rw = &x[r * d..(r + 1) * d];
            }
            let l = lanes(rows_dist4(rows, c));
            let m = o.len().min(four.len());
            o[..m].copy_from_slice(&l[..m]);
        }
    }

    /// The distances of the listed rows of `x` (row `start + list[j]`, width `d`) to the
    /// `4 * G` candidates packed in `p` (`p.chunks > 0`), `out[j * w + t]`, each row
    /// read once for all of them; bit-identical to `sqdist(row, candidate)` (row minus
    /// candidate, lanes and order as in `group_dist!`). With `ahead > 0`, rows that many
    /// list entries ahead are prefetched.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    fn cand_rows<const G: usize>(
        p: &super::Packed,
        w: usize,
        x: &[f64],
        d: usize,
        start: usize,
        list: &[u32],
        out: &mut [f64],
        ahead: usize,
    ) {
        let q = p.chunks;
        for (j, (&r, o)) in list.iter().zip(out.chunks_exact_mut(w)).enumerate() {
            if ahead > 0 {
                if let Some(&ra) = list.get(j + ahead) {
                    let ra = start + ra as usize;
                    super::prefetch_row(&x[ra * d..(ra + 1) * d]);
                }
            }
            let r = start + r as usize;
            let xi = &x[r * d..(r + 1) * d];
            let mut acc = [[_mm256_setzero_pd(); 4]; G];
            // Chunk 0 sets the accumulators, full chunks add, then the partial one.
            let group = |a: &mut [__m256d; 4], first: bool, xv: __m256d, cq: &[f64]| {
                acc_sq!(a[0], first, xv, load4(&cq[0..4]));
                acc_sq!(a[1], first, xv, load4(&cq[4..8]));
                acc_sq!(a[2], first, xv, load4(&cq[8..12]));
                acc_sq!(a[3], first, xv, load4(&cq[12..16]));
            };
            let xv = chunk(xi, 0);
            for (g, a) in acc.iter_mut().enumerate() {
                group(a, true, xv, &p.v[16 * g * q..16 * g * q + 16]);
            }
            for c in 1..d / 4 {
                let xv = load4(&xi[4 * c..4 * c + 4]);
                for (g, a) in acc.iter_mut().enumerate() {
                    let at = 16 * (g * q + c);
                    group(a, false, xv, &p.v[at..at + 16]);
                }
            }
            if d > 4 && !d.is_multiple_of(4) {
                let c = d / 4;
                let xv = tail4(&xi[4 * c..]);
                for (g, a) in acc.iter_mut().enumerate() {
                    let at = 16 * (g * q + c);
                    group(a, false, xv, &p.v[at..at + 16]);
                }
            }
            for (a, og) in acc.iter().zip(o.chunks_exact_mut(4)) {
                og.copy_from_slice(&lanes(reduce4!(*a)));
            }
        }
    }

    /// `super::pp_pot_block` on AVX2 for at most `4 * G` candidates (`nc`) packed in
    /// `p`: the pruning tests, the sums and the improvement bits work on four
    /// candidates per vector (lane t sums candidate t in row order, so the sums are
    /// those of the scalar code), and each listed row is read once for all candidates.
    /// `ht` holds the thresholds owner-major with a stride of `4 * G` lanes.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) fn pot_block<const G: usize>(
        p: &super::Packed,
        nc: usize,
        ht: &[f64],
        x: &[f64],
        d: usize,
        start: usize,
        c: &[f64],
        o: &[u32],
        mk: &mut [u8],
        out: &mut [f64],
    ) {
        const CH: usize = 512;
        let w = 4 * G;
        let mut need = [0u32; CH];
        let mut list = [0u32; CH];
        let mut sbuf = [0.0f64; CH * 8 + 8];
        let zero = _mm256_setzero_pd();
        let tiny = _mm256_set1_pd(super::PP_TINY);
        let lanebits = _mm256_setr_epi64x(1, 2, 4, 8);
        let full = (1u32 << nc) - 1;
        let mut acc = [zero; G];
        for (g, a) in acc.iter_mut().enumerate() {
            let mut t = [0.0; 4];
            for (l, tl) in t.iter_mut().enumerate() {
                if 4 * g + l < nc {
                    *tl = out[4 * g + l];
                }
            }
            *a = load4(&t);
        }
        for c0 in (0..c.len()).step_by(CH) {
            let len = (c.len() - c0).min(CH);
            // 1. The candidates each row must compute (`super::pp_need`, four at once;
            // ordered comparisons are false on NaN as the scalar ones).
            let mut cnt = 0;
            for (r, nr) in need[..len].iter_mut().enumerate() {
                let v = _mm256_set1_pd(c[c0 + r]);
                let a = o[c0 + r] as usize;
                let mut bits = 0u32;
                for g in 0..G {
                    let h = load4(&ht[(a * G + g) * 4..(a * G + g) * 4 + 4]);
                    let le = _mm256_cmp_pd::<_CMP_LE_OQ>(v, h);
                    let ge = _mm256_cmp_pd::<_CMP_GE_OQ>(v, tiny);
                    let z = _mm256_cmp_pd::<_CMP_EQ_OQ>(v, zero);
                    let skip = _mm256_or_pd(z, _mm256_and_pd(le, ge));
                    bits |= (!(_mm256_movemask_pd(skip) as u32) & 15) << (4 * g);
                }
                bits &= full;
                *nr = bits;
                list[cnt] = (c0 + r) as u32;
                cnt += (bits != 0) as usize;
            }
            // 2. Their distances to all candidates (prefetched when the list skips rows).
            let ahead = if cnt < len { super::PP_AHEAD } else { 0 };
            cand_rows::<G>(p, w, x, d, start, &list[..cnt], &mut sbuf, ahead);
            // 3. In row order: lanes of pruned candidates add closest_i, the others
            // min(s, closest_i) (`_mm256_min_pd(s, v)` is `s < v ? s : v`, which is
            // `s.min(v)` for the non-NaN, non-negative `v` here).
            let mut j = 0;
            for (r, &bits) in need[..len].iter().enumerate() {
                let v = _mm256_set1_pd(c[c0 + r]);
                let mut b = 0u32;
                for (g, a) in acc.iter_mut().enumerate() {
                    let s = load4(&sbuf[j * w + 4 * g..j * w + 4 * g + 4]);
                    let gb = _mm256_set1_epi64x(((bits >> (4 * g)) & 15) as i64);
                    let on = _mm256_castsi256_pd(_mm256_cmpeq_epi64(
                        _mm256_and_si256(gb, lanebits),
                        lanebits,
                    ));
                    let val = _mm256_blendv_pd(v, _mm256_min_pd(s, v), on);
                    *a = _mm256_add_pd(*a, val);
                    let lt = _mm256_and_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(s, v), on);
                    b |= (_mm256_movemask_pd(lt) as u32) << (4 * g);
                }
                mk[c0 + r] = b as u8;
                j += (bits != 0) as usize;
            }
        }
        for (g, a) in acc.iter().enumerate() {
            let l = lanes(*a);
            for (i, v) in l.iter().enumerate() {
                if 4 * g + i < nc {
                    out[4 * g + i] = *v;
                }
            }
        }
    }

    /// Most centroids [`nearest`] handles in registers (more go through the batches).
    pub(super) const NEAREST_MAX_K: usize = 64;

    /// `(a.sqrt(), b.sqrt())` with one `vsqrtpd`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn sqrt2(a: f64, b: f64) -> (f64, f64) {
        let r = _mm_sqrt_pd(_mm_setr_pd(a, b));
        (_mm_cvtsd_f64(r), _mm_cvtsd_f64(_mm_unpackhi_pd(r, r)))
    }

    /// The distances of `x` to every row of the k x d matrix `c`, written to `out[j]`
    /// (`out.len() >= k`).
    #[target_feature(enable = "avx2")]
    pub(super) fn dists(c: &[f64], k: usize, d: usize, x: &[f64], out: &mut [f64]) {
        for g in (0..k).step_by(4) {
            let v = dist4!(x, rows4(c, k, d, g));
            let lo = _mm256_castpd256_pd128(v);
            let hi = _mm256_extractf128_pd::<1>(v);
            let l = [
                _mm_cvtsd_f64(lo),
                _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)),
                _mm_cvtsd_f64(hi),
                _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)),
            ];
            let n = (k - g).min(4);
            out[g..g + n].copy_from_slice(&l[..n]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Distinct rows

fn canonical_bits(v: f64) -> u64 {
    // -0.0 and 0.0 are the same point.
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

fn row_hash(r: ndarray::ArrayView1<f64>) -> u64 {
    // FNV-1a over the canonical bit patterns, then a final mix.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &v in r.iter() {
        let b = canonical_bits(v);
        h ^= b;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h ^ (h >> 32)
}

/// Number of distinct rows of `x` (exact; -0.0 equals 0.0), counting stops as soon as
/// `stop_at` distinct rows have been seen (then `stop_at` is returned).
pub fn count_distinct_rows(x: ArrayView2<f64>, stop_at: usize) -> usize {
    if stop_at == 0 {
        return 0;
    }
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut distinct = 0usize;
    for (i, r) in x.outer_iter().enumerate() {
        let h = row_hash(r);
        let bucket = seen.entry(h).or_default();
        let dup = bucket.iter().any(|&j| {
            x.row(j)
                .iter()
                .zip(r.iter())
                .all(|(a, b)| canonical_bits(*a) == canonical_bits(*b))
        });
        if !dup {
            bucket.push(i);
            distinct += 1;
            if distinct >= stop_at {
                return distinct;
            }
        }
    }
    distinct
}

// ---------------------------------------------------------------------------------------
// Deterministic block-parallel driver

fn resolve_threads(threads: usize) -> usize {
    let t = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    t.clamp(1, MAX_THREADS)
}

/// Runs `f(item)` for every item on up to `threads` threads that take items from a
/// shared queue (so a core busy with other work slows nobody down). The calling thread
/// works too and checks for interrupts before each item it takes. `f` must write its
/// results into the item itself: what a thread computes never depends on which thread
/// runs it.
fn run_blocks<I, F>(
    items: Vec<I>,
    threads: usize,
    hooks: &mut dyn Hooks,
    f: &F,
) -> Result<(), EngineError>
where
    I: Send,
    F: Fn(I) + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        for it in items {
            hooks.check_interrupt()?;
            f(it);
        }
        return Ok(());
    }
    let queue = Mutex::new(items.into_iter());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let abort = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Worker threads only do arithmetic on the slices they own. They never call into
        // Postgres (no hooks, no palloc, no elog, no interrupt handling): only the calling
        // thread runs `hooks`, and it joins every worker before returning.
        for _ in 1..threads {
            s.spawn(|| {
                while !abort.load(Ordering::Relaxed) {
                    match next() {
                        Some(it) => f(it),
                        None => return,
                    }
                }
            });
        }
        loop {
            if let Err(e) = hooks.check_interrupt() {
                abort.store(true, Ordering::Relaxed);
                return Err(e);
            }
            match next() {
                Some(it) => f(it),
                None => return Ok(()),
            }
        }
    })
}

/// Rows per block for an (n, k, d) problem: [`BLOCK`], or more when k * d is so large
/// that per-block partial sums would exceed [`PARTIAL_BUDGET`]. Depends on the shape
/// only (never on the thread count).
fn block_rows(n: usize, k: usize, d: usize) -> usize {
    let per_block = (k * d + k) * 8;
    let max_blocks = (PARTIAL_BUDGET / per_block.max(1)).max(1);
    BLOCK.max(n.div_ceil(max_blocks))
}

fn n_blocks(n: usize, rows: usize) -> usize {
    n.div_ceil(rows)
}

/// Splits `v` into `nb` consecutive chunks of `rows * stride` (empty slices if `v` is).
fn split_blocks<T>(v: &mut [T], rows: usize, stride: usize, nb: usize) -> Vec<&mut [T]> {
    if v.is_empty() {
        (0..nb).map(|_| <&mut [T]>::default()).collect()
    } else {
        v.chunks_mut(rows * stride).collect()
    }
}

// ---------------------------------------------------------------------------------------
// E-step

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lloyd,
    Hamerly,
    Elkan,
}

/// Per-block accumulator of one E-step.
struct Acc {
    sums: Vec<f64>,
    counts: Vec<u64>,
    inertia: f64,
    moved: usize,
}

impl Acc {
    fn new(k: usize, d: usize) -> Self {
        Acc {
            sums: vec![0.0; k * d],
            counts: vec![0; k],
            inertia: 0.0,
            moved: 0,
        }
    }
    fn reset(&mut self) {
        self.sums.iter_mut().for_each(|v| *v = 0.0);
        self.counts.iter_mut().for_each(|v| *v = 0);
        self.inertia = 0.0;
        self.moved = 0;
    }
}

/// Everything an E-step block reads.
struct Ctx<'a> {
    x: &'a [f64],
    d: usize,
    k: usize,
    centers: &'a [f64],
    /// Inflated per-centre shift since the previous E-step.
    shift: &'a [f64],
    /// Largest shift, its centre, and the second largest shift.
    smax: (f64, usize, f64),
    /// Deflated half distance from each centre to its nearest other centre.
    half: &'a [f64],
    /// Deflated half centre-centre distances, k x k (Elkan only).
    cc_half: &'a [f64],
    /// Cumulative inflated shifts per epoch, (epoch + 1) x k (Elkan only).
    cum: &'a [f64],
    /// Index of this E-step among the run's E-steps.
    epoch: usize,
    kind: Kind,
    first: bool,
    accumulate: bool,
    /// Kernel of the all-centroid searches (chosen once per E-step).
    simd: Simd,
    /// `centers` in the AVX2 kernel's layout (empty for the portable kernel).
    packed: &'a Packed,
}

struct Block<'a> {
    start: usize,
    labels: &'a mut [u32],
    upper: &'a mut [f64],
    lower: &'a mut [f64],
    lowk: &'a mut [f32],
    stamp: &'a mut [u32],
}

#[inline(always)]
fn accumulate(cx: &Ctx, acc: &mut Acc, xi: &[f64], a: usize, da: f64) {
    if cx.accumulate {
        let d = cx.d;
        for (s, v) in acc.sums[a * d..(a + 1) * d].iter_mut().zip(xi) {
            *s += *v;
        }
    }
    acc.counts[a] += 1;
    acc.inertia += da;
}

#[allow(unsafe_code)]
fn estep_block(cx: &Ctx, b: Block, acc: &mut Acc) {
    acc.reset();
    match cx.simd {
        Simd::Portable => estep_rows(cx, b, acc),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` only exists after `is_x86_feature_detected!("avx2")`.
        Simd::Avx2 => unsafe { estep_rows_avx2(cx, b, acc) },
    }
}

/// [`estep_rows`] compiled with AVX2 enabled, so that the AVX2 kernel inlines into the
/// row loop. Same operations in the same order as the portable instance.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn estep_rows_avx2(cx: &Ctx, b: Block, acc: &mut Acc) {
    estep_rows(cx, b, acc)
}

#[inline(always)]
fn estep_rows(cx: &Ctx, b: Block, acc: &mut Acc) {
    let d = cx.d;
    let k = cx.k;
    let Block {
        start,
        labels,
        upper,
        lower,
        lowk,
        stamp,
    } = b;
    let rows = cx.x[start * d..(start + labels.len()) * d].chunks_exact(d);
    match (cx.kind, cx.first) {
        (Kind::Lloyd, _) => {
            for (xi, lab) in rows.zip(labels.iter_mut()) {
                let (a, da) = argmin_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                if cx.first || *lab != a as u32 {
                    acc.moved += 1;
                    *lab = a as u32;
                }
                accumulate(cx, acc, xi, a, da);
            }
        }
        (Kind::Hamerly, true) => {
            for (r, xi) in rows.enumerate() {
                let (a, da, s2) = argmin2_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                let (sa, s2) = sqrt2_with(cx.simd, da, s2);
                upper[r] = up(sa);
                lower[r] = down(s2);
                acc.moved += 1;
                labels[r] = a as u32;
                accumulate(cx, acc, xi, a, da);
            }
        }
        (Kind::Hamerly, false) => {
            let (smax, smax_j, smax2) = cx.smax;
            for (r, xi) in rows.enumerate() {
                let a0 = labels[r] as usize;
                let mut a = a0;
                let mut u = up(upper[r] + cx.shift[a]);
                let l = down(lower[r]) - up(if a == smax_j { smax2 } else { smax });
                let m = l.max(cx.half[a]);
                let da;
                if u < m {
                    lower[r] = l;
                    da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                } else {
                    let t = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                    // Same test as `up(sqrt(t)) < m`, without waiting for the square
                    // root: sqrt(t) * (1 + 1.5 DELTA) < m, squared (m > 0 here or it
                    // fails).
                    if m > 0.0 && t * (1.0 + 3.0 * DELTA) < m * m {
                        u = up(t.sqrt());
                        lower[r] = l;
                        da = t;
                    } else {
                        let (na, nda, s2) = argmin2_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                        let (sa, s2) = sqrt2_with(cx.simd, nda, s2);
                        a = na;
                        da = nda;
                        u = up(sa);
                        lower[r] = down(s2);
                    }
                }
                upper[r] = u;
                if a != a0 {
                    acc.moved += 1;
                    labels[r] = a as u32;
                }
                accumulate(cx, acc, xi, a, da);
            }
        }
        (Kind::Elkan, true) => {
            for ((r, xi), lk) in rows.enumerate().zip(lowk.chunks_exact_mut(k)) {
                let mut best = f64::INFINITY;
                let mut a = 0;
                for (j, cj) in cx.centers.chunks_exact(d).enumerate() {
                    let v = sqdist(xi, cj);
                    lk[j] = down32(down(v.sqrt()));
                    if v < best {
                        best = v;
                        a = j;
                    }
                }
                upper[r] = up(best.sqrt());
                stamp[r] = 0;
                acc.moved += 1;
                labels[r] = a as u32;
                accumulate(cx, acc, xi, a, best);
            }
        }
        (Kind::Elkan, false) => {
            // Lazy bounds: a row's bounds are brought forward (by the cumulative centre
            // shifts since its stamp) only when the row is not pruned outright.
            let e = cx.epoch;
            let se = &cx.cum[e * k..(e + 1) * k];
            for ((r, xi), lk) in rows.enumerate().zip(lowk.chunks_exact_mut(k)) {
                let t = stamp[r] as usize;
                let st = &cx.cum[t * k..(t + 1) * k];
                let decay = |j: usize| up(se[j] - st[j]) + 1e-12 * se[j];
                let a0 = labels[r] as usize;
                let mut a = a0;
                let mut u = up(upper[r] + decay(a0));
                let mut da = f64::NAN;
                if u >= cx.half[a] {
                    for (j, l) in lk.iter_mut().enumerate() {
                        *l = down32(down(*l as f64) - decay(j));
                    }
                    let mut tight = false;
                    for j in 0..k {
                        if j == a {
                            continue;
                        }
                        let lj = lk[j] as f64;
                        if u < lj || u < cx.cc_half[a * k + j] {
                            continue;
                        }
                        if !tight {
                            da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                            let s = da.sqrt();
                            u = up(s);
                            lk[a] = down32(down(s));
                            tight = true;
                            if u < lj || u < cx.cc_half[a * k + j] {
                                continue;
                            }
                        }
                        let dj = sqdist(xi, &cx.centers[j * d..(j + 1) * d]);
                        let sj = dj.sqrt();
                        lk[j] = down32(down(sj));
                        if dj < da || (dj == da && j < a) {
                            a = j;
                            da = dj;
                            u = up(sj);
                        }
                    }
                    upper[r] = u;
                    stamp[r] = e as u32;
                }
                if da.is_nan() {
                    da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                }
                if a != a0 {
                    acc.moved += 1;
                    labels[r] = a as u32;
                }
                accumulate(cx, acc, xi, a, da);
            }
        }
    }
}

/// Work buffers of one run, reused across restarts.
struct Work {
    labels: Vec<u32>,
    upper: Vec<f64>,
    lower: Vec<f64>,
    lowk: Vec<f32>,
    stamp: Vec<u32>,
    accs: Vec<Acc>,
}

/// Centre-derived quantities the bound algorithms need.
struct Geometry {
    shift: Vec<f64>,
    smax: (f64, usize, f64),
    half: Vec<f64>,
    cc_half: Vec<f64>,
    cum: Vec<f64>,
}

impl Geometry {
    fn new(k: usize) -> Self {
        Geometry {
            shift: vec![0.0; k],
            smax: (0.0, 0, 0.0),
            half: vec![0.0; k],
            cc_half: Vec::new(),
            cum: vec![0.0; k],
        }
    }

    /// Recomputes the centre-centre half distances for `centers` (k x d).
    fn update_centers(&mut self, centers: &[f64], k: usize, d: usize, kind: Kind) {
        match kind {
            Kind::Lloyd => {}
            Kind::Hamerly => {
                for a in 0..k {
                    let ca = &centers[a * d..(a + 1) * d];
                    let mut m = f64::INFINITY;
                    for j in 0..k {
                        if j != a {
                            m = m.min(sqdist(ca, &centers[j * d..(j + 1) * d]));
                        }
                    }
                    self.half[a] = down(0.5 * m.sqrt());
                }
            }
            Kind::Elkan => {
                self.cc_half.resize(k * k, 0.0);
                for a in 0..k {
                    self.cc_half[a * k + a] = 0.0;
                    for j in a + 1..k {
                        let v = down(
                            0.5 * sqdist(
                                &centers[a * d..(a + 1) * d],
                                &centers[j * d..(j + 1) * d],
                            )
                            .sqrt(),
                        );
                        self.cc_half[a * k + j] = v;
                        self.cc_half[j * k + a] = v;
                    }
                }
                for a in 0..k {
                    let mut m = f64::INFINITY;
                    for j in 0..k {
                        if j != a {
                            m = m.min(self.cc_half[a * k + j]);
                        }
                    }
                    self.half[a] = m;
                }
            }
        }
    }

    /// Records the (inflated) per-centre shift from `old` to `new`.
    fn update_shift(&mut self, old: &[f64], new: &[f64], k: usize, d: usize) {
        let mut best = (0.0f64, 0usize, 0.0f64);
        for j in 0..k {
            let s = up(sqdist(&old[j * d..(j + 1) * d], &new[j * d..(j + 1) * d]).sqrt());
            self.shift[j] = s;
            if s > best.0 {
                best = (s, j, best.0);
            } else if s > best.2 {
                best.2 = s;
            }
        }
        self.smax = best;
        let last = self.cum.len() - k;
        for j in 0..k {
            let v = self.cum[last + j] + self.shift[j];
            self.cum.push(v);
        }
    }

    fn epoch(&self, k: usize) -> usize {
        self.cum.len() / k.max(1) - 1
    }
}

#[allow(clippy::too_many_arguments)]
fn run_estep(
    x: &[f64],
    d: usize,
    k: usize,
    centers: &[f64],
    geo: &Geometry,
    kind: Kind,
    first: bool,
    accumulate: bool,
    work: &mut Work,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<(), EngineError> {
    let n = work.labels.len();
    let rows = block_rows(n, k, d);
    let nb = n_blocks(n, rows);
    if work.accs.len() != nb || work.accs.first().is_some_and(|a| a.sums.len() != k * d) {
        work.accs = (0..nb).map(|_| Acc::new(k, d)).collect();
    }
    let labels = work.labels.chunks_mut(rows);
    let upper = split_blocks(&mut work.upper, rows, 1, nb);
    let lower = split_blocks(&mut work.lower, rows, 1, nb);
    let lowk = split_blocks(&mut work.lowk, rows, k, nb);
    let stamp = split_blocks(&mut work.stamp, rows, 1, nb);
    let items: Vec<(Block, &mut Acc)> = labels
        .zip(upper)
        .zip(lower)
        .zip(lowk)
        .zip(stamp)
        .zip(work.accs.iter_mut())
        .enumerate()
        .map(|(b, (((((labels, upper), lower), lowk), stamp), acc))| {
            (
                Block {
                    start: b * rows,
                    labels,
                    upper,
                    lower,
                    lowk,
                    stamp,
                },
                acc,
            )
        })
        .collect();
    let simd = Simd::detect();
    let packed = Packed::new(simd, centers, k, d);
    let cx = Ctx {
        x,
        d,
        k,
        centers,
        shift: &geo.shift,
        smax: geo.smax,
        half: &geo.half,
        cc_half: &geo.cc_half,
        cum: &geo.cum,
        epoch: geo.epoch(k),
        kind,
        first,
        accumulate,
        simd,
        packed: &packed,
    };
    run_blocks(items, threads, hooks, &|(b, acc): (Block, &mut Acc)| {
        estep_block(&cx, b, acc)
    })
}

/// Totals over blocks, in block order: (sums, counts, inertia, moved).
fn reduce(accs: &[Acc], k: usize, d: usize) -> (Vec<f64>, Vec<u64>, f64, usize) {
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0u64; k];
    let mut inertia = 0.0;
    let mut moved = 0;
    for a in accs {
        for (s, v) in sums.iter_mut().zip(&a.sums) {
            *s += *v;
        }
        for (c, v) in counts.iter_mut().zip(&a.counts) {
            *c += *v;
        }
        inertia += a.inertia;
        moved += a.moved;
    }
    (sums, counts, inertia, moved)
}

/// Indices of the rows farthest from their assigned centre, sorted by distance (desc)
/// then index, at most `m` of them.
fn farthest_rows(
    x: &[f64],
    d: usize,
    labels: &[u32],
    centers: &[f64],
    m: usize,
    hooks: &mut dyn Hooks,
) -> Result<Vec<(usize, f64)>, EngineError> {
    let n = labels.len();
    let mut dist = Vec::with_capacity(n);
    for (i, (xi, &l)) in x.chunks_exact(d).zip(labels).enumerate() {
        if i % CHECK_EVERY == 0 {
            hooks.check_interrupt()?;
        }
        let l = l as usize;
        dist.push(sqdist(xi, &centers[l * d..(l + 1) * d]));
    }
    let cmp = |a: &usize, b: &usize| dist[*b].total_cmp(&dist[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..n).collect();
    let m = m.min(n);
    if m == 0 {
        return Ok(Vec::new());
    }
    if m < n {
        idx.select_nth_unstable_by(m - 1, cmp);
        idx.truncate(m);
    }
    idx.sort_unstable_by(cmp);
    Ok(idx.into_iter().map(|i| (i, dist[i])).collect())
}

/// scikit-learn's `_relocate_empty_clusters_dense`: each empty cluster takes the row
/// farthest from its (old) centre; labels are left unchanged. Rows whose cluster would
/// become empty are skipped.
#[allow(clippy::too_many_arguments)]
fn relocate_empty(
    x: &[f64],
    d: usize,
    k: usize,
    labels: &[u32],
    old_centers: &[f64],
    sums: &mut [f64],
    counts: &mut [u64],
    hooks: &mut dyn Hooks,
) -> Result<(), EngineError> {
    let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
    if empty.is_empty() {
        return Ok(());
    }
    let far = farthest_rows(x, d, labels, old_centers, empty.len() + k, hooks)?;
    if far.first().is_none_or(|f| f.1 == 0.0) {
        return Ok(());
    }
    let mut cand = far.into_iter();
    for j in empty {
        for (p, _) in cand.by_ref() {
            let old = labels[p] as usize;
            if counts[old] <= 1 {
                continue;
            }
            let xp = &x[p * d..(p + 1) * d];
            for f in 0..d {
                sums[old * d + f] -= xp[f];
                sums[j * d + f] = xp[f];
            }
            counts[j] = 1;
            counts[old] -= 1;
            break;
        }
    }
    Ok(())
}

struct RunOutcome {
    centers: Array2<f64>,
    inertia: f64,
    n_iter: usize,
    converged: bool,
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    x: &[f64],
    n: usize,
    d: usize,
    init: Array2<f64>,
    max_iter: usize,
    tol_abs: f64,
    kind: Kind,
    threads: usize,
    run: usize,
    work: &mut Work,
    hooks: &mut dyn Hooks,
) -> Result<RunOutcome, EngineError> {
    let k = init.nrows();
    let mut centers: Vec<f64> = init.iter().copied().collect();
    // Zeroed allocations (pages are mapped on first touch, by whichever thread writes
    // them); the first E-step overwrites every entry and counts every row as moved.
    fn zeroed<T: Clone + Default>(v: &mut Vec<T>, len: usize) {
        if v.len() != len {
            *v = vec![T::default(); len];
        }
    }
    zeroed(&mut work.labels, n);
    match kind {
        Kind::Lloyd => {}
        Kind::Hamerly => {
            zeroed(&mut work.upper, n);
            zeroed(&mut work.lower, n);
        }
        Kind::Elkan => {
            zeroed(&mut work.upper, n);
            zeroed(&mut work.lowk, n * k);
            zeroed(&mut work.stamp, n);
        }
    }
    let mut geo = Geometry::new(k);
    geo.update_centers(&centers, k, d, kind);
    // Set when the last E-step's labels and inertia are already final (strict
    // convergence with unchanged centroids), which saves the final E-step.
    let mut done: Option<(Vec<u64>, f64)> = None;
    let mut converged = false;
    let mut n_iter = max_iter;
    for i in 0..max_iter {
        hooks.check_interrupt()?;
        run_estep(
            x,
            d,
            k,
            &centers,
            &geo,
            kind,
            i == 0,
            true,
            work,
            threads,
            hooks,
        )?;
        let (mut sums, mut counts, inertia, moved) = reduce(&work.accs, k, d);
        let e_counts = counts.clone();
        if counts.contains(&0) {
            relocate_empty(
                x,
                d,
                k,
                &work.labels,
                &centers,
                &mut sums,
                &mut counts,
                hooks,
            )?;
        }
        let mut new_centers = centers.clone();
        for j in 0..k {
            if counts[j] > 0 {
                let alpha = 1.0 / counts[j] as f64;
                for f in 0..d {
                    new_centers[j * d + f] = sums[j * d + f] * alpha;
                }
            }
        }
        let shift_tot: f64 = (0..k)
            .map(|j| {
                sqdist(
                    &centers[j * d..(j + 1) * d],
                    &new_centers[j * d..(j + 1) * d],
                )
            })
            .sum();
        hooks.progress(&Progress {
            run,
            iteration: i + 1,
            inertia,
            moved,
        });
        if kind != Kind::Lloyd {
            geo.update_shift(&centers, &new_centers, k, d);
            geo.update_centers(&new_centers, k, d, kind);
        }
        let unchanged = new_centers == centers;
        centers = new_centers;
        if i > 0 && moved == 0 {
            if unchanged && !e_counts.contains(&0) {
                done = Some((e_counts, inertia));
            }
            converged = true;
            n_iter = i + 1;
            break;
        }
        if shift_tot <= tol_abs {
            converged = true;
            n_iter = i + 1;
            break;
        }
    }
    // Final E-step: labels and inertia against the returned centroids (as sklearn).
    let (mut counts, mut inertia) = match done {
        Some(v) => v,
        None => {
            hooks.check_interrupt()?;
            run_estep(
                x, d, k, &centers, &geo, kind, false, false, work, threads, hooks,
            )?;
            let (_, c, inertia, _) = reduce(&work.accs, k, d);
            (c, inertia)
        }
    };
    // Never return an empty cluster: give each one the farthest row, then reassign.
    let mut rounds = 0;
    while counts.contains(&0) && rounds <= k {
        rounds += 1;
        let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
        let far = farthest_rows(x, d, &work.labels, &centers, empty.len() + k, hooks)?;
        let mut cand = far.into_iter();
        for j in empty {
            for (p, _) in cand.by_ref() {
                let old = work.labels[p] as usize;
                if counts[old] <= 1 {
                    continue;
                }
                counts[old] -= 1;
                counts[j] = 1;
                centers[j * d..(j + 1) * d].copy_from_slice(&x[p * d..(p + 1) * d]);
                break;
            }
        }
        run_estep(
            x,
            d,
            k,
            &centers,
            &geo,
            Kind::Lloyd,
            false,
            false,
            work,
            threads,
            hooks,
        )?;
        let r = reduce(&work.accs, k, d);
        counts = r.1;
        inertia = r.2;
    }
    Ok(RunOutcome {
        centers: Array2::from_shape_vec((k, d), centers)
            .map_err(|e| EngineError::Internal(e.to_string()))?,
        inertia,
        n_iter,
        converged,
    })
}

// ---------------------------------------------------------------------------------------
// Initialisation
//
// Greedy k-means++ with exact pruning by the triangle inequality. Every row keeps, next
// to `closest_i` (its squared distance to the nearest chosen centre), the index
// `owner_i` of the chosen centre m that gave it. For a candidate (or new) centre c and
// every chosen centre m_j, `h_j = (1 - DELTA) |c - m_j|^2 / 4` is computed once. A row
// with `closest_i <= h_{owner_i}` satisfies |c - m| >= 2 |x_i - m|, so |x_i - c| >= |c -
// m| - |x_i - m| >= |x_i - m|, with a relative margin (DELTA) far above the rounding of
// the three computed distances: the computed |x_i - c|^2 would be >= closest_i, so
// min(closest_i, |x_i - c|^2) == closest_i and a strict improvement is impossible. Such
// rows skip the distance. All other distances are computed with `sqdist` as before and
// every sum keeps its order (per block in row order, then blocks in order), so the
// chosen centres, the `closest` values and the potentials are bit-identical to the
// unpruned computation, for every thread count. Rows with `closest_i == 0` never change
// (min(s, 0) == 0 for s >= 0 and for NaN), so they are always skipped; tiny positive
// values (subnormal range, where rounding is not relative) are never skipped.

/// Smallest positive `closest` value a row may be pruned with: far above the subnormal
/// range, so the absolute underflow error of a distance (at most d * 2^-1075) is
/// negligible next to the relative margin.
const PP_TINY: f64 = 1e-200;

/// Candidates whose "strictly improves this row" bit a potentials pass records (one
/// byte per row); a later winner (2 + ln k > 8 candidates: k >= 1097) is updated with
/// the pruning test instead.
const PP_MASK_BITS: usize = 8;

/// Rows per prefix-sum mark of the sampling scan.
const PP_SCAN: usize = 1024;

/// Pruning thresholds of centre `c` against the chosen centres `chosen` (rows of the
/// m x d matrix): `(1 - DELTA) |c - m_j|^2 / 4`, or -1 (never prune) when that distance
/// is not finite.
fn pp_thresholds(c: &[f64], chosen: &[f64], d: usize, out: &mut [f64]) {
    for (h, mj) in out.iter_mut().zip(chosen.chunks_exact(d)) {
        let d2 = sqdist(c, mj);
        *h = if d2.is_finite() {
            down(d2) * 0.25
        } else {
            -1.0
        };
    }
}

/// Whether a row with closest value `v` must compute its distance to a centre whose
/// threshold for the row's owner is `h`; `false` when it certainly keeps `v` (see the
/// section comment). Branch-free: the pruning pattern of the rows is data dependent.
#[inline(always)]
fn pp_need(v: f64, h: f64) -> bool {
    !((v == 0.0) | ((v <= h) & (v >= PP_TINY)))
}

/// Which rows [`pp_update`] recomputes.
#[derive(Clone, Copy)]
enum PpRows<'a> {
    /// Every row, writing unconditionally (the first centre).
    All,
    /// Rows whose `improves` byte has this bit set (the winner's potentials pass found
    /// it strictly closer there, and nowhere else).
    Bit(u8),
    /// Rows not pruned by these thresholds (indexed by owner).
    Pruned(&'a [f64]),
}

/// Rows `start..` of a k-means++ pass: their slices of `closest`, `owner` and
/// `improves`.
type PpBlock<'a> = (usize, &'a mut [f64], &'a mut [u32], &'a mut [u8]);

/// Blocks of [`BLOCK`] rows over the per-row state.
fn pp_blocks<'a>(
    closest: &'a mut [f64],
    owner: &'a mut [u32],
    improves: &'a mut [u8],
) -> Vec<PpBlock<'a>> {
    let nb = closest.len().div_ceil(BLOCK);
    closest
        .chunks_mut(BLOCK)
        .zip(split_blocks(owner, BLOCK, 1, nb))
        .zip(split_blocks(improves, BLOCK, 1, nb))
        .enumerate()
        .map(|(b, ((c, o), m))| (b * BLOCK, c, o, m))
        .collect()
}

/// Rows per sub-chunk of a pruned pass: the rows to compute are listed first (from
/// `closest`, `owner` and the thresholds alone), so the rows' data can be prefetched.
const PP_CHUNK: usize = 1024;

/// How many listed rows ahead a pruned pass prefetches.
const PP_AHEAD: usize = 8;

/// Hints the CPU to bring every cache line of `row` into the cache. The rows a pruned
/// pass computes are scattered, which the hardware prefetchers do not follow.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_row(row: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = row.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(row);
        let mut off = 0;
        while off < bytes {
            // SAFETY: a prefetch is only a hint: it never faults and has no effect on
            // the program's memory; the address lies within `row` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
        if bytes > 0 {
            // SAFETY: as above (the last byte, whose line the loop may have missed).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(bytes - 1)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Squared distance of the selected rows (`which`) to `center`, min-ed into `closest`
/// (replaced only when strictly smaller, or always for [`PpRows::All`]), `owner` set to
/// `index` where it was. Deterministic.
#[allow(clippy::too_many_arguments)]
fn pp_update(
    x: &[f64],
    center: &[f64],
    index: u32,
    which: PpRows,
    closest: &mut [f64],
    owner: &mut [u32],
    improves: &mut [u8],
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<(), EngineError> {
    let simd = Simd::detect();
    let items = pp_blocks(closest, owner, improves);
    run_blocks(items, threads, hooks, &|(start, c, o, m): PpBlock| {
        let mut list = [0u32; PP_CHUNK];
        let mut dist = [0.0f64; PP_CHUNK];
        for c0 in (0..c.len()).step_by(PP_CHUNK) {
            let len = (c.len() - c0).min(PP_CHUNK);
            let mut cnt = 0;
            for r in c0..c0 + len {
                let need = match which {
                    PpRows::All => true,
                    PpRows::Bit(bit) => m[r] & bit != 0,
                    PpRows::Pruned(h) => pp_need(c[r], h[o[r] as usize]),
                };
                list[cnt] = r as u32;
                cnt += need as usize;
            }
            // Dense lists stream by themselves; sparse ones are prefetched ahead.
            let ahead = if cnt < len { PP_AHEAD } else { 0 };
            pp_center_rows_with(simd, center, x, start, &list[..cnt], &mut dist, ahead);
            for (&r, &t) in list[..cnt].iter().zip(&dist) {
                let r = r as usize;
                if matches!(which, PpRows::All) || t < c[r] {
                    c[r] = t;
                    o[r] = index;
                }
            }
        }
    })
}

/// Values of the per-chunk distance buffer of [`pp_potentials`] (on the stack).
const PP_SBUF: usize = 4096;

/// `if c { a } else { b }` without a branch (the rows' pruning pattern is data
/// dependent, so branches would be mispredicted).
#[inline(always)]
fn pick(c: bool, a: f64, b: f64) -> f64 {
    let m = (c as u64).wrapping_neg();
    f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// One block of [`pp_potentials`] for `N` candidates, portable (`N` = `nc` when `N <=
/// 8`, so that the per-candidate loops unroll and the sums stay in registers;
/// otherwise `N` = 64 and `nc` candidates are used): per chunk of rows, 1. which
/// candidates each row must compute, 2. those distances (rows prefetched when the list
/// skips rows), 3. the sums in row order. `ht` holds the thresholds owner-major.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pp_pot_block<const N: usize>(
    nc: usize,
    x: &[f64],
    d: usize,
    cmat: &[f64],
    ht: &[f64],
    blk: PpBlock,
    out: &mut [f64],
) {
    let nc = if N <= 8 { N } else { nc };
    let (start, c, o, mk) = blk;
    let chunk_rows = (PP_SBUF / nc).min(PP_CHUNK);
    let row = |r: u32| &x[(start + r as usize) * d..(start + r as usize + 1) * d];
    let mut need = [0u64; PP_CHUNK];
    let mut list = [0u32; PP_CHUNK];
    let mut sbuf = [0.0f64; PP_SBUF + 64];
    let mut acc = [0.0f64; N];
    acc[..nc].copy_from_slice(&out[..nc]);
    for c0 in (0..c.len()).step_by(chunk_rows) {
        let len = (c.len() - c0).min(chunk_rows);
        // 1. The candidates each row must compute (bit t: candidate t not pruned).
        let mut cnt = 0;
        for (r, nr) in need[..len].iter_mut().enumerate() {
            let (v, a) = (c[c0 + r], o[c0 + r] as usize);
            let mut bits = 0u64;
            for (t, &h) in ht[a * nc..(a + 1) * nc].iter().enumerate() {
                bits |= (pp_need(v, h) as u64) << t;
            }
            *nr = bits;
            list[cnt] = (c0 + r) as u32;
            cnt += (bits != 0) as usize;
        }
        let list = &list[..cnt];
        // 2. Their distances.
        let ahead = if cnt < len { PP_AHEAD } else { 0 };
        for (j, (&r, s)) in list.iter().zip(sbuf.chunks_exact_mut(nc)).enumerate() {
            if ahead > 0 {
                if let Some(&ra) = list.get(j + ahead) {
                    prefetch_row(row(ra));
                }
            }
            let bits = need[r as usize - c0];
            for (t, st) in s.iter_mut().enumerate() {
                if bits >> t & 1 != 0 {
                    *st = sqdist(row(r), &cmat[t * d..(t + 1) * d]);
                }
            }
        }
        // 3. In row order: pruned candidates add closest_i, the others min(s, closest_i).
        let mut j = 0;
        for (r, &bits) in need[..len].iter().enumerate() {
            let v = c[c0 + r];
            let s = &sbuf[j * nc..(j + 1) * nc];
            let mut b = 0u8;
            for (t, (p, &st)) in acc[..nc].iter_mut().zip(s).enumerate() {
                let on = bits >> t & 1 != 0;
                b |= (((st < v) & on & (t < PP_MASK_BITS)) as u8) << (t % 8);
                *p += pick(on, st.min(v), v);
            }
            mk[c0 + r] = b;
            j += (bits != 0) as usize;
        }
    }
    out[..nc].copy_from_slice(&acc[..nc]);
}

/// For each candidate row, the potential sum_i min(closest_i, |x_i - x_cand|^2), summed
/// per block in row order and then over blocks in order (deterministic), in one pass
/// over the rows for all candidates. `h` holds each candidate's thresholds against the
/// `m` chosen centres (candidate-major); `improves[i]` gets bit t set when candidate t
/// (< [`PP_MASK_BITS`]) is strictly closer to row i than `closest_i`. (`closest` and
/// `owner` are only read; they are borrowed mutably to share the blocks with
/// [`pp_update`].)
#[allow(clippy::too_many_arguments)]
fn pp_potentials(
    x: &[f64],
    d: usize,
    cands: &[usize],
    h: &[f64],
    m: usize,
    closest: &mut [f64],
    owner: &mut [u32],
    improves: &mut [u8],
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<Vec<f64>, EngineError> {
    let nc = cands.len();
    // One bit per candidate: 2 + ln(k) <= 64 for every k a usize can hold.
    assert!((1..=64).contains(&nc), "{nc} candidates");
    let simd = Simd::detect();
    let mut pots: Vec<Vec<f64>> = (0..closest.len().div_ceil(BLOCK))
        .map(|_| vec![0.0; nc])
        .collect();
    let items: Vec<(PpBlock, &mut Vec<f64>)> = pp_blocks(closest, owner, improves)
        .into_iter()
        .zip(pots.iter_mut())
        .collect();
    // The candidates as an nc x d matrix (and packed for the vector kernel), and the
    // thresholds owner-major: the row's thresholds side by side, `hw` apart (padding:
    // -1, never prune).
    let cmat: Vec<f64> = cands
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let packed = Packed::new(simd, &cmat, nc, d);
    let hw = pp_lanes(simd, &packed, nc);
    let ht: Vec<f64> = (0..m * hw)
        .map(|i| match i % hw {
            t if t < nc => h[t * m + i / hw],
            _ => -1.0,
        })
        .collect();
    let (cm, pk, ht) = (&cmat[..], &packed, &ht[..]);
    run_blocks(items, threads, hooks, &|(mut blk, out): (
        PpBlock,
        &mut Vec<f64>,
    )| {
        if pp_pot_block_with(simd, pk, nc, ht, x, d, &mut blk, out) {
            return;
        }
        match nc {
            1 => pp_pot_block::<1>(nc, x, d, cm, ht, blk, out),
            2 => pp_pot_block::<2>(nc, x, d, cm, ht, blk, out),
            3 => pp_pot_block::<3>(nc, x, d, cm, ht, blk, out),
            4 => pp_pot_block::<4>(nc, x, d, cm, ht, blk, out),
            5 => pp_pot_block::<5>(nc, x, d, cm, ht, blk, out),
            6 => pp_pot_block::<6>(nc, x, d, cm, ht, blk, out),
            7 => pp_pot_block::<7>(nc, x, d, cm, ht, blk, out),
            8 => pp_pot_block::<8>(nc, x, d, cm, ht, blk, out),
            _ => pp_pot_block::<64>(nc, x, d, cm, ht, blk, out),
        }
    })?;
    let mut tot = vec![0.0; nc];
    for p in pots {
        for (t, v) in tot.iter_mut().zip(p) {
            *t += v;
        }
    }
    Ok(tot)
}

/// The sequential sum of `closest` (in row order, as `iter().sum()`), and the running
/// sum after every [`PP_SCAN`] rows, for [`pp_sample`].
fn pp_total(closest: &[f64]) -> (f64, Vec<f64>) {
    let mut ends = Vec::with_capacity(closest.len().div_ceil(PP_SCAN));
    let mut cum = 0.0;
    for ch in closest.chunks(PP_SCAN) {
        for v in ch {
            cum += v;
        }
        ends.push(cum);
    }
    (cum, ends)
}

/// The candidates for the sorted targets `rv` (value, candidate slot): for each target
/// in order, the first row where the running sum of `closest` exceeds it; once a
/// target is never exceeded (rounding or NaN), it and all later ones take the last row
/// with positive weight. Identical to one sequential scan (the running sum never
/// decreases), but it only rescans the [`PP_SCAN`] rows where a target is crossed.
fn pp_sample(closest: &[f64], ends: &[f64], rv: &[(f64, usize)], cands: &mut [usize]) {
    let n = closest.len();
    for (q, &(r, slot)) in rv.iter().enumerate() {
        // The first mark past the target (a NaN target is never passed).
        let passed = |e: &f64| e.partial_cmp(&r) == Some(std::cmp::Ordering::Greater);
        let b = ends.partition_point(|e| !passed(e));
        if b == ends.len() {
            // Rounding could leave the last values above the sum: take the last row with
            // positive weight, like numpy's clip to n-1 but never a zero-weight row.
            let lastpos = closest.iter().rposition(|v| *v > 0.0).unwrap_or(n - 1);
            for r in &rv[q..] {
                cands[r.1] = lastpos;
            }
            return;
        }
        let mut cum = if b == 0 { 0.0 } else { ends[b - 1] };
        let start = b * PP_SCAN;
        let end = (start + PP_SCAN).min(n);
        let mut hit = end - 1;
        for (i, v) in closest[start..end].iter().enumerate() {
            cum += v;
            if cum > r {
                hit = start + i;
                break;
            }
        }
        cands[slot] = hit;
    }
}

/// One step of greedy k-means++ as the tests observe it: the candidates, their
/// potentials, and `closest` after the step.
#[cfg(test)]
type PpStep = (Vec<usize>, Vec<f64>, Vec<f64>);

#[cfg(test)]
thread_local! {
    /// When `Some`, [`kmeanspp_impl`] records every step (tests compare them with the
    /// unpruned reference bit for bit).
    static PP_TRACE: std::cell::RefCell<Option<Vec<PpStep>>> =
        const { std::cell::RefCell::new(None) };
}

fn kmeanspp_impl<R: Rng + ?Sized>(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    rng: &mut R,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<Array2<f64>, EngineError> {
    if k == 0 {
        return Ok(Array2::<f64>::zeros((k, d)));
    }
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = rng.gen_range(0..n);
    let row = |i: usize| &x[i * d..(i + 1) * d];
    // The chosen centres so far, row-major (the result's first rows).
    let mut chosen: Vec<f64> = Vec::with_capacity(k * d);
    chosen.extend_from_slice(row(first));
    let mut closest = vec![0.0f64; n];
    let mut owner = vec![0u32; n];
    let mut improves = vec![0u8; n];
    pp_update(
        x,
        row(first),
        0,
        PpRows::All,
        &mut closest,
        &mut owner,
        &mut improves,
        threads,
        hooks,
    )?;
    let mut last = first;
    let mut h = vec![0.0; trials * k];
    for c in 1..k {
        hooks.check_interrupt()?;
        let (total, ends) = pp_total(&closest);
        if total.is_nan() || total <= 0.0 {
            // Fewer distinct rows than k (only possible without `check`): repeat.
            chosen.extend_from_slice(row(last));
            continue;
        }
        let mut rv: Vec<(f64, usize)> =
            (0..trials).map(|t| (rng.gen::<f64>() * total, t)).collect();
        rv.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut cands = vec![n - 1; trials];
        pp_sample(&closest, &ends, &rv, &mut cands);
        for (t, &ci) in cands.iter().enumerate() {
            pp_thresholds(row(ci), &chosen, d, &mut h[t * c..(t + 1) * c]);
        }
        let pots = pp_potentials(
            x,
            d,
            &cands,
            &h[..trials * c],
            c,
            &mut closest,
            &mut owner,
            &mut improves,
            threads,
            hooks,
        )?;
        let mut best = 0;
        for t in 1..trials {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        last = cands[best];
        chosen.extend_from_slice(row(last));
        if c + 1 < k {
            let which = if best < PP_MASK_BITS {
                PpRows::Bit(1 << best)
            } else {
                PpRows::Pruned(&h[best * c..(best + 1) * c])
            };
            pp_update(
                x,
                row(last),
                c as u32,
                which,
                &mut closest,
                &mut owner,
                &mut improves,
                threads,
                hooks,
            )?;
        }
        #[cfg(test)]
        PP_TRACE.with(|tr| {
            if let Some(v) = tr.borrow_mut().as_mut() {
                v.push((cands.clone(), pots.clone(), closest.clone()));
            }
        });
    }
    Array2::from_shape_vec((k, d), chosen).map_err(|e| EngineError::Internal(e.to_string()))
}

/// Greedy k-means++ seeding exactly as scikit-learn's `_kmeans_plusplus`: the first
/// centre uniformly at random, then for each next centre `2 + floor(ln k)` candidates
/// sampled with probability proportional to D(x)^2, keeping the candidate that lowers
/// the potential most. With at least k distinct rows the centres are distinct rows.
///
/// Panics if `x` has no rows.
pub fn kmeans_plus_plus(x: ArrayView2<f64>, k: usize, rng: &mut impl Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    assert!(n > 0, "kmeans_plus_plus: no rows");
    let xs = contiguous(x);
    kmeanspp_impl(&xs, n, d, k, rng, resolve_threads(0), &mut NoHooks)
        .expect("NoHooks never interrupts")
}

/// Greedy k-means++ from every row, or (see [`KMeansParams::init_sample`]) from a
/// uniform sample of `sample` rows when there are more than twice as many.
#[allow(clippy::too_many_arguments)]
fn seed_plus_plus<R: Rng + ?Sized>(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    sample: usize,
    rng: &mut R,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<Array2<f64>, EngineError> {
    if sample > 0 && n / 2 > sample {
        let idx = super::sample::sample_indices(n, sample, rng.gen::<u64>());
        let mut sub = Vec::with_capacity(sample * d);
        for &i in &idx {
            sub.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
        let view = ArrayView2::from_shape((sample, d), &sub)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if count_distinct_rows(view, k) >= k {
            return kmeanspp_impl(&sub, sample, d, k, rng, threads, hooks);
        }
    }
    kmeanspp_impl(x, n, d, k, rng, threads, hooks)
}

/// k distinct rows in random order (partial Fisher-Yates, skipping duplicates).
fn random_init<R: Rng + ?Sized>(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    rng: &mut R,
    hooks: &mut dyn Hooks,
) -> Result<Array2<f64>, EngineError> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    for t in 0..n {
        if t % CHECK_EVERY == 0 {
            hooks.check_interrupt()?;
        }
        let j = rng.gen_range(t..n);
        idx.swap(t, j);
        let c = idx[t] as usize;
        let xc = &x[c * d..(c + 1) * d];
        if !chosen.iter().any(|&o| {
            x[o * d..(o + 1) * d]
                .iter()
                .zip(xc)
                .all(|(a, b)| canonical_bits(*a) == canonical_bits(*b))
        }) {
            chosen.push(c);
            if chosen.len() == k {
                break;
            }
        }
    }
    let mut out = Array2::zeros((k, d));
    for (r, &c) in chosen.iter().enumerate() {
        out.row_mut(r)
            .assign(&ndarray::ArrayView1::from(&x[c * d..(c + 1) * d]));
    }
    Ok(out)
}

fn contiguous<'a>(x: ArrayView2<'a, f64>) -> Cow<'a, [f64]> {
    match x.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().copied().collect()),
    }
}

/// scikit-learn's tolerance: `tol` times the mean of the per-feature (population)
/// variances (two passes, block-parallel, summed in block order).
fn tolerance(
    x: &[f64],
    n: usize,
    d: usize,
    tol: f64,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<f64, EngineError> {
    if tol == 0.0 {
        return Ok(0.0);
    }
    let pass = |center: Option<&[f64]>, hooks: &mut dyn Hooks| {
        let mut parts: Vec<Vec<f64>> = (0..n.div_ceil(BLOCK)).map(|_| vec![0.0; d]).collect();
        let items: Vec<(&[f64], &mut Vec<f64>)> =
            x.chunks(BLOCK * d).zip(parts.iter_mut()).collect();
        run_blocks(items, threads, hooks, &|(rows, out): (
            &[f64],
            &mut Vec<f64>,
        )| {
            for xi in rows.chunks_exact(d) {
                match center {
                    None => out.iter_mut().zip(xi).for_each(|(s, v)| *s += v),
                    Some(m) => {
                        for ((s, v), c) in out.iter_mut().zip(xi).zip(m) {
                            let t = v - c;
                            *s += t * t;
                        }
                    }
                }
            }
        })?;
        let mut tot = vec![0.0; d];
        for p in parts {
            tot.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        }
        Ok::<Vec<f64>, EngineError>(tot)
    };
    let mut mean = pass(None, hooks)?;
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let var = pass(Some(&mean), hooks)?;
    Ok(var.iter().map(|v| v / n as f64).sum::<f64>() / d as f64 * tol)
}

/// Trains k-means: validates with [`KMeansParams::check`], then runs `n_init` restarts
/// (stream `r` of `seed` for restart `r`) and keeps the lowest inertia (earliest run on
/// ties). Deterministic for the same data, parameters and seed, whatever the thread
/// count.
pub fn fit(
    x: ArrayView2<f64>,
    params: &KMeansParams,
    hooks: &mut dyn Hooks,
) -> Result<KMeansResult, EngineError> {
    params.check(x)?;
    let (n, d) = x.dim();
    let k = params.k;
    let xs = contiguous(x);
    let kind = match params.algorithm.resolve(n, k, d) {
        Algorithm::Lloyd | Algorithm::Auto => Kind::Lloyd,
        Algorithm::Hamerly => Kind::Hamerly,
        Algorithm::Elkan => Kind::Elkan,
    };
    let threads = resolve_threads(params.threads);
    let tol_abs = tolerance(&xs, n, d, params.tol, threads, hooks)?;
    let runs = if matches!(params.init, Init::Given(_)) {
        1
    } else {
        params.n_init
    };
    let mut work = Work {
        labels: Vec::new(),
        upper: Vec::new(),
        lower: Vec::new(),
        lowk: Vec::new(),
        stamp: Vec::new(),
        accs: Vec::new(),
    };
    let mut best: Option<(RunOutcome, Vec<u32>, usize)> = None;
    for run in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(run as u64);
        let init = match &params.init {
            Init::KMeansPlusPlus => {
                seed_plus_plus(&xs, n, d, k, params.init_sample, &mut rng, threads, hooks)?
            }
            Init::Random => random_init(&xs, n, d, k, &mut rng, hooks)?,
            Init::Given(c) => c.clone(),
        };
        let out = run_once(
            &xs,
            n,
            d,
            init,
            params.max_iter,
            tol_abs,
            kind,
            threads,
            run,
            &mut work,
            hooks,
        )?;
        if best.as_ref().is_none_or(|b| out.inertia < b.0.inertia) {
            let labels = std::mem::take(&mut work.labels);
            if let Some((_, old, _)) = best.take() {
                work.labels = old;
            }
            best = Some((out, labels, run));
        }
    }
    let (out, labels, best_run) = best.ok_or_else(|| EngineError::Internal("no run".into()))?;
    Ok(KMeansResult {
        centroids: out.centers,
        labels,
        inertia: out.inertia,
        n_iter: out.n_iter,
        converged: out.converged,
        best_run,
    })
}

/// Labels of every row against `centroids` (nearest, lowest index on ties) and the
/// inertia. Same decisions as [`nearest`] and [`fit`].
///
/// Panics if the widths differ or there are no centroids.
pub fn assign(x: ArrayView2<f64>, centroids: ArrayView2<f64>) -> (Vec<u32>, f64) {
    assign_with_hooks(x, centroids, &mut NoHooks).expect("NoHooks never interrupts")
}

/// [`assign`] with interrupt checks (every block of rows).
///
/// Panics if the widths differ or there are no centroids.
pub fn assign_with_hooks(
    x: ArrayView2<f64>,
    centroids: ArrayView2<f64>,
    hooks: &mut dyn Hooks,
) -> Result<(Vec<u32>, f64), EngineError> {
    let (n, d) = x.dim();
    let k = centroids.nrows();
    assert!(k > 0, "assign: no centroids");
    assert_eq!(centroids.ncols(), d, "assign: width mismatch");
    let xs = contiguous(x);
    let cs = contiguous(centroids);
    let mut work = Work {
        labels: vec![0; n],
        upper: Vec::new(),
        lower: Vec::new(),
        lowk: Vec::new(),
        stamp: Vec::new(),
        accs: Vec::new(),
    };
    let geo = Geometry::new(k);
    run_estep(
        &xs,
        d,
        k,
        &cs,
        &geo,
        Kind::Lloyd,
        true,
        false,
        &mut work,
        resolve_threads(0),
        hooks,
    )?;
    let inertia = work.accs.iter().map(|a| a.inertia).sum();
    Ok((work.labels, inertia))
}

// ---------------------------------------------------------------------------------------
// One mergeable Lloyd step

/// State of one Lloyd step over a partition of the rows: per-centroid sums and counts
/// and the inertia against the step's input centroids. States of disjoint partitions
/// [`merge`](StepState::merge) exactly (up to float addition order), so a parallel or
/// distributed aggregate can run one k-means iteration per pass.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    k: usize,
    d: usize,
    sums: Vec<f64>,
    counts: Vec<u64>,
    inertia: f64,
}

const STEP_MAGIC: &[u8; 4] = b"PSKS";
const STEP_VERSION: u8 = 1;
const STEP_HEADER: usize = 4 + 1 + 4 + 4 + 8;

impl StepState {
    /// Empty state for k centroids of d features.
    pub fn new(k: usize, d: usize) -> Self {
        StepState {
            k,
            d,
            sums: vec![0.0; k * d],
            counts: vec![0; k],
            inertia: 0.0,
        }
    }

    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of features.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Rows per centroid.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Total rows added.
    pub fn rows(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds one row: assigns it to its nearest centroid (as [`nearest`]) and accumulates.
    /// Errors on a centroid matrix or row of the wrong shape, or a non-finite value
    /// (`row` is this state's count of rows so far).
    pub fn add(&mut self, centroids: ArrayView2<f64>, x: &[f64]) -> Result<(), EngineError> {
        if centroids.nrows() != self.k {
            return Err(EngineError::invalid(
                "centroids",
                format!(
                    "has {} rows, the step state has k = {}",
                    centroids.nrows(),
                    self.k
                ),
            ));
        }
        if centroids.ncols() != self.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: centroids.ncols(),
            });
        }
        EngineError::check_row(x, self.d, self.rows() as usize)?;
        let nb = nearest(centroids, x);
        let j = nb.index;
        for (s, v) in self.sums[j * self.d..(j + 1) * self.d].iter_mut().zip(x) {
            *s += *v;
        }
        self.counts[j] += 1;
        self.inertia += nb.dist_sq;
        Ok(())
    }

    /// Adds another partition's state (same k and d).
    pub fn merge(&mut self, other: &StepState) -> Result<(), EngineError> {
        if other.k != self.k || other.d != self.d {
            return Err(EngineError::invalid(
                "step state",
                format!(
                    "cannot merge a k = {}, d = {} state into a k = {}, d = {} state",
                    other.k, other.d, self.k, self.d
                ),
            ));
        }
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += *b;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.inertia += other.inertia;
        Ok(())
    }

    /// Centroids after the step: the mean of each cluster; a cluster that received no
    /// row keeps its old centroid (the aggregate has no rows left to re-seed it from).
    ///
    /// Panics if `old` is not k x d.
    pub fn new_centroids(&self, old: ArrayView2<f64>) -> Array2<f64> {
        assert_eq!(old.dim(), (self.k, self.d), "new_centroids: shape mismatch");
        let mut out = old.to_owned();
        for j in 0..self.k {
            if self.counts[j] > 0 {
                let alpha = 1.0 / self.counts[j] as f64;
                for f in 0..self.d {
                    out[[j, f]] = self.sums[j * self.d + f] * alpha;
                }
            }
        }
        out
    }

    /// Inertia of the added rows against the step's input centroids.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Little-endian serialisation: "PSKS", version 1, k u32, d u32, inertia f64,
    /// k counts u64, k*d sums f64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(STEP_HEADER + self.k * 8 + self.k * self.d * 8);
        b.extend_from_slice(STEP_MAGIC);
        b.push(STEP_VERSION);
        b.extend_from_slice(&(self.k as u32).to_le_bytes());
        b.extend_from_slice(&(self.d as u32).to_le_bytes());
        b.extend_from_slice(&self.inertia.to_le_bytes());
        for c in &self.counts {
            b.extend_from_slice(&c.to_le_bytes());
        }
        for s in &self.sums {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b
    }

    /// Parses [`to_bytes`](StepState::to_bytes) output, validating magic, version,
    /// length and that every number is finite.
    pub fn from_bytes(b: &[u8]) -> Result<StepState, EngineError> {
        let bad = |why: &str| EngineError::invalid("k-means step state", why.to_string());
        if b.len() < STEP_HEADER {
            return Err(bad("too short"));
        }
        if &b[0..4] != STEP_MAGIC {
            return Err(bad("bad magic"));
        }
        if b[4] != STEP_VERSION {
            return Err(bad(&format!("unsupported version {}", b[4])));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let k = u32_at(5);
        let d = u32_at(9);
        let inertia = f64::from_bits(u64_at(13));
        let need = k
            .checked_mul(d)
            .and_then(|kd| kd.checked_add(k))
            .and_then(|m| m.checked_mul(8))
            .and_then(|m| m.checked_add(STEP_HEADER))
            .ok_or_else(|| bad("size overflow"))?;
        if b.len() != need {
            return Err(bad(&format!(
                "length {} but k = {k}, d = {d} needs {need}",
                b.len()
            )));
        }
        if !(inertia.is_finite() && inertia >= 0.0) {
            return Err(bad("inertia is not a finite non-negative number"));
        }
        let mut o = STEP_HEADER;
        let mut counts = Vec::with_capacity(k);
        for _ in 0..k {
            counts.push(u64_at(o));
            o += 8;
        }
        let mut sums = Vec::with_capacity(k * d);
        for _ in 0..k * d {
            let v = f64::from_bits(u64_at(o));
            if !v.is_finite() {
                return Err(bad("non-finite sum"));
            }
            sums.push(v);
            o += 8;
        }
        Ok(StepState {
            k,
            d,
            sums,
            counts,
            inertia,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_seeding_uses_distinct_data_rows_and_falls_back() {
        let centers = [
            [0.0, 0.0, 0.0],
            [10.0, 0.0, 0.0],
            [0.0, 10.0, 0.0],
            [0.0, 0.0, 10.0],
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 4000;
        let d = 3;
        let mut data = Vec::with_capacity(n * d);
        for i in 0..n {
            for v in centers[i % 4] {
                data.push(v + rng.gen_range(-1.0..1.0));
            }
        }
        let seeds = |x: &[f64], sample: usize, k: usize| {
            let mut r = ChaCha8Rng::seed_from_u64(9);
            seed_plus_plus(x, x.len() / d, d, k, sample, &mut r, 1, &mut NoHooks).unwrap()
        };
        let is_row = |x: &[f64], c: &[f64]| x.chunks_exact(d).any(|r| r == c);
        let distinct = |c: &Array2<f64>| {
            let rows: Vec<Vec<u64>> = c
                .outer_iter()
                .map(|r| r.iter().map(|v| v.to_bits()).collect())
                .collect();
            rows.iter().collect::<std::collections::HashSet<_>>().len()
        };

        // Sampled: deterministic, distinct rows of the data, not the full-data seeds.
        let a = seeds(&data, 200, 4);
        assert_eq!(a, seeds(&data, 200, 4));
        assert!(a.outer_iter().all(|c| is_row(&data, c.as_slice().unwrap())));
        assert_eq!(distinct(&a), 4);
        assert_ne!(a, seeds(&data, 0, 4));
        // At most twice the sample size: every row, bit for bit as without a sample.
        assert_eq!(seeds(&data, 2000, 4), seeds(&data, 0, 4));

        // The full fit finds the same four blobs either way.
        let x = ArrayView2::from_shape((n, d), &data).unwrap();
        let full = fit(x, &KMeansParams::new(4).seed(5), &mut NoHooks).unwrap();
        let sampled = fit(
            x,
            &KMeansParams::new(4).seed(5).init_sample(200),
            &mut NoHooks,
        )
        .unwrap();
        assert!(((full.inertia - sampled.inertia) / full.inertia).abs() < 1e-9);

        // A sample with fewer than k distinct rows: seeds come from every row instead.
        let mut few = vec![1.0; n * d];
        for i in 0..4 {
            few[(i * 997) * d] = 2.0 + i as f64;
        }
        let s = seeds(&few, 200, 5);
        assert_eq!(distinct(&s), 5);
        assert!(s.outer_iter().all(|c| is_row(&few, c.as_slice().unwrap())));
    }

    #[test]
    fn centroid_index_agrees_with_nearest() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for &(k, d) in &[
            (1, 1),
            (2, 3),
            (3, 3),
            (5, 7),
            (8, 21),
            (8, 23),
            (13, 5),
            (64, 16),
            (70, 70),
        ] {
            let mut c = Array2::<f64>::zeros((k, d));
            c.mapv_inplace(|_| rng.gen_range(-3.0..3.0));
            if k > 2 {
                // exact ties: a repeated centroid, and rows equidistant by construction
                let r0 = c.row(0).to_owned();
                c.row_mut(k - 1).assign(&r0);
            }
            let idx = CentroidIndex::new(c.view());
            for t in 0..400 {
                let x: Vec<f64> = if t % 7 == 0 {
                    c.row(t % k).to_vec()
                } else {
                    (0..d).map(|_| rng.gen_range(-4.0..4.0)).collect()
                };
                let want = nearest(c.view(), &x);
                assert_eq!(idx.index(&x), want.index, "k={k} d={d} t={t}");
                let (i, dist_sq) = idx.nearest(&x);
                assert_eq!(i, want.index, "k={k} d={d} t={t}");
                assert_eq!(
                    dist_sq.to_bits(),
                    want.dist_sq.to_bits(),
                    "k={k} d={d} t={t}"
                );
            }
        }
    }
    use ndarray::{array, Array2};

    #[derive(serde::Deserialize)]
    struct Fixture {
        name: String,
        k: usize,
        tol: f64,
        max_iter: usize,
        x: Vec<Vec<f64>>,
        init: Vec<Vec<f64>>,
        labels: Vec<u32>,
        inertia: f64,
        n_iter: usize,
        centroids: Vec<Vec<f64>>,
        best_of_10_inertia: f64,
    }

    fn fixtures() -> Vec<Fixture> {
        [
            include_str!("../fixtures/kmeans/separated_blobs.json"),
            include_str!("../fixtures/kmeans/anisotropic_blobs.json"),
            include_str!("../fixtures/kmeans/unequal_variance_blobs.json"),
            include_str!("../fixtures/kmeans/many_duplicates.json"),
            include_str!("../fixtures/kmeans/one_feature.json"),
            include_str!("../fixtures/kmeans/features_64.json"),
            include_str!("../fixtures/kmeans/k_is_1.json"),
            include_str!("../fixtures/kmeans/k_is_distinct_count.json"),
            include_str!("../fixtures/kmeans/constant_column.json"),
            include_str!("../fixtures/kmeans/empty_cluster.json"),
            include_str!("../fixtures/kmeans/overlapping_tol0.json"),
            include_str!("../fixtures/kmeans/max_iter_hit.json"),
            include_str!("../fixtures/kmeans/loose_tol.json"),
        ]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect()
    }

    fn mat(rows: &[Vec<f64>]) -> Array2<f64> {
        let d = rows[0].len();
        Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap()
    }

    /// Total sum of squares around the mean: the scale for absolute tolerances (a
    /// perfect fit has inertia 0 here but ~1e-30 in sklearn, which centres the data).
    fn total_ss(x: &Array2<f64>) -> f64 {
        let mean = x.mean_axis(ndarray::Axis(0)).unwrap();
        x.rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
            })
            .sum()
    }

    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs() + 1e-12 * scale
    }

    fn blobs(n: usize, d: usize, k: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centers: Vec<Vec<f64>> = (0..k)
            .map(|_| (0..d).map(|_| rng.gen_range(-8.0..8.0)).collect())
            .collect();
        Array2::from_shape_fn((n, d), |(i, f)| {
            centers[i % k][f] + rng.gen_range(-1.0..1.0) + rng.gen_range(-1.0..1.0)
        })
    }

    // ---- validation: one test per rule ------------------------------------------

    #[test]
    fn rejects_k_below_one() {
        let x = array![[1.0], [2.0]];
        let e = KMeansParams::new(0).check(x.view()).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "k"));
        assert!(fit(x.view(), &KMeansParams::new(0), &mut NoHooks).is_err());
    }

    #[test]
    fn rejects_k_n_init_and_max_iter_above_their_limits() {
        let x = array![[1.0], [2.0], [3.0]];
        let e = KMeansParams::new(MAX_K + 1).check(x.view()).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "k"));
        let e = KMeansParams::new(2)
            .n_init(MAX_N_INIT + 1)
            .check(x.view())
            .unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "n_init"));
        let e = KMeansParams::new(2)
            .max_iter(MAX_ITER + 1)
            .check(x.view())
            .unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "max_iter"));
        let at_limits = KMeansParams::new(2).n_init(MAX_N_INIT).max_iter(MAX_ITER);
        assert!(at_limits.check(x.view()).is_ok());
    }

    #[test]
    fn rejects_k_above_distinct_points_with_both_numbers() {
        let x = array![[1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [-0.0, 0.0], [0.0, 0.0]];
        let e = fit(x.view(), &KMeansParams::new(4), &mut NoHooks).unwrap_err();
        assert_eq!(e, EngineError::TooFewDistinctPoints { k: 4, distinct: 3 });
        assert!(e.to_string().contains('4') && e.to_string().contains('3'));
        assert!(fit(x.view(), &KMeansParams::new(3), &mut NoHooks).is_ok());
    }

    #[test]
    fn rejects_zero_rows() {
        let x = Array2::<f64>::zeros((0, 3));
        assert_eq!(
            fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err(),
            EngineError::NoRows
        );
    }

    #[test]
    fn rejects_zero_features() {
        let x = Array2::<f64>::zeros((5, 0));
        assert_eq!(
            fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err(),
            EngineError::NoFeatures
        );
    }

    #[test]
    fn rejects_non_finite_values_naming_row_and_feature() {
        let mut x = blobs(20, 3, 2, 1);
        x[[7, 2]] = f64::NAN;
        match fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err() {
            EngineError::NonFinite {
                row,
                feature,
                value,
            } => {
                assert_eq!((row, feature), (7, 2));
                assert!(value.is_nan());
            }
            e => panic!("{e:?}"),
        }
        x[[7, 2]] = 0.0;
        x[[3, 0]] = f64::NEG_INFINITY;
        assert_eq!(
            fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err(),
            EngineError::NonFinite {
                row: 3,
                feature: 0,
                value: f64::NEG_INFINITY
            }
        );
    }

    #[test]
    fn rejects_given_init_with_wrong_number_of_centroids() {
        let x = blobs(20, 2, 2, 1);
        let p = KMeansParams::new(3).init(Init::Given(Array2::zeros((2, 2))));
        let e = fit(x.view(), &p, &mut NoHooks).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "init"));
    }

    #[test]
    fn rejects_given_init_with_wrong_width() {
        let x = blobs(20, 2, 2, 1);
        let p = KMeansParams::new(2).init(Init::Given(Array2::zeros((2, 3))));
        assert_eq!(
            fit(x.view(), &p, &mut NoHooks).unwrap_err(),
            EngineError::DimensionMismatch {
                expected: 2,
                got: 3
            }
        );
    }

    #[test]
    fn rejects_given_init_with_non_finite_values() {
        let x = blobs(20, 2, 2, 1);
        let p = KMeansParams::new(2).init(Init::Given(array![[0.0, 0.0], [f64::NAN, 1.0]]));
        let e = fit(x.view(), &p, &mut NoHooks).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "init"));
    }

    #[test]
    fn rejects_n_init_below_one() {
        let x = blobs(20, 2, 2, 1);
        let e = fit(x.view(), &KMeansParams::new(2).n_init(0), &mut NoHooks).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "n_init"));
    }

    #[test]
    fn rejects_max_iter_below_one() {
        let x = blobs(20, 2, 2, 1);
        let e = fit(x.view(), &KMeansParams::new(2).max_iter(0), &mut NoHooks).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "max_iter"));
    }

    #[test]
    fn rejects_negative_or_nan_tol() {
        let x = blobs(20, 2, 2, 1);
        for tol in [-1e-9, f64::NAN, f64::INFINITY] {
            let e = fit(x.view(), &KMeansParams::new(2).tol(tol), &mut NoHooks).unwrap_err();
            assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "tol"));
        }
        assert!(fit(x.view(), &KMeansParams::new(2).tol(0.0), &mut NoHooks).is_ok());
    }

    // ---- agreement with scikit-learn ---------------------------------------------

    #[test]
    fn same_initial_centroids_give_sklearn_labels_inertia_and_n_iter() {
        for f in fixtures() {
            let x = mat(&f.x);
            let scale = total_ss(&x);
            for algorithm in [Algorithm::Lloyd, Algorithm::Hamerly, Algorithm::Elkan] {
                for threads in [1, 2] {
                    let p = KMeansParams::new(f.k)
                        .init(Init::Given(mat(&f.init)))
                        .tol(f.tol)
                        .max_iter(f.max_iter)
                        .algorithm(algorithm)
                        .threads(threads);
                    let r = fit(x.view(), &p, &mut NoHooks).unwrap();
                    let tag = format!("{} {algorithm:?} threads={threads}", f.name);
                    assert_eq!(r.labels, f.labels, "{tag}: labels");
                    assert_eq!(r.n_iter, f.n_iter, "{tag}: n_iter");
                    assert!(
                        close(r.inertia, f.inertia, scale),
                        "{tag}: inertia {} vs sklearn {}",
                        r.inertia,
                        f.inertia
                    );
                    let c = mat(&f.centroids);
                    let cscale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    for (a, b) in r.centroids.iter().zip(c.iter()) {
                        assert!((a - b).abs() <= 1e-9 * cscale, "{tag}: centroid {a} vs {b}");
                    }
                    assert_eq!(r.converged, f.n_iter < f.max_iter, "{tag}: converged");
                }
            }
        }
    }

    #[test]
    fn seeded_kmeans_plus_plus_is_within_one_percent_of_sklearn_best_of_10() {
        for f in fixtures() {
            let x = mat(&f.x);
            let scale = total_ss(&x);
            let p = KMeansParams::new(f.k).n_init(10).seed(42);
            let r = fit(x.view(), &p, &mut NoHooks).unwrap();
            assert!(
                r.inertia <= f.best_of_10_inertia * 1.01 + 1e-12 * scale,
                "{}: {} vs sklearn best-of-10 {}",
                f.name,
                r.inertia,
                f.best_of_10_inertia
            );
        }
    }

    // ---- exactness of the accelerated algorithms ----------------------------------

    #[test]
    fn lloyd_hamerly_elkan_and_thread_counts_give_identical_results() {
        // Several blocks (so several threads), overlapping clusters, 2 restarts.
        for (n, d, k) in [(17_000, 4, 8), (9_000, 10, 12), (9_000, 2, 3)] {
            let x = blobs(n, d, k, 9);
            let base = KMeansParams::new(k).n_init(2).seed(5).tol(0.0).max_iter(20);
            let reference = fit(
                x.view(),
                &base.clone().algorithm(Algorithm::Lloyd).threads(1),
                &mut NoHooks,
            )
            .unwrap();
            for algorithm in [Algorithm::Hamerly, Algorithm::Elkan] {
                for threads in [1, 3] {
                    let r = fit(
                        x.view(),
                        &base.clone().algorithm(algorithm).threads(threads),
                        &mut NoHooks,
                    )
                    .unwrap();
                    // (assert! rather than assert_eq!: the Debug output would be huge)
                    assert!(r == reference, "{algorithm:?} threads={threads} n={n}");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_result_and_restarts_keep_the_best() {
        let x = blobs(3000, 4, 7, 3);
        let p = KMeansParams::new(7).n_init(5).seed(11);
        let a = fit(x.view(), &p, &mut NoHooks).unwrap();
        let b = fit(x.view(), &p, &mut NoHooks).unwrap();
        assert!(a == b);
        // Run r of n_init=5 is the single run with the same seed and stream r.
        let single = fit(x.view(), &p.clone().n_init(1), &mut NoHooks).unwrap();
        assert!(a.inertia <= single.inertia);
        if a.best_run == 0 {
            assert!(a == single);
        }
        let other = fit(x.view(), &p.clone().seed(12).n_init(1), &mut NoHooks).unwrap();
        assert_eq!(other.labels.len(), 3000);
    }

    #[test]
    fn final_labels_and_inertia_refer_to_the_returned_centroids() {
        let x = blobs(5000, 3, 6, 4);
        for max_iter in [1, 2, 300] {
            let r = fit(
                x.view(),
                &KMeansParams::new(6).max_iter(max_iter),
                &mut NoHooks,
            )
            .unwrap();
            let (labels, inertia) = assign(x.view(), r.centroids.view());
            assert_eq!(labels, r.labels);
            assert_eq!(inertia.to_bits(), r.inertia.to_bits());
            assert_eq!(r.converged, r.n_iter < max_iter || max_iter == 300);
        }
    }

    #[test]
    fn never_returns_an_empty_cluster() {
        // Duplicate initial centroids leave clusters empty; with max_iter = 1 the run
        // stops right after relocation, so the final fix-up is exercised too.
        let x = blobs(2000, 2, 4, 8);
        let init = array![[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [50.0, 50.0]];
        for max_iter in [1, 2, 3, 300] {
            for algorithm in [Algorithm::Lloyd, Algorithm::Hamerly, Algorithm::Elkan] {
                let p = KMeansParams::new(4)
                    .init(Init::Given(init.clone()))
                    .max_iter(max_iter)
                    .algorithm(algorithm);
                let r = fit(x.view(), &p, &mut NoHooks).unwrap();
                let mut counts = [0usize; 4];
                r.labels.iter().for_each(|&l| counts[l as usize] += 1);
                assert!(
                    counts.iter().all(|&c| c > 0),
                    "{max_iter} {algorithm:?}: {counts:?}"
                );
                let (labels, _) = assign(x.view(), r.centroids.view());
                assert_eq!(labels, r.labels);
            }
        }
    }

    #[test]
    fn k_equal_to_distinct_count_puts_every_distinct_point_in_its_own_cluster() {
        let x = array![[0.0, 1.0], [0.0, 1.0], [5.0, 5.0], [-3.0, 2.0], [5.0, 5.0]];
        for init in [Init::KMeansPlusPlus, Init::Random] {
            let r = fit(x.view(), &KMeansParams::new(3).init(init), &mut NoHooks).unwrap();
            assert_eq!(r.inertia, 0.0);
            assert_eq!(r.labels[0], r.labels[1]);
            assert_eq!(r.labels[2], r.labels[4]);
            assert_ne!(r.labels[0], r.labels[2]);
            assert_ne!(r.labels[0], r.labels[3]);
        }
    }

    // ---- initialisation ---------------------------------------------------------

    #[test]
    fn kmeans_plus_plus_picks_distinct_rows_and_is_seeded() {
        let x = array![
            [0.0],
            [0.0],
            [0.0],
            [1.0],
            [1.0],
            [7.0],
            [7.0],
            [7.0],
            [-4.0]
        ];
        let mut r1 = ChaCha8Rng::seed_from_u64(3);
        let c = kmeans_plus_plus(x.view(), 4, &mut r1);
        let mut v: Vec<f64> = c.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        assert_eq!(v, vec![-4.0, 0.0, 1.0, 7.0]);
        let mut r2 = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(kmeans_plus_plus(x.view(), 4, &mut r2), c);
        assert_eq!(kmeans_plus_plus(x.view(), 0, &mut r2).dim(), (0, 1));
    }

    #[test]
    fn kmeans_plus_plus_prefers_far_points() {
        // Two tight groups far apart: the second centre must come from the other group.
        let mut x = Array2::zeros((200, 2));
        for i in 100..200 {
            x[[i, 0]] = 1000.0;
        }
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let c = kmeans_plus_plus(x.view(), 2, &mut rng);
            assert_ne!(c[[0, 0]], c[[1, 0]], "seed {seed}");
        }
    }

    #[test]
    fn random_init_picks_distinct_rows() {
        let x = array![[1.0], [1.0], [1.0], [1.0], [2.0], [3.0]];
        for seed in 0..10 {
            let p = KMeansParams::new(3)
                .init(Init::Random)
                .seed(seed)
                .max_iter(1);
            let r = fit(x.view(), &p, &mut NoHooks).unwrap();
            assert_eq!(r.inertia, 0.0, "seed {seed}");
        }
    }

    #[test]
    fn given_init_runs_once_even_with_n_init() {
        let x = blobs(500, 2, 3, 2);
        let init = x.slice(ndarray::s![0..3, ..]).to_owned();
        let p = KMeansParams::new(3).init(Init::Given(init)).n_init(7);
        let mut h = Recorder::default();
        let r = fit(x.view(), &p, &mut h).unwrap();
        assert_eq!(r.best_run, 0);
        assert!(h.progress.iter().all(|p| p.run == 0));
    }

    // ---- pruned k-means++ equals the unpruned reference bit for bit ----------------

    /// The sequential candidate scan of the unpruned implementation.
    fn ref_sample(closest: &[f64], rv: &[(f64, usize)], cands: &mut [usize]) {
        let (n, trials) = (closest.len(), rv.len());
        let mut cum = 0.0;
        let mut q = 0;
        for (i, v) in closest.iter().enumerate() {
            cum += v;
            while q < trials && cum > rv[q].0 {
                cands[rv[q].1] = i;
                q += 1;
            }
            if q == trials {
                break;
            }
        }
        if q < trials {
            let lastpos = closest.iter().rposition(|v| *v > 0.0).unwrap_or(n - 1);
            for r in &rv[q..] {
                cands[r.1] = lastpos;
            }
        }
    }

    /// Greedy k-means++ without pruning, as implemented before (one pass over the rows
    /// per candidate and per new centre, every distance computed): the reference. Returns
    /// the centres and the same per-step trace as [`PP_TRACE`].
    fn ref_kmeanspp(
        x: &[f64],
        n: usize,
        d: usize,
        k: usize,
        rng: &mut ChaCha8Rng,
        threads: usize,
    ) -> (Array2<f64>, Vec<PpStep>) {
        fn update(
            x: &[f64],
            d: usize,
            center: &[f64],
            closest: &mut [f64],
            init: bool,
            threads: usize,
        ) {
            let items: Vec<(usize, &mut [f64])> = closest
                .chunks_mut(BLOCK)
                .enumerate()
                .map(|(b, c)| (b * BLOCK, c))
                .collect();
            run_blocks(items, threads, &mut NoHooks, &|(start, c): (
                usize,
                &mut [f64],
            )| {
                let rows = x[start * d..(start + c.len()) * d].chunks_exact(d);
                for (v, xi) in c.iter_mut().zip(rows) {
                    let t = sqdist(xi, center);
                    if init || t < *v {
                        *v = t;
                    }
                }
            })
            .unwrap();
        }
        fn potentials(
            x: &[f64],
            d: usize,
            cands: &[usize],
            closest: &[f64],
            threads: usize,
        ) -> Vec<f64> {
            let mut pots: Vec<Vec<f64>> = (0..closest.len().div_ceil(BLOCK))
                .map(|_| vec![0.0; cands.len()])
                .collect();
            let items: Vec<PotItem> = closest
                .chunks(BLOCK)
                .enumerate()
                .zip(pots.iter_mut())
                .collect();
            run_blocks(items, threads, &mut NoHooks, &|((b, c), out): PotItem| {
                let start = b * BLOCK;
                let rows = &x[start * d..(start + c.len()) * d];
                for (t, &ci) in cands.iter().enumerate() {
                    let cc = &x[ci * d..(ci + 1) * d];
                    let mut p = 0.0;
                    for (v, xi) in c.iter().zip(rows.chunks_exact(d)) {
                        p += sqdist(xi, cc).min(*v);
                    }
                    out[t] = p;
                }
            })
            .unwrap();
            let mut tot = vec![0.0; cands.len()];
            for p in pots {
                for (t, v) in tot.iter_mut().zip(p) {
                    *t += v;
                }
            }
            tot
        }
        type PotItem<'a> = ((usize, &'a [f64]), &'a mut Vec<f64>);

        let mut centers = Array2::<f64>::zeros((k, d));
        let mut trace = Vec::new();
        if k == 0 {
            return (centers, trace);
        }
        let trials = 2 + (k as f64).ln().floor() as usize;
        let first = rng.gen_range(0..n);
        let row = |i: usize| &x[i * d..(i + 1) * d];
        centers
            .row_mut(0)
            .assign(&ndarray::ArrayView1::from(row(first)));
        let mut closest = vec![0.0f64; n];
        update(x, d, row(first), &mut closest, true, threads);
        let mut last = first;
        for c in 1..k {
            let total: f64 = closest.iter().sum();
            if total.is_nan() || total <= 0.0 {
                centers
                    .row_mut(c)
                    .assign(&ndarray::ArrayView1::from(row(last)));
                continue;
            }
            let mut rv: Vec<(f64, usize)> =
                (0..trials).map(|t| (rng.gen::<f64>() * total, t)).collect();
            rv.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut cands = vec![n - 1; trials];
            ref_sample(&closest, &rv, &mut cands);
            let pots = potentials(x, d, &cands, &closest, threads);
            let mut best = 0;
            for t in 1..trials {
                if pots[t] < pots[best] {
                    best = t;
                }
            }
            last = cands[best];
            centers
                .row_mut(c)
                .assign(&ndarray::ArrayView1::from(row(last)));
            if c + 1 < k {
                update(x, d, row(last), &mut closest, false, threads);
            }
            trace.push((cands, pots, closest.clone()));
        }
        (centers, trace)
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Runs the pruned and the reference k-means++ and asserts equal centres and traces
    /// (candidates, potentials, `closest` after every step), bit for bit, with the
    /// vector kernels this CPU has and with the portable ones.
    fn assert_pp_matches_reference(
        name: &str,
        x: &Array2<f64>,
        k: usize,
        seed: u64,
        threads: usize,
    ) {
        let (n, d) = x.dim();
        let xs = x.as_slice().unwrap();
        let mut r1 = ChaCha8Rng::seed_from_u64(seed);
        let (want, want_trace) = ref_kmeanspp(xs, n, d, k, &mut r1, threads);
        let after = r1.gen::<u64>();
        for portable in [false, true] {
            let mut r2 = ChaCha8Rng::seed_from_u64(seed);
            FORCE_PORTABLE.with(|p| p.set(portable));
            PP_TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
            let got = kmeanspp_impl(xs, n, d, k, &mut r2, threads, &mut NoHooks).unwrap();
            let trace = PP_TRACE.with(|t| t.borrow_mut().take()).unwrap();
            FORCE_PORTABLE.with(|p| p.set(false));
            let ctx = format!("{name}, k {k}, seed {seed}, threads {threads}, portable {portable}");
            assert_eq!(
                bits(got.as_slice().unwrap()),
                bits(want.as_slice().unwrap()),
                "centres, {ctx}"
            );
            assert_eq!(trace.len(), want_trace.len(), "steps, {ctx}");
            for (s, (a, b)) in trace.iter().zip(&want_trace).enumerate() {
                assert_eq!(a.0, b.0, "candidates of step {s}, {ctx}");
                assert_eq!(bits(&a.1), bits(&b.1), "potentials of step {s}, {ctx}");
                assert_eq!(bits(&a.2), bits(&b.2), "closest after step {s}, {ctx}");
            }
            // The generator is left in the same state too (the fit's next draws agree).
            assert_eq!(r2.gen::<u64>(), after, "rng state, {ctx}");
        }
    }

    fn uniform(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.gen::<f64>())
    }

    #[test]
    fn pruned_kmeans_plus_plus_matches_unpruned_reference_on_clustered_and_uniform_data() {
        // Several blocks of rows (BLOCK = 8192) for the threads to share.
        let sets: Vec<(&str, Array2<f64>, Vec<usize>, u64)> = vec![
            (
                "blobs 2000x5, 8 blobs",
                blobs(2000, 5, 8, 1),
                vec![1, 2, 3, 8, 30],
                3,
            ),
            (
                "blobs 17000x21, 8 blobs",
                blobs(17_000, 21, 8, 2),
                vec![8],
                1,
            ),
            (
                "blobs 3000x3, 40 blobs",
                blobs(3000, 3, 40, 3),
                vec![5, 40],
                2,
            ),
            ("uniform 2000x4", uniform(2000, 4, 4), vec![2, 8, 25], 2),
            ("uniform 17000x2", uniform(17_000, 2, 5), vec![8, 20], 1),
            ("uniform 1000x1", uniform(1000, 1, 6), vec![3, 8, 60], 2),
        ];
        for (name, x, ks, seeds) in &sets {
            for &k in ks {
                for threads in [1, 2, 4] {
                    for seed in 0..*seeds {
                        assert_pp_matches_reference(name, x, k, seed, threads);
                    }
                }
            }
        }
    }

    #[test]
    fn pruned_kmeans_plus_plus_matches_reference_on_duplicates_and_extreme_scales() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let dup = Array2::from_shape_fn((3000, 3), |_| rng.gen_range(0..3) as f64);
        let few = Array2::from_shape_fn((500, 2), |(i, f)| ((i % 3) * (f + 1)) as f64);
        let b = blobs(4000, 4, 6, 10);
        let mut sets: Vec<(String, Array2<f64>)> = vec![
            ("many duplicates".into(), dup),
            ("3 distinct rows".into(), few),
        ];
        // Squares in the subnormal range or underflowing to 0, and overflowing to +inf.
        for scale in [1e-150, 1e-158, 1e-162, 1e150, 1e153, 1e155] {
            sets.push((format!("blobs x {scale:e}"), &b * scale));
        }
        let mut mixed = b.clone();
        mixed.column_mut(0).mapv_inplace(|v| v * 1e8);
        mixed.column_mut(1).fill(3.0);
        sets.push(("mixed column scales".into(), mixed));
        // Not finite (only `fit` validates; `kmeans_plus_plus` takes anything).
        for (i, bad) in [f64::NAN, f64::INFINITY, f64::MAX].into_iter().enumerate() {
            let mut y = b.clone();
            y[[17 + i, 2]] = bad;
            y[[3000 + i, 0]] = -bad;
            sets.push((format!("one coordinate {bad:e}"), y));
        }
        for (name, x) in &sets {
            for k in [2, 5, 9] {
                for threads in [1, 2] {
                    assert_pp_matches_reference(name, x, k, 3, threads);
                }
            }
        }
    }

    #[test]
    fn pruned_kmeans_plus_plus_matches_reference_for_every_width_and_candidate_count() {
        // Widths around the vector chunks (4) and the packing limit (64), and 3 to 8
        // candidates (k 5, 9, 30, 60, 150, 410): one or two groups of four.
        for (i, d) in [1, 2, 3, 4, 5, 7, 8, 9, 16, 21, 63, 64, 65, 70]
            .into_iter()
            .enumerate()
        {
            let x = blobs(700, d, 12, 20 + i as u64);
            for k in [5, 9, 30] {
                assert_pp_matches_reference(&format!("blobs 700x{d}"), &x, k, 4, 2);
            }
        }
        let x = uniform(1200, 3, 21);
        for k in [60, 150, 410] {
            assert_pp_matches_reference("uniform 1200x3", &x, k, 5, 2);
        }
    }

    #[test]
    fn pruned_kmeans_plus_plus_matches_reference_with_more_than_eight_candidates() {
        // k >= 1097 gives 9 candidates per step: the update of a winner past the
        // improvement bits uses the pruning test instead.
        let k = 1100;
        assert_eq!(2 + (k as f64).ln().floor() as usize, PP_MASK_BITS + 1);
        let c = blobs(1150, 2, 30, 12);
        assert_pp_matches_reference("blobs 1150x2", &c, k, 1, 2);
    }

    #[test]
    fn pruned_kmeans_plus_plus_fit_equals_reference_init() {
        // The fit uses the same init: the given-init fit with the reference centres
        // gives the same result as the k-means++ fit.
        let x = blobs(30_000, 6, 8, 13);
        for seed in 0..3 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (init, _) = ref_kmeanspp(x.as_slice().unwrap(), 30_000, 6, 8, &mut rng, 1);
            let pp = fit(
                x.view(),
                &KMeansParams::new(8).seed(seed).threads(2),
                &mut NoHooks,
            )
            .unwrap();
            let given = fit(
                x.view(),
                &KMeansParams::new(8).init(Init::Given(init)),
                &mut NoHooks,
            )
            .unwrap();
            assert_eq!(pp, given, "seed {seed}");
        }
    }

    #[test]
    fn candidate_scan_with_marks_equals_sequential_scan() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        for case in 0..200 {
            let n = [1, 5, PP_SCAN, PP_SCAN + 1, 3 * PP_SCAN + 17][case % 5];
            let mut closest: Vec<f64> = (0..n)
                .map(|_| match rng.gen_range(0..4) {
                    0 => 0.0,
                    1 => rng.gen::<f64>() * 1e-300,
                    _ => rng.gen::<f64>() * 10.0,
                })
                .collect();
            if case % 7 == 3 {
                closest[rng.gen_range(0..n)] = f64::INFINITY;
            }
            let (total, ends) = pp_total(&closest);
            assert_eq!(total.to_bits(), closest.iter().sum::<f64>().to_bits());
            // Targets: random, exact running sums (ties must not cross), the total and
            // beyond, NaN (never crossed), sorted as the caller sorts them.
            let mut cum = Vec::with_capacity(n);
            let mut s = 0.0;
            for v in &closest {
                s += v;
                cum.push(s);
            }
            let mut rv: Vec<(f64, usize)> = (0..6)
                .map(|t| {
                    let r = match rng.gen_range(0..6) {
                        0 | 1 => rng.gen::<f64>() * total,
                        2 => cum[rng.gen_range(0..n)],
                        3 => total,
                        4 => -f64::NAN,
                        _ => 0.0,
                    };
                    (r, t)
                })
                .collect();
            rv.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let (mut a, mut b) = (vec![usize::MAX; 6], vec![usize::MAX; 6]);
            pp_sample(&closest, &ends, &rv, &mut a);
            ref_sample(&closest, &rv, &mut b);
            assert_eq!(a, b, "case {case}, n {n}, rv {rv:?}");
        }
    }

    // ---- hooks --------------------------------------------------------------------

    #[derive(Default)]
    struct Recorder {
        checks: usize,
        progress: Vec<Progress>,
        cancel_after: Option<usize>,
    }

    impl Hooks for Recorder {
        fn check_interrupt(&mut self) -> Result<(), EngineError> {
            self.checks += 1;
            match self.cancel_after {
                Some(n) if self.checks > n => Err(EngineError::Canceled),
                _ => Ok(()),
            }
        }
        fn progress(&mut self, p: &Progress) {
            self.progress.push(p.clone());
        }
    }

    #[test]
    fn progress_once_per_iteration_and_interrupt_checks_per_block() {
        let x = blobs(50_000, 3, 5, 6);
        let mut h = Recorder::default();
        let p = KMeansParams::new(5).n_init(2).threads(2);
        let r = fit(x.view(), &p, &mut h).unwrap();
        let runs: Vec<usize> = h.progress.iter().map(|p| p.run).collect();
        assert!(runs.contains(&0) && runs.contains(&1));
        let best: Vec<&Progress> = h.progress.iter().filter(|p| p.run == r.best_run).collect();
        assert_eq!(best.len(), r.n_iter);
        for (i, p) in best.iter().enumerate() {
            assert_eq!(p.iteration, i + 1);
        }
        assert_eq!(best[0].moved, 50_000);
        // Inertia of each assignment never increases (Lloyd's monotonicity).
        for w in best.windows(2) {
            assert!(w[1].inertia <= w[0].inertia * (1.0 + 1e-12));
        }
        // 50k rows = 7 blocks per pass; the calling thread checks between its blocks.
        assert!(h.checks >= 2 * h.progress.len(), "{} checks", h.checks);
    }

    #[test]
    fn interrupt_cancels_training_from_any_phase() {
        let x = blobs(40_000, 3, 4, 6);
        for threads in [1, 2] {
            let p = KMeansParams::new(4).threads(threads).tol(0.0).n_init(2);
            let mut all = Recorder::default();
            fit(x.view(), &p, &mut all).unwrap();
            assert!(all.checks > 20);
            // With 2 threads the calling thread takes a varying share of the blocks, so
            // only a lower bound of the count is fixed: 2 per iteration (one at its
            // start, one before the first block the calling thread takes).
            let iterations = all.progress.len();
            let last = if threads == 1 {
                all.checks - 1
            } else {
                iterations
            };
            for cancel_after in [0, 1, 3, iterations / 2, last] {
                let mut h = Recorder {
                    cancel_after: Some(cancel_after),
                    ..Default::default()
                };
                assert_eq!(
                    fit(x.view(), &p, &mut h).err(),
                    Some(EngineError::Canceled),
                    "threads {threads}, cancel after {cancel_after} of {}",
                    all.checks
                );
            }
        }
        // `assign` runs on 2 threads here: a busy machine can let the worker take every
        // block, so the calling thread may check only once; cancel on the first check.
        let mut h = Recorder {
            cancel_after: Some(0),
            ..Default::default()
        };
        assert_eq!(
            assign_with_hooks(x.view(), x.slice(ndarray::s![0..3, ..]), &mut h).err(),
            Some(EngineError::Canceled)
        );
    }

    // ---- AVX2 and portable kernels agree bit for bit ------------------------------

    /// Runs `f` with the portable kernel forced on this thread (the E-step picks its
    /// kernel on the calling thread and hands it to the workers).
    fn portable<T>(f: impl FnOnce() -> T) -> T {
        FORCE_PORTABLE.with(|p| p.set(true));
        let r = f();
        FORCE_PORTABLE.with(|p| p.set(false));
        r
    }

    /// Rows with ties, near-ties, repeated values and zero differences, so that the
    /// index and runner-up rules are exercised, for every d % 4 and k % 4.
    fn tricky(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| match rng.gen_range(0..4) {
                0 => rng.gen_range(-3..=3) as f64,
                1 => rng.gen_range(-3..=3) as f64 * 0.5 + 1e-13 * rng.gen_range(-2..=2) as f64,
                _ => rng.gen_range(-5.0..5.0),
            })
            .collect()
    }

    #[test]
    fn avx2_and_portable_searches_agree_bit_for_bit() {
        let simd = Simd::detect();
        if simd == Simd::Portable {
            eprintln!("no AVX2 on this CPU: only the portable kernel runs");
        }
        for d in [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 21, 40, 64, 65, 70] {
            for k in [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 64, 65, 70] {
                let c = tricky(k, d, (d * 100 + k) as u64);
                let x = tricky(300, d, (d * 1000 + k) as u64);
                let p = Packed::new(simd, &c, k, d);
                let cm = Array2::from_shape_vec((k, d), c.clone()).unwrap();
                let mut out = vec![0.0; k];
                for xi in x.chunks_exact(d).chain(c.chunks_exact(d)) {
                    let want = argmin2(&c, k, d, xi);
                    let got = argmin2_with(simd, &p, &c, k, d, xi);
                    assert_eq!(
                        (got.0, got.1.to_bits(), got.2.to_bits()),
                        (want.0, want.1.to_bits(), want.2.to_bits()),
                        "argmin2 d={d} k={k}"
                    );
                    assert_eq!(argmin_with(simd, &p, &c, k, d, xi), argmin(&c, k, d, xi));
                    dists_with(simd, &c, k, d, xi, &mut out);
                    for (j, (o, cj)) in out.iter().zip(c.chunks_exact(d)).enumerate() {
                        assert_eq!(o.to_bits(), sqdist(xi, cj).to_bits(), "d={d} k={k} j={j}");
                    }
                    let fast = nearest(cm.view(), xi);
                    let slow = portable(|| nearest(cm.view(), xi));
                    assert_eq!(fast, slow, "nearest d={d} k={k}");
                    let (a, b) = sqrt2_with(simd, want.1, want.2);
                    assert_eq!(
                        (a.to_bits(), b.to_bits()),
                        (want.1.sqrt().to_bits(), want.2.sqrt().to_bits())
                    );
                }
            }
        }
    }

    #[test]
    fn nearest_keeps_its_nan_and_infinity_behaviour_on_every_kernel() {
        // 5 x 32 so that the AVX2 path (k * d >= 128) is taken; columns 2.. are zero.
        let head = [
            [0.0, 0.0],
            [1.0, 1.0],
            [f64::MAX, 0.0],
            [2.0, 2.0],
            [0.0, 0.0],
        ];
        let c = Array2::from_shape_fn((5, 32), |(j, f)| if f < 2 { head[j][f] } else { 0.0 });
        for x2 in [
            [f64::NAN, 0.0],
            [f64::NAN, f64::NAN],
            [f64::INFINITY, 0.0],
            [-f64::MAX, 0.0],
            [0.0, 0.0],
            [1.0, 1.0],
        ] {
            let mut x = [0.0; 32];
            x[..2].copy_from_slice(&x2);
            let fast = nearest(c.view(), &x);
            let slow = portable(|| nearest(c.view(), &x));
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "x={x2:?}");
        }
    }

    #[test]
    fn fit_is_bit_identical_with_the_avx2_and_portable_kernels() {
        for (n, d, k, algorithm) in [
            (17_000, 8, 8, Algorithm::Auto),
            (9_000, 5, 7, Algorithm::Hamerly),
            (9_000, 3, 3, Algorithm::Lloyd),
            (6_000, 21, 12, Algorithm::Auto),
            (4_000, 70, 5, Algorithm::Elkan),
        ] {
            let x = blobs(n, d, k, 21);
            let p = KMeansParams::new(k)
                .n_init(2)
                .seed(3)
                .tol(0.0)
                .max_iter(30)
                .algorithm(algorithm)
                .threads(2);
            let fast = fit(x.view(), &p, &mut NoHooks).unwrap();
            let slow = portable(|| fit(x.view(), &p, &mut NoHooks).unwrap());
            assert!(fast == slow, "n={n} d={d} k={k} {algorithm:?}");
            let (la, ia) = assign(x.view(), fast.centroids.view());
            let (lb, ib) = portable(|| assign(x.view(), fast.centroids.view()));
            assert_eq!((la, ia.to_bits()), (lb, ib.to_bits()));
        }
        for f in fixtures() {
            let x = mat(&f.x);
            let p = KMeansParams::new(f.k)
                .init(Init::Given(mat(&f.init)))
                .tol(f.tol)
                .max_iter(f.max_iter);
            let fast = fit(x.view(), &p, &mut NoHooks).unwrap();
            let slow = portable(|| fit(x.view(), &p, &mut NoHooks).unwrap());
            assert!(fast == slow, "{}", f.name);
        }
    }

    // ---- nearest / assign / distinct ----------------------------------------------

    #[test]
    fn nearest_reports_runner_up_and_breaks_ties_low() {
        let c = array![[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]];
        let n = nearest(c.view(), &[1.0, 0.0]);
        assert_eq!((n.index, n.dist_sq), (0, 1.0));
        assert_eq!(n.runner_up, Some((1, 1.0)));
        let n = nearest(c.view(), &[0.1, 2.9]);
        assert_eq!(n.index, 2);
        assert_eq!(n.runner_up.unwrap().0, 0);
        let one = array![[1.0, 1.0]];
        assert_eq!(nearest(one.view(), &[1.0, 2.0]).runner_up, None);
        // A transposed (non-contiguous) view gives the same bits.
        let ct = c.t().to_owned();
        let n2 = nearest(ct.t(), &[0.1, 2.9]);
        assert_eq!(n2, nearest(c.view(), &[0.1, 2.9]));
    }

    #[test]
    fn assign_agrees_with_nearest() {
        let x = blobs(20_000, 7, 5, 12);
        let c = x.slice(ndarray::s![100..109, ..]).to_owned();
        let (labels, inertia) = assign(x.view(), c.view());
        let mut total = 0.0;
        for (i, row) in x.rows().into_iter().enumerate() {
            let n = nearest(c.view(), row.as_slice().unwrap());
            assert_eq!(labels[i] as usize, n.index);
            total += n.dist_sq;
        }
        assert!((total - inertia).abs() <= 1e-9 * total);
        // Column-major input is handled too.
        let xf = x.t().as_standard_layout().to_owned();
        assert_eq!(assign(xf.t(), c.view()).0, labels);
    }

    #[test]
    fn count_distinct_rows_is_exact_and_stops_early() {
        let x = array![
            [1.0, 2.0],
            [1.0, 2.0],
            [0.0, 0.0],
            [-0.0, 0.0],
            [3.0, 1.0],
            [1.0, 2.0]
        ];
        assert_eq!(count_distinct_rows(x.view(), 100), 3);
        assert_eq!(count_distinct_rows(x.view(), 2), 2);
        assert_eq!(count_distinct_rows(x.view(), 0), 0);
        let many = blobs(10_000, 3, 4, 1);
        assert_eq!(count_distinct_rows(many.view(), usize::MAX), 10_000);
    }

    #[test]
    fn memory_estimate_grows_with_rows_and_algorithm() {
        let p = KMeansParams::new(8);
        let lloyd = p
            .clone()
            .algorithm(Algorithm::Lloyd)
            .memory_estimate(1_000_000, 8);
        let ham = p
            .clone()
            .algorithm(Algorithm::Hamerly)
            .memory_estimate(1_000_000, 8);
        let elk = p
            .clone()
            .algorithm(Algorithm::Elkan)
            .memory_estimate(1_000_000, 8);
        assert!(lloyd < ham && ham < elk);
        assert!(ham < 64 * 1_000_000);
    }

    // ---- StepState ------------------------------------------------------------------

    #[test]
    fn step_states_merge_into_one_lloyd_iteration() {
        let x = blobs(3000, 3, 4, 2);
        let c0 = x.slice(ndarray::s![0..4, ..]).to_owned();
        let mut parts: Vec<StepState> = (0..3).map(|_| StepState::new(4, 3)).collect();
        for (i, row) in x.rows().into_iter().enumerate() {
            parts[i % 3]
                .add(c0.view(), row.as_slice().unwrap())
                .unwrap();
        }
        let mut all = StepState::new(4, 3);
        for p in &parts {
            let back = StepState::from_bytes(&p.to_bytes()).unwrap();
            assert_eq!(&back, p);
            all.merge(&back).unwrap();
        }
        assert_eq!(all.rows(), 3000);
        // Same as one iteration of fit from c0.
        let p = KMeansParams::new(4)
            .init(Init::Given(c0.clone()))
            .max_iter(1)
            .algorithm(Algorithm::Lloyd);
        let mut h = Recorder::default();
        let r = fit(x.view(), &p, &mut h).unwrap();
        let c1 = all.new_centroids(c0.view());
        for (a, b) in c1.iter().zip(r.centroids.iter()) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()));
        }
        assert!((all.inertia() - h.progress[0].inertia).abs() <= 1e-9 * all.inertia());
    }

    #[test]
    fn step_state_keeps_old_centroid_of_an_empty_cluster() {
        let c = array![[0.0], [100.0]];
        let mut s = StepState::new(2, 1);
        s.add(c.view(), &[1.0]).unwrap();
        s.add(c.view(), &[3.0]).unwrap();
        assert_eq!(s.counts(), &[2, 0]);
        assert_eq!(s.new_centroids(c.view()), array![[2.0], [100.0]]);
        assert_eq!(s.inertia(), 1.0 + 9.0);
    }

    #[test]
    fn step_state_rejects_bad_input() {
        let c = array![[0.0, 0.0], [1.0, 1.0]];
        let mut s = StepState::new(2, 2);
        assert!(matches!(
            s.add(c.view(), &[1.0]),
            Err(EngineError::DimensionMismatch {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            s.add(c.view(), &[1.0, f64::INFINITY]),
            Err(EngineError::NonFinite { feature: 1, .. })
        ));
        let c3 = array![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]];
        assert!(s.add(c3.view(), &[1.0, 1.0]).is_err());
        assert!(s.merge(&StepState::new(3, 2)).is_err());
        assert!(s.merge(&StepState::new(2, 3)).is_err());
    }

    #[test]
    fn step_state_from_bytes_validates() {
        let c = array![[0.0, 0.0], [1.0, 1.0]];
        let mut s = StepState::new(2, 2);
        s.add(c.view(), &[0.5, 0.25]).unwrap();
        let good = s.to_bytes();
        assert_eq!(good.len(), STEP_HEADER + 2 * 8 + 4 * 8);
        assert_eq!(StepState::from_bytes(&good).unwrap(), s);
        assert!(StepState::from_bytes(&[]).is_err());
        assert!(StepState::from_bytes(&good[..good.len() - 1]).is_err());
        let mut extra = good.clone();
        extra.push(0);
        assert!(StepState::from_bytes(&extra).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(StepState::from_bytes(&magic).is_err());
        let mut version = good.clone();
        version[4] = 2;
        assert!(StepState::from_bytes(&version).is_err());
        let mut nan = good.clone();
        let o = good.len() - 8;
        nan[o..].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(StepState::from_bytes(&nan).is_err());
        let mut huge = good.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(StepState::from_bytes(&huge).is_err());
    }
}

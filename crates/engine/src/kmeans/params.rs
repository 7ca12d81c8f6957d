//! K-means parameters: the initialisation and algorithm choices, [`KMeansParams`] with
//! its one validation ([`KMeansParams::check`]) and memory estimate, and the limits.

use super::*;

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

    /// Sets k (the other parameters unchanged).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
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

    /// Validates the parameters on their own: 1 <= k <= [`MAX_K`], 1 <= n_init <=
    /// [`MAX_N_INIT`], 1 <= max_iter <= [`MAX_ITER`], 0 <= tol < inf. The one check of
    /// these limits: [`KMeansParams::check`] starts with it, and callers that take the
    /// parameters from users call it before reading any data.
    pub fn check_values(&self) -> Result<(), EngineError> {
        let signed = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        check_limits(
            Some(signed(self.k)),
            signed(self.n_init),
            signed(self.max_iter),
            self.tol,
        )
    }

    /// Validates the parameters against the data: [`KMeansParams::check_values`], at
    /// least one row and one feature, only finite values, a given init of shape (k, d)
    /// with finite values, and at least k distinct rows.
    pub fn check(&self, x: ArrayView2<f64>) -> Result<(), EngineError> {
        self.check_values()?;
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
        EngineError::check_finite(&x)?;
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
                name: "k",
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

/// The limits of the user-facing parameters (k when given, n_init, max_iter, tol),
/// checked on the values as a caller got them (signed, so that a negative value is
/// reported as given). [`KMeansParams::check_values`] is this on its own values.
pub fn check_limits(
    k: Option<i64>,
    n_init: i64,
    max_iter: i64,
    tol: f64,
) -> Result<(), EngineError> {
    let named = [
        ("k", k),
        ("n_init", Some(n_init)),
        ("max_iter", Some(max_iter)),
    ];
    for ((name, value), max) in named.into_iter().zip([MAX_K, MAX_N_INIT, MAX_ITER]) {
        if let Some(value) = value {
            if !(1..=max as i64).contains(&value) {
                return Err(EngineError::invalid(
                    name,
                    format!("must be between 1 and {max}, got {value}"),
                ));
            }
        }
    }
    if !(tol >= 0.0 && tol.is_finite()) {
        return Err(EngineError::invalid(
            "tol",
            format!("must be a finite number >= 0, got {tol}"),
        ));
    }
    Ok(())
}

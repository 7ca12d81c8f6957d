//! Segment-quality metrics: inertia, Davies–Bouldin, Calinski–Harabasz, silhouette (exact
//! and seeded-sampled), adjusted Rand index, normalized mutual information and per-cluster
//! summaries — plus the mergeable states behind the ad-hoc aggregates ([`ClusterStats`],
//! [`Contingency`], [`Reservoir`]) and their compact, versioned, validated byte format.
//!
//! Definitions and special cases follow scikit-learn (`sklearn.metrics`): labels are
//! arbitrary integers, mapped to dense indices in sorted order like `LabelEncoder`;
//! DB/CH/silhouette need 2 ..= n-1 distinct labels; a singleton cluster has silhouette 0;
//! CH is 1.0 when the within-cluster dispersion is 0; ARI/NMI return 1.0 for labelings
//! that agree up to a permutation (including two one-cluster labelings). Sums that can
//! lose precision are compensated (Neumaier) or two-pass, and every distance is computed
//! so that it agrees with the exact value to ~1e-11 relative (see the silhouette kernel).
//!
//! Threads: the exact silhouette may use up to [`DEFAULT_MAX_THREADS`] threads through
//! `std::thread::scope`, and the per-cluster passes behind Davies–Bouldin,
//! Calinski–Harabasz and the cluster summaries split large inputs (rows × features ≥
//! 2^20) over two threads, each summing a fixed half of the rows, merged in order (so the
//! result does not depend on timing). Those threads only do arithmetic on buffers owned
//! here: they never call into Postgres. The interrupt callback runs only on the calling
//! thread.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::EngineError;

// ---------------------------------------------------------------------------------------
// Small numeric helpers
// ---------------------------------------------------------------------------------------

/// Neumaier (improved Kahan) compensated sum.
#[derive(Debug, Clone, Copy, Default)]
struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    #[inline]
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// Exact-as-possible Euclidean distance between two equally long slices.
#[inline]
fn euclid(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q) * (p - q))
        .sum::<f64>()
        .sqrt()
}

/// Shape, emptiness and finiteness checks shared by every matrix metric.
fn check_input(x: &ArrayView2<f64>, labels: &[i64]) -> Result<(), EngineError> {
    if labels.len() != x.nrows() {
        return Err(EngineError::DimensionMismatch {
            expected: x.nrows(),
            got: labels.len(),
        });
    }
    if x.nrows() == 0 {
        return Err(EngineError::NoRows);
    }
    if x.ncols() == 0 {
        return Err(EngineError::NoFeatures);
    }
    check_finite(x)
}

fn check_finite(x: &ArrayView2<f64>) -> Result<(), EngineError> {
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
    Ok(())
}

/// sklearn's `check_number_of_labels`: 2 <= n_labels <= n_samples - 1.
fn check_number_of_labels(n_labels: usize, n_samples: usize) -> Result<(), EngineError> {
    if n_labels < 2 || n_labels >= n_samples {
        return Err(EngineError::invalid(
            "labels",
            format!(
                "{n_labels} distinct label(s) among {n_samples} rows; this metric needs between \
                 2 and n_rows - 1 = {} distinct labels",
                n_samples.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

/// Labels mapped to dense indices 0..k in sorted label order (like sklearn's LabelEncoder).
struct Dense {
    uniq: Vec<i64>,
    idx: Vec<usize>,
    counts: Vec<usize>,
}

impl Dense {
    fn new(labels: &[i64]) -> Dense {
        let (Some(&lo), Some(&hi)) = (labels.iter().min(), labels.iter().max()) else {
            return Dense {
                uniq: Vec::new(),
                idx: Vec::new(),
                counts: Vec::new(),
            };
        };
        // Compact label ranges (the usual 0..k-1) go through a direct table instead of
        // a sort and a binary search per row; the result is the same.
        let span = hi.abs_diff(lo);
        if span < (labels.len() as u64).max(1 << 16) {
            let slot = |l: i64| l.abs_diff(lo) as usize;
            let mut table = vec![0usize; span as usize + 1];
            for &l in labels {
                table[slot(l)] += 1;
            }
            let (mut uniq, mut counts) = (Vec::new(), Vec::new());
            for (off, t) in table.iter_mut().enumerate() {
                if *t > 0 {
                    counts.push(*t);
                    *t = uniq.len();
                    uniq.push(lo.wrapping_add(off as i64));
                }
            }
            let idx = labels.iter().map(|&l| table[slot(l)]).collect();
            return Dense { uniq, idx, counts };
        }
        let mut uniq = labels.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        let mut counts = vec![0usize; uniq.len()];
        let idx = labels
            .iter()
            .map(|l| {
                let i = uniq.binary_search(l).unwrap_or_else(|i| i);
                counts[i] += 1;
                i
            })
            .collect();
        Dense { uniq, idx, counts }
    }

    fn k(&self) -> usize {
        self.uniq.len()
    }
}

/// Rows a cluster's plain partial sums take before they are flushed into its
/// compensated accumulators: short enough that the plain sums lose nothing measurable,
/// long enough that the inner loop is plain vectorizable adds.
const FLUSH_ROWS: u32 = 32;
/// `rows × features` from which the cluster passes split the rows over two threads.
const PASS_PARALLEL_MIN: usize = 1 << 20;

/// Call `f(row index, row)` for rows `range` of `x`, each row as a contiguous slice
/// (copied into a buffer when `x` is not row-major).
fn for_rows(x: &ArrayView2<f64>, range: Range<usize>, mut f: impl FnMut(usize, &[f64])) {
    let d = x.ncols();
    if let Some(s) = x.as_slice() {
        for r in range {
            f(r, &s[r * d..(r + 1) * d]);
        }
        return;
    }
    let mut buf = vec![0.0; d];
    for r in range {
        let row = x.row(r);
        match row.as_slice() {
            Some(s) => f(r, s),
            None => {
                for (b, v) in buf.iter_mut().zip(row.iter()) {
                    *b = *v;
                }
                f(r, &buf);
            }
        }
    }
}

/// What one pass over the rows accumulates, per cluster, against per-cluster centers.
struct PassSums {
    /// `sum(x - center)` per (cluster, feature), compensated (k × d).
    dev: Vec<Neumaier>,
    /// `sum(|x - center|)` (Euclidean) per cluster, when distances were asked for.
    dist: Vec<Neumaier>,
    /// `sum(|x - center|^2)` per cluster, when distances were asked for.
    sq: Vec<Neumaier>,
}

impl PassSums {
    fn merge(&mut self, other: PassSums) {
        for (a, b) in [
            (&mut self.dev, other.dev),
            (&mut self.dist, other.dist),
            (&mut self.sq, other.sq),
        ] {
            for (s, o) in a.iter_mut().zip(b) {
                s.add(o.sum);
                s.add(o.comp);
            }
        }
    }
}

/// `p += row - m`, element-wise (four lanes at a time, so it vectorizes).
#[inline]
fn add_deviations(p: &mut [f64], row: &[f64], m: &[f64]) {
    let (p4, p_rest) = p.as_chunks_mut::<4>();
    let (r4, r_rest) = row.as_chunks::<4>();
    let (m4, m_rest) = m.as_chunks::<4>();
    for ((p, r), m) in p4.iter_mut().zip(r4).zip(m4) {
        for j in 0..4 {
            p[j] += r[j] - m[j];
        }
    }
    for ((p, r), m) in p_rest.iter_mut().zip(r_rest).zip(m_rest) {
        *p += r - m;
    }
}

/// [`add_deviations`], also returning `|row - m|^2`.
#[inline]
fn add_deviations_sq(p: &mut [f64], row: &[f64], m: &[f64]) -> f64 {
    let (p4, p_rest) = p.as_chunks_mut::<4>();
    let (r4, r_rest) = row.as_chunks::<4>();
    let (m4, m_rest) = m.as_chunks::<4>();
    let mut q = [0.0f64; 4];
    for ((p, r), m) in p4.iter_mut().zip(r4).zip(m4) {
        for j in 0..4 {
            let t = r[j] - m[j];
            p[j] += t;
            q[j] += t * t;
        }
    }
    let mut d2 = (q[0] + q[1]) + (q[2] + q[3]);
    for ((p, r), m) in p_rest.iter_mut().zip(r_rest).zip(m_rest) {
        let t = r - m;
        *p += t;
        d2 += t * t;
    }
    d2
}

/// One pass over rows `range`: per cluster, `sum(x - center)` per feature and (with
/// `distances`) the sums of the Euclidean distance and squared distance to the center.
/// Plain f64 partial sums per cluster (vectorizable) are flushed into compensated
/// accumulators every [`FLUSH_ROWS`] rows of that cluster.
fn centered_pass(
    x: &ArrayView2<f64>,
    idx: &[usize],
    centers: &[f64],
    k: usize,
    distances: bool,
    range: Range<usize>,
) -> PassSums {
    let d = x.ncols();
    let mut part = vec![0.0f64; k * d];
    let mut part_dist = vec![0.0f64; k];
    let mut part_sq = vec![0.0f64; k];
    let mut pending = vec![0u32; k];
    let nd = if distances { k } else { 0 };
    let mut out = PassSums {
        dev: vec![Neumaier::default(); k * d],
        dist: vec![Neumaier::default(); nd],
        sq: vec![Neumaier::default(); nd],
    };
    let flush = |c: usize,
                 part: &mut [f64],
                 part_dist: &mut [f64],
                 part_sq: &mut [f64],
                 out: &mut PassSums| {
        for (s, p) in out.dev[c * d..(c + 1) * d]
            .iter_mut()
            .zip(&mut part[c * d..(c + 1) * d])
        {
            s.add(*p);
            *p = 0.0;
        }
        if distances {
            out.dist[c].add(std::mem::take(&mut part_dist[c]));
            out.sq[c].add(std::mem::take(&mut part_sq[c]));
        }
    };
    for_rows(x, range, |r, row| {
        let c = idx[r];
        let p = &mut part[c * d..(c + 1) * d];
        let m = &centers[c * d..(c + 1) * d];
        if distances {
            let d2 = add_deviations_sq(p, row, m);
            part_dist[c] += d2.sqrt();
            part_sq[c] += d2;
        } else {
            add_deviations(p, row, m);
        }
        pending[c] += 1;
        if pending[c] == FLUSH_ROWS {
            pending[c] = 0;
            flush(c, &mut part, &mut part_dist, &mut part_sq, &mut out);
        }
    });
    for (c, &p) in pending.iter().enumerate() {
        if p > 0 {
            flush(c, &mut part, &mut part_dist, &mut part_sq, &mut out);
        }
    }
    out
}

/// [`centered_pass`] over all rows: two threads (the rows split into two fixed halves,
/// merged in order, so the result depends only on the input) for large inputs.
fn centered_sums(
    x: &ArrayView2<f64>,
    idx: &[usize],
    centers: &[f64],
    k: usize,
    distances: bool,
) -> PassSums {
    let n = x.nrows();
    if n < 2 || n.saturating_mul(x.ncols()) < PASS_PARALLEL_MIN {
        return centered_pass(x, idx, centers, k, distances, 0..n);
    }
    let half = n / 2;
    let (mut lo, hi) = std::thread::scope(|s| {
        let h = s.spawn(|| centered_pass(x, idx, centers, k, distances, half..n));
        let lo = centered_pass(x, idx, centers, k, distances, 0..half);
        (lo, h.join())
    });
    lo.merge(hi.unwrap_or_else(|p| std::panic::resume_unwind(p)));
    lo
}

/// Per-cluster means (k x d), and the sums of pass 2 (with `distances`: each row's
/// distance and squared distance to `m0`, its cluster's pass-1 mean).
///
/// Pass 1 sums `x - s_c` with `s_c` the cluster's first row, so the sums are of the
/// size of the cluster's spread rather than of its offset, giving `m0`; pass 2 sums the
/// residual `x - m0` to fix the last bits. Both use compensated sums of short plain
/// partial sums. A non-finite entry of `x` is reported as [`check_finite`] reports it.
fn means_and_spread(
    x: &ArrayView2<f64>,
    dense: &Dense,
    distances: bool,
) -> Result<(Array2<f64>, PassSums), EngineError> {
    let (k, d) = (dense.k(), x.ncols());
    let mut shift = vec![0.0f64; k * d];
    let mut seen = vec![false; k];
    let mut left = k;
    for (r, &c) in dense.idx.iter().enumerate() {
        if !seen[c] {
            seen[c] = true;
            for (s, v) in shift[c * d..(c + 1) * d].iter_mut().zip(x.row(r).iter()) {
                *s = *v;
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    let first = centered_sums(x, &dense.idx, &shift, k, false);
    let mut m0 = vec![0.0f64; k * d];
    for c in 0..k {
        let cnt = dense.counts[c] as f64;
        for f in 0..d {
            m0[c * d + f] = shift[c * d + f] + first.dev[c * d + f].value() / cnt;
        }
    }
    // A NaN / Infinity anywhere makes its cluster's sums non-finite (they never become
    // finite again); only then look for the first offending entry.
    if m0.iter().any(|v| !v.is_finite()) {
        check_finite(x)?;
    }
    let second = centered_sums(x, &dense.idx, &m0, k, distances);
    let mut means = Array2::<f64>::zeros((k, d));
    for c in 0..k {
        let cnt = dense.counts[c] as f64;
        for f in 0..d {
            means[[c, f]] = m0[c * d + f] + second.dev[c * d + f].value() / cnt;
        }
    }
    Ok((means, second))
}

/// Per-cluster means, two passes with compensated sums (k x d). `x` must be finite.
fn cluster_means(x: &ArrayView2<f64>, dense: &Dense) -> Array2<f64> {
    match means_and_spread(x, dense, false) {
        Ok((means, _)) => means,
        // Only reachable with non-finite input, which callers have rejected.
        Err(_) => Array2::from_elem((dense.k(), x.ncols()), f64::NAN),
    }
}

// ---------------------------------------------------------------------------------------
// Inertia, Davies–Bouldin, Calinski–Harabasz, summaries
// ---------------------------------------------------------------------------------------

/// Sum of squared Euclidean distances from each row to its centroid. Label value `i`
/// refers to centroid row `i` (so labels must lie in `0..centroids.nrows()`).
pub fn inertia(
    x: ArrayView2<f64>,
    labels: &[i64],
    centroids: ArrayView2<f64>,
) -> Result<f64, EngineError> {
    check_input(&x, labels)?;
    if centroids.ncols() != x.ncols() {
        return Err(EngineError::DimensionMismatch {
            expected: x.ncols(),
            got: centroids.ncols(),
        });
    }
    for (row, r) in centroids.outer_iter().enumerate() {
        if let Some(v) = r.iter().find(|v| !v.is_finite()) {
            return Err(EngineError::invalid(
                "centroids",
                format!("centroid row {row} contains the non-finite value {v}"),
            ));
        }
    }
    let k = centroids.nrows();
    let mut total = Neumaier::default();
    for (r, &l) in x.outer_iter().zip(labels) {
        if l < 0 || (l as u64) >= k as u64 {
            return Err(EngineError::invalid(
                "labels",
                format!(
                    "label {l} has no centroid: labels must index the {k} centroid rows (0 to {})",
                    k as i64 - 1
                ),
            ));
        }
        let c = centroids.row(l as usize);
        let s: f64 = r.iter().zip(c.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
        total.add(s);
    }
    Ok(total.value())
}

/// Davies–Bouldin index (lower is better), as `sklearn.metrics.davies_bouldin_score`.
pub fn davies_bouldin(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
    db_ch(x, labels).map(|(db, _)| db)
}

/// Calinski–Harabasz index (variance ratio; higher is better), as
/// `sklearn.metrics.calinski_harabasz_score`: 1.0 when the within-cluster dispersion is 0.
pub fn calinski_harabasz(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
    db_ch(x, labels).map(|(_, ch)| ch)
}

/// [`davies_bouldin`] and [`calinski_harabasz`] together, from one computation of the
/// cluster means and two passes over `x` (instead of the ~2 × 4 passes of calling the
/// two functions). Each result (value or error) is the one the separate function returns.
pub fn davies_bouldin_calinski_harabasz(
    x: ArrayView2<f64>,
    labels: &[i64],
) -> (Result<f64, EngineError>, Result<f64, EngineError>) {
    match db_ch(x, labels) {
        Ok((db, ch)) => (Ok(db), Ok(ch)),
        Err(e) => (Err(e.clone()), Err(e)),
    }
}

/// The shared core of the Davies–Bouldin and Calinski–Harabasz indices. Errors come in
/// [`check_input`]'s order (shape, emptiness, finiteness), then the label count; the
/// finiteness check rides on the means pass instead of a pass of its own.
fn db_ch(x: ArrayView2<f64>, labels: &[i64]) -> Result<(f64, f64), EngineError> {
    if labels.len() != x.nrows() {
        return Err(EngineError::DimensionMismatch {
            expected: x.nrows(),
            got: labels.len(),
        });
    }
    if x.nrows() == 0 {
        return Err(EngineError::NoRows);
    }
    if x.ncols() == 0 {
        return Err(EngineError::NoFeatures);
    }
    let dense = Dense::new(labels);
    let (n, k, d) = (x.nrows(), dense.k(), x.ncols());
    if let Err(e) = check_number_of_labels(k, n) {
        check_finite(&x)?;
        return Err(e);
    }
    // Distances are taken to the first-pass means, which differ from the final ones by
    // a few ulps of the cluster spread: far below the 1e-12 these indices are good for.
    let (means, spread) = means_and_spread(&x, &dense, true)?;

    // Davies–Bouldin
    let intra: Vec<f64> = spread
        .dist
        .iter()
        .zip(&dense.counts)
        .map(|(s, &c)| s.value() / c as f64)
        .collect();
    let mut cdist = vec![0.0f64; k * k];
    for a in 0..k {
        for b in 0..k {
            let (ra, rb) = (means.row(a), means.row(b));
            let d2: f64 = ra
                .iter()
                .zip(rb.iter())
                .map(|(p, q)| (p - q) * (p - q))
                .sum();
            cdist[a * k + b] = d2.sqrt();
        }
    }
    // np.isclose(v, 0) with the default atol = 1e-8
    let db = if intra.iter().all(|v| v.abs() <= 1e-8) || cdist.iter().all(|v| v.abs() <= 1e-8) {
        0.0
    } else {
        let mut total = Neumaier::default();
        for a in 0..k {
            let mut best = f64::NEG_INFINITY;
            for b in 0..k {
                let dist = cdist[a * k + b];
                let dist = if dist == 0.0 { f64::INFINITY } else { dist };
                best = best.max((intra[a] + intra[b]) / dist);
            }
            total.add(best);
        }
        total.value() / k as f64
    };

    // Calinski–Harabasz. The grand mean is the count-weighted mean of the cluster
    // means, summed as offsets from the first cluster's mean.
    let base = means.row(0);
    let gmean: Vec<f64> = (0..d)
        .map(|f| {
            let mut s = Neumaier::default();
            for c in 0..k {
                s.add(dense.counts[c] as f64 * (means[[c, f]] - base[f]));
            }
            base[f] + s.value() / n as f64
        })
        .collect();
    let mut extra = Neumaier::default();
    for c in 0..k {
        let s: f64 = (0..d).map(|f| (means[[c, f]] - gmean[f]).powi(2)).sum();
        extra.add(dense.counts[c] as f64 * s);
    }
    let mut within = Neumaier::default();
    for s in &spread.sq {
        within.add(s.sum);
        within.add(s.comp);
    }
    let ch = ch_ratio(extra.value(), within.value(), n as f64, k as f64);
    Ok((db, ch))
}

fn ch_ratio(extra: f64, intra: f64, n: f64, k: f64) -> f64 {
    if intra == 0.0 {
        1.0
    } else {
        extra * (n - k) / (intra * (k - 1.0))
    }
}

/// One cluster's size, centroid and spread, as returned by [`cluster_summaries`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSummary {
    /// The cluster's label as given.
    pub label: i64,
    /// Number of rows with this label.
    pub size: u64,
    /// The cluster mean (centroid), one value per feature.
    pub mean: Vec<f64>,
    /// Mean Euclidean distance from the cluster's rows to its own centroid.
    pub mean_distance: f64,
    /// Root-mean-square distance to the centroid: sqrt(within-cluster SS / size).
    pub dispersion: f64,
}

/// Per-cluster size, mean, mean distance and RMS distance to the centroid, sorted by label.
pub fn cluster_summaries(
    x: ArrayView2<f64>,
    labels: &[i64],
) -> Result<Vec<ClusterSummary>, EngineError> {
    check_input(&x, labels)?;
    let dense = Dense::new(labels);
    let k = dense.k();
    let means = cluster_means(&x, &dense);
    let mut dsum = vec![Neumaier::default(); k];
    let mut ssum = vec![Neumaier::default(); k];
    for (r, &c) in x.outer_iter().zip(&dense.idx) {
        let m = means.row(c);
        let d2: f64 = r.iter().zip(m.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
        dsum[c].add(d2.sqrt());
        ssum[c].add(d2);
    }
    Ok((0..k)
        .map(|c| {
            let n = dense.counts[c] as f64;
            ClusterSummary {
                label: dense.uniq[c],
                size: dense.counts[c] as u64,
                mean: means.row(c).to_vec(),
                mean_distance: dsum[c].value() / n,
                dispersion: (ssum[c].value() / n).sqrt(),
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Silhouette
// ---------------------------------------------------------------------------------------

/// Upper bound on the worker threads the exact silhouette uses by default (the calling
/// thread counts as one). Use [`silhouette_samples_threads`] to choose explicitly.
pub const DEFAULT_MAX_THREADS: usize = 2;

/// Lanes of one column chunk in the packed panels.
const LANES: usize = 8;
/// Rows per block (a block never straddles two clusters). Multiple of LANES.
const BLOCK_ROWS: usize = 64;
/// Below this many rows a second thread costs more than it saves.
const PARALLEL_MIN_ROWS: usize = 1024;
/// The symmetric schedule keeps an n x k table of sums per part; above this many bytes in
/// total it switches to the row-wise schedule (2x the arithmetic, O(threads*64*k) state).
const SYMMETRIC_STATE_LIMIT: usize = 256 << 20;
/// Fixed number of parts of the symmetric schedule (and so its maximum thread count).
/// Fixed, not per-thread, so results do not depend on how many threads ran.
const SYMMETRIC_PARTS: usize = 2;
/// Relative guard of the ||a||^2 + ||b||^2 - 2ab expansion: a pair whose squared distance
/// is below GUARD * (||a||^2 + ||b||^2) is recomputed exactly (scaled up for wide data).
const GUARD: f64 = 1e-4;

type Lane = [f64; LANES];

/// Result of [`silhouette_sampled`]: the mean silhouette and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Silhouette {
    /// Mean silhouette coefficient over the rows used.
    pub score: f64,
    /// Number of rows the score was computed on.
    pub sample_size: usize,
    /// True when every row was used (no sampling).
    pub exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// Each unordered pair once; per-thread n x k sums.
    Symmetric,
    /// Each ordered pair; per-task 64 x k sums, finalized immediately.
    RowWise,
}

struct Block {
    start: usize,
    len: usize,
    cluster: usize,
    chunk0: usize,
    chunks: usize,
}

/// Rows sorted by cluster and packed into 8-lane column chunks, once centered on the global
/// mean (for pairs in different clusters) and once on each row's own cluster mean (for
/// pairs in the same cluster): centering keeps the norms small relative to the distances,
/// so the dot-product expansion loses almost nothing, and the guard catches the rest.
struct Packed {
    n: usize,
    d: usize,
    k: usize,
    counts: Vec<usize>,
    order: Vec<usize>,
    rows: Vec<f64>,
    blocks: Vec<Block>,
    gpanel: Vec<Lane>,
    cpanel: Vec<Lane>,
    gnorm: Vec<Lane>,
    cnorm: Vec<Lane>,
    mask: Vec<Lane>,
    full: Vec<bool>,
    guard: f64,
}

impl Packed {
    fn new(x: &ArrayView2<f64>, dense: &Dense) -> Packed {
        let (n, d, k) = (x.nrows(), x.ncols(), dense.k());
        let mut starts = vec![0usize; k + 1];
        for c in 0..k {
            starts[c + 1] = starts[c] + dense.counts[c];
        }
        let mut fill = starts.clone();
        let mut order = vec![0usize; n];
        for (i, &c) in dense.idx.iter().enumerate() {
            order[fill[c]] = i;
            fill[c] += 1;
        }
        let mut rows = Vec::with_capacity(n * d);
        for &i in &order {
            rows.extend(x.row(i).iter().copied());
        }
        // Means used only as shifts (any shift is exact for differences).
        let mut gmean = vec![0.0; d];
        let mut cmean = vec![0.0; k * d];
        for c in 0..k {
            for p in starts[c]..starts[c + 1] {
                for f in 0..d {
                    cmean[c * d + f] += rows[p * d + f];
                }
            }
            for f in 0..d {
                gmean[f] += cmean[c * d + f];
                cmean[c * d + f] /= dense.counts[c] as f64;
            }
        }
        for g in gmean.iter_mut() {
            *g /= n as f64;
        }
        let mut blocks = Vec::new();
        let mut nchunks = 0;
        for c in 0..k {
            let mut s = starts[c];
            while s < starts[c + 1] {
                let len = BLOCK_ROWS.min(starts[c + 1] - s);
                let chunks = len.div_ceil(LANES);
                blocks.push(Block {
                    start: s,
                    len,
                    cluster: c,
                    chunk0: nchunks,
                    chunks,
                });
                nchunks += chunks;
                s += len;
            }
        }
        let zero = [0.0; LANES];
        let mut gpanel = vec![zero; nchunks * d];
        let mut cpanel = vec![zero; nchunks * d];
        let mut gnorm = vec![zero; nchunks];
        let mut cnorm = vec![zero; nchunks];
        let mut mask = vec![zero; nchunks];
        let mut full = vec![false; nchunks];
        for b in &blocks {
            for ch in 0..b.chunks {
                let g = b.chunk0 + ch;
                let lanes = LANES.min(b.len - ch * LANES);
                full[g] = lanes == LANES;
                for l in 0..lanes {
                    let p = b.start + ch * LANES + l;
                    mask[g][l] = 1.0;
                    for f in 0..d {
                        let v = rows[p * d + f];
                        let gv = v - gmean[f];
                        let cv = v - cmean[b.cluster * d + f];
                        gpanel[g * d + f][l] = gv;
                        cpanel[g * d + f][l] = cv;
                        gnorm[g][l] += gv * gv;
                        cnorm[g][l] += cv * cv;
                    }
                }
            }
        }
        Packed {
            n,
            d,
            k,
            counts: dense.counts.clone(),
            order,
            rows,
            blocks,
            gpanel,
            cpanel,
            gnorm,
            cnorm,
            mask,
            full,
            guard: GUARD * (d as f64 / 64.0).max(1.0),
        }
    }

    #[inline]
    fn exact(&self, p: usize, q: usize) -> f64 {
        let d = self.d;
        euclid(
            &self.rows[p * d..(p + 1) * d],
            &self.rows[q * d..(q + 1) * d],
        )
    }

    /// Runs one task (row block `bi`) with the best kernel this CPU offers. Symmetric
    /// tasks add into `sums`; row-wise tasks return their rows' silhouettes.
    #[allow(unsafe_code)]
    fn run_task(
        &self,
        simd: Simd,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        #[cfg(target_arch = "x86_64")]
        if simd == Simd::Avx2Fma {
            // SAFETY: `Simd::Avx2Fma` is only ever chosen by `Simd::detect` after
            // `is_x86_feature_detected!` confirmed AVX2 and FMA on this CPU. The callee is
            // ordinary safe code compiled with those features enabled.
            return unsafe { self.run_task_avx2(schedule, bi, sums, rowacc, colacc) };
        }
        let _ = simd;
        self.run_task_generic::<KERNEL_PORTABLE>(schedule, bi, sums, rowacc, colacc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_task_avx2(
        &self,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        self.run_task_generic::<KERNEL_AVX2>(schedule, bi, sums, rowacc, colacc)
    }

    #[inline(always)]
    fn run_task_generic<const K: u8>(
        &self,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        match schedule {
            Schedule::Symmetric => {
                self.task_symmetric::<K>(bi, sums, rowacc, colacc);
                None
            }
            Schedule::RowWise => Some(self.task_rowwise::<K>(bi, rowacc, colacc)),
        }
    }

    /// One tile with kernel `K` (always inlined into `run_task_avx2` / `run_task`).
    #[inline(always)]
    #[allow(unsafe_code)]
    fn tile_k<const K: u8>(
        &self,
        bi: usize,
        bj: usize,
        with_cols: bool,
        rowacc: &mut [f64],
        colacc: &mut [f64],
        strip: &mut [Strip],
    ) {
        #[cfg(target_arch = "x86_64")]
        if K == KERNEL_AVX2 {
            // SAFETY: K == KERNEL_AVX2 is instantiated only by `run_task_avx2`, which
            // `run_task` calls only after run-time detection of AVX2 and FMA.
            return unsafe { self.tile_avx2(bi, bj, with_cols, rowacc, colacc, strip) };
        }
        self.tile::<PORTABLE_MR>(bi, bj, with_cols, rowacc, colacc, strip)
    }

    /// Distances between the rows of block `bi` and the rows of block `bj`: their sum over
    /// `bj` is added to `rowacc[row of bi]`; with `with_cols`, their sum over `bi` is
    /// added to `colacc[row of bj]`. Micro-tiles of M x 8 pairs: dot products (register
    /// blocked), then squared distances by the expansion, exact recomputation of any pair
    /// the guard flags, one sqrt per pair.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    fn tile<const M: usize>(
        &self,
        bi: usize,
        bj: usize,
        with_cols: bool,
        rowacc: &mut [f64],
        colacc: &mut [f64],
        strip: &mut [Strip],
    ) {
        let (a, b) = (&self.blocks[bi], &self.blocks[bj]);
        let (panel, norm) = if a.cluster == b.cluster {
            (&self.cpanel, &self.cnorm)
        } else {
            (&self.gpanel, &self.gnorm)
        };
        let (d, guard) = (self.d, self.guard);
        for ca in 0..a.chunks {
            let ga = a.chunk0 + ca;
            let apan = &panel[ga * d..(ga + 1) * d];
            let (an, am) = (&norm[ga], &self.mask[ga]);
            for r0 in (0..LANES).step_by(M) {
                if am[r0] == 0.0 {
                    break; // lanes fill in order: the rest of this chunk is padding
                }
                let ar: [f64; M] = std::array::from_fn(|r| an[(r0 + r) % LANES]);
                for (dst, src) in strip.iter_mut().zip(apan) {
                    *dst = std::array::from_fn(|r| src[(r0 + r) % LANES]);
                }
                let strip: &[Strip] = strip;
                let mut rs = [[0.0f64; LANES]; M];
                for cb in 0..b.chunks {
                    let gb = b.chunk0 + cb;
                    let bpan = &panel[gb * d..(gb + 1) * d];
                    let bn = &norm[gb];
                    let mut acc = micro::<M>(strip, bpan);
                    let mut flagged = false;
                    for r in 0..M {
                        for c in 0..LANES {
                            let s = ar[r] + bn[c];
                            let d2 = s - 2.0 * acc[r][c];
                            flagged |= d2 < guard * s;
                            acc[r][c] = d2;
                        }
                    }
                    if flagged || !(self.full[ga] && self.full[gb]) {
                        self.slow_dist(&mut acc, (a, ca, r0), (b, cb), &ar, bn);
                    } else {
                        for r in 0..M {
                            for c in 0..LANES {
                                acc[r][c] = acc[r][c].sqrt();
                            }
                        }
                    }
                    for r in 0..M {
                        for c in 0..LANES {
                            rs[r][c] += acc[r][c];
                        }
                    }
                    if with_cols {
                        let cs = &mut colacc[cb * LANES..(cb + 1) * LANES];
                        for r in 0..M {
                            for c in 0..LANES {
                                cs[c] += acc[r][c];
                            }
                        }
                    }
                }
                for (r, lanes) in rs.iter().enumerate() {
                    rowacc[ca * LANES + r0 + r] += lanes.iter().sum::<f64>();
                }
            }
        }
    }

    /// Turns a micro-tile of squared distances into distances when some pair needs care:
    /// padding lanes become 0, pairs the guard flags are recomputed exactly.
    #[cold]
    #[inline(never)]
    fn slow_dist<const M: usize>(
        &self,
        d2: &mut [Lane; M],
        (a, ca, r0): (&Block, usize, usize),
        (b, cb): (&Block, usize),
        an: &[f64; M],
        bn: &Lane,
    ) {
        for r in 0..M {
            let ia = ca * LANES + r0 + r;
            for c in 0..LANES {
                let jb = cb * LANES + c;
                let v = d2[r][c];
                d2[r][c] = if ia >= a.len || jb >= b.len {
                    0.0
                } else if v < self.guard * (an[r] + bn[c]) {
                    self.exact(a.start + ia, b.start + jb)
                } else {
                    v.sqrt()
                };
            }
        }
    }

    fn flush_rows(
        &self,
        block: &Block,
        rowacc: &[f64],
        sums: &mut [f64],
        cluster: usize,
        base: usize,
    ) {
        for (i, v) in rowacc[..block.len].iter().enumerate() {
            sums[(block.start + i - base) * self.k + cluster] += v;
        }
    }

    /// Symmetric task: row block `bi` against blocks `bi..`, into the n x k `sums`.
    #[inline(always)]
    fn task_symmetric<const K: u8>(
        &self,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) {
        let a = &self.blocks[bi];
        let mut strip = vec![[0.0f64; STRIP]; self.d];
        let mut bj = bi;
        while bj < self.blocks.len() {
            let cl = self.blocks[bj].cluster;
            rowacc.fill(0.0);
            while bj < self.blocks.len() && self.blocks[bj].cluster == cl {
                if bj == bi {
                    self.tile_k::<K>(bi, bi, false, rowacc, colacc, &mut strip);
                } else {
                    colacc.fill(0.0);
                    self.tile_k::<K>(bi, bj, true, rowacc, colacc, &mut strip);
                    let b = &self.blocks[bj];
                    for (j, v) in colacc[..b.len].iter().enumerate() {
                        sums[(b.start + j) * self.k + a.cluster] += v;
                    }
                }
                bj += 1;
            }
            self.flush_rows(a, rowacc, sums, cl, 0);
        }
    }

    /// Row-wise task: row block `bi` against every block; returns its rows' silhouettes.
    #[inline(always)]
    fn task_rowwise<const K: u8>(
        &self,
        bi: usize,
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Vec<f64> {
        let a = &self.blocks[bi];
        let mut strip = vec![[0.0f64; STRIP]; self.d];
        let mut sums = vec![0.0; a.len * self.k];
        let mut bj = 0;
        while bj < self.blocks.len() {
            let cl = self.blocks[bj].cluster;
            rowacc.fill(0.0);
            while bj < self.blocks.len() && self.blocks[bj].cluster == cl {
                self.tile_k::<K>(bi, bj, false, rowacc, colacc, &mut strip);
                bj += 1;
            }
            self.flush_rows(a, rowacc, &mut sums, cl, a.start);
        }
        (0..a.len)
            .map(|i| sil_value(&sums[i * self.k..(i + 1) * self.k], a.cluster, &self.counts))
            .collect()
    }
}

#[cfg(target_arch = "x86_64")]
impl Packed {
    /// The [`Packed::tile`] computation with explicit AVX2/FMA intrinsics (4 x 8 pairs per
    /// micro-tile, accumulators in 8 ymm registers; column sums stay in registers for the
    /// whole tile). No raw pointers: loads are `_mm256_setr_pd` of array elements.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)]
    fn tile_avx2(
        &self,
        bi: usize,
        bj: usize,
        with_cols: bool,
        rowacc: &mut [f64],
        colacc: &mut [f64],
        strip: &mut [Strip],
    ) {
        use std::arch::x86_64::*;
        let (a, b) = (&self.blocks[bi], &self.blocks[bj]);
        let (panel, norm) = if a.cluster == b.cluster {
            (&self.cpanel, &self.cnorm)
        } else {
            (&self.gpanel, &self.gnorm)
        };
        let d = self.d;
        let guard = _mm256_set1_pd(self.guard);
        let two = _mm256_set1_pd(2.0);
        let zero = _mm256_setzero_pd();
        let mut colv = [zero; 2 * (BLOCK_ROWS / LANES)];
        for ca in 0..a.chunks {
            let ga = a.chunk0 + ca;
            let apan = &panel[ga * d..(ga + 1) * d];
            let (an, am) = (&norm[ga], &self.mask[ga]);
            for r0 in [0usize, 4] {
                if am[r0] == 0.0 {
                    break; // lanes fill in order: the rest of this chunk is padding
                }
                for (dst, src) in strip.iter_mut().zip(apan) {
                    *dst = [src[r0], src[r0 + 1], src[r0 + 2], src[r0 + 3]];
                }
                let strip: &[Strip] = strip;
                let ar = [an[r0], an[r0 + 1], an[r0 + 2], an[r0 + 3]];
                let na = ar.map(|v| _mm256_set1_pd(v));
                let mut rowv = [zero; 4];
                // Software pipeline: the previous micro-tile's squared distances are
                // square-rooted (divider unit) before, and independently of, this one's
                // dot products (FMA pipes), so the out-of-order core overlaps the two.
                let mut pend = [zero; 8];
                let mut pend_cb: Option<usize> = None;
                for cb in 0..b.chunks {
                    if pend_cb.is_some() {
                        for v in 0..8 {
                            pend[v] = _mm256_sqrt_pd(pend[v]);
                        }
                    }
                    let gb = b.chunk0 + cb;
                    let bpan = &panel[gb * d..(gb + 1) * d];
                    let mut acc = [zero; 8];
                    for (av, bv) in strip.iter().zip(bpan) {
                        let b0 = _mm256_setr_pd(bv[0], bv[1], bv[2], bv[3]);
                        let b1 = _mm256_setr_pd(bv[4], bv[5], bv[6], bv[7]);
                        for r in 0..4 {
                            let s = _mm256_set1_pd(av[r]);
                            acc[2 * r] = _mm256_fmadd_pd(s, b0, acc[2 * r]);
                            acc[2 * r + 1] = _mm256_fmadd_pd(s, b1, acc[2 * r + 1]);
                        }
                    }
                    if let Some(pcb) = pend_cb.take() {
                        accumulate(&pend, &mut rowv, &mut colv, pcb, with_cols);
                    }
                    let bn = &norm[gb];
                    let bnv = [
                        _mm256_setr_pd(bn[0], bn[1], bn[2], bn[3]),
                        _mm256_setr_pd(bn[4], bn[5], bn[6], bn[7]),
                    ];
                    let mut bad = zero;
                    for i in 0..8 {
                        let s = _mm256_add_pd(na[i / 2], bnv[i % 2]);
                        let d2 = _mm256_fnmadd_pd(two, acc[i], s); // s - 2 * dot
                        let lim = _mm256_mul_pd(guard, s);
                        bad = _mm256_or_pd(bad, _mm256_cmp_pd::<_CMP_LT_OQ>(d2, lim));
                        acc[i] = d2;
                    }
                    if _mm256_movemask_pd(bad) != 0 || !(self.full[ga] && self.full[gb]) {
                        let mut tmp = [[0.0f64; LANES]; 4];
                        for (r, t) in tmp.iter_mut().enumerate() {
                            let (lo, hi) = (lanes4(acc[2 * r]), lanes4(acc[2 * r + 1]));
                            *t = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]];
                        }
                        self.slow_dist(&mut tmp, (a, ca, r0), (b, cb), &ar, bn);
                        for (r, t) in tmp.iter().enumerate() {
                            acc[2 * r] = _mm256_setr_pd(t[0], t[1], t[2], t[3]);
                            acc[2 * r + 1] = _mm256_setr_pd(t[4], t[5], t[6], t[7]);
                        }
                        accumulate(&acc, &mut rowv, &mut colv, cb, with_cols);
                    } else {
                        pend = acc;
                        pend_cb = Some(cb);
                    }
                }
                if let Some(pcb) = pend_cb {
                    for v in pend.iter_mut() {
                        *v = _mm256_sqrt_pd(*v);
                    }
                    accumulate(&pend, &mut rowv, &mut colv, pcb, with_cols);
                }
                for (r, rv) in rowv.iter().enumerate() {
                    let l = lanes4(*rv);
                    rowacc[ca * LANES + r0 + r] += (l[0] + l[1]) + (l[2] + l[3]);
                }
            }
        }
        if with_cols {
            for (j, v) in colv.iter().take(2 * b.chunks).enumerate() {
                for (c, x) in lanes4(*v).iter().enumerate() {
                    colacc[4 * j + c] += x;
                }
            }
        }
    }
}

/// Adds a resolved 4 x 8 micro-tile of distances (row-major pairs of vectors) to the row
/// sums and, with `with_cols`, to the column sums of chunk `cb`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn accumulate(
    dist: &[std::arch::x86_64::__m256d; 8],
    rowv: &mut [std::arch::x86_64::__m256d; 4],
    colv: &mut [std::arch::x86_64::__m256d],
    cb: usize,
    with_cols: bool,
) {
    use std::arch::x86_64::*;
    for (r, rv) in rowv.iter_mut().enumerate() {
        *rv = _mm256_add_pd(*rv, _mm256_add_pd(dist[2 * r], dist[2 * r + 1]));
    }
    if with_cols {
        for h in 0..2 {
            let col = _mm256_add_pd(
                _mm256_add_pd(dist[h], dist[2 + h]),
                _mm256_add_pd(dist[4 + h], dist[6 + h]),
            );
            colv[2 * cb + h] = _mm256_add_pd(colv[2 * cb + h], col);
        }
    }
}

/// The four lanes of an AVX vector, without raw pointers.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lanes4(v: std::arch::x86_64::__m256d) -> [f64; 4] {
    use std::arch::x86_64::*;
    let lo = _mm256_castpd256_pd128(v);
    let hi = _mm256_extractf128_pd::<1>(v);
    [
        _mm_cvtsd_f64(lo),
        _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)),
        _mm_cvtsd_f64(hi),
        _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)),
    ]
}

/// M x 8 dot products between the strip of M rows (feature-major) and one 8-row chunk.
#[inline(always)]
fn micro<const M: usize>(a: &[Strip], b: &[Lane]) -> [Lane; M] {
    let mut acc = [[0.0f64; LANES]; M];
    for (av, bv) in a.iter().zip(b) {
        for (acc_row, &s) in acc.iter_mut().zip(av) {
            for (x, &y) in acc_row.iter_mut().zip(bv) {
                *x += s * y;
            }
        }
    }
    acc
}

/// Which distance kernel the CPU supports (detected once per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    /// Baseline code (SSE2 on x86-64, NEON on aarch64) as the compiler vectorizes it.
    Portable,
    /// x86-64 with AVX2 and FMA, detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Simd::Avx2Fma;
        }
        Simd::Portable
    }
}

/// Micro-tile height of the portable kernel (keeps the accumulators in 16 SSE registers).
const PORTABLE_MR: usize = 2;
/// Micro-tile height of the AVX2 kernel, and the width of the A-row strip buffer.
const STRIP: usize = 4;
/// Rows of one micro-tile strip, feature-major (only the first M lanes are used).
type Strip = [f64; STRIP];
const KERNEL_PORTABLE: u8 = 0;
#[cfg(target_arch = "x86_64")]
const KERNEL_AVX2: u8 = 1;

/// sklearn's per-sample silhouette from the sums of distances to each cluster.
fn sil_value(sums: &[f64], own: usize, counts: &[usize]) -> f64 {
    if counts[own] <= 1 {
        return 0.0;
    }
    let a = sums[own] / (counts[own] - 1) as f64;
    let mut b = f64::INFINITY;
    for (c, (&s, &n)) in sums.iter().zip(counts).enumerate() {
        if c != own {
            b = b.min(s / n as f64);
        }
    }
    let m = a.max(b);
    if m == 0.0 || !m.is_finite() {
        0.0
    } else {
        (b - a) / m
    }
}

type Interrupt<'a> = &'a mut dyn FnMut() -> Result<(), EngineError>;

enum WorkerOut {
    /// Symmetric schedule: (part, n x k sums) for each part this thread ran.
    Sums(Vec<(usize, Vec<f64>)>),
    /// Row-wise schedule: (block, silhouettes of its rows).
    Rows(Vec<(usize, Vec<f64>)>),
}

/// One thread's share. Symmetric schedule: the thread runs parts `thread`, `thread +
/// threads`, ... of [`SYMMETRIC_PARTS`]; part `q` owns row blocks `q`, `q + PARTS`, ...
/// (static, so every sum is added in the same order whatever the thread count: results
/// are bitwise reproducible). Row-wise schedule: blocks are handed out dynamically (each
/// row's result is computed by one task, so the order does not matter).
fn run_worker(
    p: &Packed,
    simd: Simd,
    schedule: Schedule,
    (thread, threads): (usize, usize),
    next: &AtomicUsize,
    cancel: &AtomicBool,
    mut interrupt: Option<Interrupt<'_>>,
) -> Result<WorkerOut, EngineError> {
    let mut rowacc = vec![0.0; BLOCK_ROWS];
    let mut colacc = vec![0.0; BLOCK_ROWS];
    let mut check = |cancel: &AtomicBool| -> Result<(), EngineError> {
        if let Some(f) = interrupt.as_mut() {
            if let Err(e) = f() {
                cancel.store(true, AtomicOrdering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    };
    match schedule {
        Schedule::Symmetric => {
            let mut parts = Vec::new();
            for part in (thread..SYMMETRIC_PARTS).step_by(threads) {
                let mut sums = vec![0.0; p.n * p.k];
                for bi in (part..p.blocks.len()).step_by(SYMMETRIC_PARTS) {
                    if cancel.load(AtomicOrdering::Relaxed) {
                        break;
                    }
                    p.run_task(simd, schedule, bi, &mut sums, &mut rowacc, &mut colacc);
                    check(cancel)?;
                }
                parts.push((part, sums));
            }
            Ok(WorkerOut::Sums(parts))
        }
        Schedule::RowWise => {
            let mut rows = Vec::new();
            let mut none: [f64; 0] = [];
            loop {
                let bi = next.fetch_add(1, AtomicOrdering::Relaxed);
                if cancel.load(AtomicOrdering::Relaxed) || bi >= p.blocks.len() {
                    break;
                }
                if let Some(sil) =
                    p.run_task(simd, schedule, bi, &mut none, &mut rowacc, &mut colacc)
                {
                    rows.push((bi, sil));
                }
                check(cancel)?;
            }
            Ok(WorkerOut::Rows(rows))
        }
    }
}

/// Bytes the exact silhouette allocates for `n` rows, `d` features and `k` clusters on
/// `threads` threads (the packed copies plus the per-thread sums), for budget checks.
pub fn silhouette_memory_bytes(n: usize, d: usize, k: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let padded = n.saturating_add(k.saturating_mul(LANES));
    let packed = padded
        .saturating_mul(2 * d + 3)
        .saturating_add(n.saturating_mul(d))
        .saturating_mul(8)
        .saturating_add(n.saturating_mul(16));
    let state = symmetric_state_bytes(n, k);
    if state <= SYMMETRIC_STATE_LIMIT {
        packed.saturating_add(state)
    } else {
        let rowwise = threads
            .saturating_mul(BLOCK_ROWS)
            .saturating_mul(k)
            .saturating_add(n);
        packed.saturating_add(rowwise.saturating_mul(8))
    }
}

/// Bytes of the symmetric schedule's per-part n x k sums.
fn symmetric_state_bytes(n: usize, k: usize) -> usize {
    (8 * SYMMETRIC_PARTS).saturating_mul(n).saturating_mul(k)
}

/// Name of the distance kernel the exact silhouette uses on this CPU ("avx2+fma" or
/// "portable"), for benchmarks and diagnostics.
pub fn silhouette_kernel() -> &'static str {
    match Simd::detect() {
        Simd::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => "avx2+fma",
    }
}

/// Exact per-row silhouette coefficients, in input order (sklearn's `silhouette_samples`
/// with the Euclidean metric). Chunked and memory-bounded: O(n*d + 2*n*k) memory, never an
/// n x n matrix (row-wise O(threads*64*k) state when 16*n*k passes 256 MiB). Runs on up to
/// [`DEFAULT_MAX_THREADS`] threads; `interrupt` is called regularly on the calling thread.
/// Results are bitwise reproducible and do not depend on the thread count.
pub fn silhouette_samples(
    x: ArrayView2<f64>,
    labels: &[i64],
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Vec<f64>, EngineError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(DEFAULT_MAX_THREADS);
    silhouette_samples_threads(x, labels, threads, interrupt)
}

/// [`silhouette_samples`] with an explicit thread count (1 = only the calling thread).
pub fn silhouette_samples_threads(
    x: ArrayView2<f64>,
    labels: &[i64],
    threads: usize,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Vec<f64>, EngineError> {
    silhouette_impl(x, labels, threads, None, None, interrupt)
}

fn silhouette_impl(
    x: ArrayView2<f64>,
    labels: &[i64],
    threads: usize,
    force: Option<Schedule>,
    force_simd: Option<Simd>,
    interrupt: Interrupt<'_>,
) -> Result<Vec<f64>, EngineError> {
    check_input(&x, labels)?;
    let dense = Dense::new(labels);
    check_number_of_labels(dense.k(), x.nrows())?;
    interrupt()?;
    let p = Packed::new(&x, &dense);
    let (n, k) = (p.n, p.k);
    let mut threads = threads.max(1).min(p.blocks.len());
    if n < PARALLEL_MIN_ROWS {
        threads = 1;
    }
    let schedule = force.unwrap_or(if symmetric_state_bytes(n, k) <= SYMMETRIC_STATE_LIMIT {
        Schedule::Symmetric
    } else {
        Schedule::RowWise
    });
    if schedule == Schedule::Symmetric {
        threads = threads.min(SYMMETRIC_PARTS);
    }
    let simd = force_simd.unwrap_or_else(Simd::detect);
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let outs: Vec<Result<WorkerOut, EngineError>> = std::thread::scope(|s| {
        // Helper threads: pure arithmetic on `p`; they never touch Postgres.
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                let (p, next, cancel) = (&p, &next, &cancel);
                s.spawn(move || run_worker(p, simd, schedule, (t, threads), next, cancel, None))
            })
            .collect();
        let mine = run_worker(
            &p,
            simd,
            schedule,
            (0, threads),
            &next,
            &cancel,
            Some(&mut *interrupt),
        );
        let mut outs = vec![mine];
        // Keep honouring interrupts while the helpers finish their last tasks.
        while outs[0].is_ok() && !handles.iter().all(|h| h.is_finished()) {
            if let Err(e) = interrupt() {
                cancel.store(true, AtomicOrdering::Relaxed);
                outs[0] = Err(e);
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        for h in handles {
            match h.join() {
                Ok(r) => outs.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        outs
    });
    let mut sil_sorted = vec![0.0; n];
    let mut parts: Vec<(usize, Vec<f64>)> = Vec::new();
    for out in outs {
        match out? {
            WorkerOut::Sums(mut s) => parts.append(&mut s),
            WorkerOut::Rows(rows) => {
                for (bi, vals) in rows {
                    let start = p.blocks[bi].start;
                    sil_sorted[start..start + vals.len()].copy_from_slice(&vals);
                }
            }
        }
    }
    // Parts are added in part order: the same result for any thread count.
    parts.sort_by_key(|(part, _)| *part);
    let mut parts = parts.into_iter().map(|(_, s)| s);
    if let Some(mut sums) = parts.next() {
        for other in parts {
            sums.iter_mut().zip(&other).for_each(|(a, b)| *a += b);
        }
        for b in &p.blocks {
            for pos in b.start..b.start + b.len {
                sil_sorted[pos] = sil_value(&sums[pos * k..(pos + 1) * k], b.cluster, &p.counts);
            }
        }
    }
    let mut out = vec![0.0; n];
    for (pos, &orig) in p.order.iter().enumerate() {
        out[orig] = sil_sorted[pos];
    }
    Ok(out)
}

fn mean_of(v: &[f64]) -> f64 {
    let mut s = Neumaier::default();
    v.iter().for_each(|&x| s.add(x));
    s.value() / v.len() as f64
}

/// Exact mean silhouette over all rows (sklearn's `silhouette_score`, no sampling).
pub fn silhouette_score(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
    let s = silhouette_samples(x, labels, &mut || Ok(()))?;
    Ok(mean_of(&s))
}

/// Mean silhouette: exact when `n <= max_samples`, else on a seeded uniform sample of
/// `max_samples` rows drawn without replacement (the result states its size).
pub fn silhouette_sampled(
    x: ArrayView2<f64>,
    labels: &[i64],
    max_samples: usize,
    seed: u64,
) -> Result<Silhouette, EngineError> {
    silhouette_sampled_with(x, labels, max_samples, seed, &mut || Ok(()))
}

/// [`silhouette_sampled`] with an interrupt callback (called on the calling thread).
pub fn silhouette_sampled_with(
    x: ArrayView2<f64>,
    labels: &[i64],
    max_samples: usize,
    seed: u64,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Silhouette, EngineError> {
    if max_samples < 2 {
        return Err(EngineError::invalid(
            "max_samples",
            format!("must be at least 2, got {max_samples}"),
        ));
    }
    check_input(&x, labels)?;
    let n = x.nrows();
    if n <= max_samples {
        let s = silhouette_samples(x, labels, interrupt)?;
        return Ok(Silhouette {
            score: mean_of(&s),
            sample_size: n,
            exact: true,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, n, max_samples).into_vec();
    idx.sort_unstable();
    let sub = x.select(ndarray::Axis(0), &idx);
    let sub_labels: Vec<i64> = idx.iter().map(|&i| labels[i]).collect();
    let s = silhouette_samples(sub.view(), &sub_labels, interrupt).map_err(|e| sample_err(e, n))?;
    Ok(Silhouette {
        score: mean_of(&s),
        sample_size: max_samples,
        exact: false,
    })
}

fn sample_err(e: EngineError, n: usize) -> EngineError {
    match e {
        EngineError::InvalidParameter { name, reason } if name == "labels" => EngineError::invalid(
            "labels",
            format!("in the silhouette sample drawn from {n} rows: {reason}"),
        ),
        other => other,
    }
}

/// Mean silhouette of a reservoir sample of `(vector, label)` pairs (the silhouette
/// aggregate's state): exact when the reservoir saw no more rows than it holds.
pub fn silhouette_of_reservoir(
    r: &Reservoir<(Vec<f64>, i64)>,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Silhouette, EngineError> {
    let items = r.items();
    if items.is_empty() {
        return Err(EngineError::NoRows);
    }
    let d = items[0].0.len();
    let mut flat = Vec::with_capacity(items.len() * d);
    let mut labels = Vec::with_capacity(items.len());
    for (v, l) in &items {
        if v.len() != d {
            return Err(EngineError::DimensionMismatch {
                expected: d,
                got: v.len(),
            });
        }
        flat.extend_from_slice(v);
        labels.push(*l);
    }
    let x = Array2::from_shape_vec((items.len(), d), flat)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let exact = r.seen() as usize == items.len();
    let s = silhouette_samples(x.view(), &labels, interrupt).map_err(|e| {
        if exact {
            e
        } else {
            sample_err(e, r.seen() as usize)
        }
    })?;
    Ok(Silhouette {
        score: mean_of(&s),
        sample_size: items.len(),
        exact,
    })
}

// ---------------------------------------------------------------------------------------
// ARI / NMI
// ---------------------------------------------------------------------------------------

fn check_pair(a: &[i64], b: &[i64]) -> Result<(), EngineError> {
    if a.len() != b.len() {
        return Err(EngineError::DimensionMismatch {
            expected: a.len(),
            got: b.len(),
        });
    }
    if a.is_empty() {
        return Err(EngineError::NoRows);
    }
    Ok(())
}

/// Adjusted Rand index of two labelings (sklearn's `adjusted_rand_score`). Errors on
/// empty input (sklearn returns 1.0 there).
pub fn adjusted_rand_index(a: &[i64], b: &[i64]) -> Result<f64, EngineError> {
    check_pair(a, b)?;
    let mut c = Contingency::new();
    a.iter().zip(b).for_each(|(&x, &y)| c.push(x, y));
    c.ari()
}

/// Normalized mutual information with arithmetic-mean normalization (sklearn's
/// `normalized_mutual_info_score` default). Errors on empty input.
pub fn normalized_mutual_info(a: &[i64], b: &[i64]) -> Result<f64, EngineError> {
    check_pair(a, b)?;
    let mut c = Contingency::new();
    a.iter().zip(b).for_each(|(&x, &y)| c.push(x, y));
    c.nmi()
}

/// Mergeable contingency table of two labelings: exact integer counts, so partial states
/// from parallel workers combine exactly. ARI and NMI are computed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contingency {
    cells: BTreeMap<(i64, i64), u64>,
    n: u64,
}

impl Contingency {
    /// An empty table.
    pub fn new() -> Contingency {
        Contingency::default()
    }

    /// Counts one row labeled `a` by the first labeling and `b` by the second.
    pub fn push(&mut self, a: i64, b: i64) {
        *self.cells.entry((a, b)).or_insert(0) += 1;
        self.n += 1;
    }

    /// Adds another table's counts (exact).
    pub fn merge(&mut self, other: &Contingency) {
        for (&key, &v) in &other.cells {
            *self.cells.entry(key).or_insert(0) += v;
        }
        self.n += other.n;
    }

    /// Number of rows counted.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Number of non-empty cells.
    pub fn cells(&self) -> usize {
        self.cells.len()
    }

    fn marginals(&self) -> (Vec<u64>, Vec<u64>) {
        let mut ra: BTreeMap<i64, u64> = BTreeMap::new();
        let mut rb: BTreeMap<i64, u64> = BTreeMap::new();
        for (&(a, b), &v) in &self.cells {
            *ra.entry(a).or_insert(0) += v;
            *rb.entry(b).or_insert(0) += v;
        }
        (ra.into_values().collect(), rb.into_values().collect())
    }

    /// Adjusted Rand index (sklearn's formula on the pair confusion matrix, computed in
    /// exact integer arithmetic; 1.0 when the labelings agree up to a permutation).
    pub fn ari(&self) -> Result<f64, EngineError> {
        if self.n == 0 {
            return Err(EngineError::NoRows);
        }
        let (ma, mb) = self.marginals();
        let n = self.n as i128;
        let sq = |v: u64| (v as i128) * (v as i128);
        let ss: i128 = self.cells.values().map(|&v| sq(v)).sum();
        let sa: i128 = ma.iter().map(|&v| sq(v)).sum();
        let sb: i128 = mb.iter().map(|&v| sq(v)).sum();
        let tp = ss - n;
        let fp = sb - ss;
        let fneg = sa - ss;
        let tn = n * n - fp - fneg - ss;
        if fneg == 0 && fp == 0 {
            return Ok(1.0);
        }
        let exact = || -> Option<(i128, i128)> {
            let num = tp.checked_mul(tn)?.checked_sub(fneg.checked_mul(fp)?)?;
            let d1 = (tp + fneg).checked_mul(fneg + tn)?;
            let d2 = (tp + fp).checked_mul(fp + tn)?;
            Some((num, d1.checked_add(d2)?))
        };
        Ok(match exact() {
            // Python: 2.0 * int / int (each int rounded to the nearest double once).
            Some((num, den)) => 2.0 * (num as f64) / (den as f64),
            None => {
                let (tp, tn, fp, fneg) = (tp as f64, tn as f64, fp as f64, fneg as f64);
                2.0 * (tp * tn - fneg * fp) / ((tp + fneg) * (fneg + tn) + (tp + fp) * (fp + tn))
            }
        })
    }

    /// Normalized mutual information, arithmetic normalization (sklearn's default and its
    /// special cases: 1.0 when both labelings have one cluster, 0.0 when MI is 0).
    pub fn nmi(&self) -> Result<f64, EngineError> {
        if self.n == 0 {
            return Err(EngineError::NoRows);
        }
        let (ma, mb) = self.marginals();
        if ma.len() == 1 && mb.len() == 1 {
            return Ok(1.0);
        }
        if ma.len() == 1 || mb.len() == 1 {
            return Ok(0.0);
        }
        // Index of each label in the marginals (cells are sorted by (a, b)).
        let la: Vec<i64> = {
            let mut v: Vec<i64> = self.cells.keys().map(|k| k.0).collect();
            v.dedup();
            v
        };
        let lb: Vec<i64> = {
            let mut v: Vec<i64> = self.cells.keys().map(|k| k.1).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let total = self.n as f64;
        let log_total = total.ln();
        let log_sum = total.ln(); // log(pi.sum()) == log(pj.sum()) == log(n)
        let mut mi = Neumaier::default();
        for (&(a, b), &v) in &self.cells {
            let pi = ma[la.binary_search(&a).unwrap_or(0)];
            let pj = mb[lb.binary_search(&b).unwrap_or(0)];
            let nz = v as f64;
            let c_nm = nz / total;
            let outer = (pi as u128 * pj as u128) as f64;
            let log_outer = -outer.ln() + log_sum + log_sum;
            let term = c_nm * (nz.ln() - log_total) + c_nm * log_outer;
            if term.abs() >= f64::EPSILON {
                mi.add(term);
            }
        }
        let mi = mi.value().max(0.0);
        if mi == 0.0 {
            return Ok(0.0);
        }
        let (ha, hb) = (entropy(&ma), entropy(&mb));
        Ok(mi / ((ha + hb) / 2.0))
    }

    /// Compact versioned serialization (magic "PSCT", version 1, sorted cells).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + 24 * self.cells.len());
        out.extend_from_slice(CONTINGENCY_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&(self.cells.len() as u64).to_le_bytes());
        for (&(a, b), &v) in &self.cells {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parses [`Contingency::to_bytes`] output, rejecting anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Contingency, EngineError> {
        let mut r = ByteReader::open(bytes, "contingency state", CONTINGENCY_MAGIC)?;
        let cells = r.u64()?;
        r.expect_items(cells, 24)?;
        let mut out = Contingency::new();
        let mut prev: Option<(i64, i64)> = None;
        for _ in 0..cells {
            let key = (r.i64()?, r.i64()?);
            let v = r.u64()?;
            if v == 0 {
                return Err(r.bad("a cell has count 0"));
            }
            if prev.is_some_and(|p| p >= key) {
                return Err(r.bad("cells are not strictly sorted"));
            }
            prev = Some(key);
            out.n = out
                .n
                .checked_add(v)
                .ok_or_else(|| r.bad("row count overflows"))?;
            out.cells.insert(key, v);
        }
        r.finish()?;
        Ok(out)
    }
}

/// sklearn's `_entropy` from label counts.
fn entropy(counts: &[u64]) -> f64 {
    if counts.len() <= 1 {
        return 0.0;
    }
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let log_sum = sum.ln();
    let mut h = Neumaier::default();
    for &c in counts {
        let p = c as f64;
        h.add((p / sum) * (p.ln() - log_sum));
    }
    -h.value()
}

// ---------------------------------------------------------------------------------------
// ClusterStats
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct ClusterAcc {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

/// Mergeable per-cluster count / mean / M2 (Welford updates, Chan et al. combine): the
/// state of the inertia and Calinski–Harabasz aggregates. Combining partial states is
/// exact in real arithmetic (floating-point results agree to rounding).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStats {
    d: usize,
    n: u64,
    clusters: BTreeMap<i64, ClusterAcc>,
}

impl ClusterStats {
    /// An empty state for `d`-dimensional rows.
    pub fn new(d: usize) -> ClusterStats {
        ClusterStats {
            d,
            n: 0,
            clusters: BTreeMap::new(),
        }
    }

    /// Adds one row with its label. Errors on a wrong length or a non-finite value (the
    /// reported row is the number of rows this state had already seen).
    pub fn push(&mut self, label: i64, x: &[f64]) -> Result<(), EngineError> {
        EngineError::check_row(x, self.d, self.n as usize)?;
        let d = self.d;
        let acc = self.clusters.entry(label).or_insert_with(|| ClusterAcc {
            count: 0,
            mean: vec![0.0; d],
            m2: vec![0.0; d],
        });
        acc.count += 1;
        let cnt = acc.count as f64;
        for ((m, m2), &v) in acc.mean.iter_mut().zip(acc.m2.iter_mut()).zip(x) {
            let delta = v - *m;
            *m += delta / cnt;
            *m2 += delta * (v - *m);
        }
        self.n += 1;
        Ok(())
    }

    /// Combines another partial state into this one (Chan et al. pairwise update).
    pub fn merge(&mut self, other: &ClusterStats) -> Result<(), EngineError> {
        if other.n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            *self = other.clone();
            return Ok(());
        }
        if self.d != other.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: other.d,
            });
        }
        for (&label, o) in &other.clusters {
            match self.clusters.get_mut(&label) {
                None => {
                    self.clusters.insert(label, o.clone());
                }
                Some(s) => {
                    let (na, nb) = (s.count as f64, o.count as f64);
                    let nt = na + nb;
                    for f in 0..self.d {
                        let delta = o.mean[f] - s.mean[f];
                        s.mean[f] += delta * (nb / nt);
                        s.m2[f] += o.m2[f] + delta * delta * (na * nb / nt);
                    }
                    s.count += o.count;
                }
            }
        }
        self.n += other.n;
        Ok(())
    }

    /// Rows pushed (over all merged parts).
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Number of distinct labels seen.
    pub fn k(&self) -> usize {
        self.clusters.len()
    }

    /// Row length this state expects.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Calinski–Harabasz index of everything pushed (same rules as [`calinski_harabasz`]).
    pub fn calinski_harabasz(&self) -> Result<f64, EngineError> {
        if self.n == 0 {
            return Err(EngineError::NoRows);
        }
        if self.d == 0 {
            return Err(EngineError::NoFeatures);
        }
        let n = usize::try_from(self.n).unwrap_or(usize::MAX);
        check_number_of_labels(self.k(), n)?;
        let nf = self.n as f64;
        let mut gmean = vec![Neumaier::default(); self.d];
        for c in self.clusters.values() {
            for (g, &m) in gmean.iter_mut().zip(&c.mean) {
                g.add(c.count as f64 * m);
            }
        }
        let gmean: Vec<f64> = gmean.iter().map(|g| g.value() / nf).collect();
        let mut extra = Neumaier::default();
        for c in self.clusters.values() {
            let s: f64 = c
                .mean
                .iter()
                .zip(&gmean)
                .map(|(m, g)| (m - g) * (m - g))
                .sum();
            extra.add(c.count as f64 * s);
        }
        Ok(ch_ratio(
            extra.value(),
            self.within_ss(),
            nf,
            self.k() as f64,
        ))
    }

    /// Within-cluster sum of squares: the inertia of the rows around their cluster means.
    pub fn within_ss(&self) -> f64 {
        let mut s = Neumaier::default();
        for c in self.clusters.values() {
            c.m2.iter().for_each(|&v| s.add(v));
        }
        s.value()
    }

    /// Cluster means, sorted by label.
    pub fn centroids(&self) -> Vec<(i64, Vec<f64>)> {
        self.clusters
            .iter()
            .map(|(&l, c)| (l, c.mean.clone()))
            .collect()
    }

    /// Cluster sizes, sorted by label.
    pub fn sizes(&self) -> Vec<(i64, u64)> {
        self.clusters.iter().map(|(&l, c)| (l, c.count)).collect()
    }

    /// Compact versioned serialization (magic "PSCS", version 1, clusters sorted by label).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + self.clusters.len() * (16 + 16 * self.d));
        out.extend_from_slice(CLUSTER_STATS_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&(self.d as u32).to_le_bytes());
        out.extend_from_slice(&(self.clusters.len() as u64).to_le_bytes());
        for (&l, c) in &self.clusters {
            out.extend_from_slice(&l.to_le_bytes());
            out.extend_from_slice(&c.count.to_le_bytes());
            for v in c.mean.iter().chain(&c.m2) {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Parses [`ClusterStats::to_bytes`] output, rejecting anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterStats, EngineError> {
        let mut r = ByteReader::open(bytes, "cluster statistics state", CLUSTER_STATS_MAGIC)?;
        let d = r.u32()? as usize;
        let k = r.u64()?;
        let per = 16u64
            .checked_add(16u64.checked_mul(d as u64).ok_or_else(|| r.bad("size"))?)
            .ok_or_else(|| r.bad("size"))?;
        r.expect_items(k, per)?;
        let mut out = ClusterStats::new(d);
        let mut prev: Option<i64> = None;
        for _ in 0..k {
            let label = r.i64()?;
            let count = r.u64()?;
            if count == 0 {
                return Err(r.bad("a cluster has count 0"));
            }
            if prev.is_some_and(|p| p >= label) {
                return Err(r.bad("clusters are not strictly sorted by label"));
            }
            prev = Some(label);
            let mut mean = Vec::with_capacity(d);
            let mut m2 = Vec::with_capacity(d);
            for _ in 0..d {
                mean.push(r.finite()?);
            }
            for _ in 0..d {
                let v = r.finite()?;
                if v < 0.0 {
                    return Err(r.bad("negative sum of squares"));
                }
                m2.push(v);
            }
            out.n = out
                .n
                .checked_add(count)
                .ok_or_else(|| r.bad("row count overflows"))?;
            out.clusters.insert(label, ClusterAcc { count, mean, m2 });
        }
        r.finish()?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Reservoir
// ---------------------------------------------------------------------------------------

/// Items a [`Reservoir`] can hold. `feed` folds the item's bits into a running hash; the
/// reservoir keys each item by a hash of (seed, every item pushed before it in the same
/// part, the item). Parts sampled independently — in parallel workers or Citus shards
/// that all received the same seed — therefore get independent keys as soon as their
/// contents differ, and merging keeps a uniform sample without coordinating stream ids.
pub trait SampleItem {
    /// Folds this item into the hash state `h` and returns the new state.
    fn feed(&self, h: u64) -> u64;
}

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[inline]
fn absorb(h: u64, w: u64) -> u64 {
    fmix64(h.rotate_left(29) ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

impl SampleItem for f64 {
    fn feed(&self, h: u64) -> u64 {
        absorb(h, self.to_bits())
    }
}

impl SampleItem for i64 {
    fn feed(&self, h: u64) -> u64 {
        absorb(h, *self as u64)
    }
}

impl SampleItem for u64 {
    fn feed(&self, h: u64) -> u64 {
        absorb(h, *self)
    }
}

impl<A: SampleItem> SampleItem for Vec<A> {
    fn feed(&self, h: u64) -> u64 {
        self.iter()
            .fold(absorb(h, self.len() as u64), |h, v| v.feed(h))
    }
}

impl<A: SampleItem, B: SampleItem> SampleItem for (A, B) {
    fn feed(&self, h: u64) -> u64 {
        self.1.feed(self.0.feed(h))
    }
}

#[derive(Debug, Clone)]
struct Keyed<T> {
    key: u64,
    item: T,
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Mergeable seeded reservoir sample: keeps the `capacity` items with the smallest keys
/// (bottom-k sampling), which is a uniform sample without replacement of everything
/// pushed into all merged parts. Deterministic for a given seed and push order; merging
/// is order-independent.
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    capacity: usize,
    seed: u64,
    seen: u64,
    chain: u64,
    heap: BinaryHeap<Keyed<T>>,
}

impl<T> Reservoir<T> {
    /// An empty sample of at most `capacity` items.
    pub fn new(capacity: usize, seed: u64) -> Reservoir<T> {
        Reservoir {
            capacity,
            seed,
            seen: 0,
            chain: fmix64(seed ^ 0x243f_6a88_85a3_08d3),
            heap: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, key: u64, item: T) {
        if self.heap.len() < self.capacity {
            self.heap.push(Keyed { key, item });
        } else if let Some(mut top) = self.heap.peek_mut() {
            if key < top.key {
                *top = Keyed { key, item };
            }
        }
    }

    /// Combines another part: the result is the bottom-k of the union (capacity becomes
    /// the smaller of the two), and `seen` adds up.
    pub fn merge(&mut self, other: Reservoir<T>) {
        self.seen += other.seen;
        if other.capacity < self.capacity {
            self.capacity = other.capacity;
            while self.heap.len() > self.capacity {
                self.heap.pop();
            }
        }
        for e in other.heap {
            self.offer(e.key, e.item);
        }
    }

    /// Items pushed into this sample and every part merged into it.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Maximum sample size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Current sample size (= min(capacity, seen)).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The sampled items, in key order (deterministic).
    pub fn items(&self) -> Vec<&T> {
        let mut v: Vec<&Keyed<T>> = self.heap.iter().collect();
        v.sort_by_key(|e| e.key);
        v.into_iter().map(|e| &e.item).collect()
    }

    /// The sampled items by value, in key order.
    pub fn into_items(self) -> Vec<T> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| e.item)
            .collect()
    }
}

impl<T: SampleItem> Reservoir<T> {
    /// Offers one item.
    pub fn push(&mut self, item: T) {
        self.seen += 1;
        self.chain = fmix64(item.feed(self.chain) ^ 0x1319_8a2e_0370_7344);
        let key = fmix64(self.chain ^ self.seed.wrapping_mul(0xa409_3822_299f_31d1));
        self.offer(key, item);
    }
}

impl Reservoir<(Vec<f64>, i64)> {
    /// Compact versioned serialization (magic "PSRS", version 1) of the silhouette
    /// aggregate's sample.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(RESERVOIR_MAGIC);
        out.push(FORMAT_VERSION);
        for v in [self.capacity as u64, self.seed, self.seen, self.chain] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut entries: Vec<&Keyed<(Vec<f64>, i64)>> = self.heap.iter().collect();
        entries.sort_by_key(|e| e.key);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for e in entries {
            out.extend_from_slice(&e.key.to_le_bytes());
            out.extend_from_slice(&e.item.1.to_le_bytes());
            out.extend_from_slice(&(e.item.0.len() as u32).to_le_bytes());
            for v in &e.item.0 {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Parses [`Reservoir::to_bytes`] output, rejecting anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Reservoir<(Vec<f64>, i64)>, EngineError> {
        let mut r = ByteReader::open(bytes, "reservoir sample state", RESERVOIR_MAGIC)?;
        let capacity = r.u64()?;
        let seed = r.u64()?;
        let seen = r.u64()?;
        let chain = r.u64()?;
        let count = r.u64()?;
        r.expect_items(count, 20)?;
        if count != capacity.min(seen) {
            return Err(r.bad("sample size is not min(capacity, seen)"));
        }
        let mut out = Reservoir {
            capacity: usize::try_from(capacity).map_err(|_| r.bad("capacity too large"))?,
            seed,
            seen,
            chain,
            heap: BinaryHeap::with_capacity(count as usize),
        };
        let mut prev: Option<u64> = None;
        for _ in 0..count {
            let key = r.u64()?;
            if prev.is_some_and(|p| p > key) {
                return Err(r.bad("entries are not sorted by key"));
            }
            prev = Some(key);
            let label = r.i64()?;
            let len = r.u32()? as u64;
            r.expect_items(len, 8)?;
            let mut v = Vec::with_capacity(len as usize);
            for _ in 0..len {
                v.push(r.f64()?);
            }
            out.heap.push(Keyed {
                key,
                item: (v, label),
            });
        }
        r.finish()?;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Byte format helpers
// ---------------------------------------------------------------------------------------

const FORMAT_VERSION: u8 = 1;
const CLUSTER_STATS_MAGIC: &[u8; 4] = b"PSCS";
const CONTINGENCY_MAGIC: &[u8; 4] = b"PSCT";
const RESERVOIR_MAGIC: &[u8; 4] = b"PSRS";

struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    fn open(buf: &'a [u8], what: &'static str, magic: &[u8; 4]) -> Result<Self, EngineError> {
        let mut r = ByteReader { buf, pos: 0, what };
        let m: [u8; 4] = r.take()?;
        if &m != magic {
            return Err(r.bad("wrong magic bytes"));
        }
        let [version]: [u8; 1] = r.take()?;
        if version != FORMAT_VERSION {
            return Err(r.bad(&format!("unsupported format version {version}")));
        }
        Ok(r)
    }

    fn bad(&self, reason: &str) -> EngineError {
        EngineError::invalid(
            self.what,
            format!("corrupt serialized state at byte {}: {reason}", self.pos),
        )
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let mut out = [0u8; N];
                out.copy_from_slice(&self.buf[self.pos..end]);
                self.pos = end;
                Ok(out)
            }
            None => Err(self.bad("truncated")),
        }
    }

    fn u32(&mut self) -> Result<u32, EngineError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, EngineError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, EngineError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    fn f64(&mut self) -> Result<f64, EngineError> {
        Ok(f64::from_le_bytes(self.take()?))
    }

    fn finite(&mut self) -> Result<f64, EngineError> {
        let v = self.f64()?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad("non-finite value"))
        }
    }

    /// Rejects counts that cannot fit in the remaining bytes (before allocating).
    fn expect_items(&self, count: u64, min_bytes_each: u64) -> Result<(), EngineError> {
        let rest = (self.buf.len() - self.pos) as u64;
        match count.checked_mul(min_bytes_each) {
            Some(need) if need <= rest => Ok(()),
            _ => Err(self.bad("item count exceeds the data")),
        }
    }

    fn finish(self) -> Result<(), EngineError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use serde_json::Value;

    const TOL: f64 = 1e-9;

    const CASES: &[(&str, &str)] = &[
        (
            "separated_blobs",
            include_str!("../fixtures/metrics/separated_blobs.json"),
        ),
        (
            "overlapping_blobs",
            include_str!("../fixtures/metrics/overlapping_blobs.json"),
        ),
        (
            "anisotropic",
            include_str!("../fixtures/metrics/anisotropic.json"),
        ),
        (
            "duplicates",
            include_str!("../fixtures/metrics/duplicates.json"),
        ),
        (
            "one_feature",
            include_str!("../fixtures/metrics/one_feature.json"),
        ),
        ("wide_64", include_str!("../fixtures/metrics/wide_64.json")),
        (
            "singleton_cluster",
            include_str!("../fixtures/metrics/singleton_cluster.json"),
        ),
        (
            "unequal_sizes",
            include_str!("../fixtures/metrics/unequal_sizes.json"),
        ),
        (
            "sparse_labels",
            include_str!("../fixtures/metrics/sparse_labels.json"),
        ),
        (
            "blocked_1300",
            include_str!("../fixtures/metrics/blocked_1300.json"),
        ),
    ];
    const LABELINGS: &str = include_str!("../fixtures/metrics/labelings.json");

    struct Case {
        name: String,
        x: Array2<f64>,
        labels: Vec<i64>,
        labels_b: Vec<i64>,
        centroids: Array2<f64>,
        inertia_labels: Vec<i64>,
        exp: Value,
    }

    fn matrix(v: &Value) -> Array2<f64> {
        let rows: Vec<Vec<f64>> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        let d = rows[0].len();
        Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap()
    }

    fn ints(v: &Value) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn load(json: &str) -> Case {
        let v: Value = serde_json::from_str(json).unwrap();
        Case {
            name: v["name"].as_str().unwrap().to_string(),
            x: matrix(&v["X"]),
            labels: ints(&v["labels"]),
            labels_b: ints(&v["labels_b"]),
            centroids: matrix(&v["centroids"]),
            inertia_labels: ints(&v["inertia_labels"]),
            exp: v["expected"].clone(),
        }
    }

    fn cases() -> Vec<Case> {
        CASES.iter().map(|(_, j)| load(j)).collect()
    }

    #[track_caller]
    fn close(got: f64, want: f64, tol: f64, what: &str) {
        let err = (got - want).abs();
        assert!(
            err <= tol * want.abs() || err <= 1e-15,
            "{what}: got {got:e}, want {want:e} (rel err {:e})",
            err / want.abs()
        );
    }

    fn no_interrupt() -> impl FnMut() -> Result<(), EngineError> {
        || Ok(())
    }

    fn kernels() -> Vec<Simd> {
        let mut v = vec![Simd::Portable];
        if Simd::detect() != Simd::Portable {
            v.push(Simd::detect());
        }
        v
    }

    // ---------------------------------------------------------------- fixtures

    #[test]
    fn fixtures_inertia_db_ch() {
        for c in cases() {
            let e = &c.exp;
            let got = inertia(c.x.view(), &c.inertia_labels, c.centroids.view()).unwrap();
            close(
                got,
                e["inertia"].as_f64().unwrap(),
                TOL,
                &format!("{} inertia", c.name),
            );
            let got = davies_bouldin(c.x.view(), &c.labels).unwrap();
            close(
                got,
                e["davies_bouldin"].as_f64().unwrap(),
                TOL,
                &format!("{} DB", c.name),
            );
            let got = calinski_harabasz(c.x.view(), &c.labels).unwrap();
            let want = e["calinski_harabasz"].as_f64().unwrap();
            close(got, want, TOL, &format!("{} CH", c.name));
            let mut st = ClusterStats::new(c.x.ncols());
            for (r, &l) in c.x.outer_iter().zip(&c.labels) {
                st.push(l, r.as_slice().unwrap()).unwrap();
            }
            close(
                st.calinski_harabasz().unwrap(),
                want,
                TOL,
                &format!("{} stats CH", c.name),
            );
        }
    }

    #[test]
    fn fixtures_silhouette_all_kernels_schedules_threads() {
        for c in cases() {
            let want = floats(&c.exp["silhouette_samples"]);
            for simd in kernels() {
                for sched in [Schedule::Symmetric, Schedule::RowWise] {
                    for threads in [1, 2] {
                        let got = silhouette_impl(
                            c.x.view(),
                            &c.labels,
                            threads,
                            Some(sched),
                            Some(simd),
                            &mut no_interrupt(),
                        )
                        .unwrap();
                        assert_eq!(got.len(), want.len());
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            let what = format!("{} {simd:?} {sched:?} t{threads} s[{i}]", c.name);
                            close(*g, *w, TOL, &what);
                        }
                    }
                }
            }
            let score = silhouette_score(c.x.view(), &c.labels).unwrap();
            let want_score = c.exp["silhouette_score"].as_f64().unwrap();
            close(score, want_score, TOL, &format!("{} score", c.name));
            let s = silhouette_sampled(c.x.view(), &c.labels, c.x.nrows(), 1).unwrap();
            assert!(s.exact && s.sample_size == c.x.nrows());
            close(
                s.score,
                want_score,
                TOL,
                &format!("{} sampled(exact)", c.name),
            );
        }
    }

    #[test]
    fn fixtures_ari_nmi_and_contingency() {
        for c in cases() {
            let (ari, nmi) = (
                c.exp["ari"].as_f64().unwrap(),
                c.exp["nmi"].as_f64().unwrap(),
            );
            close(
                adjusted_rand_index(&c.labels, &c.labels_b).unwrap(),
                ari,
                TOL,
                &c.name,
            );
            close(
                normalized_mutual_info(&c.labels, &c.labels_b).unwrap(),
                nmi,
                TOL,
                &c.name,
            );
        }
        let v: Value = serde_json::from_str(LABELINGS).unwrap();
        for case in v["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (a, b) = (ints(&case["a"]), ints(&case["b"]));
            let (ari, nmi) = (case["ari"].as_f64().unwrap(), case["nmi"].as_f64().unwrap());
            close(
                adjusted_rand_index(&a, &b).unwrap(),
                ari,
                TOL,
                &format!("{name} ARI"),
            );
            close(
                normalized_mutual_info(&a, &b).unwrap(),
                nmi,
                TOL,
                &format!("{name} NMI"),
            );
        }
    }

    #[test]
    fn ari_nmi_special_cases_are_exact() {
        let a = [0, 0, 1, 1, 2, 2];
        let p = [5, 5, -3, -3, 9, 9];
        assert_eq!(adjusted_rand_index(&a, &a).unwrap(), 1.0);
        assert_eq!(adjusted_rand_index(&a, &p).unwrap(), 1.0);
        assert_eq!(normalized_mutual_info(&[7; 5], &[1; 5]).unwrap(), 1.0);
        assert_eq!(adjusted_rand_index(&[7; 5], &[1; 5]).unwrap(), 1.0);
        assert_eq!(normalized_mutual_info(&[0; 4], &[0, 1, 2, 3]).unwrap(), 0.0);
        assert_eq!(adjusted_rand_index(&[0; 4], &[0, 1, 2, 3]).unwrap(), 0.0);
        assert_eq!(
            adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap(),
            -0.5
        );
        close(
            normalized_mutual_info(&a, &p).unwrap(),
            1.0,
            1e-15,
            "nmi permuted",
        );
    }

    #[test]
    fn fixtures_cluster_summaries() {
        for c in cases() {
            let got = cluster_summaries(c.x.view(), &c.labels).unwrap();
            let want = c.exp["clusters"].as_array().unwrap();
            assert_eq!(got.len(), want.len());
            let mut st = ClusterStats::new(c.x.ncols());
            for (r, &l) in c.x.outer_iter().zip(&c.labels) {
                st.push(l, r.as_slice().unwrap()).unwrap();
            }
            let mut wss = 0.0;
            for ((g, w), (sl, sm)) in got.iter().zip(want).zip(st.centroids()) {
                let what = format!("{} cluster {}", c.name, g.label);
                assert_eq!(g.label, w["label"].as_i64().unwrap(), "{what}");
                assert_eq!(g.size, w["size"].as_u64().unwrap(), "{what}");
                for ((gm, wm), smv) in g.mean.iter().zip(floats(&w["mean"])).zip(&sm) {
                    close(*gm, wm, TOL, &format!("{what} mean"));
                    close(*smv, wm, TOL, &format!("{what} stats mean"));
                }
                assert_eq!(sl, g.label);
                let md = w["mean_distance"].as_f64().unwrap();
                close(g.mean_distance, md, TOL, &format!("{what} mean_distance"));
                let disp = w["dispersion"].as_f64().unwrap();
                close(g.dispersion, disp, TOL, &format!("{what} dispersion"));
                wss += disp * disp * g.size as f64;
            }
            close(st.within_ss(), wss, TOL, &format!("{} within_ss", c.name));
            assert_eq!(st.sizes().len(), got.len());
        }
    }

    // ---------------------------------------------------------------- edge cases

    #[test]
    fn silhouette_label_count_errors() {
        let x = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        for labels in [[1i64, 1, 1, 1], [0, 1, 2, 3]] {
            match silhouette_score(x.view(), &labels) {
                Err(EngineError::InvalidParameter { name, reason }) => {
                    assert_eq!(name, "labels");
                    assert!(reason.contains("among 4 rows"), "{reason}");
                }
                other => panic!("expected InvalidParameter, got {other:?}"),
            }
            assert!(davies_bouldin(x.view(), &labels).is_err());
            assert!(calinski_harabasz(x.view(), &labels).is_err());
        }
        let mut st = ClusterStats::new(1);
        for v in [0.0, 1.0, 2.0] {
            st.push(9, &[v]).unwrap();
        }
        assert!(matches!(
            st.calinski_harabasz(),
            Err(EngineError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn singleton_cluster_silhouette_is_zero() {
        let x = Array2::from_shape_vec((5, 1), vec![0.0, 0.1, 0.2, 5.0, 9.0]).unwrap();
        let s = silhouette_samples(x.view(), &[0, 0, 0, 1, 2], &mut no_interrupt()).unwrap();
        assert_eq!(s[3], 0.0);
        assert_eq!(s[4], 0.0);
        assert!(s[0] > 0.9);
    }

    #[test]
    fn zero_within_dispersion() {
        // Every cluster is one repeated point: CH = 1.0 (sklearn), DB = 0.0 (sklearn),
        // silhouette = 1 for every row.
        let x =
            Array2::from_shape_vec((6, 2), vec![1., 2., 1., 2., 5., 5., 5., 5., 9., 0., 9., 0.])
                .unwrap();
        let labels = [3, 3, 1, 1, 8, 8];
        assert_eq!(calinski_harabasz(x.view(), &labels).unwrap(), 1.0);
        assert_eq!(davies_bouldin(x.view(), &labels).unwrap(), 0.0);
        let mut st = ClusterStats::new(2);
        for (r, &l) in x.outer_iter().zip(&labels) {
            st.push(l, r.as_slice().unwrap()).unwrap();
        }
        assert_eq!(st.calinski_harabasz().unwrap(), 1.0);
        assert_eq!(st.within_ss(), 0.0);
        assert_eq!(silhouette_score(x.view(), &labels).unwrap(), 1.0);
    }

    #[test]
    fn input_errors() {
        let x = Array2::from_shape_vec((3, 2), vec![0., 1., 2., 3., 4., 5.]).unwrap();
        let c = Array2::from_shape_vec((2, 2), vec![0., 0., 1., 1.]).unwrap();
        let short = [0i64, 1];
        let mismatch = EngineError::DimensionMismatch {
            expected: 3,
            got: 2,
        };
        assert_eq!(inertia(x.view(), &short, c.view()), Err(mismatch.clone()));
        assert_eq!(davies_bouldin(x.view(), &short), Err(mismatch.clone()));
        assert_eq!(calinski_harabasz(x.view(), &short), Err(mismatch.clone()));
        assert_eq!(silhouette_score(x.view(), &short), Err(mismatch.clone()));
        assert_eq!(cluster_summaries(x.view(), &short), Err(mismatch.clone()));
        assert_eq!(
            silhouette_sampled(x.view(), &short, 10, 1),
            Err(mismatch.clone())
        );
        assert_eq!(
            adjusted_rand_index(&[1, 2, 3], &short),
            Err(mismatch.clone())
        );
        assert_eq!(normalized_mutual_info(&[1, 2, 3], &short), Err(mismatch));

        let empty = Array2::<f64>::zeros((0, 2));
        assert_eq!(davies_bouldin(empty.view(), &[]), Err(EngineError::NoRows));
        assert_eq!(
            calinski_harabasz(empty.view(), &[]),
            Err(EngineError::NoRows)
        );
        assert_eq!(
            silhouette_score(empty.view(), &[]),
            Err(EngineError::NoRows)
        );
        assert_eq!(
            inertia(empty.view(), &[], c.view()),
            Err(EngineError::NoRows)
        );
        assert_eq!(
            cluster_summaries(empty.view(), &[]),
            Err(EngineError::NoRows)
        );
        assert_eq!(adjusted_rand_index(&[], &[]), Err(EngineError::NoRows));
        assert_eq!(normalized_mutual_info(&[], &[]), Err(EngineError::NoRows));
        assert_eq!(Contingency::new().ari(), Err(EngineError::NoRows));
        assert_eq!(Contingency::new().nmi(), Err(EngineError::NoRows));
        assert_eq!(
            ClusterStats::new(2).calinski_harabasz(),
            Err(EngineError::NoRows)
        );

        let nofeat = Array2::<f64>::zeros((3, 0));
        assert_eq!(
            silhouette_score(nofeat.view(), &[0, 1, 1]),
            Err(EngineError::NoFeatures)
        );

        let mut bad = x.clone();
        bad[[2, 1]] = f64::NAN;
        let labels = [0i64, 1, 1];
        let is_nonfinite = |r: Result<f64, EngineError>| {
            matches!(
                r,
                Err(EngineError::NonFinite {
                    row: 2,
                    feature: 1,
                    ..
                })
            )
        };
        assert!(is_nonfinite(davies_bouldin(bad.view(), &labels)));
        assert!(is_nonfinite(calinski_harabasz(bad.view(), &labels)));
        assert!(is_nonfinite(silhouette_score(bad.view(), &labels)));
        assert!(is_nonfinite(inertia(bad.view(), &labels, c.view())));
        bad[[2, 1]] = f64::INFINITY;
        assert!(is_nonfinite(
            silhouette_sampled(bad.view(), &labels, 2, 1).map(|s| s.score)
        ));

        // inertia: label without centroid, centroid width, non-finite centroid
        assert!(matches!(
            inertia(x.view(), &[0, 1, 2], c.view()),
            Err(EngineError::InvalidParameter { .. })
        ));
        assert!(matches!(
            inertia(x.view(), &[0, -1, 1], c.view()),
            Err(EngineError::InvalidParameter { .. })
        ));
        let c3 = Array2::<f64>::zeros((2, 3));
        assert_eq!(
            inertia(x.view(), &labels, c3.view()),
            Err(EngineError::DimensionMismatch {
                expected: 2,
                got: 3
            })
        );
        let mut cn = c.clone();
        cn[[1, 0]] = f64::NAN;
        assert!(matches!(
            inertia(x.view(), &labels, cn.view()),
            Err(EngineError::InvalidParameter { .. })
        ));

        let mut st = ClusterStats::new(2);
        assert_eq!(
            st.push(0, &[1.0]),
            Err(EngineError::DimensionMismatch {
                expected: 2,
                got: 1
            })
        );
        st.push(0, &[1.0, 2.0]).unwrap();
        assert!(matches!(
            st.push(0, &[1.0, f64::NEG_INFINITY]),
            Err(EngineError::NonFinite {
                row: 1,
                feature: 1,
                ..
            })
        ));
        assert_eq!(st.n(), 1);
        assert!(silhouette_sampled(x.view(), &labels, 1, 1).is_err());
    }

    #[test]
    fn inertia_known_value() {
        let x = Array2::from_shape_vec((3, 2), vec![0., 0., 1., 1., 4., 4.]).unwrap();
        let c = Array2::from_shape_vec((2, 2), vec![0.5, 0.5, 4., 5.]).unwrap();
        assert_eq!(
            inertia(x.view(), &[0, 0, 1], c.view()).unwrap(),
            0.5 + 0.5 + 1.0
        );
    }

    // ---------------------------------------------------------------- silhouette kernel

    /// Naive O(n^2) silhouette from exact differences.
    fn naive_silhouette(x: &Array2<f64>, labels: &[i64]) -> Vec<f64> {
        let dense = Dense::new(labels);
        let n = x.nrows();
        (0..n)
            .map(|i| {
                let mut sums = vec![0.0; dense.k()];
                for j in 0..n {
                    let d: f64 = x
                        .row(i)
                        .iter()
                        .zip(x.row(j).iter())
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                        .sqrt();
                    sums[dense.idx[j]] += d;
                }
                sil_value(&sums, dense.idx[i], &dense.counts)
            })
            .collect()
    }

    #[test]
    fn kernels_match_naive_on_awkward_data() {
        // Unequal clusters (partial chunks everywhere), a far offset, near-duplicates, a
        // singleton, and clusters whose means coincide.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let sizes = [1usize, 7, 70, 130, 3, 200];
        let d = 5;
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        for (c, &sz) in sizes.iter().enumerate() {
            for i in 0..sz {
                for f in 0..d {
                    let base = 1e4 + (c % 3) as f64 * 2.0;
                    let v = if i % 5 == 0 {
                        0.0
                    } else {
                        rng.gen_range(-1.0..1.0)
                    };
                    rows.push(base + v + f as f64);
                }
                labels.push(c as i64 * 10 - 20);
            }
        }
        let x = Array2::from_shape_vec((labels.len(), d), rows).unwrap();
        let want = naive_silhouette(&x, &labels);
        for simd in kernels() {
            for sched in [Schedule::Symmetric, Schedule::RowWise] {
                let got = silhouette_impl(
                    x.view(),
                    &labels,
                    2,
                    Some(sched),
                    Some(simd),
                    &mut no_interrupt(),
                )
                .unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    close(*g, *w, 1e-10, &format!("{simd:?} {sched:?} s[{i}]"));
                }
            }
        }
    }

    #[test]
    fn silhouette_is_bitwise_reproducible_across_thread_counts() {
        let c = load(CASES[9].1);
        for simd in kernels() {
            for sched in [Schedule::Symmetric, Schedule::RowWise] {
                let run = |threads| {
                    silhouette_impl(
                        c.x.view(),
                        &c.labels,
                        threads,
                        Some(sched),
                        Some(simd),
                        &mut no_interrupt(),
                    )
                    .unwrap()
                };
                let one = run(1);
                assert_eq!(one, run(2), "{simd:?} {sched:?}");
                assert_eq!(one, run(3), "{simd:?} {sched:?}");
                assert_eq!(one, run(2), "{simd:?} {sched:?} again");
            }
        }
    }

    #[test]
    fn silhouette_interrupt_cancels() {
        let c = load(CASES[9].1);
        let mut calls = 0;
        let mut stop = || {
            calls += 1;
            if calls > 2 {
                Err(EngineError::Canceled)
            } else {
                Ok(())
            }
        };
        let r = silhouette_samples_threads(c.x.view(), &c.labels, 1, &mut stop);
        assert_eq!(r, Err(EngineError::Canceled));
        assert_eq!(calls, 3);
        // With a helper thread: whenever the callback errs, the call returns that error
        // (how often it gets polled depends on scheduling).
        for after in [0, 1, 2, 5] {
            let mut calls = 0;
            let mut stop = || {
                calls += 1;
                if calls > after {
                    Err(EngineError::Canceled)
                } else {
                    Ok(())
                }
            };
            let r = silhouette_samples_threads(c.x.view(), &c.labels, 2, &mut stop);
            if calls > after {
                assert_eq!(r, Err(EngineError::Canceled), "cancel after {after} calls");
            } else {
                assert!(r.is_ok());
            }
        }
    }

    #[test]
    fn silhouette_sampled_is_seeded_and_states_size() {
        let c = load(CASES[9].1);
        let a = silhouette_sampled(c.x.view(), &c.labels, 400, 7).unwrap();
        let b = silhouette_sampled(c.x.view(), &c.labels, 400, 7).unwrap();
        let other = silhouette_sampled(c.x.view(), &c.labels, 400, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.score, other.score);
        assert_eq!((a.sample_size, a.exact), (400, false));
        let exact = c.exp["silhouette_score"].as_f64().unwrap();
        assert!((a.score - exact).abs() < 0.05, "{} vs {exact}", a.score);
        // A sample with a single label is reported with the sample's size.
        let x = Array2::from_shape_vec((6, 1), vec![0., 1., 2., 3., 4., 5.]).unwrap();
        match silhouette_sampled(x.view(), &[0, 0, 0, 0, 0, 1], 2, 3) {
            Ok(s) => assert_eq!(s.sample_size, 2),
            Err(EngineError::InvalidParameter { reason, .. }) => {
                assert!(reason.contains("sample drawn from 6 rows"), "{reason}")
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn silhouette_of_reservoir_exact_and_sampled() {
        let c = load(CASES[0].1);
        let mut r = Reservoir::new(10_000, 1);
        for (row, &l) in c.x.outer_iter().zip(&c.labels) {
            r.push((row.to_vec(), l));
        }
        let s = silhouette_of_reservoir(&r, &mut no_interrupt()).unwrap();
        assert!(s.exact);
        assert_eq!(s.sample_size, c.x.nrows());
        close(
            s.score,
            c.exp["silhouette_score"].as_f64().unwrap(),
            TOL,
            "reservoir exact",
        );
        let mut small = Reservoir::new(50, 1);
        for (row, &l) in c.x.outer_iter().zip(&c.labels) {
            small.push((row.to_vec(), l));
        }
        let s = silhouette_of_reservoir(&small, &mut no_interrupt()).unwrap();
        assert_eq!((s.exact, s.sample_size), (false, 50));
        assert_eq!(
            silhouette_of_reservoir(&Reservoir::new(5, 1), &mut no_interrupt()),
            Err(EngineError::NoRows)
        );
    }

    #[test]
    fn memory_estimate_is_sane() {
        let b = silhouette_memory_bytes(20_000, 16, 8, 2);
        assert!(b > 20_000 * 16 * 8 * 3 && b < 20_000 * 16 * 8 * 8, "{b}");
        // huge k switches to the row-wise schedule: no n x k table per thread
        let big = silhouette_memory_bytes(1_000_000, 4, 100_000, 2);
        assert!(big < 1_000_000 * 4 * 8 * 12, "{big}");
    }

    // ---------------------------------------------------------------- merge / serialize

    fn split3<T: Clone>(v: &[T]) -> [Vec<T>; 3] {
        let n = v.len();
        [
            v[..n / 5].to_vec(),
            v[n / 5..n / 2].to_vec(),
            v[n / 2..].to_vec(),
        ]
    }

    #[test]
    fn cluster_stats_merge_equals_one_pass() {
        let c = load(CASES[7].1);
        let rows: Vec<(i64, Vec<f64>)> =
            c.x.outer_iter()
                .zip(&c.labels)
                .map(|(r, &l)| (l, r.to_vec()))
                .collect();
        let mut one = ClusterStats::new(c.x.ncols());
        rows.iter().for_each(|(l, r)| one.push(*l, r).unwrap());
        let parts = split3(&rows).map(|p| {
            let mut s = ClusterStats::new(c.x.ncols());
            p.iter().for_each(|(l, r)| s.push(*l, r).unwrap());
            s
        });
        let mut merged = ClusterStats::new(0); // empty placeholder adopts the width
        for p in &parts {
            merged.merge(p).unwrap();
        }
        merged.merge(&ClusterStats::new(7)).unwrap(); // empty part: no-op
        assert_eq!((merged.n(), merged.k()), (one.n(), one.k()));
        assert_eq!(merged.sizes(), one.sizes());
        for ((_, a), (_, b)) in merged.centroids().iter().zip(one.centroids()) {
            for (x, y) in a.iter().zip(&b) {
                close(*x, *y, 1e-12, "merged mean");
            }
        }
        close(
            merged.within_ss(),
            one.within_ss(),
            1e-12,
            "merged within_ss",
        );
        close(
            merged.calinski_harabasz().unwrap(),
            one.calinski_harabasz().unwrap(),
            1e-12,
            "merged CH",
        );
        let mut wrong = ClusterStats::new(2);
        wrong.push(0, &[0.0, 0.0]).unwrap();
        assert!(matches!(
            merged.merge(&wrong),
            Err(EngineError::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn contingency_merge_is_exact() {
        let c = load(CASES[8].1);
        let pairs: Vec<(i64, i64)> = c.labels.iter().copied().zip(c.labels_b.clone()).collect();
        let mut one = Contingency::new();
        pairs.iter().for_each(|&(a, b)| one.push(a, b));
        let mut merged = Contingency::new();
        for part in split3(&pairs) {
            let mut p = Contingency::new();
            part.iter().for_each(|&(a, b)| p.push(a, b));
            merged.merge(&p);
        }
        assert_eq!(merged, one);
        assert_eq!(merged.ari(), one.ari());
        assert_eq!(merged.nmi(), one.nmi());
        close(
            one.ari().unwrap(),
            c.exp["ari"].as_f64().unwrap(),
            TOL,
            "contingency ari",
        );
    }

    #[test]
    fn reservoir_basics_and_determinism() {
        let mut r = Reservoir::new(10, 42);
        for i in 0..5i64 {
            r.push(i);
        }
        assert_eq!((r.len(), r.seen()), (5, 5));
        let mut all: Vec<i64> = r.items().into_iter().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        let fill = |seed: u64, range: std::ops::Range<i64>| {
            let mut r = Reservoir::new(10, seed);
            range.for_each(|i| r.push(i));
            r
        };
        let (a, b) = (fill(42, 0..1000), fill(42, 0..1000));
        assert_eq!(a.items(), b.items());
        assert_eq!((a.len(), a.seen()), (10, 1000));
        assert_ne!(a.items(), fill(43, 0..1000).items());
        // merge: sizes add up; order of merging does not matter
        let (p, q, s) = (fill(5, 0..300), fill(5, 300..350), fill(5, 350..1000));
        let mut m1 = p.clone();
        m1.merge(q.clone());
        m1.merge(s.clone());
        let mut m2 = s;
        m2.merge(p);
        m2.merge(q);
        assert_eq!((m1.len(), m1.seen()), (10, 1000));
        assert_eq!(m1.items(), m2.items());
        // capacity: the smaller one wins
        let mut c = Reservoir::new(3, 1);
        c.merge(fill(1, 0..100));
        assert_eq!((c.len(), c.capacity(), c.seen()), (3, 3, 100));
        assert_eq!(Reservoir::<i64>::new(0, 1).len(), 0);
    }

    #[test]
    fn reservoir_merged_parts_are_uniform() {
        // 30 items in 3 unequal parts (all with the same seed, as parallel workers would
        // be), capacity 6: each item must be kept with probability 6/30.
        let trials = 6000u64;
        let (n, cap) = (30usize, 6usize);
        let mut hits = vec![0u64; n];
        let mut pair_hits = 0u64; // items 0 and 29 together: 6/30 * 5/29
        for seed in 0..trials {
            let mut parts: Vec<Reservoir<f64>> =
                (0..3).map(|_| Reservoir::new(cap, seed)).collect();
            for i in 0..n {
                let part = if i < 4 {
                    0
                } else if i < 16 {
                    1
                } else {
                    2
                };
                parts[part].push(i as f64);
            }
            let mut m = parts.pop().unwrap();
            for p in parts {
                m.merge(p);
            }
            assert_eq!((m.len(), m.seen()), (cap, n as u64));
            let items: Vec<usize> = m.items().iter().map(|&&v| v as usize).collect();
            items.iter().for_each(|&i| hits[i] += 1);
            if items.contains(&0) && items.contains(&29) {
                pair_hits += 1;
            }
        }
        let expect = trials as f64 * cap as f64 / n as f64;
        let chi2: f64 = hits
            .iter()
            .map(|&h| (h as f64 - expect).powi(2) / expect)
            .sum();
        // 29 degrees of freedom: P(chi2 > 70) < 1e-4
        assert!(chi2 < 70.0, "chi2 = {chi2}, hits = {hits:?}");
        let pair_expect = trials as f64 * (6.0 / 30.0) * (5.0 / 29.0);
        let sd = (pair_expect * (1.0 - pair_expect / trials as f64)).sqrt();
        assert!(
            (pair_hits as f64 - pair_expect).abs() < 4.0 * sd,
            "pair {pair_hits} vs {pair_expect}"
        );
    }

    #[test]
    fn serialization_round_trips() {
        let c = load(CASES[8].1);
        let mut st = ClusterStats::new(c.x.ncols());
        let mut ct = Contingency::new();
        let mut rs = Reservoir::new(25, 3);
        for ((row, &l), &lb) in c.x.outer_iter().zip(&c.labels).zip(&c.labels_b) {
            st.push(l, row.as_slice().unwrap()).unwrap();
            ct.push(l, lb);
            rs.push((row.to_vec(), l));
        }
        assert_eq!(ClusterStats::from_bytes(&st.to_bytes()).unwrap(), st);
        assert_eq!(Contingency::from_bytes(&ct.to_bytes()).unwrap(), ct);
        let back = Reservoir::from_bytes(&rs.to_bytes()).unwrap();
        assert_eq!(back.items(), rs.items());
        assert_eq!((back.seen(), back.capacity()), (rs.seen(), rs.capacity()));
        assert_eq!(back.to_bytes(), rs.to_bytes());
        // the deserialized sample continues exactly like the original
        let (mut a, mut b) = (rs.clone(), back);
        for i in 0..100 {
            a.push((vec![i as f64; 3], i));
            b.push((vec![i as f64; 3], i));
        }
        assert_eq!(a.items(), b.items());
        // empty states
        let e = ClusterStats::new(4);
        assert_eq!(ClusterStats::from_bytes(&e.to_bytes()).unwrap(), e);
        let e = Contingency::new();
        assert_eq!(Contingency::from_bytes(&e.to_bytes()).unwrap(), e);
        let e: Reservoir<(Vec<f64>, i64)> = Reservoir::new(9, 9);
        assert_eq!(Reservoir::from_bytes(&e.to_bytes()).unwrap().len(), 0);
    }

    #[test]
    fn deserialization_rejects_garbage() {
        let mut st = ClusterStats::new(2);
        st.push(1, &[1.0, 2.0]).unwrap();
        st.push(1, &[2.0, 2.0]).unwrap();
        st.push(4, &[0.0, 0.0]).unwrap();
        let mut ct = Contingency::new();
        ct.push(1, 2);
        ct.push(3, 2);
        let mut rs = Reservoir::new(2, 1);
        rs.push((vec![1.0, 2.0], 1));
        rs.push((vec![3.0, 4.0], 2));
        rs.push((vec![5.0, 6.0], 3));
        let blobs = [st.to_bytes(), ct.to_bytes(), rs.to_bytes()];
        let parse = |which: usize, b: &[u8]| -> bool {
            match which {
                0 => ClusterStats::from_bytes(b).is_ok(),
                1 => Contingency::from_bytes(b).is_ok(),
                _ => Reservoir::from_bytes(b).is_ok(),
            }
        };
        for (w, blob) in blobs.iter().enumerate() {
            assert!(parse(w, blob));
            // every truncation, a trailing byte, wrong magic / version
            for len in 0..blob.len() {
                assert!(!parse(w, &blob[..len]), "kind {w} truncated to {len}");
            }
            let mut longer = blob.clone();
            longer.push(0);
            assert!(!parse(w, &longer));
            let mut magic = blob.clone();
            magic[0] ^= 0xff;
            assert!(!parse(w, &magic));
            let mut version = blob.clone();
            version[4] = 2;
            assert!(!parse(w, &version));
            // the other kinds' bytes
            for (o, other) in blobs.iter().enumerate() {
                if o != w {
                    assert!(!parse(w, other));
                }
            }
            // random garbage never panics
            let mut rng = ChaCha8Rng::seed_from_u64(w as u64);
            for _ in 0..500 {
                let mut g = blob.clone();
                let i = rng.gen_range(5..g.len());
                g[i] = rng.gen();
                let _ = parse(w, &g);
            }
        }
        // semantic checks
        let cs = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = blobs[0].clone();
            f(&mut b);
            ClusterStats::from_bytes(&b)
        };
        // header: magic(4) version(1) d(4) k(8); cluster: label(8) count(8) mean(16) m2(16)
        assert!(cs(&|b| b[9..17].copy_from_slice(&u64::MAX.to_le_bytes())).is_err());
        assert!(cs(&|b| b[25..33].copy_from_slice(&0u64.to_le_bytes())).is_err());
        assert!(cs(&|b| b[17..25].copy_from_slice(&9i64.to_le_bytes())).is_err()); // unsorted
        assert!(cs(&|b| b[33..41].copy_from_slice(&f64::NAN.to_le_bytes())).is_err());
        assert!(cs(&|b| b[49..57].copy_from_slice(&(-1.0f64).to_le_bytes())).is_err());
        let ctb = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = blobs[1].clone();
            f(&mut b);
            Contingency::from_bytes(&b)
        };
        assert!(ctb(&|b| b[29..37].copy_from_slice(&0u64.to_le_bytes())).is_err());
        assert!(ctb(&|b| b[37..45].copy_from_slice(&0i64.to_le_bytes())).is_err()); // unsorted
        let rsb = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = blobs[2].clone();
            f(&mut b);
            Reservoir::from_bytes(&b)
        };
        // header: magic version capacity(5..13) seed seen(21..29) chain count(37..45)
        assert!(rsb(&|b| b[21..29].copy_from_slice(&1u64.to_le_bytes())).is_err());
        assert!(rsb(&|b| b[5..13].copy_from_slice(&1u64.to_le_bytes())).is_err());
    }

    // ---------------------------------------------------------------- DB / CH / means speed-ups

    /// The former serial implementations (two Neumaier passes per means computation),
    /// kept as the reference for the blocked / threaded / combined code.
    mod reference {
        use super::super::*;

        pub struct RefDense {
            pub idx: Vec<usize>,
            pub counts: Vec<usize>,
            pub uniq: Vec<i64>,
        }

        pub fn dense(labels: &[i64]) -> RefDense {
            let mut uniq = labels.to_vec();
            uniq.sort_unstable();
            uniq.dedup();
            let mut counts = vec![0usize; uniq.len()];
            let idx = labels
                .iter()
                .map(|l| {
                    let i = uniq.binary_search(l).unwrap();
                    counts[i] += 1;
                    i
                })
                .collect();
            RefDense { idx, counts, uniq }
        }

        pub fn means(x: &ArrayView2<f64>, dense: &RefDense) -> Array2<f64> {
            let (k, d) = (dense.uniq.len(), x.ncols());
            let mut sums = vec![Neumaier::default(); k * d];
            for (r, &c) in x.outer_iter().zip(&dense.idx) {
                for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(r.iter()) {
                    s.add(v);
                }
            }
            let mut means = Array2::<f64>::zeros((k, d));
            for c in 0..k {
                for f in 0..d {
                    means[[c, f]] = sums[c * d + f].value() / dense.counts[c] as f64;
                }
            }
            let mut resid = vec![Neumaier::default(); k * d];
            for (r, &c) in x.outer_iter().zip(&dense.idx) {
                for (f, &v) in r.iter().enumerate() {
                    resid[c * d + f].add(v - means[[c, f]]);
                }
            }
            for c in 0..k {
                for f in 0..d {
                    means[[c, f]] += resid[c * d + f].value() / dense.counts[c] as f64;
                }
            }
            means
        }

        pub fn davies_bouldin(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
            check_input(&x, labels)?;
            let dense = dense(labels);
            let k = dense.uniq.len();
            check_number_of_labels(k, x.nrows())?;
            let means = means(&x, &dense);
            let mut intra = vec![Neumaier::default(); k];
            for (r, &c) in x.outer_iter().zip(&dense.idx) {
                let m = means.row(c);
                let d2: f64 = r.iter().zip(m.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
                intra[c].add(d2.sqrt());
            }
            let intra: Vec<f64> = intra
                .iter()
                .zip(&dense.counts)
                .map(|(s, &n)| s.value() / n as f64)
                .collect();
            let mut cdist = vec![0.0f64; k * k];
            for a in 0..k {
                for b in 0..k {
                    let d2: f64 = means
                        .row(a)
                        .iter()
                        .zip(means.row(b).iter())
                        .map(|(p, q)| (p - q) * (p - q))
                        .sum();
                    cdist[a * k + b] = d2.sqrt();
                }
            }
            if intra.iter().all(|v| v.abs() <= 1e-8) || cdist.iter().all(|v| v.abs() <= 1e-8) {
                return Ok(0.0);
            }
            let mut total = Neumaier::default();
            for a in 0..k {
                let mut best = f64::NEG_INFINITY;
                for b in 0..k {
                    let dist = cdist[a * k + b];
                    let dist = if dist == 0.0 { f64::INFINITY } else { dist };
                    best = best.max((intra[a] + intra[b]) / dist);
                }
                total.add(best);
            }
            Ok(total.value() / k as f64)
        }

        pub fn calinski_harabasz(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
            check_input(&x, labels)?;
            let dense = dense(labels);
            let (n, k, d) = (x.nrows(), dense.uniq.len(), x.ncols());
            check_number_of_labels(k, n)?;
            let means = means(&x, &dense);
            let mut gmean = vec![Neumaier::default(); d];
            for r in x.outer_iter() {
                for (s, &v) in gmean.iter_mut().zip(r.iter()) {
                    s.add(v);
                }
            }
            let gmean: Vec<f64> = gmean.iter().map(|s| s.value() / n as f64).collect();
            let mut extra = Neumaier::default();
            for c in 0..k {
                let s: f64 = (0..d).map(|f| (means[[c, f]] - gmean[f]).powi(2)).sum();
                extra.add(dense.counts[c] as f64 * s);
            }
            let mut intra = Neumaier::default();
            for (r, &c) in x.outer_iter().zip(&dense.idx) {
                let m = means.row(c);
                intra.add(r.iter().zip(m.iter()).map(|(a, b)| (a - b) * (a - b)).sum());
            }
            Ok(ch_ratio(extra.value(), intra.value(), n as f64, k as f64))
        }
    }

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / a.abs().max(b.abs())
        }
    }

    /// Seeded test matrices: (name, x, labels). `n * d` of the large ones crosses
    /// PASS_PARALLEL_MIN, so the two-thread split runs too.
    fn db_ch_cases() -> Vec<(String, Array2<f64>, Vec<i64>)> {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut out = Vec::new();
        for &(n, d, k, spread, offset, clustered) in &[
            (50usize, 3usize, 2usize, 1.0f64, 0.0f64, false),
            (1000, 5, 7, 1.0, 0.0, false),
            (1000, 21, 8, 0.3, 0.0, true),
            (3000, 2, 40, 0.05, 0.0, true),
            (2000, 9, 5, 1.0, 1e4, true),
            (60_000, 20, 8, 0.5, 0.0, true),
            (70_001, 17, 3, 2.0, -50.0, false),
        ] {
            let centers: Vec<f64> = (0..k * d).map(|_| rng.gen::<f64>() * 10.0 - 5.0).collect();
            let mut labels = Vec::with_capacity(n);
            let mut x = Array2::<f64>::zeros((n, d));
            for r in 0..n {
                // the first k rows cover every cluster; the rest are skewed
                let c = if r < k {
                    r
                } else {
                    (rng.gen::<f64>() * rng.gen::<f64>() * k as f64) as usize
                };
                labels.push(c as i64 * 7 - 3);
                for f in 0..d {
                    let noise = (rng.gen::<f64>() - 0.5) * 2.0 * spread;
                    x[[r, f]] = offset + if clustered { centers[c * d + f] } else { 0.0 } + noise;
                }
            }
            out.push((format!("n{n} d{d} k{k} off{offset}"), x, labels));
        }
        out
    }

    #[test]
    fn combined_db_ch_matches_separate_and_reference() {
        for (name, x, labels) in db_ch_cases() {
            let (db, ch) = davies_bouldin_calinski_harabasz(x.view(), &labels);
            let (db, ch) = (db.unwrap(), ch.unwrap());
            let db_sep = davies_bouldin(x.view(), &labels).unwrap();
            let ch_sep = calinski_harabasz(x.view(), &labels).unwrap();
            assert!(rel(db, db_sep) <= 1e-12, "{name}: DB {db} vs {db_sep}");
            assert!(rel(ch, ch_sep) <= 1e-12, "{name}: CH {ch} vs {ch_sep}");
            let db_ref = reference::davies_bouldin(x.view(), &labels).unwrap();
            let ch_ref = reference::calinski_harabasz(x.view(), &labels).unwrap();
            assert!(
                rel(db, db_ref) <= 1e-12,
                "{name}: DB {db} vs reference {db_ref}"
            );
            assert!(
                rel(ch, ch_ref) <= 1e-12,
                "{name}: CH {ch} vs reference {ch_ref}"
            );
            // a column-major copy takes the row-copying path and gives the same values
            let mut f = Array2::<f64>::zeros(ndarray::ShapeBuilder::f(x.raw_dim()));
            f.assign(&x);
            let (db_f, ch_f) = davies_bouldin_calinski_harabasz(f.view(), &labels);
            assert!(rel(db_f.unwrap(), db) <= 1e-15, "{name}");
            assert!(rel(ch_f.unwrap(), ch) <= 1e-15, "{name}");
        }
    }

    #[test]
    fn blocked_cluster_means_match_the_two_pass_reference() {
        for (name, x, labels) in db_ch_cases() {
            let xv = x.view();
            let dense = Dense::new(&labels);
            let r = reference::dense(&labels);
            assert_eq!(
                (&dense.uniq, &dense.idx, &dense.counts),
                (&r.uniq, &r.idx, &r.counts)
            );
            let got = cluster_means(&xv, &dense);
            let want = reference::means(&xv, &r);
            for (g, w) in got.iter().zip(want.iter()) {
                // within 2 ulps of the larger of |mean| and the data's spread (~1)
                assert!(
                    (g - w).abs() <= 4.0 * f64::EPSILON * w.abs().max(1.0),
                    "{name}: {g} vs {w}"
                );
            }
        }
        // a large offset with a tiny spread: the shifted first pass keeps every bit
        let n = 5000;
        let x = Array2::from_shape_fn((n, 2), |(r, f)| {
            1e9 + (f as f64) + ((r * 7919) % 1000) as f64 * 1e-7
        });
        let labels: Vec<i64> = (0..n).map(|r| (r % 3) as i64).collect();
        let got = cluster_means(&x.view(), &Dense::new(&labels));
        let want = reference::means(&x.view(), &reference::dense(&labels));
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 2.0 * f64::EPSILON * w.abs(), "{g} vs {w}");
        }
    }

    #[test]
    fn dense_table_path_matches_the_sorted_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let sets: Vec<Vec<i64>> = vec![
            vec![5],
            vec![i64::MAX, i64::MAX - 1, i64::MAX],
            vec![i64::MIN, i64::MIN + 2, i64::MIN],
            vec![i64::MIN, i64::MAX, 0, i64::MIN],
            vec![-3, 70_000, -3, 12],
            (0..5000).map(|_| rng.gen_range(-20..20)).collect(),
            (0..5000).map(|_| rng.gen_range(0..1_000_000)).collect(),
        ];
        for labels in sets {
            let d = Dense::new(&labels);
            let r = reference::dense(&labels);
            assert_eq!(d.uniq, r.uniq);
            assert_eq!(d.idx, r.idx);
            assert_eq!(d.counts, r.counts);
        }
        assert_eq!(Dense::new(&[]).k(), 0);
    }

    #[test]
    fn combined_db_ch_errors_match_the_separate_functions() {
        // Compared through Debug: NonFinite carries a NaN, which is not == itself.
        let check = |x: ArrayView2<f64>, labels: &[i64], what: &str| {
            let (db, ch) = davies_bouldin_calinski_harabasz(x, labels);
            let db_sep = davies_bouldin(x, labels);
            let ch_sep = calinski_harabasz(x, labels);
            let db_ref = reference::davies_bouldin(x, labels);
            let ch_ref = reference::calinski_harabasz(x, labels);
            assert!(db_ref.is_err() && ch_ref.is_err(), "{what}");
            for (got, want) in [
                (&db, &db_ref),
                (&ch, &ch_ref),
                (&db_sep, &db_ref),
                (&ch_sep, &ch_ref),
            ] {
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
            }
        };
        let x = Array2::from_shape_fn((6, 3), |(r, f)| (r * 3 + f) as f64);
        let ok = [0i64, 0, 1, 1, 2, 2];
        check(x.view(), &ok[..5], "label count mismatch");
        check(Array2::<f64>::zeros((0, 3)).view(), &[], "no rows");
        check(Array2::<f64>::zeros((6, 0)).view(), &ok, "no features");
        check(x.view(), &[1; 6], "one label");
        check(x.view(), &[0, 1, 2, 3, 4, 5], "n labels");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for (r, f) in [(0, 0), (3, 2), (5, 1), (2, 1)] {
                let mut y = x.clone();
                y[[r, f]] = bad;
                check(y.view(), &ok, &format!("{bad} at ({r}, {f})"));
                // non-finite values come before a bad label count, as in check_input
                check(
                    y.view(),
                    &[7; 6],
                    &format!("{bad} at ({r}, {f}), one label"),
                );
                y[[5, 2]] = f64::NAN;
                check(
                    y.view(),
                    &ok,
                    &format!("{bad} at ({r}, {f}) and NaN at (5, 2)"),
                );
            }
        }
        // a large input with one NaN deep in the second thread's half
        let (_, mut big, labels) = db_ch_cases().swap_remove(5);
        big[[59_000, 7]] = f64::NAN;
        big[[40_000, 3]] = f64::INFINITY;
        check(big.view(), &labels, "large");
    }

    #[test]
    fn cluster_passes_are_deterministic() {
        let (_, x, labels) = db_ch_cases().swap_remove(5);
        let a = davies_bouldin_calinski_harabasz(x.view(), &labels);
        for _ in 0..3 {
            let b = davies_bouldin_calinski_harabasz(x.view(), &labels);
            assert_eq!(a.0.as_ref().unwrap().to_bits(), b.0.unwrap().to_bits());
            assert_eq!(a.1.as_ref().unwrap().to_bits(), b.1.unwrap().to_bits());
        }
    }
}

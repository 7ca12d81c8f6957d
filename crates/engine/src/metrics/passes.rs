//! Shared building blocks of the metrics: input checks, dense label indices
//! (`Dense`), the compensated `Neumaier` sum, and the blocked per-cluster passes
//! (centered sums, means and spreads) on up to two threads.

use super::*;

/// Neumaier (improved Kahan) compensated sum.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Neumaier {
    pub(super) sum: f64,
    pub(super) comp: f64,
}

impl Neumaier {
    #[inline]
    pub(super) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub(super) fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// Exact-as-possible Euclidean distance between two equally long slices.
#[inline]
pub(super) fn euclid(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q) * (p - q))
        .sum::<f64>()
        .sqrt()
}

/// Shape and emptiness checks shared by every matrix metric: one label per row, at
/// least one row and one feature.
pub(super) fn check_shape(x: &ArrayView2<f64>, labels: &[i64]) -> Result<(), EngineError> {
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
    Ok(())
}

/// [`check_shape`], then finiteness.
pub(super) fn check_input(x: &ArrayView2<f64>, labels: &[i64]) -> Result<(), EngineError> {
    check_shape(x, labels)?;
    check_finite(x)
}

pub(super) fn check_finite(x: &ArrayView2<f64>) -> Result<(), EngineError> {
    EngineError::check_finite(x)
}

/// sklearn's `check_number_of_labels`: 2 <= n_labels <= n_samples - 1.
pub(super) fn check_number_of_labels(n_labels: usize, n_samples: usize) -> Result<(), EngineError> {
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
pub(super) struct Dense {
    pub(super) uniq: Vec<i64>,
    pub(super) idx: Vec<usize>,
    pub(super) counts: Vec<usize>,
}

impl Dense {
    pub(super) fn new(labels: &[i64]) -> Dense {
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

    pub(super) fn k(&self) -> usize {
        self.uniq.len()
    }
}

/// Rows a cluster's plain partial sums take before they are flushed into its
/// compensated accumulators: short enough that the plain sums lose nothing measurable,
/// long enough that the inner loop is plain vectorizable adds.
pub(super) const FLUSH_ROWS: u32 = 32;
/// `rows × features` from which the cluster passes split the rows over two threads.
pub(super) const PASS_PARALLEL_MIN: usize = 1 << 20;

/// Call `f(row index, row)` for rows `range` of `x`, each row as a contiguous slice
/// (copied into a buffer when `x` is not row-major).
pub(super) fn for_rows(x: &ArrayView2<f64>, range: Range<usize>, mut f: impl FnMut(usize, &[f64])) {
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
pub(super) struct PassSums {
    /// `sum(x - center)` per (cluster, feature), compensated (k × d).
    pub(super) dev: Vec<Neumaier>,
    /// `sum(|x - center|)` (Euclidean) per cluster, when distances were asked for.
    pub(super) dist: Vec<Neumaier>,
    /// `sum(|x - center|^2)` per cluster, when distances were asked for.
    pub(super) sq: Vec<Neumaier>,
}

impl PassSums {
    pub(super) fn merge(&mut self, other: PassSums) {
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
pub(super) fn add_deviations(p: &mut [f64], row: &[f64], m: &[f64]) {
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
pub(super) fn add_deviations_sq(p: &mut [f64], row: &[f64], m: &[f64]) -> f64 {
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
pub(super) fn centered_pass(
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
pub(super) fn centered_sums(
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
pub(super) fn means_and_spread(
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
#[cfg(test)]
pub(super) fn cluster_means(x: &ArrayView2<f64>, dense: &Dense) -> Array2<f64> {
    match means_and_spread(x, dense, false) {
        Ok((means, _)) => means,
        // Only reachable with non-finite input, which callers have rejected.
        Err(_) => Array2::from_elem((dense.k(), x.ncols()), f64::NAN),
    }
}

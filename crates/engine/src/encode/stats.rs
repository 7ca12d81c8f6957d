//! Statistics replicating scikit-learn / numpy arithmetic: pairwise sums,
//! `StandardScaler` mean and scale, numpy's linear percentile and median, the mode, and
//! `KBinsDiscretizer` quantile edges.

// ------------------------------------------------------------------------------------
// Statistics (sklearn / numpy compatible)
// ------------------------------------------------------------------------------------

/// Pairwise summation (like numpy), accurate to O(log n) ulps.
pub(super) fn sum(v: &[f64]) -> f64 {
    if v.len() <= 128 {
        let mut acc = [0.0f64; 8];
        let mut chunks = v.chunks_exact(8);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        let mut s =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for x in chunks.remainder() {
            s += x;
        }
        s
    } else {
        let mid = (v.len() / 2) & !7;
        sum(&v[..mid]) + sum(&v[mid..])
    }
}

/// `(sum(v - mean), sum((v - mean)^2))`, each bit-identical to [`sum`] over the
/// materialized deviations (same pairwise tree, same 8-lane leaves), in one pass and
/// without allocating.
pub(super) fn sum_deviations(v: &[f64], mean: f64) -> (f64, f64) {
    if v.len() <= 128 {
        let mut acc = [0.0f64; 8];
        let mut acc2 = [0.0f64; 8];
        let mut chunks = v.chunks_exact(8);
        for c in &mut chunks {
            for ((a, a2), x) in acc.iter_mut().zip(acc2.iter_mut()).zip(c) {
                let t = x - mean;
                *a += t;
                *a2 += t * t;
            }
        }
        let mut s =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        let mut s2 = ((acc2[0] + acc2[1]) + (acc2[2] + acc2[3]))
            + ((acc2[4] + acc2[5]) + (acc2[6] + acc2[7]));
        for x in chunks.remainder() {
            let t = x - mean;
            s += t;
            s2 += t * t;
        }
        (s, s2)
    } else {
        let mid = (v.len() / 2) & !7;
        let (a, a2) = sum_deviations(&v[..mid], mean);
        let (b, b2) = sum_deviations(&v[mid..], mean);
        (a + b, a2 + b2)
    }
}

/// Mean and scale as sklearn's `StandardScaler`: population variance by the corrected
/// two-pass algorithm; a variance within rounding error of 0 gives scale 1.
pub(super) fn standard_stats(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = sum(v) / n;
    let (corr, sq) = sum_deviations(v, mean);
    let var = (sq - corr * corr / n) / n;
    let eps = f64::EPSILON;
    let bound = n * eps * var + (n * mean * eps) * (n * mean * eps);
    let scale = if var <= bound { 1.0 } else { var.sqrt() };
    (mean, scale)
}

/// sklearn's `_handle_zeros_in_scale` for min_max and robust.
pub(super) fn nonzero_scale(s: f64) -> f64 {
    if s < 10.0 * f64::EPSILON {
        1.0
    } else {
        s
    }
}

/// numpy's median of sorted, non-empty values.
pub(super) fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// numpy's `percentile(s, q)` with the default "linear" method, for sorted, non-empty
/// values; replicates numpy's arithmetic (virtual index and lerp) exactly.
pub(super) fn percentile_sorted(s: &[f64], q: f64) -> f64 {
    quantile_sorted(s, q / 100.0)
}

pub(crate) fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    let n = s.len();
    let vi = (n - 1) as f64 * q;
    if vi >= (n - 1) as f64 {
        return s[n - 1];
    }
    if vi < 0.0 {
        return s[0];
    }
    let prev = vi.floor();
    let gamma = vi - prev;
    let (a, b) = (s[prev as usize], s[prev as usize + 1]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Most frequent value of sorted, non-empty values; ties go to the smallest.
pub(super) fn mode_sorted(s: &[f64]) -> f64 {
    let (mut best, mut best_n) = (s[0], 0usize);
    let mut i = 0;
    while i < s.len() {
        let mut j = i + 1;
        while j < s.len() && s[j] == s[i] {
            j += 1;
        }
        if j - i > best_n {
            best = s[i];
            best_n = j - i;
        }
        i = j;
    }
    best
}

/// sklearn `KBinsDiscretizer(strategy="quantile", quantile_method="linear")` edges for
/// sorted, non-empty values. A constant column gets the edges `[v, v]` (one bin).
pub(super) fn quantile_edges(s: &[f64], bins: usize) -> Vec<f64> {
    let (lo, hi) = (s[0], s[s.len() - 1]);
    if lo == hi {
        return vec![lo, hi];
    }
    // np.linspace(0, 100, bins + 1), then np.percentile divides by 100
    let step = 100.0 / bins as f64;
    let raw: Vec<f64> = (0..=bins)
        .map(|i| {
            let level = if i == bins { 100.0 } else { i as f64 * step };
            quantile_sorted(s, level / 100.0)
        })
        .collect();
    // drop edges closer than 1e-8 to the previous (original) edge
    let mut edges = vec![raw[0]];
    for i in 1..raw.len() {
        if raw[i] - raw[i - 1] > 1e-8 {
            edges.push(raw[i]);
        }
    }
    if edges.len() < 2 {
        edges.push(hi);
    }
    edges
}

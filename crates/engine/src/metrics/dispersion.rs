//! Inertia, Davies–Bouldin, Calinski–Harabasz and per-cluster summaries.

use super::*;

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
pub(super) fn db_ch(x: ArrayView2<f64>, labels: &[i64]) -> Result<(f64, f64), EngineError> {
    check_shape(&x, labels)?;
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

pub(super) fn ch_ratio(extra: f64, intra: f64, n: f64, k: f64) -> f64 {
    if intra == 0.0 {
        1.0
    } else {
        extra * (n - k) / (intra * (k - 1.0))
    }
}

/// One cluster's size, centroid and spread, as returned by [`cluster_summaries`].
#[derive(Debug, Clone, PartialEq)]
#[cfg(test)]
pub(crate) struct ClusterSummary {
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
#[cfg(test)]
pub(crate) fn cluster_summaries(
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

//! Lloyd's algorithm over data held elsewhere (a Citus cluster's shards, a table read
//! once per iteration): each iteration is one pass that returns a [`StepState`] (per
//! centroid sums and counts, and the inertia against the centroids it was given), so
//! that only k x d-sized states travel, never the rows. The iteration is scikit-learn's
//! Lloyd loop: new centroids are the means (an empty cluster keeps its centroid), and
//! the loop stops when the total squared centre shift is at most `tol_abs`
//! (scikit-learn's tolerance: `tol` times the mean per-feature variance) or after
//! `max_iter` iterations; a last pass measures the inertia and the sizes against the
//! returned centroids. From the same initial centroids it ends where [`fit`](super::fit)
//! with `Init::Given` ends, as long as no cluster empties (the in-memory fit moves a far
//! row into an empty cluster; a pass cannot see rows).
use super::StepState;
use crate::error::EngineError;
use ndarray::{Array2, ArrayView2};

/// What [`lloyd_passes`] found.
#[derive(Debug, Clone)]
pub struct PassFit {
    pub centroids: Array2<f64>,
    /// Iterations run (scikit-learn's `n_iter_`).
    pub n_iter: usize,
    /// Whether the tolerance stopped the loop (not `max_iter`).
    pub converged: bool,
    /// Sum of squared distances of the rows to their nearest returned centroid.
    pub inertia: f64,
    /// Rows nearest each returned centroid.
    pub counts: Vec<u64>,
    /// Passes made (iterations and the last one).
    pub passes: usize,
}

/// scikit-learn's absolute tolerance from the total within-data sum of squares around
/// the column means (`total_ss`, as `segment_inertia(x, 0)` gives it) of `n` rows of
/// `d` columns: `tol` times the mean per-feature population variance.
pub fn tolerance_from_total(total_ss: f64, n: u64, d: usize, tol: f64) -> f64 {
    if tol == 0.0 || n == 0 || d == 0 {
        return 0.0;
    }
    tol * total_ss / (n as f64 * d as f64)
}

/// Lloyd from `init` (k x d), one `pass` per iteration; `pass` gets the centroids and
/// returns the step state of every row against them.
pub fn lloyd_passes(
    init: Array2<f64>,
    tol_abs: f64,
    max_iter: usize,
    mut pass: impl FnMut(ArrayView2<'_, f64>) -> Result<StepState, EngineError>,
) -> Result<PassFit, EngineError> {
    let (k, d) = init.dim();
    let check = |st: &StepState| {
        if st.k() != k || st.d() != d {
            Err(EngineError::Internal(format!(
                "a pass returned a k = {}, d = {} state for k = {k}, d = {d} centroids",
                st.k(),
                st.d()
            )))
        } else {
            Ok(())
        }
    };
    let mut centers = init;
    let (mut n_iter, mut converged, mut passes) = (0, false, 0);
    for i in 0..max_iter {
        let st = pass(centers.view())?;
        passes += 1;
        check(&st)?;
        if st.rows() == 0 {
            return Err(EngineError::NoRows);
        }
        let new = st.new_centroids(centers.view());
        let shift: f64 = new
            .iter()
            .zip(centers.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        centers = new;
        n_iter = i + 1;
        if shift <= tol_abs {
            converged = true;
            break;
        }
    }
    let last = pass(centers.view())?;
    passes += 1;
    check(&last)?;
    Ok(PassFit {
        centroids: centers,
        n_iter,
        converged,
        inertia: last.inertia(),
        counts: last.counts().to_vec(),
        passes,
    })
}

//! The fit: k-means with the given k, or each k of a range keeping the best mean
//! silhouette.
use super::ctx;
use crate::engine::kmeans;
use crate::engine::quality::silhouette_sample;
use crate::error::{raise, Code, OrRaise};
use crate::pg::{interrupt, PgHooks};
use ndarray::{Array2, ArrayView2};
use serde_json::json;

/// k-means++ seeds come from a seeded uniform sample of this many rows when the
/// training set has more than twice as many (the Lloyd iterations use every row).
pub const INIT_SAMPLE: usize = 100_000;

pub(super) struct Fit {
    pub(super) result: kmeans::KMeansResult,
    pub(super) k_selection: Option<serde_json::Value>,
}

pub(super) fn fit_k(
    model: &str,
    x: ArrayView2<f64>,
    k: usize,
    seed: u64,
    n_init: usize,
    max_iter: usize,
    tol: f64,
) -> kmeans::KMeansResult {
    let params = kmeans::KMeansParams::new(k)
        .seed(seed)
        .n_init(n_init)
        .max_iter(max_iter)
        .tol(tol)
        .init_sample(INIT_SAMPLE);
    kmeans::fit(x, &params, &mut PgHooks).or_raise(&ctx(model))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn choose_k(
    model: &str,
    x: ArrayView2<f64>,
    k_min: usize,
    k_max: usize,
    seed: u64,
    n_init: usize,
    max_iter: usize,
    tol: f64,
) -> Fit {
    let distinct = kmeans::count_distinct_rows(x, k_max + 1);
    let hi = k_max.min(distinct);
    if hi < k_min {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{}: k_min = {k_min} exceeds the number of distinct rows ({distinct})",
                ctx(model)
            ),
            Some(format!("Choose k_min between 1 and {distinct}.")),
        );
    }
    let mut scores = Vec::new();
    let mut best: Option<(f64, kmeans::KMeansResult)> = None;
    for k in k_min..=hi {
        let r = fit_k(model, x, k, seed, n_init, max_iter, tol);
        let sil = silhouette_sample(x, &r.labels, seed, &mut interrupt).map(|s| s.2);
        scores.push(json!({"k": k, "inertia": r.inertia, "silhouette": sil}));
        let score = sil.unwrap_or(f64::NEG_INFINITY);
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, r));
        }
    }
    let (_, result) = best.expect("k range is not empty");
    Fit {
        k_selection: Some(json!({
            "criterion": "max mean silhouette (sampled as for the model)",
            "k_min": k_min, "k_max": k_max, "chosen": result.centroids.nrows(),
            "scores": scores
        })),
        result,
    }
}

/// A fit whose centroids or inertia are not finite is never stored (the encoder's
/// range check makes this unreachable; it guards the catalog all the same).
pub(super) fn check_fit(model: &str, centroids: &Array2<f64>, inertia: f64) {
    if !inertia.is_finite() || centroids.iter().any(|v| !v.is_finite()) {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!(
                "{}: the fit overflowed float8 (inertia {inertia})",
                ctx(model)
            ),
            Some("Scale the features (standard, log_standard) or lower their weights.".into()),
        );
    }
}

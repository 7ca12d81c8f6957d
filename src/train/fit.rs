//! The fit: k-means with the given k, or each k of a range keeping the best mean
//! silhouette.
use super::ctx;
use crate::engine::choose_k;
use crate::engine::kmeans::{self, KMeansParams};
use crate::error::{raise, Code, OrRaise};
use crate::pg::PgHooks;
use ndarray::{Array2, ArrayView2};
use serde_json::json;

/// k-means++ seeds come from a seeded uniform sample of this many rows when the
/// training set has more than twice as many (the Lloyd iterations use every row).
pub const INIT_SAMPLE: usize = 100_000;

pub(super) struct Fit {
    pub(super) result: kmeans::KMeansResult,
    pub(super) k_selection: Option<serde_json::Value>,
}

/// The fit's parameters, as checked by [`Params::check`].
pub(super) struct Params {
    /// Some((k_min, k_max)): choose k in that range; None: fit `kmeans`'s k.
    pub(super) choose: Option<(usize, usize)>,
    pub(super) seed: u64,
    pub(super) kmeans: KMeansParams,
}

impl Params {
    /// Check the arguments as the caller gave them (22023 naming the argument, with the
    /// engine's limits and wording: the one place they are checked).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check(
        model: &str,
        k: Option<i32>,
        k_min: i32,
        k_max: i32,
        seed: i64,
        n_init: i32,
        max_iter: i32,
        tol: f64,
    ) -> Params {
        let c = ctx(model);
        kmeans::check_limits(k.map(i64::from), n_init.into(), max_iter.into(), tol).or_raise(&c);
        if k.is_none() {
            choose_k::check_range(k_min.into(), k_max.into()).or_raise(&c);
        }
        let seed = seed as u64;
        Params {
            choose: k.is_none().then_some((k_min as usize, k_max as usize)),
            seed,
            kmeans: KMeansParams::new(k.unwrap_or(k_min).max(1) as usize)
                .seed(seed)
                .n_init(n_init as usize)
                .max_iter(max_iter as usize)
                .tol(tol)
                .init_sample(INIT_SAMPLE),
        }
    }

    /// The k-means parameters of the largest fit these parameters may run (k_max when
    /// choosing k): what the memory estimate sizes.
    pub(super) fn largest(&self) -> KMeansParams {
        let mut p = self.kmeans.clone();
        if let Some((_, k_max)) = self.choose {
            p.k = k_max;
        }
        p
    }
}

/// k-means with the given k, or the k of the range with the best sampled silhouette
/// (every k's scores are kept for the catalog). Segments are numbered canonically:
/// 1 = the largest, ties by centroid (see `KMeansResult::canonicalize`).
pub(super) fn fit_model(model: &str, x: ArrayView2<f64>, p: &Params) -> Fit {
    let c = ctx(model);
    crate::pg::progress::max_iter(p.kmeans.max_iter);
    // k-means++ seeding first; the first iteration reports the iterations phase.
    crate::pg::progress::phase(crate::pg::progress::Phase::Seeding);
    let Some((k_min, k_max)) = p.choose else {
        let mut result = kmeans::fit(x, &p.kmeans, &mut PgHooks).or_raise(&c);
        result.canonicalize();
        return Fit {
            result,
            k_selection: None,
        };
    };
    let choice = choose_k::choose_k(x, k_min, k_max, &p.kmeans, p.seed, &mut PgHooks).or_raise(&c);
    let scores: Vec<serde_json::Value> = choice
        .scores
        .iter()
        .map(|s| json!({"k": s.k, "inertia": s.inertia, "silhouette": s.silhouette}))
        .collect();
    let mut result = choice.result;
    result.canonicalize();
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

//! Choosing k: fit every k of a range and keep the one whose mean silhouette (sampled as
//! for a trained model, [`silhouette_sample`]) is highest. Ties keep the smaller k; a k
//! whose silhouette is undefined (one cluster) scores lowest.
use crate::error::EngineError;
use crate::kmeans::{count_distinct_rows, fit, Hooks, KMeansParams, KMeansResult, MAX_K};
use crate::quality::silhouette_sample;
use ndarray::ArrayView2;

/// What one k scored.
#[derive(Debug, Clone, PartialEq)]
pub struct KScore {
    pub k: usize,
    pub inertia: f64,
    /// Mean silhouette on the sample; None when undefined (k = 1).
    pub silhouette: Option<f64>,
}

/// The fit of the chosen k and every k's score, in k order.
#[derive(Debug, Clone)]
pub struct KChoice {
    pub result: KMeansResult,
    pub scores: Vec<KScore>,
}

/// The range of k to try: 1 <= k_min <= k_max <= [`MAX_K`], checked on the values as a
/// caller got them (signed, reported as given).
pub fn check_range(k_min: i64, k_max: i64) -> Result<(), EngineError> {
    if k_min < 1 || k_max < k_min || k_max > MAX_K as i64 {
        return Err(EngineError::invalid(
            "k_min",
            format!("need 1 <= k_min <= k_max <= {MAX_K}, got k_min = {k_min}, k_max = {k_max}"),
        ));
    }
    Ok(())
}

/// Fit k = `k_min` ..= `k_max` (capped at the number of distinct rows) with `params`
/// (its k replaced by each k in turn) and keep the best mean silhouette. `seed` seeds the
/// silhouette's sample. Fails when `k_min` exceeds the number of distinct rows.
pub fn choose_k(
    x: ArrayView2<f64>,
    k_min: usize,
    k_max: usize,
    params: &KMeansParams,
    seed: u64,
    hooks: &mut impl Hooks,
) -> Result<KChoice, EngineError> {
    check_range(k_min as i64, k_max as i64)?;
    let distinct = count_distinct_rows(x, k_max + 1);
    let hi = k_max.min(distinct);
    if hi < k_min {
        return Err(EngineError::TooFewDistinctPoints {
            name: "k_min",
            k: k_min,
            distinct,
        });
    }
    let mut scores = Vec::with_capacity(hi - k_min + 1);
    let mut best: Option<(f64, KMeansResult)> = None;
    for k in k_min..=hi {
        let r = fit(x, &params.clone().k(k), hooks)?;
        let silhouette =
            silhouette_sample(x, &r.labels, seed, &mut || hooks.check_interrupt()).map(|s| s.2);
        scores.push(KScore {
            k,
            inertia: r.inertia,
            silhouette,
        });
        let score = silhouette.unwrap_or(f64::NEG_INFINITY);
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, r));
        }
    }
    let (_, result) = best.expect("the k range is not empty");
    Ok(KChoice { result, scores })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::NoHooks;
    use ndarray::Array2;

    fn blobs(per: usize, centers: &[[f64; 2]]) -> Array2<f64> {
        let mut v = Vec::new();
        for (c, center) in centers.iter().enumerate() {
            for i in 0..per {
                let t = (i * 7 + c * 3) % 11;
                v.push(center[0] + 0.01 * t as f64);
                v.push(center[1] - 0.01 * ((i * 5) % 13) as f64);
            }
        }
        Array2::from_shape_vec((per * centers.len(), 2), v).unwrap()
    }

    #[test]
    fn picks_the_number_of_separated_blobs_and_scores_every_k() {
        let x = blobs(40, &[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]);
        let c = choose_k(
            x.view(),
            2,
            5,
            &KMeansParams::new(2).seed(1),
            7,
            &mut NoHooks,
        )
        .unwrap();
        assert_eq!(c.result.centroids.nrows(), 3);
        assert_eq!(
            c.scores.iter().map(|s| s.k).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        let best = c
            .scores
            .iter()
            .map(|s| s.silhouette.unwrap())
            .fold(f64::MIN, f64::max);
        assert_eq!(c.scores[1].silhouette, Some(best));
    }

    #[test]
    fn the_range_stops_at_the_distinct_rows_and_k_min_above_them_fails() {
        let x = blobs(10, &[[0.0, 0.0], [5.0, 5.0]]);
        let dup = Array2::from_shape_vec((6, 1), vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]).unwrap();
        let c = choose_k(dup.view(), 2, 8, &KMeansParams::new(2), 0, &mut NoHooks).unwrap();
        assert_eq!(c.scores.last().unwrap().k, 3);
        let e = choose_k(dup.view(), 4, 8, &KMeansParams::new(2), 0, &mut NoHooks).unwrap_err();
        assert_eq!(
            e,
            EngineError::TooFewDistinctPoints {
                name: "k_min",
                k: 4,
                distinct: 3
            }
        );
        assert_eq!(
            e.to_string(),
            "k_min = 4 exceeds the number of distinct rows (3)"
        );
        assert!(choose_k(x.view(), 3, 2, &KMeansParams::new(2), 0, &mut NoHooks).is_err());
    }
}

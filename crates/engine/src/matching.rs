//! Centroid matching for stable segment ids across model versions: the Hungarian
//! algorithm (minimum-cost assignment), matching new centroids to old ones by squared
//! euclidean distance, and per-segment Jaccard stability between two labelings.

use ndarray::{Array2, ArrayView2};
use std::collections::BTreeMap;

/// Minimum-cost assignment of rows to distinct columns (rows <= cols), O(rows^2 * cols).
/// Returns, for each row, its column. Same optimum as
/// `scipy.optimize.linear_sum_assignment`.
///
/// Panics if rows > cols or a cost is not finite.
pub fn hungarian(cost: ArrayView2<f64>) -> Vec<usize> {
    let (n, m) = cost.dim();
    assert!(n <= m, "hungarian: {n} rows > {m} columns");
    assert!(
        cost.iter().all(|v| v.is_finite()),
        "hungarian: non-finite cost"
    );
    if n == 0 {
        return Vec::new();
    }
    // Potentials u (rows) and v (columns), p[j] = row matched to column j (1-based,
    // 0 = free), way[j] = previous column on the augmenting path. Column 0 is virtual.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = f64::INFINITY);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[[i0 - 1, j - 1]] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut ans = vec![usize::MAX; n];
    for j in 1..=m {
        if p[j] != 0 {
            ans[p[j] - 1] = j - 1;
        }
    }
    ans
}

fn sq_cost(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), b.nrows()), |(i, j)| {
        a.row(i)
            .iter()
            .zip(b.row(j).iter())
            .map(|(x, y)| (x - y) * (x - y))
            .sum()
    })
}

/// For each NEW centroid, the index of the OLD centroid whose identity it inherits, by
/// minimum total squared euclidean distance. When there are more new centroids than
/// old, the new centroids left over get `None`; when fewer, some old ids are retired.
///
/// Panics if the widths differ or a value is not finite.
pub fn match_centroids(old: ArrayView2<f64>, new: ArrayView2<f64>) -> Vec<Option<usize>> {
    assert_eq!(
        old.ncols(),
        new.ncols(),
        "match_centroids: old and new centroids have different widths"
    );
    if new.nrows() <= old.nrows() {
        hungarian(sq_cost(new, old).view())
            .into_iter()
            .map(Some)
            .collect()
    } else {
        let mut out = vec![None; new.nrows()];
        for (o, n) in hungarian(sq_cost(old, new).view()).into_iter().enumerate() {
            out[n] = Some(o);
        }
        out
    }
}

/// For each label present in `old_labels` (ascending), the Jaccard index of its member
/// set (row positions) against the members of the same label in `new_labels`:
/// |old ∩ new| / |old ∪ new|.
///
/// Panics if the slices have different lengths.
pub fn jaccard_per_segment(old_labels: &[i64], new_labels: &[i64]) -> Vec<(i64, f64)> {
    assert_eq!(
        old_labels.len(),
        new_labels.len(),
        "jaccard_per_segment: labelings of different lengths"
    );
    let mut old_n: BTreeMap<i64, u64> = BTreeMap::new();
    let mut new_n: BTreeMap<i64, u64> = BTreeMap::new();
    let mut both: BTreeMap<i64, u64> = BTreeMap::new();
    for (&o, &n) in old_labels.iter().zip(new_labels) {
        *old_n.entry(o).or_default() += 1;
        *new_n.entry(n).or_default() += 1;
        if o == n {
            *both.entry(o).or_default() += 1;
        }
    }
    old_n
        .into_iter()
        .map(|(l, a)| {
            let b = new_n.get(&l).copied().unwrap_or(0);
            let i = both.get(&l).copied().unwrap_or(0);
            (l, i as f64 / (a + b - i) as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn total(cost: ArrayView2<f64>, a: &[usize]) -> f64 {
        a.iter().enumerate().map(|(i, &j)| cost[[i, j]]).sum()
    }

    /// Minimum over all injective row -> column maps.
    fn brute(cost: ArrayView2<f64>) -> f64 {
        fn rec(c: ArrayView2<f64>, i: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
            if i == c.nrows() {
                *best = best.min(acc);
                return;
            }
            for j in 0..c.ncols() {
                if !used[j] {
                    used[j] = true;
                    rec(c, i + 1, used, acc + c[[i, j]], best);
                    used[j] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        rec(cost, 0, &mut vec![false; cost.ncols()], 0.0, &mut best);
        best
    }

    fn is_injective(a: &[usize], m: usize) -> bool {
        let mut seen = vec![false; m];
        a.iter()
            .all(|&j| j < m && !std::mem::replace(&mut seen[j], true))
    }

    #[test]
    fn hungarian_matches_brute_force_on_random_matrices() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for trial in 0..300 {
            let n = rng.gen_range(1..=6);
            let m = rng.gen_range(n..=7);
            let cost = Array2::from_shape_fn((n, m), |_| {
                if trial % 3 == 0 {
                    rng.gen_range(0..4) as f64 // many ties
                } else {
                    rng.gen_range(-10.0..10.0)
                }
            });
            let a = hungarian(cost.view());
            assert!(is_injective(&a, m), "trial {trial}: {a:?}");
            let got = total(cost.view(), &a);
            let want = brute(cost.view());
            assert!((got - want).abs() < 1e-9, "trial {trial}: {got} vs {want}");
        }
    }

    #[test]
    fn hungarian_small_cases() {
        assert!(hungarian(Array2::<f64>::zeros((0, 3)).view()).is_empty());
        assert_eq!(hungarian(array![[5.0]].view()), vec![0]);
        assert_eq!(hungarian(array![[1.0, 0.0], [0.0, 1.0]].view()), vec![1, 0]);
        assert_eq!(hungarian(array![[3.0, 1.0, 2.0]].view()), vec![1]);
    }

    #[test]
    #[should_panic(expected = "rows >")]
    fn hungarian_rejects_more_rows_than_columns() {
        hungarian(Array2::<f64>::zeros((3, 2)).view());
    }

    #[derive(serde::Deserialize)]
    struct ScipyCase {
        cost: Vec<Vec<f64>>,
        col_ind: Vec<usize>,
        total: f64,
    }

    #[test]
    fn hungarian_agrees_with_scipy_linear_sum_assignment() {
        let cases: Vec<ScipyCase> =
            serde_json::from_str(include_str!("../fixtures/kmeans/hungarian_scipy.json")).unwrap();
        assert!(cases.len() >= 5);
        for (t, c) in cases.iter().enumerate() {
            let (n, m) = (c.cost.len(), c.cost[0].len());
            let cost = Array2::from_shape_fn((n, m), |(i, j)| c.cost[i][j]);
            let a = hungarian(cost.view());
            let got = total(cost.view(), &a);
            assert!(
                (got - c.total).abs() <= 1e-9 * c.total.abs().max(1.0),
                "case {t}: {got} vs scipy {}",
                c.total
            );
            // Random real costs have a unique optimum: the assignment itself agrees.
            assert_eq!(a, c.col_ind, "case {t}");
        }
    }

    #[test]
    fn match_centroids_recovers_a_permutation() {
        let old = array![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let new = array![[0.1, 9.8], [0.2, -0.1], [9.9, 0.3]];
        assert_eq!(
            match_centroids(old.view(), new.view()),
            vec![Some(2), Some(0), Some(1)]
        );
    }

    #[test]
    fn match_centroids_more_new_than_old() {
        let old = array![[0.0], [10.0]];
        let new = array![[10.5], [5.0], [0.5]];
        assert_eq!(
            match_centroids(old.view(), new.view()),
            vec![Some(1), None, Some(0)]
        );
    }

    #[test]
    fn match_centroids_fewer_new_than_old() {
        let old = array![[0.0], [5.0], [10.0]];
        let new = array![[9.0], [1.0]];
        assert_eq!(
            match_centroids(old.view(), new.view()),
            vec![Some(2), Some(0)]
        );
    }

    #[test]
    fn match_centroids_is_global_not_greedy() {
        // Greedy (new 0 takes its nearest old 0, new 1 gets old 1) costs 0.01 + 36; the
        // optimum crosses them: 3.61 + 16.
        let old = array![[0.0], [2.0]];
        let new = array![[0.1], [-4.0]];
        let greedy_cost = 0.01 + 36.0;
        let a = match_centroids(old.view(), new.view());
        assert_eq!(a, vec![Some(1), Some(0)]);
        assert!(3.61 + 16.0 < greedy_cost);
    }

    #[test]
    fn jaccard_per_segment_counts_members() {
        let old = [0, 0, 0, 1, 1, 2];
        let new = [0, 0, 1, 1, 1, 0];
        // label 0: old {0,1,2}, new {0,1,5}: 2 / 4; label 1: old {3,4}, new {2,3,4}:
        // 2 / 3; label 2: old {5}, new {}: 0.
        assert_eq!(
            jaccard_per_segment(&old, &new),
            vec![(0, 0.5), (1, 2.0 / 3.0), (2, 0.0)]
        );
        assert_eq!(
            jaccard_per_segment(&[3, 3, -1], &[3, 3, -1]),
            vec![(-1, 1.0), (3, 1.0)]
        );
        assert!(jaccard_per_segment(&[], &[]).is_empty());
    }
}

//! Tests of segment lineage: transitions, Jaccard, matching, ids and bands.
use super::*;
use crate::metrics::Contingency;
use ndarray::array;

/// Transitions from per-customer (old, new) pairs.
fn table(k_old: usize, k_new: usize, pairs: &[(Option<usize>, Option<usize>, u64)]) -> Transitions {
    let mut t = Transitions::new(k_old, k_new);
    for &(o, n, c) in pairs {
        t.add(o, n, c);
    }
    t
}

#[test]
fn jaccard_counts_only_customers_present_in_both_versions() {
    // old 0: 8 stay in new 0, 2 move to new 1, 5 gone; new 0 also gets 100 new customers.
    let t = table(
        2,
        2,
        &[
            (Some(0), Some(0), 8),
            (Some(0), Some(1), 2),
            (Some(0), None, 5),
            (None, Some(0), 100),
            (Some(1), Some(1), 6),
        ],
    );
    assert_eq!(t.shared(), 16);
    assert_eq!(t.jaccard(0, 0), 8.0 / 10.0);
    assert_eq!(t.jaccard(0, 1), 2.0 / (10.0 + 8.0 - 2.0));
    assert_eq!(t.jaccard(1, 1), 6.0 / 8.0);
    assert_eq!(t.jaccard(1, 0), 0.0);
    assert_eq!(t.best_jaccard(0), 0.8);
    assert_eq!(t.get(None, Some(0)), 100);
    assert_eq!(t.get(Some(0), None), 5);
}

#[test]
fn ari_is_that_of_the_shared_customers() {
    let pairs = [(0, 0, 8u64), (0, 1, 2), (1, 1, 6), (1, 0, 1)];
    let mut t = table(2, 2, &[(None, Some(0), 50), (Some(1), None, 9)]);
    let mut c = Contingency::new();
    for &(a, b, n) in &pairs {
        t.add(Some(a), Some(b), n);
        for _ in 0..n {
            c.push(a as i64, b as i64);
        }
    }
    assert_eq!(t.ari(), Some(c.ari().unwrap()));
    assert_eq!(Transitions::new(2, 2).ari(), None);
    // The same partition under other numbers: 1.
    let same = table(2, 2, &[(Some(0), Some(1), 5), (Some(1), Some(0), 7)]);
    assert_eq!(same.ari(), Some(1.0));
}

#[test]
fn a_permuted_refit_inherits_every_id_and_label_positions() {
    // New segment 0 is old 2, new 1 is old 0, new 2 is old 1.
    let t = table(
        3,
        3,
        &[
            (Some(2), Some(0), 90),
            (Some(2), Some(1), 5),
            (Some(0), Some(1), 80),
            (Some(1), Some(2), 70),
            (Some(1), Some(0), 3),
        ],
    );
    let old = array![[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]];
    let new = array![[2.0, 0.1], [0.0, 0.1], [1.0, 0.1]];
    let m = match_segments(&t, old.view(), new.view());
    assert_eq!(
        m.iter().map(|m| m.from).collect::<Vec<_>>(),
        vec![Some(2), Some(0), Some(1)]
    );
    assert!(m.iter().all(|m| m.inherits));
    let (ids, last) = stable_ids(&m, &[1, 2, 3], 3);
    assert_eq!(ids, vec![3, 1, 2]);
    assert_eq!(last, 3);
}

#[test]
fn k_up_gives_fresh_ids_k_down_retires_and_ids_are_never_reused() {
    // k 2 -> 3: old 0 splits in two halves (Jaccard 0.5 each: neither inherits), old 1
    // stays.
    let t = table(
        2,
        3,
        &[
            (Some(0), Some(0), 50),
            (Some(0), Some(1), 50),
            (Some(1), Some(2), 40),
        ],
    );
    let z = ndarray::Array2::<f64>::zeros((2, 1));
    let z3 = ndarray::Array2::<f64>::zeros((3, 1));
    let m = match_segments(&t, z.view(), z3.view());
    assert_eq!(
        m[2],
        Match {
            from: Some(1),
            jaccard: 1.0,
            inherits: true
        }
    );
    assert!(!m[0].inherits && !m[1].inherits);
    assert_eq!(m.iter().filter(|m| m.from.is_none()).count(), 1);
    // Ids of the old segments were 4 and 7; the model had used up to 9 (retired ones).
    let (ids, last) = stable_ids(&m, &[4, 7], 9);
    assert_eq!(ids, vec![10, 11, 7]);
    assert_eq!(last, 11);
    // k 3 -> 2: old 0 and 1 merge into new 0 (Jaccard 0.5 and 0.5 at best): dissolved.
    let t = table(
        3,
        2,
        &[
            (Some(0), Some(0), 30),
            (Some(1), Some(0), 30),
            (Some(2), Some(1), 40),
        ],
    );
    let m = match_segments(&t, z3.view(), z.view());
    assert_eq!(m[1].from, Some(2));
    assert!(m[1].inherits);
    assert!(!m[0].inherits);
    assert_eq!(band(t.best_jaccard(0)), "dissolved");
    assert_eq!(band(t.best_jaccard(2)), "highly stable");
    let (ids, _) = stable_ids(&m, &[1, 2, 3], 3);
    assert_eq!(ids, vec![4, 3]);
}

#[test]
fn equal_jaccard_is_decided_by_centroid_distance() {
    // No overlap at all (every customer new): the nearer centroids pair up, nobody
    // inherits.
    let t = table(2, 2, &[(None, Some(0), 10), (None, Some(1), 10)]);
    let old = array![[0.0], [10.0]];
    let new = array![[9.0], [1.0]];
    let m = match_segments(&t, old.view(), new.view());
    assert_eq!(m[0].from, Some(1));
    assert_eq!(m[1].from, Some(0));
    assert!(m.iter().all(|m| !m.inherits && m.jaccard == 0.0));
}

#[test]
fn hennig_bands() {
    for (j, b) in [
        (1.0, "highly stable"),
        (0.85, "highly stable"),
        (0.8, "stable"),
        (0.75, "stable"),
        (0.6, "pattern only"),
        (0.59, "unstable"),
        (0.5001, "unstable"),
        (0.5, "dissolved"),
        (0.0, "dissolved"),
    ] {
        assert_eq!(band(j), b, "{j}");
    }
}

#[test]
fn warm_centroids_keep_the_largest_segments_in_order() {
    let old = array![[0.0], [1.0], [2.0], [3.0]];
    assert_eq!(
        warm_centroids(old.view(), &[5, 9, 1, 9], 2),
        array![[1.0], [3.0]]
    );
    assert_eq!(warm_centroids(old.view(), &[5, 9, 1, 9], 6), old);
}

#[test]
fn extend_seeds_keeps_the_given_centroids_and_adds_distinct_rows() {
    let x = ndarray::Array2::from_shape_fn((200, 2), |(i, j)| ((i * (j + 3)) % 17) as f64);
    let given = array![[0.0, 0.0], [5.0, 5.0]];
    let c = crate::kmeans::extend_seeds(x.view(), given.view(), 5, 0, 42);
    assert_eq!(c.nrows(), 5);
    assert_eq!(c.slice(ndarray::s![..2, ..]), given);
    // Each added seed is a row of x, and the draw is deterministic.
    for r in 2..5 {
        assert!(x.rows().into_iter().any(|row| row == c.row(r)));
    }
    assert_eq!(
        c,
        crate::kmeans::extend_seeds(x.view(), given.view(), 5, 0, 42)
    );
    assert_eq!(
        crate::kmeans::extend_seeds(x.view(), given.view(), 1, 0, 42),
        array![[0.0, 0.0]]
    );
}

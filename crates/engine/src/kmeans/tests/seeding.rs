//! Initialisation: sampled seeding, k-means++, random and given init.

use super::*;

#[test]
fn sampled_seeding_uses_distinct_data_rows_and_falls_back() {
    let centers = [
        [0.0, 0.0, 0.0],
        [10.0, 0.0, 0.0],
        [0.0, 10.0, 0.0],
        [0.0, 0.0, 10.0],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 4000;
    let d = 3;
    let mut data = Vec::with_capacity(n * d);
    for i in 0..n {
        for v in centers[i % 4] {
            data.push(v + rng.gen_range(-1.0..1.0));
        }
    }
    let seeds = |x: &[f64], sample: usize, k: usize| {
        let mut r = ChaCha8Rng::seed_from_u64(9);
        seed_plus_plus(x, x.len() / d, d, k, sample, &mut r, 1, &mut NoHooks).unwrap()
    };
    let is_row = |x: &[f64], c: &[f64]| x.chunks_exact(d).any(|r| r == c);
    let distinct = |c: &Array2<f64>| {
        let rows: Vec<Vec<u64>> = c
            .outer_iter()
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
        rows.iter().collect::<std::collections::HashSet<_>>().len()
    };

    // Sampled: deterministic, distinct rows of the data, not the full-data seeds.
    let a = seeds(&data, 200, 4);
    assert_eq!(a, seeds(&data, 200, 4));
    assert!(a.outer_iter().all(|c| is_row(&data, c.as_slice().unwrap())));
    assert_eq!(distinct(&a), 4);
    assert_ne!(a, seeds(&data, 0, 4));
    // At most twice the sample size: every row, bit for bit as without a sample.
    assert_eq!(seeds(&data, 2000, 4), seeds(&data, 0, 4));

    // The full fit finds the same four blobs either way.
    let x = ArrayView2::from_shape((n, d), &data).unwrap();
    let full = fit(x, &KMeansParams::new(4).seed(5), &mut NoHooks).unwrap();
    let sampled = fit(
        x,
        &KMeansParams::new(4).seed(5).init_sample(200),
        &mut NoHooks,
    )
    .unwrap();
    assert!(((full.inertia - sampled.inertia) / full.inertia).abs() < 1e-9);

    // A sample with fewer than k distinct rows: seeds come from every row instead.
    let mut few = vec![1.0; n * d];
    for i in 0..4 {
        few[(i * 997) * d] = 2.0 + i as f64;
    }
    let s = seeds(&few, 200, 5);
    assert_eq!(distinct(&s), 5);
    assert!(s.outer_iter().all(|c| is_row(&few, c.as_slice().unwrap())));
}

// ---- initialisation ---------------------------------------------------------

#[test]
fn kmeans_plus_plus_picks_distinct_rows_and_is_seeded() {
    let x = array![
        [0.0],
        [0.0],
        [0.0],
        [1.0],
        [1.0],
        [7.0],
        [7.0],
        [7.0],
        [-4.0]
    ];
    let mut r1 = ChaCha8Rng::seed_from_u64(3);
    let c = kmeans_plus_plus(x.view(), 4, &mut r1);
    let mut v: Vec<f64> = c.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    assert_eq!(v, vec![-4.0, 0.0, 1.0, 7.0]);
    let mut r2 = ChaCha8Rng::seed_from_u64(3);
    assert_eq!(kmeans_plus_plus(x.view(), 4, &mut r2), c);
    assert_eq!(kmeans_plus_plus(x.view(), 0, &mut r2).dim(), (0, 1));
}

#[test]
fn kmeans_plus_plus_prefers_far_points() {
    // Two tight groups far apart: the second centre must come from the other group.
    let mut x = Array2::zeros((200, 2));
    for i in 100..200 {
        x[[i, 0]] = 1000.0;
    }
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let c = kmeans_plus_plus(x.view(), 2, &mut rng);
        assert_ne!(c[[0, 0]], c[[1, 0]], "seed {seed}");
    }
}

#[test]
fn random_init_picks_distinct_rows() {
    let x = array![[1.0], [1.0], [1.0], [1.0], [2.0], [3.0]];
    for seed in 0..10 {
        let p = KMeansParams::new(3)
            .init(Init::Random)
            .seed(seed)
            .max_iter(1);
        let r = fit(x.view(), &p, &mut NoHooks).unwrap();
        assert_eq!(r.inertia, 0.0, "seed {seed}");
    }
}

#[test]
fn given_init_runs_once_even_with_n_init() {
    let x = blobs(500, 2, 3, 2);
    let init = x.slice(ndarray::s![0..3, ..]).to_owned();
    let p = KMeansParams::new(3).init(Init::Given(init)).n_init(7);
    let mut h = Recorder::default();
    let r = fit(x.view(), &p, &mut h).unwrap();
    assert_eq!(r.best_run, 0);
    assert!(h.progress.iter().all(|p| p.run == 0));
}

//! Cross-check of `kmeans::fit` against linfa-clustering (the reference library named in
//! the design) from the same initial centroids.
//!
//! linfa 0.8's KMeans is not plain Lloyd: its centroid update counts the old centroid as
//! one extra member of the cluster ("m_k-means"), and it stops on the centroid shift.
//! Its fixed points are Lloyd's fixed points, though, so on data whose clustering is
//! well determined both reach the same partition; we compare partitions (and
//! centroids loosely), run to convergence, on such data.

use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, Axis};
use pg_segment_engine::kmeans::{fit, Algorithm, Init, KMeansParams, NoHooks};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fixture(name: &str) -> (Array2<f64>, Array2<f64>, usize) {
    let path = format!(
        "{}/../../crates/engine/fixtures/kmeans/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let m = |key: &str| {
        let rows: Vec<Vec<f64>> = serde_json::from_value(v[key].clone()).unwrap();
        Array2::from_shape_vec((rows.len(), rows[0].len()), rows.concat()).unwrap()
    };
    (m("x"), m("init"), v["k"].as_u64().unwrap() as usize)
}

fn blobs(n: usize, d: usize, k: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers = Array2::from_shape_fn((k, d), |_| rng.gen_range(-20.0..20.0));
    let x = Array2::from_shape_fn((n, d), |(i, f)| {
        centers[[i % k, f]] + rng.gen_range(-1.5..1.5)
    });
    // Initial centroids: one row of each true cluster, nudged.
    let init = Array2::from_shape_fn((k, d), |(j, f)| x[[j + k, f]] + 0.5);
    (x, init)
}

/// True if the two labelings induce the same partition (a bijection between labels).
fn same_partition(a: &[usize], b: &[usize]) -> bool {
    let mut ab = std::collections::HashMap::new();
    let mut ba = std::collections::HashMap::new();
    a.iter()
        .zip(b)
        .all(|(x, y)| *ab.entry(*x).or_insert(*y) == *y && *ba.entry(*y).or_insert(*x) == *x)
}

fn check(name: &str, x: &Array2<f64>, init: &Array2<f64>, k: usize) {
    let ours = fit(
        x.view(),
        &KMeansParams::new(k)
            .init(Init::Given(init.clone()))
            .tol(0.0)
            .max_iter(1000)
            .algorithm(Algorithm::Auto),
        &mut NoHooks,
    )
    .unwrap();
    let ds = DatasetBase::from(x.clone());
    let model = KMeans::params(k)
        .init_method(KMeansInit::Precomputed(init.clone()))
        .n_runs(1)
        .max_n_iterations(10_000)
        .tolerance(1e-12)
        .fit(&ds)
        .unwrap();
    let theirs = model.predict(x);
    let ours_l: Vec<usize> = ours.labels.iter().map(|&l| l as usize).collect();
    assert!(
        same_partition(&ours_l, theirs.as_slice().unwrap()),
        "{name}: partitions differ"
    );
    // Same partition => same means; linfa converges to them geometrically.
    let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (j, row) in ours.centroids.axis_iter(Axis(0)).enumerate() {
        let lj = theirs[ours_l.iter().position(|&l| l == j).unwrap()];
        for (a, b) in row.iter().zip(model.centroids().row(lj)) {
            assert!(
                (a - b).abs() <= 1e-6 * scale,
                "{name}: centroid {j}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn same_partition_as_linfa_on_fixtures() {
    for name in [
        "separated_blobs",
        "unequal_variance_blobs",
        "one_feature",
        "k_is_1",
        "constant_column",
    ] {
        let (x, init, k) = fixture(name);
        check(name, &x, &init, k);
    }
}

/// The one fixture where the two disagree, for a documented reason: on features_64 an
/// initial centroid attracts no row, linfa (which has no empty-cluster relocation)
/// keeps it empty and ends with two true clusters merged, while we relocate it the way
/// scikit-learn does and reach sklearn's partition, with lower inertia.
#[test]
fn linfa_keeps_an_empty_cluster_where_we_relocate_like_sklearn() {
    let (x, init, k) = fixture("features_64");
    let ours = fit(
        x.view(),
        &KMeansParams::new(k)
            .init(Init::Given(init.clone()))
            .tol(0.0),
        &mut NoHooks,
    )
    .unwrap();
    let model = KMeans::params(k)
        .init_method(KMeansInit::Precomputed(init))
        .n_runs(1)
        .max_n_iterations(10_000)
        .tolerance(1e-12)
        .fit(&DatasetBase::from(x.clone()))
        .unwrap();
    let theirs = model.predict(&x);
    let used = |labels: &mut dyn Iterator<Item = usize>| {
        let mut seen = vec![false; k];
        labels.for_each(|l| seen[l] = true);
        seen.iter().filter(|s| **s).count()
    };
    assert_eq!(used(&mut theirs.iter().copied()), k - 1);
    assert_eq!(used(&mut ours.labels.iter().map(|&l| l as usize)), k);
    let (_, linfa_inertia) = pg_segment_engine::kmeans::assign(x.view(), model.centroids().view());
    assert!(ours.inertia < linfa_inertia);
}

#[test]
fn same_partition_as_linfa_on_larger_blobs() {
    for (n, d, k, seed) in [(30_000, 4, 6, 1), (20_000, 16, 10, 2), (10_000, 2, 3, 3)] {
        let (x, init) = blobs(n, d, k, seed);
        check(&format!("blobs n={n} d={d} k={k}"), &x, &init, k);
    }
}

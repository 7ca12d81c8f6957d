//! Tests of the k-means module, one file per topic; shared fixtures and helpers here.

use super::*;
use ndarray::{array, Array2};

mod fit;
mod kernels;
mod params;
mod plusplus;
mod seeding;
mod step;

#[derive(serde::Deserialize)]
struct Fixture {
    name: String,
    k: usize,
    tol: f64,
    max_iter: usize,
    x: Vec<Vec<f64>>,
    init: Vec<Vec<f64>>,
    labels: Vec<u32>,
    inertia: f64,
    n_iter: usize,
    centroids: Vec<Vec<f64>>,
    best_of_10_inertia: f64,
}

fn fixtures() -> Vec<Fixture> {
    [
        include_str!("../../../fixtures/kmeans/separated_blobs.json"),
        include_str!("../../../fixtures/kmeans/anisotropic_blobs.json"),
        include_str!("../../../fixtures/kmeans/unequal_variance_blobs.json"),
        include_str!("../../../fixtures/kmeans/many_duplicates.json"),
        include_str!("../../../fixtures/kmeans/one_feature.json"),
        include_str!("../../../fixtures/kmeans/features_64.json"),
        include_str!("../../../fixtures/kmeans/k_is_1.json"),
        include_str!("../../../fixtures/kmeans/k_is_distinct_count.json"),
        include_str!("../../../fixtures/kmeans/constant_column.json"),
        include_str!("../../../fixtures/kmeans/empty_cluster.json"),
        include_str!("../../../fixtures/kmeans/overlapping_tol0.json"),
        include_str!("../../../fixtures/kmeans/max_iter_hit.json"),
        include_str!("../../../fixtures/kmeans/loose_tol.json"),
    ]
    .iter()
    .map(|s| serde_json::from_str(s).unwrap())
    .collect()
}

fn mat(rows: &[Vec<f64>]) -> Array2<f64> {
    let d = rows[0].len();
    Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap()
}

/// Total sum of squares around the mean: the scale for absolute tolerances (a
/// perfect fit has inertia 0 here but ~1e-30 in sklearn, which centres the data).
fn total_ss(x: &Array2<f64>) -> f64 {
    let mean = x.mean_axis(ndarray::Axis(0)).unwrap();
    x.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        })
        .sum()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs() + 1e-12 * scale
}

fn blobs(n: usize, d: usize, k: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..d).map(|_| rng.gen_range(-8.0..8.0)).collect())
        .collect();
    Array2::from_shape_fn((n, d), |(i, f)| {
        centers[i % k][f] + rng.gen_range(-1.0..1.0) + rng.gen_range(-1.0..1.0)
    })
}

#[derive(Default)]
struct Recorder {
    checks: usize,
    progress: Vec<Progress>,
    cancel_after: Option<usize>,
}

impl Hooks for Recorder {
    fn check_interrupt(&mut self) -> Result<(), EngineError> {
        self.checks += 1;
        match self.cancel_after {
            Some(n) if self.checks > n => Err(EngineError::Canceled),
            _ => Ok(()),
        }
    }
    fn progress(&mut self, p: &Progress) {
        self.progress.push(p.clone());
    }
}

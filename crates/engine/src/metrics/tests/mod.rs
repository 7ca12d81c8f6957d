//! Tests of the metrics module, one file per topic; the scikit-learn fixtures and
//! shared helpers here.

use super::*;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const TOL: f64 = 1e-9;

const CASES: &[(&str, &str)] = &[
    (
        "separated_blobs",
        include_str!("../../../fixtures/metrics/separated_blobs.json"),
    ),
    (
        "overlapping_blobs",
        include_str!("../../../fixtures/metrics/overlapping_blobs.json"),
    ),
    (
        "anisotropic",
        include_str!("../../../fixtures/metrics/anisotropic.json"),
    ),
    (
        "duplicates",
        include_str!("../../../fixtures/metrics/duplicates.json"),
    ),
    (
        "one_feature",
        include_str!("../../../fixtures/metrics/one_feature.json"),
    ),
    (
        "wide_64",
        include_str!("../../../fixtures/metrics/wide_64.json"),
    ),
    (
        "singleton_cluster",
        include_str!("../../../fixtures/metrics/singleton_cluster.json"),
    ),
    (
        "unequal_sizes",
        include_str!("../../../fixtures/metrics/unequal_sizes.json"),
    ),
    (
        "sparse_labels",
        include_str!("../../../fixtures/metrics/sparse_labels.json"),
    ),
    (
        "blocked_1300",
        include_str!("../../../fixtures/metrics/blocked_1300.json"),
    ),
];
const LABELINGS: &str = include_str!("../../../fixtures/metrics/labelings.json");

struct Case {
    name: String,
    x: Array2<f64>,
    labels: Vec<i64>,
    labels_b: Vec<i64>,
    centroids: Array2<f64>,
    inertia_labels: Vec<i64>,
    exp: Value,
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    let d = rows[0].len();
    Array2::from_shape_vec((rows.len(), d), rows.concat()).unwrap()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn load(json: &str) -> Case {
    let v: Value = serde_json::from_str(json).unwrap();
    Case {
        name: v["name"].as_str().unwrap().to_string(),
        x: matrix(&v["X"]),
        labels: ints(&v["labels"]),
        labels_b: ints(&v["labels_b"]),
        centroids: matrix(&v["centroids"]),
        inertia_labels: ints(&v["inertia_labels"]),
        exp: v["expected"].clone(),
    }
}

fn cases() -> Vec<Case> {
    CASES.iter().map(|(_, j)| load(j)).collect()
}

#[track_caller]
fn close(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs();
    assert!(
        err <= tol * want.abs() || err <= 1e-15,
        "{what}: got {got:e}, want {want:e} (rel err {:e})",
        err / want.abs()
    );
}

fn no_interrupt() -> impl FnMut() -> Result<(), EngineError> {
    || Ok(())
}

fn kernels() -> Vec<Simd> {
    let mut v = vec![Simd::Portable];
    if Simd::detect() != Simd::Portable {
        v.push(Simd::detect());
    }
    v
}

mod dispersion;
mod edge_cases;
mod fixtures;
mod silhouette;
mod states;

//! Parameter validation (one test per rule) and the memory estimate.

use super::*;

// ---- validation: one test per rule ------------------------------------------

#[test]
fn rejects_k_below_one() {
    let x = array![[1.0], [2.0]];
    let e = KMeansParams::new(0).check(x.view()).unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "k"));
    assert!(fit(x.view(), &KMeansParams::new(0), &mut NoHooks).is_err());
}

#[test]
fn rejects_k_n_init_and_max_iter_above_their_limits() {
    let x = array![[1.0], [2.0], [3.0]];
    let e = KMeansParams::new(MAX_K + 1).check(x.view()).unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "k"));
    let e = KMeansParams::new(2)
        .n_init(MAX_N_INIT + 1)
        .check(x.view())
        .unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "n_init"));
    let e = KMeansParams::new(2)
        .max_iter(MAX_ITER + 1)
        .check(x.view())
        .unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "max_iter"));
    let at_limits = KMeansParams::new(2).n_init(MAX_N_INIT).max_iter(MAX_ITER);
    assert!(at_limits.check(x.view()).is_ok());
}

#[test]
fn rejects_k_above_distinct_points_with_both_numbers() {
    let x = array![[1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [-0.0, 0.0], [0.0, 0.0]];
    let e = fit(x.view(), &KMeansParams::new(4), &mut NoHooks).unwrap_err();
    assert_eq!(
        e,
        EngineError::TooFewDistinctPoints {
            name: "k",
            k: 4,
            distinct: 3
        }
    );
    assert!(e.to_string().contains('4') && e.to_string().contains('3'));
    assert!(fit(x.view(), &KMeansParams::new(3), &mut NoHooks).is_ok());
}

#[test]
fn rejects_zero_rows() {
    let x = Array2::<f64>::zeros((0, 3));
    assert_eq!(
        fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err(),
        EngineError::NoRows
    );
}

#[test]
fn rejects_zero_features() {
    let x = Array2::<f64>::zeros((5, 0));
    assert_eq!(
        fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err(),
        EngineError::NoFeatures
    );
}

#[test]
fn rejects_non_finite_values_naming_row_and_feature() {
    let mut x = blobs(20, 3, 2, 1);
    x[[7, 2]] = f64::NAN;
    match fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err() {
        EngineError::NonFinite {
            row,
            feature,
            value,
        } => {
            assert_eq!((row, feature), (7, 2));
            assert!(value.is_nan());
        }
        e => panic!("{e:?}"),
    }
    x[[7, 2]] = 0.0;
    x[[3, 0]] = f64::NEG_INFINITY;
    assert_eq!(
        fit(x.view(), &KMeansParams::new(2), &mut NoHooks).unwrap_err(),
        EngineError::NonFinite {
            row: 3,
            feature: 0,
            value: f64::NEG_INFINITY
        }
    );
}

#[test]
fn rejects_given_init_with_wrong_number_of_centroids() {
    let x = blobs(20, 2, 2, 1);
    let p = KMeansParams::new(3).init(Init::Given(Array2::zeros((2, 2))));
    let e = fit(x.view(), &p, &mut NoHooks).unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "init"));
}

#[test]
fn rejects_given_init_with_wrong_width() {
    let x = blobs(20, 2, 2, 1);
    let p = KMeansParams::new(2).init(Init::Given(Array2::zeros((2, 3))));
    assert_eq!(
        fit(x.view(), &p, &mut NoHooks).unwrap_err(),
        EngineError::DimensionMismatch {
            expected: 2,
            got: 3
        }
    );
}

#[test]
fn rejects_given_init_with_non_finite_values() {
    let x = blobs(20, 2, 2, 1);
    let p = KMeansParams::new(2).init(Init::Given(array![[0.0, 0.0], [f64::NAN, 1.0]]));
    let e = fit(x.view(), &p, &mut NoHooks).unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "init"));
}

#[test]
fn rejects_n_init_below_one() {
    let x = blobs(20, 2, 2, 1);
    let e = fit(x.view(), &KMeansParams::new(2).n_init(0), &mut NoHooks).unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "n_init"));
}

#[test]
fn rejects_max_iter_below_one() {
    let x = blobs(20, 2, 2, 1);
    let e = fit(x.view(), &KMeansParams::new(2).max_iter(0), &mut NoHooks).unwrap_err();
    assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "max_iter"));
}

#[test]
fn rejects_negative_or_nan_tol() {
    let x = blobs(20, 2, 2, 1);
    for tol in [-1e-9, f64::NAN, f64::INFINITY] {
        let e = fit(x.view(), &KMeansParams::new(2).tol(tol), &mut NoHooks).unwrap_err();
        assert!(matches!(e, EngineError::InvalidParameter { ref name, .. } if name == "tol"));
    }
    assert!(fit(x.view(), &KMeansParams::new(2).tol(0.0), &mut NoHooks).is_ok());
}

#[test]
fn memory_estimate_grows_with_rows_and_algorithm() {
    let p = KMeansParams::new(8);
    let lloyd = p
        .clone()
        .algorithm(Algorithm::Lloyd)
        .memory_estimate(1_000_000, 8);
    let ham = p
        .clone()
        .algorithm(Algorithm::Hamerly)
        .memory_estimate(1_000_000, 8);
    let elk = p
        .clone()
        .algorithm(Algorithm::Elkan)
        .memory_estimate(1_000_000, 8);
    assert!(lloyd < ham && ham < elk);
    assert!(ham < 64 * 1_000_000);
}

//! Edge cases and input errors.

use super::*;

// ---------------------------------------------------------------- edge cases

#[test]
fn silhouette_label_count_errors() {
    let x = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    for labels in [[1i64, 1, 1, 1], [0, 1, 2, 3]] {
        match silhouette_score(x.view(), &labels) {
            Err(EngineError::InvalidParameter { name, reason }) => {
                assert_eq!(name, "labels");
                assert!(reason.contains("among 4 rows"), "{reason}");
            }
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
        assert!(davies_bouldin(x.view(), &labels).is_err());
        assert!(calinski_harabasz(x.view(), &labels).is_err());
    }
    let mut st = ClusterStats::new(1);
    for v in [0.0, 1.0, 2.0] {
        st.push(9, &[v]).unwrap();
    }
    assert!(matches!(
        st.calinski_harabasz(),
        Err(EngineError::InvalidParameter { .. })
    ));
}

#[test]
fn singleton_cluster_silhouette_is_zero() {
    let x = Array2::from_shape_vec((5, 1), vec![0.0, 0.1, 0.2, 5.0, 9.0]).unwrap();
    let s = silhouette_samples(x.view(), &[0, 0, 0, 1, 2], &mut no_interrupt()).unwrap();
    assert_eq!(s[3], 0.0);
    assert_eq!(s[4], 0.0);
    assert!(s[0] > 0.9);
}

#[test]
fn zero_within_dispersion() {
    // Every cluster is one repeated point: CH = 1.0 (sklearn), DB = 0.0 (sklearn),
    // silhouette = 1 for every row.
    let x = Array2::from_shape_vec((6, 2), vec![1., 2., 1., 2., 5., 5., 5., 5., 9., 0., 9., 0.])
        .unwrap();
    let labels = [3, 3, 1, 1, 8, 8];
    assert_eq!(calinski_harabasz(x.view(), &labels).unwrap(), 1.0);
    assert_eq!(davies_bouldin(x.view(), &labels).unwrap(), 0.0);
    let mut st = ClusterStats::new(2);
    for (r, &l) in x.outer_iter().zip(&labels) {
        st.push(l, r.as_slice().unwrap()).unwrap();
    }
    assert_eq!(st.calinski_harabasz().unwrap(), 1.0);
    assert_eq!(st.within_ss(), 0.0);
    assert_eq!(silhouette_score(x.view(), &labels).unwrap(), 1.0);
}

#[test]
fn input_errors() {
    let x = Array2::from_shape_vec((3, 2), vec![0., 1., 2., 3., 4., 5.]).unwrap();
    let c = Array2::from_shape_vec((2, 2), vec![0., 0., 1., 1.]).unwrap();
    let short = [0i64, 1];
    let mismatch = EngineError::DimensionMismatch {
        expected: 3,
        got: 2,
    };
    assert_eq!(inertia(x.view(), &short, c.view()), Err(mismatch.clone()));
    assert_eq!(davies_bouldin(x.view(), &short), Err(mismatch.clone()));
    assert_eq!(calinski_harabasz(x.view(), &short), Err(mismatch.clone()));
    assert_eq!(silhouette_score(x.view(), &short), Err(mismatch.clone()));
    assert_eq!(cluster_summaries(x.view(), &short), Err(mismatch.clone()));
    assert_eq!(
        silhouette_sampled(x.view(), &short, 10, 1),
        Err(mismatch.clone())
    );
    assert_eq!(
        adjusted_rand_index(&[1, 2, 3], &short),
        Err(mismatch.clone())
    );
    assert_eq!(normalized_mutual_info(&[1, 2, 3], &short), Err(mismatch));

    let empty = Array2::<f64>::zeros((0, 2));
    assert_eq!(davies_bouldin(empty.view(), &[]), Err(EngineError::NoRows));
    assert_eq!(
        calinski_harabasz(empty.view(), &[]),
        Err(EngineError::NoRows)
    );
    assert_eq!(
        silhouette_score(empty.view(), &[]),
        Err(EngineError::NoRows)
    );
    assert_eq!(
        inertia(empty.view(), &[], c.view()),
        Err(EngineError::NoRows)
    );
    assert_eq!(
        cluster_summaries(empty.view(), &[]),
        Err(EngineError::NoRows)
    );
    assert_eq!(adjusted_rand_index(&[], &[]), Err(EngineError::NoRows));
    assert_eq!(normalized_mutual_info(&[], &[]), Err(EngineError::NoRows));
    assert_eq!(Contingency::new().ari(), Err(EngineError::NoRows));
    assert_eq!(Contingency::new().nmi(), Err(EngineError::NoRows));
    assert_eq!(
        ClusterStats::new(2).calinski_harabasz(),
        Err(EngineError::NoRows)
    );

    let nofeat = Array2::<f64>::zeros((3, 0));
    assert_eq!(
        silhouette_score(nofeat.view(), &[0, 1, 1]),
        Err(EngineError::NoFeatures)
    );

    let mut bad = x.clone();
    bad[[2, 1]] = f64::NAN;
    let labels = [0i64, 1, 1];
    let is_nonfinite = |r: Result<f64, EngineError>| {
        matches!(
            r,
            Err(EngineError::NonFinite {
                row: 2,
                feature: 1,
                ..
            })
        )
    };
    assert!(is_nonfinite(davies_bouldin(bad.view(), &labels)));
    assert!(is_nonfinite(calinski_harabasz(bad.view(), &labels)));
    assert!(is_nonfinite(silhouette_score(bad.view(), &labels)));
    assert!(is_nonfinite(inertia(bad.view(), &labels, c.view())));
    bad[[2, 1]] = f64::INFINITY;
    assert!(is_nonfinite(
        silhouette_sampled(bad.view(), &labels, 2, 1).map(|s| s.score)
    ));

    // inertia: label without centroid, centroid width, non-finite centroid
    assert!(matches!(
        inertia(x.view(), &[0, 1, 2], c.view()),
        Err(EngineError::InvalidParameter { .. })
    ));
    assert!(matches!(
        inertia(x.view(), &[0, -1, 1], c.view()),
        Err(EngineError::InvalidParameter { .. })
    ));
    let c3 = Array2::<f64>::zeros((2, 3));
    assert_eq!(
        inertia(x.view(), &labels, c3.view()),
        Err(EngineError::DimensionMismatch {
            expected: 2,
            got: 3
        })
    );
    let mut cn = c.clone();
    cn[[1, 0]] = f64::NAN;
    assert!(matches!(
        inertia(x.view(), &labels, cn.view()),
        Err(EngineError::InvalidParameter { .. })
    ));

    let mut st = ClusterStats::new(2);
    assert_eq!(
        st.push(0, &[1.0]),
        Err(EngineError::DimensionMismatch {
            expected: 2,
            got: 1
        })
    );
    st.push(0, &[1.0, 2.0]).unwrap();
    assert!(matches!(
        st.push(0, &[1.0, f64::NEG_INFINITY]),
        Err(EngineError::NonFinite {
            row: 1,
            feature: 1,
            ..
        })
    ));
    assert_eq!(st.n(), 1);
    assert!(silhouette_sampled(x.view(), &labels, 1, 1).is_err());
}

#[test]
fn inertia_known_value() {
    let x = Array2::from_shape_vec((3, 2), vec![0., 0., 1., 1., 4., 4.]).unwrap();
    let c = Array2::from_shape_vec((2, 2), vec![0.5, 0.5, 4., 5.]).unwrap();
    assert_eq!(
        inertia(x.view(), &[0, 0, 1], c.view()).unwrap(),
        0.5 + 0.5 + 1.0
    );
}

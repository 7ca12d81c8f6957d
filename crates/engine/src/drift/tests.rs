//! Drift measures against numpy / scipy fixtures (fixtures/make_drift_fixtures.py).
use super::*;
use serde_json::Value as Json;

fn fixture() -> Json {
    serde_json::from_str(include_str!("../../fixtures/drift/drift.json")).expect("fixture")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn floats(v: &Json) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn column(v: &Json) -> Vec<Option<f64>> {
    v.as_array().unwrap().iter().map(Json::as_f64).collect()
}

fn binned(bins: &NumericBins, xs: &[Option<f64>]) -> Vec<f64> {
    let mut counts = vec![0u64; bins.bins()];
    for &x in xs {
        counts[bins.bin(x)] += 1;
    }
    shares(&counts)
}

#[test]
fn deciles_shares_psi_and_js_match_numpy_and_scipy() {
    let f = fixture();
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let reference = column(&case["reference"]);
        let current = column(&case["current"]);
        let values: Vec<f64> = reference.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let bins = NumericBins::fit(&values);
        let want_edges = floats(&case["edges"]);
        assert_eq!(bins.edges.len(), want_edges.len(), "{name}: edges");
        for (g, w) in bins.edges.iter().zip(&want_edges) {
            assert!(close(*g, *w), "{name}: edge {g} vs {w}");
        }
        let e = binned(&bins, &reference);
        let a = binned(&bins, &current);
        for (g, w) in e.iter().zip(floats(&case["expected"])) {
            assert!(close(*g, w), "{name}: expected shares");
        }
        for (g, w) in a.iter().zip(floats(&case["actual"])) {
            assert!(close(*g, w), "{name}: actual shares");
        }
        let (p, j) = (psi(&e, &a), js_distance(&e, &a));
        assert!(close(p, case["psi"].as_f64().unwrap()), "{name}: psi {p}");
        assert!(close(j, case["js"].as_f64().unwrap()), "{name}: js {j}");
        if name == "same data" {
            assert_eq!(p, 0.0);
            assert_eq!(j, 0.0);
        }
    }
    for pair in f["shares"].as_array().unwrap() {
        let (p, q) = (floats(&pair["p"]), floats(&pair["q"]));
        assert!(close(psi(&p, &q), pair["psi"].as_f64().unwrap()));
        assert!(close(js_distance(&p, &q), pair["js"].as_f64().unwrap()));
    }
}

#[test]
fn categories_unseen_values_and_nulls_have_their_bins() {
    let train = ["a", "b", "a", "c", "a", "b"];
    let bins = CategoryBins::fit(train.iter().map(|s| Some(*s)).chain([None]));
    assert_eq!(bins.categories, vec!["a", "b", "c"]);
    assert_eq!(bins.bins(), 5);
    assert_eq!(bins.bin(Some("b")), 1);
    assert_eq!(bins.bin(Some("zzz")), 3);
    assert_eq!(bins.bin(None), 4);
    let b = Bins::Categorical(bins);
    assert_eq!(b.names(), vec!["a", "b", "c", "(unseen)", "NULL"]);
}

#[test]
fn an_all_null_column_has_one_bin_and_drift_from_it_is_measured() {
    let bins = NumericBins::fit(&[f64::NAN, f64::NAN]);
    assert_eq!(bins.bins(), 2);
    assert_eq!(bins.bin(None), 1);
    assert_eq!(bins.bin(Some(3.0)), 0);
    let e = binned(&bins, &[None, None]);
    assert_eq!(e, vec![0.0, 1.0]);
    let a = binned(&bins, &[Some(1.0), None]);
    assert!(psi(&e, &a) > 0.25);
    assert_eq!(band(psi(&e, &e)), "stable");
    assert_eq!(band(0.1), "moderate");
    assert_eq!(band(0.25), "moderate");
    assert_eq!(band(0.2501), "significant");
}

#[test]
fn references_round_trip_through_json() {
    let r = Reference {
        features: vec![
            FeatureReference {
                name: "x".into(),
                bins: Bins::Numeric(NumericBins::fit(&[1.0, 2.0, 3.0, f64::NAN])),
                shares: vec![],
            },
            FeatureReference {
                name: "r".into(),
                bins: Bins::Categorical(CategoryBins::new(vec!["n".into(), "s".into()])),
                shares: vec![0.5, 0.25, 0.125, 0.125],
            },
        ],
        segment_shares: vec![0.75, 0.25],
    };
    let mut r = r;
    r.features[0].shares = vec![0.1; r.features[0].bins.len()];
    assert_eq!(Reference::from_json(&r.to_json()), Some(r.clone()));
    assert_eq!(
        Reference::from_json(&serde_json::json!({"features": 3})),
        None
    );
}

//! The scikit-learn fixtures, the scalers and the NULL policies.

use super::*;

// ---------------------------------------------------------------- fixtures

#[test]
fn fixture_scalers_and_imputers_match_sklearn() {
    let f = fixture(include_str!("../../../fixtures/encode/scalers.json"));
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() > 50);
    for (i, c) in cases.iter().enumerate() {
        run_fixture_case(c, &format!("scalers case {i} {}", c["spec"]));
    }
    assert!(
        FAST_ROWS.with(|n| n.get()) > 0,
        "the fast path was exercised"
    );
}

#[test]
fn fixture_one_hot_matches_pandas_and_sklearn() {
    let f = fixture(include_str!("../../../fixtures/encode/onehot.json"));
    for (i, c) in f["cases"].as_array().unwrap().iter().enumerate() {
        run_fixture_case(c, &format!("onehot case {i} {}", c["spec"]));
    }
    assert!(
        FAST_ROWS.with(|n| n.get()) > 0,
        "the fast path was exercised"
    );
}

#[test]
fn fixture_ordinal_matches_sklearn() {
    let f = fixture(include_str!("../../../fixtures/encode/ordinal.json"));
    for (i, c) in f["cases"].as_array().unwrap().iter().enumerate() {
        run_fixture_case(c, &format!("ordinal case {i} {}", c["spec"]));
    }
    assert!(
        FAST_ROWS.with(|n| n.get()) > 0,
        "the fast path was exercised"
    );
}

#[test]
fn fixture_quantile_bins_match_kbinsdiscretizer() {
    let f = fixture(include_str!("../../../fixtures/encode/bins.json"));
    for (i, c) in f["cases"].as_array().unwrap().iter().enumerate() {
        let label = format!("bins case {i} {}", c["spec"]);
        let enc = run_fixture_case(c, &label);
        let j = enc.to_json();
        let edges: Vec<f64> = j["features"][0]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| num_from_json(e).unwrap())
            .collect();
        let want: Vec<f64> = serde_json::from_value(c["expected_edges"].clone()).unwrap();
        assert_eq!(edges.len(), want.len(), "{label}");
        for (a, b) in edges.iter().zip(&want) {
            assert!(close(*a, *b), "{label}: edge {a} vs {b}");
        }
    }
}

#[test]
fn fixture_combined_spec_end_to_end() {
    let c = fixture(include_str!("../../../fixtures/encode/combined.json"));
    let specs = parse_spec(&c["spec"]).unwrap();
    let raw = raw_from(&specs, &c["columns"]);
    let enc = fit(&specs, &raw).unwrap();
    let names: Vec<String> = serde_json::from_value(c["output_names"].clone()).unwrap();
    assert_eq!(enc.output_names(), names);
    let out = enc.transform(&raw).unwrap();
    let kept: Vec<usize> = serde_json::from_value(c["kept_rows"].clone()).unwrap();
    assert_eq!(out.kept_rows, kept);
    let skipped: Vec<(usize, String)> = serde_json::from_value(c["skipped"].clone()).unwrap();
    assert_eq!(out.skipped, skipped);
    assert_rows(&out.matrix, enc.dim(), &c["expected_fit"], "combined");
    // and after a catalog round trip through text
    let text = serde_json::to_string(&enc.to_json()).unwrap();
    let back = FittedEncoder::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(back.transform(&raw).unwrap(), out);
}

// ---------------------------------------------------------------- scalers

#[test]
fn standard_uses_population_std() {
    let raw = num_col(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0)]);
    let (_, out) = encode1(json!("standard"), &raw);
    let sd = 1.25f64.sqrt();
    let want = [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd];
    for (g, w) in out.matrix.iter().zip(want) {
        assert!(close(*g, w));
    }
}

#[test]
fn standard_constant_column_gets_scale_one() {
    let raw = num_col(&[Some(5.0); 10]);
    let (enc, out) = encode1(json!("standard"), &raw);
    assert!(out.matrix.iter().all(|v| *v == 0.0));
    assert_eq!(enc.to_json()["features"][0]["scale"], json!(1.0));
}

#[test]
fn min_max_constant_column_gets_scale_one() {
    let raw = num_col(&[Some(-2.0); 4]);
    let (enc, out) = encode1(json!("min_max"), &raw);
    assert!(out.matrix.iter().all(|v| *v == 0.0));
    let mut row = [0.0];
    enc.transform_row(&[Value::Num(1.0)], &mut row).unwrap();
    assert_eq!(row[0], 3.0);
}

#[test]
fn robust_zero_iqr_gets_scale_one() {
    let raw = num_col(&[
        Some(1.0),
        Some(2.0),
        Some(2.0),
        Some(2.0),
        Some(2.0),
        Some(9.0),
    ]);
    let (_, out) = encode1(json!("robust"), &raw);
    assert_eq!(out.matrix, vec![-1.0, 0.0, 0.0, 0.0, 0.0, 7.0]);
}

#[test]
fn log_standard_negative_is_error_naming_feature_and_row() {
    let raw = num_col(&[Some(1.0), Some(0.0), Some(-0.5), Some(3.0)]);
    let specs = spec1("income", json!("log_standard"));
    expect_encode(
        fit(&specs, &raw),
        "income",
        Some(2),
        "log_standard needs values >= 0",
    );
    let ok = num_col(&[Some(1.0), Some(0.0), Some(3.0)]);
    let enc = fit(&specs, &ok).unwrap();
    expect_encode(enc.transform(&raw), "income", Some(2), "got -0.5");
    let mut out = [0.0];
    expect_encode(
        enc.transform_row(&[Value::Num(-1.0)], &mut out),
        "income",
        None,
        "log_standard",
    );
}

#[test]
fn passthrough_keeps_values() {
    let raw = num_col(&[Some(1.5), Some(-7.0)]);
    let (_, out) = encode1(json!("passthrough"), &raw);
    assert_eq!(out.matrix, vec![1.5, -7.0]);
}

// ---------------------------------------------------------------- NULL policies

#[test]
fn null_policy_error_names_feature_and_row() {
    let raw = num_col(&[Some(1.0), Some(2.0), None, Some(3.0)]);
    let specs = spec1("age", json!("standard"));
    expect_encode(fit(&specs, &raw), "age", Some(2), "NULL");
    let enc = fit(&specs, &num_col(&[Some(1.0), Some(2.0)])).unwrap();
    expect_encode(enc.transform(&raw), "age", Some(2), "policy is \"error\"");
    let mut out = [0.0];
    expect_encode(
        enc.transform_row(&[Value::Null], &mut out),
        "age",
        None,
        "NULL",
    );
    let e = enc.transform(&raw).unwrap_err();
    assert_eq!(e.kind(), crate::error::ErrorKind::DataException);
}

#[test]
fn nan_and_infinity_are_null() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let raw = num_col(&[Some(1.0), Some(bad), Some(3.0)]);
        expect_encode(
            fit(&spec1("x", json!("standard")), &raw),
            "x",
            Some(1),
            "NULL",
        );
        let (_, out) = encode1(json!({"standard": {}, "null": "mean"}), &raw);
        assert_eq!(out.matrix[1], 0.0, "imputed mean standardizes to 0");
        assert!(
            close(out.matrix[0], -1.0) && close(out.matrix[2], 1.0),
            "stats ignore {bad}"
        );
    }
}

#[test]
fn null_policy_mean_imputes_fitted_mean() {
    let raw = num_col(&[Some(1.0), None, Some(5.0)]);
    let (enc, out) = encode1(json!({"passthrough": {}, "null": "mean"}), &raw);
    assert_eq!(out.matrix, vec![1.0, 3.0, 5.0]);
    assert_eq!(enc.to_json()["features"][0]["fill"], json!(3.0));
}

#[test]
fn null_policy_median_imputes_fitted_median() {
    let raw = num_col(&[Some(1.0), None, Some(2.0), Some(10.0), Some(4.0)]);
    let (_, out) = encode1(json!({"passthrough": {}, "null": "median"}), &raw);
    assert_eq!(out.matrix[1], 3.0);
}

#[test]
fn null_policy_mode_numeric_ties_take_smallest() {
    let raw = num_col(&[Some(4.0), Some(2.0), None, Some(4.0), Some(2.0), Some(9.0)]);
    let (_, out) = encode1(json!({"passthrough": {}, "null": "mode"}), &raw);
    assert_eq!(out.matrix[2], 2.0);
}

#[test]
fn null_policy_mode_text_ties_take_text_ascending() {
    let raw = text_col(&[Some("b"), Some("a"), None, Some("b"), Some("a"), Some("c")]);
    let (enc, out) = encode1(json!({"one_hot": {"top": 1}, "null": "mode"}), &raw);
    assert_eq!(enc.output_names(), vec!["x=a", "x=(other)"]);
    assert_eq!(&out.matrix[4..6], &[1.0, 0.0]);
}

#[test]
fn null_policy_constant_imputes_in_input_units() {
    let raw = num_col(&[Some(0.0), None, Some(3.0)]);
    let (_, out) = encode1(json!({"log_standard": {}, "null": {"constant": 3}}), &raw);
    assert!(
        close(out.matrix[1], out.matrix[2]),
        "constant 3 encodes like the value 3"
    );
    let raw = text_col(&[Some("a"), None, Some("b")]);
    let (_, out) = encode1(json!({"one_hot": {}, "null": {"constant": "zzz"}}), &raw);
    assert_eq!(
        &out.matrix[3..6],
        &[0.0, 0.0, 1.0],
        "unseen constant goes to (other)"
    );
}

#[test]
fn null_policy_indicator_adds_column() {
    let raw = num_col(&[Some(2.0), None, Some(4.0)]);
    let (enc, out) = encode1(
        json!({"passthrough": {}, "null": "indicator", "weight": 4}),
        &raw,
    );
    assert_eq!(enc.output_names(), vec!["x", "x(is_null)"]);
    assert_eq!(out.matrix, vec![4.0, 0.0, 6.0, 2.0, 8.0, 0.0]);
}

#[test]
fn null_policy_skip_excludes_rows_and_reports_them() {
    let mut raw = RawColumns::new(&[ColumnKind::Numeric, ColumnKind::Numeric]);
    for (a, b) in [
        (Some(1.0), Some(10.0)),
        (None, None),
        (Some(3.0), Some(30.0)),
        (Some(f64::NAN), Some(1e9)),
    ] {
        raw.push_num(0, a);
        raw.push_num(1, b);
    }
    let specs =
        parse_spec(&json!({"a": {"passthrough": {}, "null": "skip"}, "b": "min_max"})).unwrap();
    let enc = fit(&specs, &raw).unwrap();
    let out = enc.transform(&raw).unwrap();
    assert_eq!(out.kept_rows, vec![0, 2]);
    assert_eq!(
        out.skipped,
        vec![(1, "a".to_string()), (3, "a".to_string())]
    );
    // b's NULL in row 1 raised nothing; b's min/max ignore the skipped rows (1e9)
    assert_eq!(out.matrix, vec![1.0, 0.0, 3.0, 1.0]);
    let mut row = [7.0, 7.0];
    assert!(!enc
        .transform_row(&[Value::Null, Value::Num(5.0)], &mut row)
        .unwrap());
    assert_eq!(row, [7.0, 7.0], "out untouched on skip");
    assert!(!enc
        .transform_row(&[Value::Num(f64::NAN), Value::Null], &mut row)
        .unwrap());
    assert!(enc
        .transform_row(&[Value::Num(2.0), Value::Num(20.0)], &mut row)
        .unwrap());
    assert_eq!(row, [2.0, 0.5]);
}

#[test]
fn all_rows_skipped_is_no_rows() {
    let raw = num_col(&[None, None]);
    let r = fit(&spec1("x", json!({"standard": {}, "null": "skip"})), &raw);
    assert_eq!(r.unwrap_err(), EngineError::NoRows);
    assert_eq!(
        fit(&spec1("x", json!("standard")), &num_col(&[])).unwrap_err(),
        EngineError::NoRows
    );
}

#[test]
fn all_null_column_cannot_be_fitted() {
    let raw = num_col(&[None, None]);
    expect_encode(
        fit(&spec1("x", json!({"standard": {}, "null": "mean"})), &raw),
        "x",
        None,
        "every training value is NULL",
    );
    expect_encode(
        fit(
            &spec1("x", json!({"standard": {}, "null": {"constant": 1}})),
            &raw,
        ),
        "x",
        None,
        "NULL",
    );
    // passthrough + constant needs no statistics
    let (_, out) = encode1(json!({"passthrough": {}, "null": {"constant": 1.5}}), &raw);
    assert_eq!(out.matrix, vec![1.5, 1.5]);
}

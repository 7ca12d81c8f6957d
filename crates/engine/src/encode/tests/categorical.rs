//! One-hot, ordinal, quantile bins, weights, the inverse map and `transform_row`.

use super::*;

// ---------------------------------------------------------------- one-hot

#[test]
fn one_hot_unseen_category_goes_to_other() {
    let raw = text_col(&[Some("a"), Some("b"), Some("a")]);
    let (enc, _) = encode1(json!("one_hot"), &raw);
    assert_eq!(enc.output_names(), vec!["x=a", "x=b", "x=(other)"]);
    let out = enc
        .transform(&text_col(&[Some("zebra"), Some("b")]))
        .unwrap();
    assert_eq!(out.matrix, vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    let mut row = [9.0; 3];
    enc.transform_row(&[Value::Text("never seen")], &mut row)
        .unwrap();
    assert_eq!(row, [0.0, 0.0, 1.0]);
}

#[test]
fn one_hot_top_n_ties_broken_by_text() {
    let raw = text_col(&[
        Some("d"),
        Some("c"),
        Some("b"),
        Some("c"),
        Some("b"),
        Some("a"),
        Some("a"),
    ]);
    let (enc, out) = encode1(json!({"one_hot": {"top": 2}}), &raw);
    assert_eq!(enc.output_names(), vec!["x=a", "x=b", "x=(other)"]);
    assert_eq!(
        &out.matrix[3..6],
        &[0.0, 0.0, 1.0],
        "c (tied, later text) is other"
    );
}

#[test]
fn one_hot_null_category_column() {
    let raw = text_col(&[Some("a"), None, Some("b")]);
    let (enc, out) = encode1(json!({"one_hot": {"null_category": true}}), &raw);
    assert_eq!(
        enc.output_names(),
        vec!["x=a", "x=b", "x=(other)", "x=(null)"]
    );
    assert_eq!(&out.matrix[4..8], &[0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn one_hot_null_without_null_category_is_error() {
    let raw = text_col(&[Some("a"), None]);
    expect_encode(
        fit(&spec1("region", json!("one_hot")), &raw),
        "region",
        Some(1),
        "null_category",
    );
}

#[test]
fn one_hot_numbers_and_bools_are_stringified() {
    let mut raw = RawColumns::new(&[ColumnKind::Numeric]);
    for v in [3.0, 2.5, 3.0, -0.0] {
        raw.push_num(0, Some(v));
    }
    let (enc, out) = encode1(json!("one_hot"), &raw);
    assert_eq!(enc.output_names(), vec!["x=0", "x=2.5", "x=3", "x=(other)"]);
    assert_eq!(&out.matrix[0..4], &[0.0, 0.0, 1.0, 0.0]);
    let mut row = [0.0; 4];
    enc.transform_row(&[Value::Text("2.5")], &mut row).unwrap();
    assert_eq!(row, [0.0, 1.0, 0.0, 0.0]);
    enc.transform_row(&[Value::Num(0.0)], &mut row).unwrap();
    assert_eq!(row, [1.0, 0.0, 0.0, 0.0]);
    // a text column fed numbers at assignment time
    let (enc, _) = encode1(json!("one_hot"), &text_col(&[Some("7"), Some("8")]));
    enc.transform_row(&[Value::Num(8.0)], &mut row[..3])
        .unwrap();
    assert_eq!(&row[..3], &[0.0, 1.0, 0.0]);
    // bool columns are the categories "false" / "true"
    let mut raw = RawColumns::new(&[ColumnKind::Bool]);
    for b in [Some(true), Some(false), Some(true)] {
        raw.push_bool(0, b);
    }
    let (enc, out) = encode1(json!("one_hot"), &raw);
    assert_eq!(enc.output_names(), vec!["x=false", "x=true", "x=(other)"]);
    assert_eq!(&out.matrix[0..3], &[0.0, 1.0, 0.0]);
    enc.transform_row(&[Value::Bool(false)], &mut row[..3])
        .unwrap();
    assert_eq!(&row[..3], &[1.0, 0.0, 0.0]);
    assert_eq!(enc.feature_kinds(), vec![ColumnKind::Bool]);
}

#[test]
fn canonical_number_text() {
    let mut b = NumText::new();
    assert_eq!(b.format(3.0), "3");
    assert_eq!(b.format(-0.0), "0");
    assert_eq!(b.format(-12.0), "-12");
    assert_eq!(b.format(2.5), "2.5");
    assert_eq!(b.format(0.1), "0.1");
    assert_eq!(b.format(1e20), "1e20");
    assert_eq!(b.format(1e15), "1000000000000000");
    assert_eq!(
        b.format(-1.2345678901234568e-300),
        "-1.2345678901234568e-300"
    );
    assert_eq!(b.format(0.30000000000000004), "0.30000000000000004");
}

// ---------------------------------------------------------------- ordinal, bins

#[test]
fn ordinal_value_outside_order_is_error() {
    let spec = json!({"ordinal": {"order": ["low", "mid", "high"]}});
    let raw = text_col(&[Some("low"), Some("huge"), Some("high")]);
    expect_encode(
        fit(&spec1("tier", spec.clone()), &raw),
        "tier",
        Some(1),
        "\"huge\"",
    );
    let ok = text_col(&[Some("low"), Some("high")]);
    let enc = fit(&spec1("tier", spec), &ok).unwrap();
    expect_encode(
        enc.transform(&raw),
        "tier",
        Some(1),
        "not in the ordinal order [low, mid, high]",
    );
    let mut out = [0.0];
    expect_encode(
        enc.transform_row(&[Value::Text("huge")], &mut out),
        "tier",
        None,
        "huge",
    );
    assert_eq!(enc.inverse_numeric(0, 0.0), None, "ordinal is categorical");
}

#[test]
fn ordinal_ranks_are_standardized_and_accept_numbers() {
    let mut raw = RawColumns::new(&[ColumnKind::Numeric]);
    for v in [1.0, 2.0, 3.0] {
        raw.push_num(0, Some(v));
    }
    let (enc, out) = encode1(json!({"ordinal": {"order": ["3", "2", "1"]}}), &raw);
    let s = (2.0f64 / 3.0).sqrt();
    assert!(
        close(out.matrix[0], 1.0 / s)
            && close(out.matrix[1], 0.0)
            && close(out.matrix[2], -1.0 / s)
    );
    let mut row = [0.0];
    enc.transform_row(&[Value::Text("3")], &mut row).unwrap();
    assert!(close(row[0], -1.0 / s));
}

#[test]
fn quantile_bins_value_on_inner_edge_goes_up() {
    // quartile edges of 0..=8 are 0, 2, 4, 6, 8
    let raw = num_col(&(0..=8).map(|v| Some(v as f64)).collect::<Vec<_>>());
    let (enc, _) = encode1(json!({"quantile_bins": {"bins": 4}}), &raw);
    let edges = &enc.to_json()["features"][0]["edges"];
    assert_eq!(edges, &json!([0.0, 2.0, 4.0, 6.0, 8.0]));
    let bin = |x: f64| {
        let mut out = [0.0];
        enc.transform_row(&[Value::Num(x)], &mut out).unwrap();
        enc.inverse_numeric(0, out[0]).unwrap()
    };
    // inverse maps a whole bin index to the bin's midpoint
    assert!(close(bin(1.9), 1.0));
    assert!(close(bin(2.0), 3.0));
    assert!(close(bin(-100.0), 1.0));
    assert!(close(bin(100.0), 7.0));
}

// ---------------------------------------------------------------- weight

#[test]
fn weight_scales_squared_distance_by_w() {
    let raw = num_col(&[Some(1.0), Some(2.0), Some(4.0), Some(8.0)]);
    let (_, plain) = encode1(json!("standard"), &raw);
    let (enc, heavy) = encode1(json!({"standard": {}, "weight": 3.0}), &raw);
    let d = |m: &[f64]| (m[0] - m[3]).powi(2);
    assert!(close(d(&heavy.matrix), 3.0 * d(&plain.matrix)));
    // inverse takes the weighted coordinate
    assert!(close(enc.inverse_numeric(0, heavy.matrix[2]).unwrap(), 4.0));
    let raw = text_col(&[Some("a"), Some("b")]);
    let (_, out) = encode1(json!({"one_hot": {}, "weight": 0.25}), &raw);
    assert_eq!(out.matrix, vec![0.5, 0.0, 0.0, 0.0, 0.5, 0.0]);
}

// ---------------------------------------------------------------- inverse

#[test]
fn inverse_numeric_returns_original_units() {
    let vals: Vec<Option<f64>> = [3.0, 10.0, 0.0, 250.0, 41.5]
        .iter()
        .map(|v| Some(*v))
        .collect();
    let raw = num_col(&vals);
    for enc_name in [
        "standard",
        "min_max",
        "robust",
        "log_standard",
        "passthrough",
    ] {
        let (enc, out) = encode1(json!(enc_name), &raw);
        for (k, v) in vals.iter().enumerate() {
            let back = enc.inverse_numeric(0, out.matrix[k]).unwrap();
            assert!(
                (back - v.unwrap()).abs() <= 1e-9 * v.unwrap().abs().max(1.0),
                "{enc_name}: {back} vs {v:?}"
            );
        }
        assert_eq!(enc.inverse_numeric(1, 0.0), None);
        assert_eq!(enc.inverse_numeric(0, f64::NAN), None);
    }
    let (enc, _) = encode1(json!("one_hot"), &text_col(&[Some("a")]));
    assert_eq!(enc.inverse_numeric(0, 1.0), None);
}

// ---------------------------------------------------------------- transform_row

#[test]
fn transform_row_type_errors_name_the_feature() {
    let raw = num_col(&[Some(1.0), Some(2.0)]);
    let (enc, _) = encode1(json!("standard"), &raw);
    let mut out = [0.0];
    expect_encode(
        enc.transform_row(&[Value::Text("12")], &mut out),
        "x",
        None,
        "expects a number, got text \"12\"",
    );
    expect_encode(
        enc.transform_row(&[Value::Bool(true)], &mut out),
        "x",
        None,
        "got boolean",
    );
    // a text column handed to a numeric encoder in batch
    expect_encode(
        enc.transform(&text_col(&[Some("a")])),
        "x",
        None,
        "needs a numeric column",
    );
}

#[test]
fn transform_row_checks_lengths() {
    let raw = num_col(&[Some(1.0), Some(2.0)]);
    let (enc, _) = encode1(json!({"standard": {}, "null": "indicator"}), &raw);
    let mut out = [0.0; 2];
    assert_eq!(
        enc.transform_row(&[], &mut out).unwrap_err(),
        EngineError::DimensionMismatch {
            expected: 1,
            got: 0
        }
    );
    assert_eq!(
        enc.transform_row(&[Value::Num(1.0)], &mut out[..1])
            .unwrap_err(),
        EngineError::DimensionMismatch {
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        enc.transform(&RawColumns::new(&[])).unwrap_err(),
        EngineError::DimensionMismatch {
            expected: 1,
            got: 0
        }
    );
}

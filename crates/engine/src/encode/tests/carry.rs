//! Carrying centroids between encoders (`FittedEncoder::carry_to`, the warm start of a
//! refresh whose encoder is refit).

use super::*;

/// Columns in the spec's (name) order: amount (numeric, some NULLs), region (text),
/// visits (numeric).
fn data(scale: f64, shift: f64, regions: &[&str], n: usize) -> RawColumns {
    let mut raw = RawColumns::new(&[ColumnKind::Numeric, ColumnKind::Text, ColumnKind::Numeric]);
    for i in 0..n {
        let x = (i % 37) as f64 * scale + shift;
        raw.push_num(0, (i % 11 != 0).then_some(x));
        raw.push_text(1, Some(regions[i % regions.len()]));
        raw.push_num(2, Some(((i * 7) % 23) as f64 + 1.0));
    }
    raw
}

fn spec(amount: &str) -> Vec<FeatureSpec> {
    parse_spec(
        &serde_json::from_str(&format!(
            r#"{{"amount": {{"{amount}": {{}}, "null": "indicator", "weight": 2}},
            "visits": "log_standard",
            "region": {{"one_hot": {{"top": 3}}}}}}"#
        ))
        .unwrap(),
    )
    .unwrap()
}

/// Mean of the encoded rows `rows` of `x` (width `dim`).
fn mean_of(x: &[f64], dim: usize, rows: &[usize]) -> Vec<f64> {
    let mut m = vec![0.0; dim];
    for &r in rows {
        for j in 0..dim {
            m[j] += x[r * dim + j] / rows.len() as f64;
        }
    }
    m
}

#[test]
fn carrying_into_the_same_encoder_is_the_identity() {
    for amount in [
        "standard",
        "min_max",
        "robust",
        "passthrough",
        "quantile_bins",
    ] {
        let raw = data(3.0, 5.0, &["n", "s", "e", "w"], 400);
        let enc = fit(&spec(amount), &raw).unwrap();
        let x = enc.transform(&raw).unwrap().matrix;
        let dim = enc.dim();
        let c = mean_of(&x, dim, &(0..150).collect::<Vec<_>>());
        let back = enc.carry_to(&enc, &c).unwrap();
        for (a, b) in back.iter().zip(&c) {
            assert!(close(*a, *b), "{amount}: {back:?} vs {c:?}");
        }
    }
}

/// For the affine encoders a centroid is the mean of its rows, and the mean commutes with
/// the affine map: the carried centroid is exactly the mean of the same rows encoded by
/// the new encoder. One-hot shares carry by category name; a category the new encoder
/// drops goes to "(other)", a new one starts at 0.
#[test]
fn a_carried_centroid_is_the_mean_of_its_rows_in_the_new_space() {
    let old_raw = data(3.0, 5.0, &["n", "n", "s", "e", "w"], 500);
    // New data: amounts rescaled and shifted; "w" gone from the top 3, "x" new.
    let new_raw = data(4.5, -2.0, &["n", "x", "x", "s", "e", "x"], 600);
    for amount in ["standard", "min_max", "robust", "passthrough"] {
        let old = fit(&spec(amount), &old_raw).unwrap();
        let new = fit(&spec(amount), &new_raw).unwrap();
        let xo = old.transform(&old_raw).unwrap().matrix;
        // Rows with an amount: a NULL is imputed with each encoder's own fill value.
        let rows: Vec<usize> = (0..500).filter(|i| i % 3 == 0 && i % 11 != 0).collect();
        let c_old = mean_of(&xo, old.dim(), &rows);
        let carried = old.carry_to(&new, &c_old).unwrap();
        // The same rows, encoded by the new encoder.
        let xn = new.transform(&old_raw).unwrap().matrix;
        let c_new = mean_of(&xn, new.dim(), &rows);
        let names = new.output_names();
        for (j, name) in names.iter().enumerate() {
            if name.starts_with("visits") || name.starts_with("amount") {
                assert!(
                    close(carried[j], c_new[j]),
                    "{amount} {name}: carried {} vs mean {}",
                    carried[j],
                    c_new[j]
                );
            }
        }
        // Shares by category: n, s, e kept; w (dropped from the new top 3) lands in
        // (other), which is exactly how the new encoder sees those rows.
        for (j, name) in names.iter().enumerate() {
            if name.starts_with("region") {
                assert!(
                    close(carried[j], c_new[j]),
                    "{amount} {name}: {carried:?} vs {c_new:?}"
                );
            }
        }
    }
}

#[test]
fn carrying_refuses_other_features_and_wrong_widths() {
    let raw = data(1.0, 0.0, &["a", "b"], 50);
    let enc = fit(&spec("standard"), &raw).unwrap();
    assert!(matches!(
        enc.carry_to(&enc, &[0.0]).unwrap_err(),
        EngineError::DimensionMismatch { .. }
    ));
    let mut one = RawColumns::new(&[ColumnKind::Numeric]);
    one.push_num(0, Some(1.0));
    one.push_num(0, Some(2.0));
    let other = fit(
        &parse_spec(&serde_json::json!({"z": "standard"})).unwrap(),
        &one,
    )
    .unwrap();
    let err = enc.carry_to(&other, &vec![0.0; enc.dim()]).unwrap_err();
    assert!(err.to_string().contains("different features"), "{err}");
}

//! Values at float8's limits: refused naming the feature, never stored.

use super::*;

// ---- values at float8's limits: refused naming the feature, never stored -----

fn extremes() -> RawColumns {
    num_col(&[
        Some(1e308),
        Some(-1e308),
        Some(5e-324),
        Some(0.0),
        Some(1.0),
    ])
}

#[test]
fn min_max_whose_range_overflows_is_refused() {
    let specs = spec1("x", json!("min_max"));
    expect_encode(
        fit(&specs, &extremes()),
        "x",
        None,
        "statistics overflow float8",
    );
}

#[test]
fn standard_whose_variance_overflows_is_refused() {
    // The variance overflows, so the scale falls back to 1 and the encoded values
    // stay near ±1e308: out of range.
    let specs = spec1("x", json!("standard"));
    expect_encode(fit(&specs, &extremes()), "x", None, "beyond the 1e100");
}

#[test]
fn passthrough_beyond_max_encoded_is_refused() {
    let specs = spec1("x", json!("passthrough"));
    expect_encode(fit(&specs, &extremes()), "x", None, "beyond the 1e100");
    // just inside the bound is fine
    let raw = num_col(&[Some(MAX_ENCODED), Some(-MAX_ENCODED), Some(0.0)]);
    assert!(fit(&specs, &raw).is_ok());
}

#[test]
fn robust_with_a_tiny_spread_and_huge_outliers_is_refused() {
    let raw = num_col(&[Some(0.0), Some(0.0), Some(1e-300), Some(0.0), Some(1e200)]);
    let specs = spec1("x", json!("robust"));
    expect_encode(fit(&specs, &raw), "x", None, "beyond the 1e100");
}

#[test]
fn imputed_value_beyond_max_encoded_is_refused() {
    let raw = num_col(&[Some(0.0), Some(1.0), None]);
    let specs = spec1("x", json!({"passthrough": {}, "null": {"constant": 1e200}}));
    expect_encode(fit(&specs, &raw), "x", None, "beyond the 1e100");
}

#[test]
fn log_standard_and_bins_handle_values_near_the_limit() {
    let raw = num_col(&[Some(1e308), Some(5e-324), Some(0.0), Some(1.0)]);
    assert!(fit(&spec1("x", json!("log_standard")), &raw).is_ok());
    assert!(fit(
        &spec1("x", json!({"quantile_bins": {"bins": 2}})),
        &extremes()
    )
    .is_ok());
}

#[test]
fn weight_above_max_weight_is_refused() {
    let mut m = Map::new();
    m.insert("x".into(), json!({"standard": {}, "weight": 1e7}));
    expect_invalid(parse_spec(&Json::Object(m)), "x", "<= 1e6");
    let ok = spec1("x", json!({"standard": {}, "weight": MAX_WEIGHT}));
    assert_eq!(ok[0].weight, MAX_WEIGHT);
}

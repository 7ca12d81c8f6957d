//! Spec parsing, the default spec and the kind checks (`spec.rs`, `parse.rs`).

use super::*;

// ---------------------------------------------------------------- spec parsing

#[test]
fn parse_spec_forms_defaults_and_order() {
    let specs = parse_spec(&json!({
        "z": "standard",
        "channel": {"one_hot": {"top": 5, "null_category": true}},
        "tier": {"ordinal": {"order": ["bronze", "silver", "gold"]}},
        "age2": {"quantile_bins": {"bins": 4}},
        "score": {"standard": {}, "null": "mean", "weight": 2.0},
        "x": {"min_max": {}, "null": {"constant": 0}},
        "y": {"passthrough": {}, "null": "indicator"},
        "region": "one_hot",
        "q": "quantile_bins",
        "r": {"robust": null, "null": "skip"}
    }))
    .unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["age2", "channel", "q", "r", "region", "score", "tier", "x", "y", "z"]
    );
    assert_eq!(
        specs[1].encoder,
        Encoder::OneHot {
            top: 5,
            null_category: true
        }
    );
    assert_eq!(
        specs[2].encoder,
        Encoder::QuantileBins {
            bins: DEFAULT_QUANTILE_BINS
        }
    );
    assert_eq!(specs[3].null_policy, NullPolicy::Skip);
    assert_eq!(
        specs[4].encoder,
        Encoder::OneHot {
            top: 20,
            null_category: false
        }
    );
    assert_eq!(
        (specs[5].null_policy.clone(), specs[5].weight),
        (NullPolicy::Mean, 2.0)
    );
    assert_eq!(specs[7].null_policy, NullPolicy::Constant(json!(0)));
    assert_eq!(specs[9], FeatureSpec::new("z", Encoder::Standard));
    // the canonical form parses back to the same specs
    assert_eq!(parse_spec(&spec_to_json(&specs)).unwrap(), specs);
    // serde derive uses the grammar's names
    assert_eq!(
        serde_json::to_value(&specs[1].encoder).unwrap(),
        json!({"one_hot": {"top": 5, "null_category": true}})
    );
}

#[test]
fn parse_spec_unknown_encoder_lists_valid_ones() {
    expect_invalid(parse_spec(&json!({"age": "zscore"})), "age", VALID_ENCODERS);
    expect_invalid(
        parse_spec(&json!({"age": {"zscore": {}}})),
        "age",
        VALID_ENCODERS,
    );
    expect_invalid(
        parse_spec(&json!({"age": {"null": "mean"}})),
        "age",
        "names no encoder",
    );
    expect_invalid(parse_spec(&json!({"age": 3})), "age", VALID_ENCODERS);
}

#[test]
fn parse_spec_rejects_malformed_top_level() {
    expect_invalid(parse_spec(&json!(["age"])), "features", "JSON object");
    expect_invalid(parse_spec(&json!({})), "features", "no feature");
    expect_invalid(parse_spec(&json!({"": "standard"})), "features", "empty");
}

#[test]
fn parse_spec_rejects_bad_options() {
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {}, "min_max": {}}})),
        "a",
        "two encoders",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {"top": 3}}})),
        "a",
        "takes no options",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"standard": 1}})),
        "a",
        "must be an object",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"one_hot": {"top": 0}}})),
        "a",
        "between 1 and 1000",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"one_hot": {"top": 2.5}}})),
        "a",
        "integer",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"one_hot": {"null_category": "yes"}}})),
        "a",
        "true or false",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"quantile_bins": {"bins": 1}}})),
        "a",
        "between 2 and 1000",
    );
    expect_invalid(parse_spec(&json!({"a": "ordinal"})), "a", "needs an order");
    expect_invalid(
        parse_spec(&json!({"a": {"ordinal": {"order": []}}})),
        "a",
        "must not be empty",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"ordinal": {"order": ["x", "x"]}}})),
        "a",
        "twice",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"ordinal": {"order": [1, 2]}}})),
        "a",
        "text values",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {}, "colour": 1}})),
        "a",
        "unknown key \"colour\"",
    );
}

#[test]
fn parse_spec_rejects_bad_weight() {
    for w in [json!(0), json!(-1.0), json!("heavy"), json!(null)] {
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "weight": w}})),
            "a",
            "weight",
        );
    }
}

#[test]
fn parse_spec_rejects_bad_null_policies() {
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {}, "null": "drop"}})),
        "a",
        "unknown NULL policy \"drop\"",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {}, "null": "constant"}})),
        "a",
        "needs a value",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {}, "null": {"constant": "x"}}})),
        "a",
        "finite number",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"standard": {}, "null": {"constant": [1]}}})),
        "a",
        "number, text or boolean",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"log_standard": {}, "null": {"constant": -1}}})),
        "a",
        "negative",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"one_hot": {}, "null": "mean"}})),
        "a",
        "does not apply to one_hot",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"one_hot": {}, "null": "indicator"}})),
        "a",
        "does not apply",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"one_hot": {"null_category": true}, "null": "mode"}})),
        "a",
        "null_category",
    );
    expect_invalid(
        parse_spec(&json!({"a": {"ordinal": {"order": ["x"]}, "null": {"constant": "y"}}})),
        "a",
        "not in the ordinal order",
    );
}

#[test]
fn default_spec_standardizes_numbers_and_one_hots_text() {
    let cols = vec![
        ("id".to_string(), ColumnKind::Numeric),
        ("region".to_string(), ColumnKind::Text),
        ("age".to_string(), ColumnKind::Numeric),
        ("vip".to_string(), ColumnKind::Bool),
    ];
    let specs = default_spec(&cols, "id");
    let oh = Encoder::OneHot {
        top: 20,
        null_category: false,
    };
    assert_eq!(
        specs,
        vec![
            FeatureSpec::new("age", Encoder::Standard),
            FeatureSpec::new("region", oh.clone()),
            FeatureSpec::new("vip", oh),
        ]
    );
    check_kinds(&specs, &cols).unwrap();
}

#[test]
fn check_kinds_missing_column_names_it() {
    let cols = vec![("age".to_string(), ColumnKind::Numeric)];
    let specs = parse_spec(&json!({"income": "standard"})).unwrap();
    expect_invalid(
        check_kinds(&specs, &cols),
        "income",
        "no column \"income\" (columns: age)",
    );
}

#[test]
fn check_kinds_numeric_encoder_on_text_is_rejected() {
    let cols = vec![
        ("region".to_string(), ColumnKind::Text),
        ("vip".to_string(), ColumnKind::Bool),
    ];
    let specs = parse_spec(&json!({"region": "robust"})).unwrap();
    expect_invalid(
        check_kinds(&specs, &cols),
        "region",
        "encoder \"robust\" needs a numeric column, but \"region\" is text",
    );
    let specs = parse_spec(&json!({"vip": "standard"})).unwrap();
    expect_invalid(check_kinds(&specs, &cols), "vip", "is bool");
    // fit applies the same rule to hand-built input
    let raw = text_col(&[Some("a")]);
    expect_invalid(
        fit(&spec1("x", json!("standard")), &raw),
        "x",
        "needs a numeric column",
    );
}

#[test]
fn check_kinds_allows_categorical_encoders_on_any_kind() {
    let cols = vec![
        ("store".to_string(), ColumnKind::Numeric),
        ("vip".to_string(), ColumnKind::Bool),
    ];
    let specs = parse_spec(&json!({
        "store": {"one_hot": {"top": 5}},
        "vip": {"ordinal": {"order": ["false", "true"]}}
    }))
    .unwrap();
    check_kinds(&specs, &cols).unwrap();
}

//! The catalog JSON of a fitted encoder (`stored.rs`).

use super::*;

// ---------------------------------------------------------------- JSON

fn sample_encoder() -> FittedEncoder {
    let c = fixture(include_str!("../../../fixtures/encode/combined.json"));
    let mut spec = c["spec"].clone();
    spec["tier"]["null"] = json!({"constant": "gold"});
    spec["region"]["null"] = json!("mode");
    let specs = parse_spec(&spec).unwrap();
    fit(&specs, &raw_from(&specs, &c["columns"])).unwrap()
}

#[test]
fn json_round_trip_is_exact_and_stable() {
    let enc = sample_encoder();
    let j = enc.to_json();
    assert_eq!(j["version"], json!(1));
    assert_eq!(j["dim"], json!(enc.dim()));
    let back = FittedEncoder::from_json(&j).unwrap();
    assert_eq!(back, enc);
    assert_eq!(back.to_json(), j);
    // through text, as the catalog stores it (jsonb): bit-exact
    let text = serde_json::to_string(&j).unwrap();
    let back = FittedEncoder::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(back, enc);
    assert_eq!(serde_json::to_string(&back.to_json()).unwrap(), text);
    // the serde impls use the same form
    assert_eq!(serde_json::to_value(&enc).unwrap(), j);
    let de: FittedEncoder = serde_json::from_str(&text).unwrap();
    assert_eq!(de, enc);
}

#[test]
fn json_floats_that_would_not_reparse_are_strings() {
    for x in [0.1, 1.0 / 3.0, 123456.789, 2.0f64.sqrt(), 1e-300, -7.25] {
        let j = num_to_json(x);
        let text = serde_json::to_string(&j).unwrap();
        let back = num_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.to_bits(), x.to_bits(), "{x} via {text}");
    }
    assert_eq!(num_to_json(0.5), json!(0.5));
}

#[test]
fn json_rejects_bad_input() {
    let j = sample_encoder().to_json();
    let mut v2 = j.clone();
    v2["version"] = json!(2);
    expect_invalid(
        FittedEncoder::from_json(&v2),
        "encoder",
        "unsupported encoder version 2",
    );
    let mut dim = j.clone();
    dim["dim"] = json!(1);
    expect_invalid(FittedEncoder::from_json(&dim), "encoder", "\"dim\"");
    let mut scale = j.clone();
    scale["features"][0]["scale"] = json!(0.0);
    expect_invalid(FittedEncoder::from_json(&scale), "encoder", "scale");
    let mut cats = j.clone();
    cats["features"][4]["categories"] = json!(["b", "a"]);
    expect_invalid(FittedEncoder::from_json(&cats), "encoder", "sorted");
    expect_invalid(FittedEncoder::from_json(&json!([])), "encoder", "object");
    expect_invalid(
        FittedEncoder::from_json(&json!({"version": 1, "features": []})),
        "encoder",
        "non-empty",
    );
}

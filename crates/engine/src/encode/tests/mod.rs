//! Tests of the encode module, one file per topic; fixtures and shared helpers here.

use super::stored::{num_from_json, num_to_json};
use super::*;
use serde_json::{json, Map, Value as Json};

mod carry;
mod categorical;
mod columns;
mod limits;
mod numeric;
mod parallel;
mod spec;
mod stats;
mod stored;

// ---------------------------------------------------------------- helpers

/// |a - b| <= 1e-9 * max(1, |b|): 1e-9 relative for values of magnitude >= 1 and
/// 1e-9 absolute below (standardized values sit around 1; a centred constant column
/// is rounding noise around 0).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

fn assert_rows(got: &[f64], dim: usize, want: &Json, what: &str) {
    let want = want.as_array().expect("rows");
    assert_eq!(got.len(), want.len() * dim, "{what}: matrix size");
    for (r, wr) in want.iter().enumerate() {
        let wr = wr.as_array().expect("row");
        assert_eq!(wr.len(), dim, "{what}: row {r} width");
        for (j, w) in wr.iter().enumerate() {
            let (g, w) = (got[r * dim + j], w.as_f64().unwrap());
            assert!(close(g, w), "{what}: row {r} col {j}: got {g}, want {w}");
        }
    }
}

/// Build RawColumns for `specs` from a fixture "columns" object.
fn raw_from(specs: &[FeatureSpec], cols: &Json) -> RawColumns {
    let kinds: Vec<ColumnKind> = specs
        .iter()
        .map(|s| match cols[&s.name]["kind"].as_str().unwrap() {
            "numeric" => ColumnKind::Numeric,
            "text" => ColumnKind::Text,
            _ => ColumnKind::Bool,
        })
        .collect();
    let mut raw = RawColumns::new(&kinds);
    for (i, s) in specs.iter().enumerate() {
        for v in cols[&s.name]["values"].as_array().unwrap() {
            match kinds[i] {
                ColumnKind::Numeric => raw.push_num(i, v.as_f64()),
                _ => raw.push_text(i, v.as_str()),
            }
        }
    }
    raw
}

fn run_fixture_case(case: &Json, label: &str) -> FittedEncoder {
    let specs = parse_spec(&case["spec"]).unwrap();
    let raw = raw_from(&specs, &case["columns"]);
    let enc = fit(&specs, &raw).unwrap_or_else(|e| panic!("{label}: fit: {e}"));
    let names: Vec<String> = serde_json::from_value(case["output_names"].clone()).unwrap();
    assert_eq!(enc.output_names(), names, "{label}");
    let out = enc.transform(&raw).unwrap();
    assert_rows(&out.matrix, enc.dim(), &case["expected_fit"], label);
    if let Some(apply) = case.get("apply") {
        let raw = raw_from(&specs, apply);
        let out = enc.transform(&raw).unwrap();
        assert_rows(&out.matrix, enc.dim(), &case["expected_apply"], label);
    }
    // the per-row path agrees with the batch path, bit for bit
    let batch = enc.transform(&raw).unwrap();
    let mut row_out = vec![0.0; enc.dim()];
    for (k, &r) in batch.kept_rows.iter().enumerate() {
        let vals: Vec<Value> = (0..specs.len()).map(|i| value_at(&raw, i, r)).collect();
        assert!(enc.transform_row(&vals, &mut row_out).unwrap());
        assert_eq!(
            &row_out[..],
            &batch.matrix[k * enc.dim()..(k + 1) * enc.dim()]
        );
        // and so does the put_num / put_text fast path, where it applies
        let mut fast = vec![f64::NAN; enc.dim()];
        let all = vals.iter().enumerate().all(|(i, v)| match *v {
            Value::Num(x) => enc.put_num(i, x, &mut fast),
            Value::Text(t) => enc.put_text(i, t, &mut fast),
            _ => false,
        });
        if all {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&row_out), "{label}: fast path, row {r}");
            FAST_ROWS.with(|n| n.set(n.get() + 1));
        }
    }
    enc
}

thread_local! {
    /// Rows the fast-path comparison in `run_fixture_case` covered.
    static FAST_ROWS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn value_at(raw: &RawColumns, col: usize, r: usize) -> Value<'_> {
    match raw.column(col) {
        // NULL is stored as NaN (either is null to the encoder).
        RawColumn::Numeric(v) if v[r].is_nan() => Value::Null,
        RawColumn::Numeric(v) => Value::Num(v[r]),
        RawColumn::Text { dict, codes } => {
            codes[r].map_or(Value::Null, |c| Value::Text(&dict[c as usize]))
        }
    }
}

fn fixture(text: &str) -> Json {
    serde_json::from_str(text).unwrap()
}

fn num_col(vals: &[Option<f64>]) -> RawColumns {
    let mut raw = RawColumns::new(&[ColumnKind::Numeric]);
    for v in vals {
        raw.push_num(0, *v);
    }
    raw
}

fn text_col(vals: &[Option<&str>]) -> RawColumns {
    let mut raw = RawColumns::new(&[ColumnKind::Text]);
    for v in vals {
        raw.push_text(0, *v);
    }
    raw
}

fn spec1(name: &str, v: Json) -> Vec<FeatureSpec> {
    let mut m = Map::new();
    m.insert(name.to_string(), v);
    parse_spec(&Json::Object(m)).unwrap()
}

fn encode1(spec: Json, raw: &RawColumns) -> (FittedEncoder, Encoded) {
    let specs = spec1("x", spec);
    let enc = fit(&specs, raw).unwrap();
    let out = enc.transform(raw).unwrap();
    (enc, out)
}

fn expect_invalid(r: Result<impl std::fmt::Debug, EngineError>, name: &str, needle: &str) {
    match r {
        Err(EngineError::InvalidParameter { name: n, reason }) => {
            assert_eq!(n, name, "reason: {reason}");
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        }
        other => panic!("expected InvalidParameter({name}), got {other:?}"),
    }
}

fn expect_encode(
    r: Result<impl std::fmt::Debug, EngineError>,
    feature: &str,
    row: Option<usize>,
    needle: &str,
) {
    match r {
        Err(EngineError::Encode {
            feature: f,
            row: rr,
            reason,
        }) => {
            assert_eq!(f, feature);
            assert_eq!(rr, row, "{reason}");
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        }
        other => panic!("expected Encode({feature}), got {other:?}"),
    }
}

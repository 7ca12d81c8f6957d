//! Two-thread fit and transform equal the serial ones, errors included.

use super::*;

// ---------------------------------------------------------------- threads

/// One cell of the mixed test table.
#[derive(Clone)]
enum Cell {
    N(Option<f64>),
    T(Option<&'static str>),
}

const MIXED_SPEC: &str = r#"{
        "a": "standard", "b": "log_standard", "c": "robust", "d": "min_max",
        "e": {"standard": {}, "null": "mean"}, "f": {"quantile_bins": {"bins": 5}},
        "g": {"passthrough": {}, "null": "indicator"}, "h": {"standard": {}, "null": "skip"},
        "i": {"standard": {}, "null": "median", "weight": 2.5},
        "r": {"one_hot": {"top": 4}}, "s": {"one_hot": {"top": 3, "null_category": true}},
        "t": {"ordinal": {"order": ["lo", "mid", "hi"]}}, "u": {"one_hot": {"top": 3}, "null": "mode"}
    }"#;

/// A seeded table for [`MIXED_SPEC`], one `Vec<Cell>` per feature (spec order), with
/// NULLs only where the feature's policy accepts them.
fn mixed_table(n: usize, seed: u64) -> (Vec<FeatureSpec>, Vec<Vec<Cell>>) {
    use rand::{Rng, SeedableRng};
    let specs = parse_spec(&serde_json::from_str(MIXED_SPEC).unwrap()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    const CATS: [&str; 7] = ["north", "south", "east", "west", "up", "down", "mid"];
    const ORD: [&str; 3] = ["lo", "mid", "hi"];
    let cols = specs
        .iter()
        .map(|s| {
            (0..n)
                .map(|_| {
                    let null = rng.gen::<f64>() < 0.05;
                    let v = rng.gen::<f64>();
                    match s.name.as_str() {
                        "e" | "g" | "h" | "i" if null => Cell::N(None),
                        "e" if v < 0.01 => Cell::N(Some(f64::NAN)),
                        "b" => Cell::N(Some((v * 9.0).exp())),
                        "f" => Cell::N(Some((v * 20.0).floor())),
                        "r" => Cell::T(Some(CATS[(v * v * 7.0) as usize])),
                        "s" | "u" if null => Cell::T(None),
                        "s" | "u" => Cell::T(Some(CATS[(v * 5.0) as usize])),
                        "t" => Cell::T(Some(ORD[(v * 3.0) as usize])),
                        _ => Cell::N(Some(v * 1000.0 - 300.0)),
                    }
                })
                .collect()
        })
        .collect();
    (specs, cols)
}

fn raw_of(cols: &[Vec<Cell>]) -> RawColumns {
    let kinds: Vec<ColumnKind> = cols
        .iter()
        .map(|c| match c[0] {
            Cell::N(_) => ColumnKind::Numeric,
            Cell::T(_) => ColumnKind::Text,
        })
        .collect();
    let mut raw = RawColumns::new(&kinds);
    for (i, col) in cols.iter().enumerate() {
        for cell in col {
            match cell {
                Cell::N(v) => raw.push_num(i, *v),
                Cell::T(v) => raw.push_text(i, *v),
            }
        }
    }
    raw
}

fn col_of(specs: &[FeatureSpec], name: &str) -> usize {
    specs.iter().position(|s| s.name == name).unwrap()
}

fn assert_same_encoded(a: &Encoded, b: &Encoded) {
    assert_eq!(a.kept_rows, b.kept_rows);
    assert_eq!(a.skipped, b.skipped);
    assert_eq!(a.matrix.len(), b.matrix.len());
    assert!(a
        .matrix
        .iter()
        .zip(&b.matrix)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn parallel_transform_is_bit_identical_to_serial() {
    for (n, seed) in [(2, 1), (3, 2), (101, 3), (4099, 4)] {
        let (specs, cols) = mixed_table(n, seed);
        let raw = raw_of(&cols);
        let enc = fit_impl(&specs, &raw, usize::MAX).unwrap();
        let serial = enc.transform_impl(&raw, usize::MAX, None).unwrap();
        let parallel = enc.transform_impl(&raw, 0, None).unwrap();
        assert_same_encoded(&serial, &parallel);
        assert!(n < 100 || !serial.skipped.is_empty());
        // the per-row path agrees too
        let mut out = vec![0.0; enc.dim()];
        for (i, &r) in serial.kept_rows.iter().enumerate() {
            let row: Vec<Value> = (0..specs.len()).map(|c| value_at(&raw, c, r)).collect();
            assert!(enc.transform_row(&row, &mut out).unwrap());
            let want = &serial.matrix[i * enc.dim()..(i + 1) * enc.dim()];
            assert!(out
                .iter()
                .zip(want)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}

#[test]
fn public_fit_and_transform_use_threads_and_match_serial() {
    let n = PARALLEL_MIN_ROWS + 1001;
    let (specs, cols) = mixed_table(n, 7);
    let raw = raw_of(&cols);
    let enc = fit(&specs, &raw).unwrap();
    let serial_enc = fit_impl(&specs, &raw, usize::MAX).unwrap();
    assert_eq!(enc, serial_enc);
    assert_eq!(enc.to_json(), serial_enc.to_json());
    let serial = enc.transform_impl(&raw, usize::MAX, None).unwrap();
    assert_same_encoded(&enc.transform(&raw).unwrap(), &serial);
}

#[test]
fn parallel_transform_returns_the_serial_error() {
    let n = 4000;
    let (specs, clean) = mixed_table(n, 11);
    let enc = fit_impl(&specs, &raw_of(&clean), usize::MAX).unwrap();
    let (a, b, t, h) = (
        col_of(&specs, "a"),
        col_of(&specs, "b"),
        col_of(&specs, "t"),
        col_of(&specs, "h"),
    );
    // (feature, row, cell) edits
    let cases: Vec<Vec<(usize, usize, Cell)>> = vec![
        vec![(a, 3200, Cell::N(None))],
        vec![(a, 3200, Cell::N(None)), (t, 1200, Cell::T(Some("zzz")))],
        vec![(b, 2800, Cell::N(Some(-1.0))), (a, 2800, Cell::N(None))],
        vec![(b, 2000, Cell::N(Some(-2.0))), (a, 1999, Cell::N(None))],
        vec![(t, 0, Cell::T(Some("zzz"))), (a, n - 1, Cell::N(None))],
        vec![(a, n - 1, Cell::N(None))],
        // a skipped row raises nothing; the next error does
        vec![
            (h, 1500, Cell::N(None)),
            (a, 1500, Cell::N(None)),
            (b, 3900, Cell::N(Some(-3.0))),
        ],
    ];
    let mut rows = Vec::new();
    for edits in cases {
        let mut cols = clean.clone();
        for &(_, r, _) in &edits {
            cols[h][r] = Cell::N(Some(1.0)); // not skipped unless an edit says so
        }
        for (c, r, cell) in edits {
            cols[c][r] = cell;
        }
        let raw = raw_of(&cols);
        let serial = enc.transform_impl(&raw, usize::MAX, None);
        let parallel = enc.transform_impl(&raw, 0, None);
        let Err(EngineError::Encode { row, .. }) = &serial else {
            panic!("expected an Encode error, got {serial:?}");
        };
        rows.push(row.unwrap());
        assert_eq!(parallel, serial);
    }
    assert_eq!(rows, [3200, 1200, 2800, 1999, 0, n - 1, 3900]);
}

#[test]
fn parallel_fit_returns_the_serial_error_and_parameters() {
    let n = 3000;
    let (specs, clean) = mixed_table(n, 12);
    let raw = raw_of(&clean);
    assert_eq!(
        fit_impl(&specs, &raw, 0).unwrap(),
        fit_impl(&specs, &raw, usize::MAX).unwrap()
    );
    let (a, b, t, h) = (
        col_of(&specs, "a"),
        col_of(&specs, "b"),
        col_of(&specs, "t"),
        col_of(&specs, "h"),
    );
    let cases: Vec<Vec<(usize, usize, Cell)>> = vec![
        vec![(t, 10, Cell::T(Some("zzz")))],
        vec![
            (t, 10, Cell::T(Some("zzz"))),
            (b, 2500, Cell::N(Some(-1.0))),
        ],
        vec![(b, 5, Cell::N(Some(-1.0))), (a, 2999, Cell::N(None))],
    ];
    for edits in cases {
        let mut cols = clean.clone();
        for &(_, r, _) in &edits {
            cols[h][r] = Cell::N(Some(1.0));
        }
        for (c, r, cell) in edits {
            cols[c][r] = cell;
        }
        let raw = raw_of(&cols);
        let serial = fit_impl(&specs, &raw, usize::MAX);
        assert!(serial.is_err());
        assert_eq!(fit_impl(&specs, &raw, 0), serial);
    }
}

#[test]
fn transform_into_a_zeroed_buffer_equals_transform_whatever_its_size() {
    let (specs, cols) = mixed_table(4099, 5);
    let raw = raw_of(&cols);
    let enc = fit_impl(&specs, &raw, usize::MAX).unwrap();
    let want = enc.transform(&raw).unwrap();
    let need = want.matrix.len();
    assert!(need > 0 && !want.skipped.is_empty());
    // Too small (a fresh allocation is used), exact, and larger (cut to size).
    for len in [0, need - 1, need, need + 1, 2 * need + 17] {
        let got = enc.transform_into(&raw, ZeroedMatrix::new(len)).unwrap();
        assert_same_encoded(&got, &want);
        assert_eq!(got.matrix.len(), need, "buffer of {len}");
    }
}

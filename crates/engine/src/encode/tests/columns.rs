//! Raw column storage: category lookup, interning, the per-row `put_*` paths, shapes.

use super::*;

#[test]
fn category_scan_finds_what_the_map_finds() {
    let values: Vec<String> = ["", "a", "ab", "ab\0", "north", "south", "é", "x y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(values.len() <= SCAN_CATS);
    let small = CatIndex::new(values.clone());
    let mut big_values = values.clone();
    big_values.extend((0..SCAN_CATS).map(|i| format!("filler{i}")));
    let big = CatIndex::new(big_values);
    let probes = [
        "", "a", "ab", "ab\0", "ab\0\0", "north", "nort", "northe", "south", "é", "e", "x y",
        "X Y", "missing",
    ];
    for p in probes {
        let want = values
            .iter()
            .position(|v| v == p)
            .map_or(NOT_FOUND, |i| i as u32);
        assert_eq!(small.get(p), want, "{p:?}");
        assert_eq!(big.get(p), want, "{p:?}");
    }
}

#[test]
fn put_num_and_put_text_decline_what_transform_row_must_decide() {
    let specs = parse_spec(&serde_json::json!({
        "n": "standard", "l": "log_standard", "c": "one_hot",
        "o": {"ordinal": {"order": ["lo", "hi"]}}
    }))
    .unwrap();
    // Columns in spec order (which need not be the order written above).
    let kinds: Vec<ColumnKind> = specs
        .iter()
        .map(|s| match s.name.as_str() {
            "n" | "l" => ColumnKind::Numeric,
            _ => ColumnKind::Text,
        })
        .collect();
    let mut raw = RawColumns::new(&kinds);
    for (n, l, c, o) in [(1.0, 1.0, "a", "lo"), (3.0, 5.0, "b", "hi")] {
        for (i, s) in specs.iter().enumerate() {
            match s.name.as_str() {
                "n" => raw.push_num(i, Some(n)),
                "l" => raw.push_num(i, Some(l)),
                "c" => raw.push_text(i, Some(c)),
                _ => raw.push_text(i, Some(o)),
            }
        }
    }
    let enc = fit(&specs, &raw).unwrap();
    let idx = |name: &str| specs.iter().position(|s| s.name == name).unwrap();
    let mut out = vec![0.0; enc.dim()];
    assert!(enc.put_num(idx("n"), 2.0, &mut out));
    assert!(!enc.put_num(idx("n"), f64::NAN, &mut out));
    assert!(!enc.put_num(idx("n"), f64::INFINITY, &mut out));
    assert!(!enc.put_num(idx("l"), -1.0, &mut out));
    assert!(!enc.put_num(idx("c"), 1.0, &mut out));
    assert!(!enc.put_text(idx("n"), "1", &mut out));
    assert!(enc.put_text(idx("c"), "never seen", &mut out));
    assert!(enc.put_text(idx("o"), "hi", &mut out));
    assert!(!enc.put_text(idx("o"), "never seen", &mut out));
}

#[test]
fn fit_rejects_duplicate_features_and_bad_shapes() {
    let mut raw = RawColumns::new(&[ColumnKind::Numeric, ColumnKind::Numeric]);
    raw.push_num(0, Some(1.0));
    raw.push_num(1, Some(1.0));
    let s = FeatureSpec::new("a", Encoder::Standard);
    expect_invalid(fit(&[s.clone(), s.clone()], &raw), "a", "twice");
    assert!(matches!(fit(&[s], &raw), Err(EngineError::Internal(_))));
    assert_eq!(fit(&[], &raw).unwrap_err(), EngineError::NoFeatures);
}

#[test]
fn raw_columns_intern_text() {
    let mut raw = RawColumns::new(&[ColumnKind::Text, ColumnKind::Numeric]);
    for (t, n) in [
        (Some("a"), Some(1.0)),
        (Some("b"), None),
        (Some("a"), Some(2.0)),
        (None, Some(3.0)),
    ] {
        raw.push_text(0, t);
        raw.push_num(1, n);
    }
    assert_eq!(raw.n_rows(), 4);
    assert_eq!(
        raw.column(0),
        &RawColumn::Text {
            dict: vec!["a".into(), "b".into()],
            codes: vec![Some(0), Some(1), Some(0), None]
        }
    );
    // NULL is stored as NaN (compared bit for bit: NaN != NaN).
    let RawColumn::Numeric(nums) = raw.column(1) else {
        panic!("column 1 is numeric")
    };
    let bits: Vec<u64> = nums.iter().map(|x| x.to_bits()).collect();
    assert_eq!(bits, [1.0, f64::NAN, 2.0, 3.0].map(f64::to_bits).to_vec());
    assert!(raw.heap_bytes() > 0);
}

#[test]
fn raw_text_codes_are_first_seen_positions_past_the_scanned_size() {
    // Values that share lengths and prefixes, and more distinct values than the
    // scanned dictionary size, revisited in another order.
    let vals: Vec<String> = (0..3 * SCAN_DICT)
        .map(|i| format!("v{:02}", i * 7 % 23))
        .collect();
    let mut raw = RawColumns::new(&[ColumnKind::Text]);
    let mut want_dict: Vec<String> = Vec::new();
    let mut want_codes = Vec::new();
    for v in vals
        .iter()
        .chain(vals.iter().rev())
        .chain(vals.iter().step_by(3))
    {
        raw.push_text(0, Some(v));
        let code = match want_dict.iter().position(|d| d == v) {
            Some(c) => c,
            None => {
                want_dict.push(v.clone());
                want_dict.len() - 1
            }
        };
        want_codes.push(Some(code as u32));
    }
    assert!(want_dict.len() > SCAN_DICT);
    assert_eq!(
        raw.column(0),
        &RawColumn::Text {
            dict: want_dict,
            codes: want_codes
        }
    );
}

#[test]
fn reorder_equals_reading_the_rows_in_that_order() {
    let kinds = [ColumnKind::Numeric, ColumnKind::Text, ColumnKind::Bool];
    let rows: Vec<(Option<f64>, Option<&str>, Option<bool>)> = vec![
        (Some(1.5), Some("north"), Some(true)),
        (None, Some("south"), None),
        (Some(-2.0), None, Some(false)),
        (Some(7.0), Some("east"), Some(true)),
        (Some(0.0), Some("south"), Some(false)),
    ];
    let read = |order: &[usize]| {
        let mut r = RawColumns::new(&kinds);
        for &i in order {
            let (a, b, c) = rows[i];
            r.push_num(0, a);
            r.push_text(1, b);
            r.push_bool(2, c);
        }
        r
    };
    let order = [3usize, 1, 4, 0, 2];
    let direct = read(&order);
    // Serially, and with the columns shared between two threads.
    let mut last = None;
    for parallel_min_rows in [usize::MAX, 2] {
        let mut reordered = read(&[0, 1, 2, 3, 4]);
        reordered.reorder_impl(&order.map(|i| i as u32), parallel_min_rows);
        for c in 0..kinds.len() {
            match (reordered.column(c), direct.column(c)) {
                (RawColumn::Numeric(a), RawColumn::Numeric(b)) => {
                    assert_eq!(
                        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    )
                }
                (a, b) => assert_eq!(a, b, "column {c}, from {parallel_min_rows} rows"),
            }
        }
        last = Some(reordered);
    }
    let mut reordered = last.expect("ran");
    // The interner agrees with the renumbered dictionary: new values get new codes.
    reordered.push_text(1, Some("south"));
    reordered.push_text(1, Some("west"));
    let RawColumn::Text { dict, codes } = reordered.column(1) else {
        panic!("text column")
    };
    assert_eq!(dict, &["east", "south", "north", "west"]);
    assert_eq!(&codes[5..], &[Some(1), Some(3)]);
}

//! Uplift statistics against numpy / scipy / statsmodels fixtures
//! (fixtures/make_uplift_fixtures.py).
//!
//! Tolerances: rates, means, differences, interval ends and adjusted p-values to 1e-9
//! absolute below 1 in magnitude and 1e-9 relative above ([`close`]); p-values, degrees of
//! freedom and relative lifts to 1e-9 relative ([`close_rel`]); the special functions to
//! 1e-12 relative (1e-14 absolute near 0).
use super::special::*;
use super::*;
use serde_json::Value as Json;

mod states;

fn fixture() -> Json {
    serde_json::from_str(include_str!("../../../fixtures/uplift/uplift.json")).expect("fixture")
}

/// 1e-9 absolute below 1 in magnitude, 1e-9 relative above.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// 1e-9 relative.
fn close_rel(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs()
}

fn f(v: &Json) -> f64 {
    v.as_f64().expect("number")
}

fn u(v: &Json) -> u64 {
    v.as_u64().expect("count")
}

fn floats(v: &Json) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn check(name: &str, what: &str, got: Option<f64>, want: &Json, cmp: fn(f64, f64) -> bool) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => assert!(cmp(g, w), "{name}: {what} {g} vs {w}"),
        (None, None) => {}
        (g, _) => panic!("{name}: {what} {g:?} vs {want}"),
    }
}

#[test]
fn rates_match_statsmodels_newcombe_and_ztest() {
    let fx = fixture();
    let cases = fx["rates"].as_array().unwrap();
    assert!(cases.len() >= 40);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let state = RateState {
            treated_n: u(&case["treated_n"]),
            treated_x: u(&case["treated_x"]),
            control_n: u(&case["control_n"]),
            control_x: u(&case["control_x"]),
        };
        let r = rate_result(&state, f(&case["confidence"])).unwrap();
        assert_eq!(
            (r.treated_n, r.treated_x, r.control_n, r.control_x),
            (
                state.treated_n,
                state.treated_x,
                state.control_n,
                state.control_x
            )
        );
        check(
            name,
            "treated_rate",
            r.treated_rate,
            &case["treated_rate"],
            close,
        );
        check(
            name,
            "control_rate",
            r.control_rate,
            &case["control_rate"],
            close,
        );
        check(name, "diff", r.diff, &case["diff"], close);
        check(name, "ci_low", r.ci_low, &case["ci_low"], close);
        check(name, "ci_high", r.ci_high, &case["ci_high"], close);
        check(
            name,
            "lift",
            r.relative_lift,
            &case["relative_lift"],
            close_rel,
        );
        assert!(r.ci_low.unwrap() <= r.diff.unwrap() && r.diff.unwrap() <= r.ci_high.unwrap());
        if case["p_value"].is_null() {
            // statsmodels: NaN (pooled rate 0 or 1); the engine's convention: 1.
            assert_eq!(r.p_value, Some(1.0), "{name}");
            assert!(
                r.note.as_deref().unwrap().contains("by convention"),
                "{name}"
            );
        } else {
            check(name, "p_value", r.p_value, &case["p_value"], close_rel);
            assert_eq!(r.note, None, "{name}");
        }
    }
}

#[test]
fn means_match_scipy_welch() {
    let fx = fixture();
    let cases = fx["means"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut state = MeanState::default();
        for v in floats(&case["treated"]) {
            state.add(true, v);
        }
        for v in floats(&case["control"]) {
            state.add(false, v);
        }
        let r = mean_result(&state, f(&case["confidence"])).unwrap();
        assert_eq!(r.treated_n, u(&case["treated_n"]), "{name}");
        assert_eq!(r.control_n, u(&case["control_n"]), "{name}");
        check(
            name,
            "treated_mean",
            r.treated_mean,
            &case["treated_mean"],
            close,
        );
        check(
            name,
            "control_mean",
            r.control_mean,
            &case["control_mean"],
            close,
        );
        check(name, "diff", r.diff, &case["diff"], close);
        check(name, "ci_low", r.ci_low, &case["ci_low"], close);
        check(name, "ci_high", r.ci_high, &case["ci_high"], close);
        check(name, "p_value", r.p_value, &case["p_value"], close_rel);
        check(name, "df", r.df, &case["df"], close_rel);
        assert_eq!(r.note, None, "{name}");
    }
}

#[test]
fn adjustments_match_statsmodels_multipletests() {
    let fx = fixture();
    let cases = fx["adjustments"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for (i, case) in cases.iter().enumerate() {
        let p: Vec<Option<f64>> = case["p"]
            .as_array()
            .unwrap()
            .iter()
            .map(Json::as_f64)
            .collect();
        for (method, key) in [
            (Adjust::Holm, "holm"),
            (Adjust::BenjaminiHochberg, "fdr_bh"),
        ] {
            let got = adjust(&p, method);
            let want = case[key].as_array().unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                check(&format!("case {i}"), key, *g, w, close);
            }
        }
    }
}

#[test]
fn special_functions_match_scipy() {
    let fx = fixture();
    let sp = &fx["special"];
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs() + 1e-14;
    let rows =
        |key: &str| -> Vec<Vec<f64>> { sp[key].as_array().unwrap().iter().map(floats).collect() };
    for r in rows("gammaln") {
        assert!(
            near(ln_gamma(r[0]), r[1]),
            "gammaln({}) {} vs {}",
            r[0],
            ln_gamma(r[0]),
            r[1]
        );
    }
    for r in rows("betainc") {
        let g = beta_inc(r[0], r[1], r[2]);
        assert!(near(g, r[3]), "betainc{r:?}: {g}");
    }
    for r in rows("stdtr") {
        let g = student_t_cdf(r[1], r[0]);
        assert!(near(g, r[2]), "stdtr{r:?}: {g}");
    }
    for r in rows("stdtrit") {
        let g = student_t_quantile(r[1], r[0]);
        assert!((g - r[2]).abs() <= 1e-12 * r[2].abs(), "stdtrit{r:?}: {g}");
    }
    for r in rows("ndtr") {
        let g = normal_cdf(r[0]);
        assert!(near(g, r[1]), "ndtr{r:?}: {g}");
    }
    for r in rows("ndtri") {
        let g = normal_quantile(r[0]);
        assert!((g - r[1]).abs() <= 1e-12 * r[1].abs(), "ndtri{r:?}: {g}");
    }
    for r in rows("erfc") {
        let g = erfc(r[0]);
        assert!(near(g, r[1]), "erfc{r:?}: {g}");
    }
}

#[test]
fn special_functions_at_known_values() {
    let rel = |a: f64, b: f64| (a - b).abs() <= 1e-13 * b.abs();
    // Γ(1/2) = √π, 9! = 362880, ln 99! (Wolfram: 359.1342053695753987760...).
    assert!(rel(ln_gamma(0.5), 0.5 * std::f64::consts::PI.ln()));
    assert!(rel(ln_gamma(10.0), 362_880f64.ln()));
    assert!(rel(ln_gamma(100.0), 359.134_205_369_575_4));
    assert!(ln_gamma(1.0).abs() < 1e-14 && ln_gamma(2.0).abs() < 1e-14);
    assert!(ln_gamma(0.0).is_nan() && ln_gamma(-1.0).is_nan());
    // B(2, 3) = 1/12; I_x(1, 1) = x; I_x(a, b) = 1 − I_{1−x}(b, a).
    assert!(rel(ln_beta(2.0, 3.0), (1.0f64 / 12.0).ln()));
    assert!(rel(beta_inc(1.0, 1.0, 0.3), 0.3));
    assert!((beta_inc(2.5, 4.0, 0.2) + beta_inc(4.0, 2.5, 0.8) - 1.0).abs() < 1e-15);
    assert_eq!(
        (beta_inc(2.0, 3.0, 0.0), beta_inc(2.0, 3.0, 1.0)),
        (0.0, 1.0)
    );
    // Φ(1.96) = 0.9750021048517795, Φ⁻¹(0.975) = 1.959963984540054.
    assert!(rel(normal_cdf(1.96), 0.975_002_104_851_779_5));
    assert!(rel(normal_quantile(0.975), 1.959_963_984_540_054));
    assert_eq!(normal_quantile(0.5), 0.0);
    assert_eq!(erfc(0.0), 1.0);
    assert_eq!(
        (erfc(30.0), erfc(f64::INFINITY), erfc(1e200)),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(
        (erfc(-1e200), normal_cdf(1e300), normal_cdf(-1e300)),
        (2.0, 1.0, 0.0)
    );
    assert!(erfc(27.2) > 0.0 && erfc(f64::NAN).is_nan());
    assert!(normal_quantile(0.0).is_infinite() && normal_quantile(1.5).is_nan());
    // Cauchy (df = 1) and df = 2 have closed forms.
    for q in [0.25, 0.05, 0.005, 1e-6, 1e-12, 5e-17] {
        let cauchy = 1.0 / (std::f64::consts::PI * q).tan();
        assert!(rel(student_t_isf(q, 1.0), cauchy), "cauchy {q}");
        let u = 1.0 - 2.0 * q;
        let two = (2.0 * u * u / (4.0 * q * (1.0 - q))).sqrt();
        assert!(rel(student_t_isf(q, 2.0), two), "df 2 {q}");
        assert!((student_t_sf(student_t_isf(q, 7.3), 7.3) / q - 1.0).abs() < 1e-12);
    }
    assert_eq!(student_t_isf(0.5, 3.0), 0.0);
    // Near the centre, t ≈ (p − ½) / density(0); for df = 5, density(0) = 8 / (3π√5).
    let pdf0 = 8.0 / (3.0 * std::f64::consts::PI * 5f64.sqrt());
    for eps in [1e-10, 3e-14] {
        let (up, down) = (0.5 + eps, 0.5 - eps);
        assert!(rel(student_t_quantile(up, 5.0), (up - 0.5) / pdf0));
        assert!(rel(student_t_quantile(down, 5.0), (down - 0.5) / pdf0));
    }
    assert!(student_t_quantile(0.0, 3.0).is_infinite() && student_t_quantile(1.1, 3.0).is_nan());
    assert_eq!(student_t_two_sided(0.0, 3.0), 1.0);
    assert_eq!(student_t_cdf(0.0, 3.0), 0.5);
    // Large df: the t distribution is the normal one to O(1/df).
    assert!((student_t_isf(0.025, 1e9) - 1.959_963_984_540_054).abs() < 1e-8);
}

#[test]
fn arms_with_zero_or_one_row_give_the_figures_that_exist_and_a_note() {
    let r = rate_result(&RateState::default(), 0.95).unwrap();
    assert_eq!((r.treated_rate, r.control_rate, r.diff), (None, None, None));
    assert_eq!(
        (r.ci_low, r.ci_high, r.p_value, r.relative_lift),
        (None, None, None, None)
    );
    assert_eq!(
        r.note.as_deref(),
        Some("treated has 0 rows and control has 0 rows; at least 2 rows per arm are needed for an interval and a p-value")
    );

    let s = RateState {
        treated_n: 10,
        treated_x: 3,
        control_n: 1,
        control_x: 1,
    };
    let r = rate_result(&s, 0.9).unwrap();
    assert_eq!(r.treated_rate, Some(0.3));
    assert_eq!(r.control_rate, Some(1.0));
    assert!((r.diff.unwrap() + 0.7).abs() < 1e-15);
    assert!((r.relative_lift.unwrap() + 0.7).abs() < 1e-15);
    assert_eq!((r.ci_low, r.ci_high, r.p_value), (None, None, None));
    assert!(r.note.unwrap().starts_with("control has 1 row;"));

    let s = RateState {
        treated_n: 0,
        treated_x: 0,
        control_n: 5,
        control_x: 0,
    };
    let r = rate_result(&s, 0.9).unwrap();
    assert_eq!(
        (r.treated_rate, r.control_rate, r.diff),
        (None, Some(0.0), None)
    );
    assert!(r.note.unwrap().starts_with("treated has 0 rows;"));

    let mut m = MeanState::default();
    m.add(true, 4.0);
    for v in [1.0, 2.0, 6.0] {
        m.add(false, v);
    }
    let r = mean_result(&m, 0.95).unwrap();
    assert_eq!((r.treated_n, r.control_n), (1, 3));
    assert_eq!(
        (r.treated_mean, r.control_mean, r.diff),
        (Some(4.0), Some(3.0), Some(1.0))
    );
    assert_eq!(
        (r.ci_low, r.ci_high, r.p_value, r.df),
        (None, None, None, None)
    );
    assert_eq!(
        r.note.as_deref(),
        Some("treated has 1 value; at least 2 values per arm are needed for an interval and a p-value")
    );

    let r = mean_result(&MeanState::default(), 0.95).unwrap();
    assert_eq!((r.treated_mean, r.control_mean, r.diff), (None, None, None));
    assert!(r
        .note
        .unwrap()
        .starts_with("treated has 0 values and control has 0 values;"));
}

#[test]
fn degenerate_rates_and_means_follow_the_documented_conventions() {
    // Pooled rate 0 and 1: p-value 1, the interval still exists.
    for (xt, xc) in [(0, 0), (40, 30)] {
        let s = RateState {
            treated_n: 40,
            treated_x: xt,
            control_n: 30,
            control_x: xc,
        };
        let r = rate_result(&s, 0.95).unwrap();
        assert_eq!(r.p_value, Some(1.0));
        assert_eq!(r.diff, Some(0.0));
        assert!(r.ci_low.unwrap() < 0.0 && r.ci_high.unwrap() > 0.0);
        assert!(r.note.unwrap().contains("p_value is 1 by convention"));
    }
    // Control rate 0: no relative lift, but everything else.
    let s = RateState {
        treated_n: 40,
        treated_x: 4,
        control_n: 30,
        control_x: 0,
    };
    let r = rate_result(&s, 0.95).unwrap();
    assert_eq!(r.relative_lift, None);
    assert!(r.p_value.is_some() && r.note.is_none());
    // Inconsistent counts (more conversions than rows): only the counts.
    let s = RateState {
        treated_n: 3,
        treated_x: 4,
        control_n: 30,
        control_x: 2,
    };
    let r = rate_result(&s, 0.95).unwrap();
    assert_eq!((r.treated_rate, r.diff, r.p_value), (None, None, None));
    assert!(r
        .note
        .unwrap()
        .starts_with("treated has more conversions than rows"));
    // Huge counts do not overflow or panic.
    let s = RateState {
        treated_n: u64::MAX,
        treated_x: u64::MAX / 3,
        control_n: u64::MAX,
        control_x: u64::MAX / 4,
    };
    let r = rate_result(&s, 0.95).unwrap();
    assert_eq!(r.p_value, Some(0.0));

    // Both variances zero: interval [diff, diff], no p-value, no df.
    let mut m = MeanState::default();
    for _ in 0..3 {
        m.add(true, 5.0);
    }
    for _ in 0..4 {
        m.add(false, 2.0);
    }
    let r = mean_result(&m, 0.95).unwrap();
    assert_eq!(
        (r.diff, r.ci_low, r.ci_high),
        (Some(3.0), Some(3.0), Some(3.0))
    );
    assert_eq!((r.p_value, r.df), (None, None));
    assert!(r.note.unwrap().contains("zero variance"));
    // One variance zero is an ordinary Welch test with df = n − 1 of the other arm.
    m.add(false, 2.5);
    let r = mean_result(&m, 0.95).unwrap();
    assert!((r.df.unwrap() - 4.0).abs() < 1e-12 && r.p_value.is_some());
    // NaN and infinities are skipped like NULL.
    let mut m2 = m;
    m2.add(true, f64::NAN);
    m2.add(false, f64::INFINITY);
    assert_eq!(m2, m);
    // Values too large for double precision: no interval, no panic.
    let mut big = MeanState::default();
    for v in [1e308, -1e308, 1e308] {
        big.add(true, v);
        big.add(false, -v);
    }
    let r = mean_result(&big, 0.95).unwrap();
    assert_eq!(r.p_value, None);
    assert!(r.note.is_some());
}

#[test]
fn confidence_outside_zero_one_is_an_invalid_parameter() {
    let rs = RateState {
        treated_n: 10,
        treated_x: 2,
        control_n: 10,
        control_x: 3,
    };
    let ms = MeanState::default();
    for c in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        let e = rate_result(&rs, c).unwrap_err();
        assert!(matches!(&e, EngineError::InvalidParameter { name, .. } if name == "confidence"));
        assert_eq!(e.kind(), crate::ErrorKind::InvalidParameter);
        assert!(mean_result(&ms, c).is_err());
    }
    // Extreme but valid levels still give finite intervals.
    for c in [1e-12, 1.0 - 1e-15] {
        let r = rate_result(&rs, c).unwrap();
        assert!(r.ci_low.unwrap().is_finite() && r.ci_high.unwrap().is_finite());
        let mut m = MeanState::default();
        for (i, v) in [1.0, 2.0, 4.0, 8.0].into_iter().enumerate() {
            m.add(i % 2 == 0, v);
        }
        let r = mean_result(&m, c).unwrap();
        assert!(r.ci_low.unwrap().is_finite() && r.ci_high.unwrap().is_finite());
    }
}

#[test]
fn adjust_handles_empty_all_null_nan_and_parses_its_names() {
    for method in [Adjust::Holm, Adjust::BenjaminiHochberg] {
        assert!(adjust(&[], method).is_empty());
        assert_eq!(adjust(&[None, None], method), vec![None, None]);
        assert_eq!(
            adjust(&[Some(f64::NAN), Some(0.2)], method),
            vec![None, Some(0.2)]
        );
    }
    // NULLs do not count in m.
    let p = [Some(0.01), None, Some(0.04), None];
    assert_eq!(
        adjust(&p, Adjust::Holm),
        vec![Some(0.02), None, Some(0.04), None]
    );
    assert_eq!(
        adjust(&p, Adjust::BenjaminiHochberg),
        vec![Some(0.02), None, Some(0.04), None]
    );
    for s in ["holm", "HOLM", " Holm "] {
        assert_eq!(Adjust::parse(s).unwrap(), Adjust::Holm);
    }
    for s in [
        "bh",
        "BH",
        "fdr_bh",
        "FDR_BH",
        "benjamini-hochberg",
        "Benjamini-Hochberg",
    ] {
        assert_eq!(Adjust::parse(s).unwrap(), Adjust::BenjaminiHochberg);
    }
    for s in ["", "bonferroni", "fdr_by", "hochberg"] {
        let e = Adjust::parse(s).unwrap_err();
        assert!(matches!(&e, EngineError::InvalidParameter { name, .. } if name == "method"));
    }
}

#[test]
fn any_counts_give_finite_ordered_figures_without_panicking() {
    let big = [0, 1, 2, 3, 5, 1_000_000, u64::MAX / 2, u64::MAX];
    for &tn in &big {
        for &cn in &big {
            for tx in [0, 1, tn / 2, tn.saturating_sub(1), tn] {
                for cx in [0, 1, cn / 3, cn] {
                    let s = RateState {
                        treated_n: tn,
                        treated_x: tx,
                        control_n: cn,
                        control_x: cx,
                    };
                    for conf in [0.5, 0.95, 0.999_999] {
                        let r = rate_result(&s, conf).unwrap();
                        let all = [r.treated_rate, r.control_rate, r.diff, r.ci_low, r.ci_high];
                        assert!(all.iter().flatten().all(|v| v.is_finite()), "{s:?}");
                        if let (Some(lo), Some(d), Some(hi)) = (r.ci_low, r.diff, r.ci_high) {
                            assert!(lo <= d && d <= hi && lo >= -1.0 && hi <= 1.0, "{s:?}");
                        }
                        if let Some(p) = r.p_value {
                            assert!((0.0..=1.0).contains(&p), "{s:?}");
                        }
                        if r.p_value.is_none() || r.ci_low.is_none() {
                            assert!(r.note.is_some(), "{s:?}");
                        }
                    }
                }
            }
        }
    }
    for scale in [1e-300, 1e-160, 1.0, 1e150, 1e300] {
        let mut m = MeanState::default();
        for (i, v) in [1.0, 2.0, 3.5, -1.0, 0.25, 7.0].into_iter().enumerate() {
            m.add(i % 2 == 0, v * scale);
        }
        let r = mean_result(&m, 0.95).unwrap();
        if let (Some(lo), Some(d), Some(hi)) = (r.ci_low, r.diff, r.ci_high) {
            assert!(lo <= d && d <= hi, "{scale}");
        }
        if let Some(p) = r.p_value {
            assert!((0.0..=1.0).contains(&p), "{scale}");
        }
        assert_eq!(r.p_value.is_none(), r.note.is_some(), "{scale}");
    }
}

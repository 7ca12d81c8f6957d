//! Davies–Bouldin / Calinski–Harabasz: the combined pass against the separate
//! functions and the former serial reference, determinism.

use super::*;

// ---------------------------------------------------------------- DB / CH / means speed-ups

/// The former serial implementations (two Neumaier passes per means computation),
/// kept as the reference for the blocked / threaded / combined code.
mod reference {
    use super::super::*;

    pub struct RefDense {
        pub idx: Vec<usize>,
        pub counts: Vec<usize>,
        pub uniq: Vec<i64>,
    }

    pub fn dense(labels: &[i64]) -> RefDense {
        let mut uniq = labels.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        let mut counts = vec![0usize; uniq.len()];
        let idx = labels
            .iter()
            .map(|l| {
                let i = uniq.binary_search(l).unwrap();
                counts[i] += 1;
                i
            })
            .collect();
        RefDense { idx, counts, uniq }
    }

    pub fn means(x: &ArrayView2<f64>, dense: &RefDense) -> Array2<f64> {
        let (k, d) = (dense.uniq.len(), x.ncols());
        let mut sums = vec![Neumaier::default(); k * d];
        for (r, &c) in x.outer_iter().zip(&dense.idx) {
            for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(r.iter()) {
                s.add(v);
            }
        }
        let mut means = Array2::<f64>::zeros((k, d));
        for c in 0..k {
            for f in 0..d {
                means[[c, f]] = sums[c * d + f].value() / dense.counts[c] as f64;
            }
        }
        let mut resid = vec![Neumaier::default(); k * d];
        for (r, &c) in x.outer_iter().zip(&dense.idx) {
            for (f, &v) in r.iter().enumerate() {
                resid[c * d + f].add(v - means[[c, f]]);
            }
        }
        for c in 0..k {
            for f in 0..d {
                means[[c, f]] += resid[c * d + f].value() / dense.counts[c] as f64;
            }
        }
        means
    }

    pub fn davies_bouldin(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
        check_input(&x, labels)?;
        let dense = dense(labels);
        let k = dense.uniq.len();
        check_number_of_labels(k, x.nrows())?;
        let means = means(&x, &dense);
        let mut intra = vec![Neumaier::default(); k];
        for (r, &c) in x.outer_iter().zip(&dense.idx) {
            let m = means.row(c);
            let d2: f64 = r.iter().zip(m.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            intra[c].add(d2.sqrt());
        }
        let intra: Vec<f64> = intra
            .iter()
            .zip(&dense.counts)
            .map(|(s, &n)| s.value() / n as f64)
            .collect();
        let mut cdist = vec![0.0f64; k * k];
        for a in 0..k {
            for b in 0..k {
                let d2: f64 = means
                    .row(a)
                    .iter()
                    .zip(means.row(b).iter())
                    .map(|(p, q)| (p - q) * (p - q))
                    .sum();
                cdist[a * k + b] = d2.sqrt();
            }
        }
        if intra.iter().all(|v| v.abs() <= 1e-8) || cdist.iter().all(|v| v.abs() <= 1e-8) {
            return Ok(0.0);
        }
        let mut total = Neumaier::default();
        for a in 0..k {
            let mut best = f64::NEG_INFINITY;
            for b in 0..k {
                let dist = cdist[a * k + b];
                let dist = if dist == 0.0 { f64::INFINITY } else { dist };
                best = best.max((intra[a] + intra[b]) / dist);
            }
            total.add(best);
        }
        Ok(total.value() / k as f64)
    }

    pub fn calinski_harabasz(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
        check_input(&x, labels)?;
        let dense = dense(labels);
        let (n, k, d) = (x.nrows(), dense.uniq.len(), x.ncols());
        check_number_of_labels(k, n)?;
        let means = means(&x, &dense);
        let mut gmean = vec![Neumaier::default(); d];
        for r in x.outer_iter() {
            for (s, &v) in gmean.iter_mut().zip(r.iter()) {
                s.add(v);
            }
        }
        let gmean: Vec<f64> = gmean.iter().map(|s| s.value() / n as f64).collect();
        let mut extra = Neumaier::default();
        for c in 0..k {
            let s: f64 = (0..d).map(|f| (means[[c, f]] - gmean[f]).powi(2)).sum();
            extra.add(dense.counts[c] as f64 * s);
        }
        let mut intra = Neumaier::default();
        for (r, &c) in x.outer_iter().zip(&dense.idx) {
            let m = means.row(c);
            intra.add(r.iter().zip(m.iter()).map(|(a, b)| (a - b) * (a - b)).sum());
        }
        Ok(ch_ratio(extra.value(), intra.value(), n as f64, k as f64))
    }
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

/// Seeded test matrices: (name, x, labels). `n * d` of the large ones crosses
/// PASS_PARALLEL_MIN, so the two-thread split runs too.
fn db_ch_cases() -> Vec<(String, Array2<f64>, Vec<i64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut out = Vec::new();
    for &(n, d, k, spread, offset, clustered) in &[
        (50usize, 3usize, 2usize, 1.0f64, 0.0f64, false),
        (1000, 5, 7, 1.0, 0.0, false),
        (1000, 21, 8, 0.3, 0.0, true),
        (3000, 2, 40, 0.05, 0.0, true),
        (2000, 9, 5, 1.0, 1e4, true),
        (60_000, 20, 8, 0.5, 0.0, true),
        (70_001, 17, 3, 2.0, -50.0, false),
    ] {
        let centers: Vec<f64> = (0..k * d).map(|_| rng.gen::<f64>() * 10.0 - 5.0).collect();
        let mut labels = Vec::with_capacity(n);
        let mut x = Array2::<f64>::zeros((n, d));
        for r in 0..n {
            // the first k rows cover every cluster; the rest are skewed
            let c = if r < k {
                r
            } else {
                (rng.gen::<f64>() * rng.gen::<f64>() * k as f64) as usize
            };
            labels.push(c as i64 * 7 - 3);
            for f in 0..d {
                let noise = (rng.gen::<f64>() - 0.5) * 2.0 * spread;
                x[[r, f]] = offset + if clustered { centers[c * d + f] } else { 0.0 } + noise;
            }
        }
        out.push((format!("n{n} d{d} k{k} off{offset}"), x, labels));
    }
    out
}

#[test]
fn combined_db_ch_matches_separate_and_reference() {
    for (name, x, labels) in db_ch_cases() {
        let (db, ch) = davies_bouldin_calinski_harabasz(x.view(), &labels);
        let (db, ch) = (db.unwrap(), ch.unwrap());
        let db_sep = davies_bouldin(x.view(), &labels).unwrap();
        let ch_sep = calinski_harabasz(x.view(), &labels).unwrap();
        assert!(rel(db, db_sep) <= 1e-12, "{name}: DB {db} vs {db_sep}");
        assert!(rel(ch, ch_sep) <= 1e-12, "{name}: CH {ch} vs {ch_sep}");
        let db_ref = reference::davies_bouldin(x.view(), &labels).unwrap();
        let ch_ref = reference::calinski_harabasz(x.view(), &labels).unwrap();
        assert!(
            rel(db, db_ref) <= 1e-12,
            "{name}: DB {db} vs reference {db_ref}"
        );
        assert!(
            rel(ch, ch_ref) <= 1e-12,
            "{name}: CH {ch} vs reference {ch_ref}"
        );
        // a column-major copy takes the row-copying path and gives the same values
        let mut f = Array2::<f64>::zeros(ndarray::ShapeBuilder::f(x.raw_dim()));
        f.assign(&x);
        let (db_f, ch_f) = davies_bouldin_calinski_harabasz(f.view(), &labels);
        assert!(rel(db_f.unwrap(), db) <= 1e-15, "{name}");
        assert!(rel(ch_f.unwrap(), ch) <= 1e-15, "{name}");
    }
}

#[test]
fn blocked_cluster_means_match_the_two_pass_reference() {
    for (name, x, labels) in db_ch_cases() {
        let xv = x.view();
        let dense = Dense::new(&labels);
        let r = reference::dense(&labels);
        assert_eq!(
            (&dense.uniq, &dense.idx, &dense.counts),
            (&r.uniq, &r.idx, &r.counts)
        );
        let got = cluster_means(&xv, &dense);
        let want = reference::means(&xv, &r);
        for (g, w) in got.iter().zip(want.iter()) {
            // within 2 ulps of the larger of |mean| and the data's spread (~1)
            assert!(
                (g - w).abs() <= 4.0 * f64::EPSILON * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
    }
    // a large offset with a tiny spread: the shifted first pass keeps every bit
    let n = 5000;
    let x = Array2::from_shape_fn((n, 2), |(r, f)| {
        1e9 + (f as f64) + ((r * 7919) % 1000) as f64 * 1e-7
    });
    let labels: Vec<i64> = (0..n).map(|r| (r % 3) as i64).collect();
    let got = cluster_means(&x.view(), &Dense::new(&labels));
    let want = reference::means(&x.view(), &reference::dense(&labels));
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() <= 2.0 * f64::EPSILON * w.abs(), "{g} vs {w}");
    }
}

#[test]
fn dense_table_path_matches_the_sorted_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let sets: Vec<Vec<i64>> = vec![
        vec![5],
        vec![i64::MAX, i64::MAX - 1, i64::MAX],
        vec![i64::MIN, i64::MIN + 2, i64::MIN],
        vec![i64::MIN, i64::MAX, 0, i64::MIN],
        vec![-3, 70_000, -3, 12],
        (0..5000).map(|_| rng.gen_range(-20..20)).collect(),
        (0..5000).map(|_| rng.gen_range(0..1_000_000)).collect(),
    ];
    for labels in sets {
        let d = Dense::new(&labels);
        let r = reference::dense(&labels);
        assert_eq!(d.uniq, r.uniq);
        assert_eq!(d.idx, r.idx);
        assert_eq!(d.counts, r.counts);
    }
    assert_eq!(Dense::new(&[]).k(), 0);
}

#[test]
fn combined_db_ch_errors_match_the_separate_functions() {
    // Compared through Debug: NonFinite carries a NaN, which is not == itself.
    let check = |x: ArrayView2<f64>, labels: &[i64], what: &str| {
        let (db, ch) = davies_bouldin_calinski_harabasz(x, labels);
        let db_sep = davies_bouldin(x, labels);
        let ch_sep = calinski_harabasz(x, labels);
        let db_ref = reference::davies_bouldin(x, labels);
        let ch_ref = reference::calinski_harabasz(x, labels);
        assert!(db_ref.is_err() && ch_ref.is_err(), "{what}");
        for (got, want) in [
            (&db, &db_ref),
            (&ch, &ch_ref),
            (&db_sep, &db_ref),
            (&ch_sep, &ch_ref),
        ] {
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
        }
    };
    let x = Array2::from_shape_fn((6, 3), |(r, f)| (r * 3 + f) as f64);
    let ok = [0i64, 0, 1, 1, 2, 2];
    check(x.view(), &ok[..5], "label count mismatch");
    check(Array2::<f64>::zeros((0, 3)).view(), &[], "no rows");
    check(Array2::<f64>::zeros((6, 0)).view(), &ok, "no features");
    check(x.view(), &[1; 6], "one label");
    check(x.view(), &[0, 1, 2, 3, 4, 5], "n labels");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for (r, f) in [(0, 0), (3, 2), (5, 1), (2, 1)] {
            let mut y = x.clone();
            y[[r, f]] = bad;
            check(y.view(), &ok, &format!("{bad} at ({r}, {f})"));
            // non-finite values come before a bad label count, as in check_input
            check(
                y.view(),
                &[7; 6],
                &format!("{bad} at ({r}, {f}), one label"),
            );
            y[[5, 2]] = f64::NAN;
            check(
                y.view(),
                &ok,
                &format!("{bad} at ({r}, {f}) and NaN at (5, 2)"),
            );
        }
    }
    // a large input with one NaN deep in the second thread's half
    let (_, mut big, labels) = db_ch_cases().swap_remove(5);
    big[[59_000, 7]] = f64::NAN;
    big[[40_000, 3]] = f64::INFINITY;
    check(big.view(), &labels, "large");
}

#[test]
fn cluster_passes_are_deterministic() {
    let (_, x, labels) = db_ch_cases().swap_remove(5);
    let a = davies_bouldin_calinski_harabasz(x.view(), &labels);
    for _ in 0..3 {
        let b = davies_bouldin_calinski_harabasz(x.view(), &labels);
        assert_eq!(a.0.as_ref().unwrap().to_bits(), b.0.unwrap().to_bits());
        assert_eq!(a.1.as_ref().unwrap().to_bits(), b.1.unwrap().to_bits());
    }
}

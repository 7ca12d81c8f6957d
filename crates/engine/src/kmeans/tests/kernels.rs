//! The AVX2 and portable kernels, `nearest` and `CentroidIndex` agree bit for bit.

use super::*;

#[test]
fn centroid_index_agrees_with_nearest() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &(k, d) in &[
        (1, 1),
        (2, 3),
        (3, 3),
        (5, 7),
        (8, 21),
        (8, 23),
        (13, 5),
        (64, 16),
        (70, 70),
    ] {
        let mut c = Array2::<f64>::zeros((k, d));
        c.mapv_inplace(|_| rng.gen_range(-3.0..3.0));
        if k > 2 {
            // exact ties: a repeated centroid, and rows equidistant by construction
            let r0 = c.row(0).to_owned();
            c.row_mut(k - 1).assign(&r0);
        }
        let idx = CentroidIndex::new(c.view());
        for t in 0..400 {
            let x: Vec<f64> = if t % 7 == 0 {
                c.row(t % k).to_vec()
            } else {
                (0..d).map(|_| rng.gen_range(-4.0..4.0)).collect()
            };
            let want = nearest(c.view(), &x);
            assert_eq!(idx.index(&x), want.index, "k={k} d={d} t={t}");
            let (i, dist_sq) = idx.nearest(&x);
            assert_eq!(i, want.index, "k={k} d={d} t={t}");
            assert_eq!(
                dist_sq.to_bits(),
                want.dist_sq.to_bits(),
                "k={k} d={d} t={t}"
            );
        }
    }
}

// ---- AVX2 and portable kernels agree bit for bit ------------------------------

/// Runs `f` with the portable kernel forced on this thread (the E-step picks its
/// kernel on the calling thread and hands it to the workers).
fn portable<T>(f: impl FnOnce() -> T) -> T {
    FORCE_PORTABLE.with(|p| p.set(true));
    let r = f();
    FORCE_PORTABLE.with(|p| p.set(false));
    r
}

/// Rows with ties, near-ties, repeated values and zero differences, so that the
/// index and runner-up rules are exercised, for every d % 4 and k % 4.
fn tricky(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d)
        .map(|_| match rng.gen_range(0..4) {
            0 => rng.gen_range(-3..=3) as f64,
            1 => rng.gen_range(-3..=3) as f64 * 0.5 + 1e-13 * rng.gen_range(-2..=2) as f64,
            _ => rng.gen_range(-5.0..5.0),
        })
        .collect()
}

#[test]
fn avx2_and_portable_searches_agree_bit_for_bit() {
    let simd = Simd::detect();
    if simd == Simd::Portable {
        eprintln!("no AVX2 on this CPU: only the portable kernel runs");
    }
    for d in [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 21, 40, 64, 65, 70] {
        for k in [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 64, 65, 70] {
            let c = tricky(k, d, (d * 100 + k) as u64);
            let x = tricky(300, d, (d * 1000 + k) as u64);
            let p = PackedCentroids::new(simd, &c, k, d);
            let cm = Array2::from_shape_vec((k, d), c.clone()).unwrap();
            let mut out = vec![0.0; k];
            for xi in x.chunks_exact(d).chain(c.chunks_exact(d)) {
                let want = argmin2(&c, k, d, xi);
                let got = argmin2_with(simd, &p, &c, k, d, xi);
                assert_eq!(
                    (got.0, got.1.to_bits(), got.2.to_bits()),
                    (want.0, want.1.to_bits(), want.2.to_bits()),
                    "argmin2 d={d} k={k}"
                );
                assert_eq!(argmin_with(simd, &p, &c, k, d, xi), argmin(&c, k, d, xi));
                dists_with(simd, &c, k, d, xi, &mut out);
                for (j, (o, cj)) in out.iter().zip(c.chunks_exact(d)).enumerate() {
                    assert_eq!(o.to_bits(), sqdist(xi, cj).to_bits(), "d={d} k={k} j={j}");
                }
                let fast = nearest(cm.view(), xi);
                let slow = portable(|| nearest(cm.view(), xi));
                assert_eq!(fast, slow, "nearest d={d} k={k}");
                let (a, b) = sqrt2_with(simd, want.1, want.2);
                assert_eq!(
                    (a.to_bits(), b.to_bits()),
                    (want.1.sqrt().to_bits(), want.2.sqrt().to_bits())
                );
            }
        }
    }
}

#[test]
fn nearest_keeps_its_nan_and_infinity_behaviour_on_every_kernel() {
    // 5 x 32 so that the AVX2 path (k * d >= 128) is taken; columns 2.. are zero.
    let head = [
        [0.0, 0.0],
        [1.0, 1.0],
        [f64::MAX, 0.0],
        [2.0, 2.0],
        [0.0, 0.0],
    ];
    let c = Array2::from_shape_fn((5, 32), |(j, f)| if f < 2 { head[j][f] } else { 0.0 });
    for x2 in [
        [f64::NAN, 0.0],
        [f64::NAN, f64::NAN],
        [f64::INFINITY, 0.0],
        [-f64::MAX, 0.0],
        [0.0, 0.0],
        [1.0, 1.0],
    ] {
        let mut x = [0.0; 32];
        x[..2].copy_from_slice(&x2);
        let fast = nearest(c.view(), &x);
        let slow = portable(|| nearest(c.view(), &x));
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "x={x2:?}");
    }
}

#[test]
fn fit_is_bit_identical_with_the_avx2_and_portable_kernels() {
    for (n, d, k, algorithm) in [
        (17_000, 8, 8, Algorithm::Auto),
        (9_000, 5, 7, Algorithm::Hamerly),
        (9_000, 3, 3, Algorithm::Lloyd),
        (6_000, 21, 12, Algorithm::Auto),
        (4_000, 70, 5, Algorithm::Elkan),
    ] {
        let x = blobs(n, d, k, 21);
        let p = KMeansParams::new(k)
            .n_init(2)
            .seed(3)
            .tol(0.0)
            .max_iter(30)
            .algorithm(algorithm)
            .threads(2);
        let fast = fit(x.view(), &p, &mut NoHooks).unwrap();
        let slow = portable(|| fit(x.view(), &p, &mut NoHooks).unwrap());
        assert!(fast == slow, "n={n} d={d} k={k} {algorithm:?}");
        let (la, ia) = assign(x.view(), fast.centroids.view());
        let (lb, ib) = portable(|| assign(x.view(), fast.centroids.view()));
        assert_eq!((la, ia.to_bits()), (lb, ib.to_bits()));
    }
    for f in fixtures() {
        let x = mat(&f.x);
        let p = KMeansParams::new(f.k)
            .init(Init::Given(mat(&f.init)))
            .tol(f.tol)
            .max_iter(f.max_iter);
        let fast = fit(x.view(), &p, &mut NoHooks).unwrap();
        let slow = portable(|| fit(x.view(), &p, &mut NoHooks).unwrap());
        assert!(fast == slow, "{}", f.name);
    }
}

// ---- nearest / assign / distinct ----------------------------------------------

#[test]
fn nearest_reports_runner_up_and_breaks_ties_low() {
    let c = array![[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]];
    let n = nearest(c.view(), &[1.0, 0.0]);
    assert_eq!((n.index, n.dist_sq), (0, 1.0));
    assert_eq!(n.runner_up, Some((1, 1.0)));
    let n = nearest(c.view(), &[0.1, 2.9]);
    assert_eq!(n.index, 2);
    assert_eq!(n.runner_up.unwrap().0, 0);
    let one = array![[1.0, 1.0]];
    assert_eq!(nearest(one.view(), &[1.0, 2.0]).runner_up, None);
    // A transposed (non-contiguous) view gives the same bits.
    let ct = c.t().to_owned();
    let n2 = nearest(ct.t(), &[0.1, 2.9]);
    assert_eq!(n2, nearest(c.view(), &[0.1, 2.9]));
}

//! The pruned k-means++ equals the unpruned reference bit for bit.

use super::*;

// ---- pruned k-means++ equals the unpruned reference bit for bit ----------------

/// The sequential candidate scan of the unpruned implementation.
fn ref_sample(closest: &[f64], rv: &[(f64, usize)], cands: &mut [usize]) {
    let (n, trials) = (closest.len(), rv.len());
    let mut cum = 0.0;
    let mut q = 0;
    for (i, v) in closest.iter().enumerate() {
        cum += v;
        while q < trials && cum > rv[q].0 {
            cands[rv[q].1] = i;
            q += 1;
        }
        if q == trials {
            break;
        }
    }
    if q < trials {
        let lastpos = closest.iter().rposition(|v| *v > 0.0).unwrap_or(n - 1);
        for r in &rv[q..] {
            cands[r.1] = lastpos;
        }
    }
}

/// Greedy k-means++ without pruning, as implemented before (one pass over the rows
/// per candidate and per new centre, every distance computed): the reference. Returns
/// the centres and the same per-step trace as [`PP_TRACE`].
fn ref_kmeanspp(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
    threads: usize,
) -> (Array2<f64>, Vec<PpStep>) {
    fn update(
        x: &[f64],
        d: usize,
        center: &[f64],
        closest: &mut [f64],
        init: bool,
        threads: usize,
    ) {
        let items: Vec<(usize, &mut [f64])> = closest
            .chunks_mut(BLOCK)
            .enumerate()
            .map(|(b, c)| (b * BLOCK, c))
            .collect();
        run_blocks(items, threads, &mut NoHooks, &|(start, c): (
            usize,
            &mut [f64],
        )| {
            let rows = x[start * d..(start + c.len()) * d].chunks_exact(d);
            for (v, xi) in c.iter_mut().zip(rows) {
                let t = sqdist(xi, center);
                if init || t < *v {
                    *v = t;
                }
            }
        })
        .unwrap();
    }
    fn potentials(
        x: &[f64],
        d: usize,
        cands: &[usize],
        closest: &[f64],
        threads: usize,
    ) -> Vec<f64> {
        let mut pots: Vec<Vec<f64>> = (0..closest.len().div_ceil(BLOCK))
            .map(|_| vec![0.0; cands.len()])
            .collect();
        let items: Vec<PotItem> = closest
            .chunks(BLOCK)
            .enumerate()
            .zip(pots.iter_mut())
            .collect();
        run_blocks(items, threads, &mut NoHooks, &|((b, c), out): PotItem| {
            let start = b * BLOCK;
            let rows = &x[start * d..(start + c.len()) * d];
            for (t, &ci) in cands.iter().enumerate() {
                let cc = &x[ci * d..(ci + 1) * d];
                let mut p = 0.0;
                for (v, xi) in c.iter().zip(rows.chunks_exact(d)) {
                    p += sqdist(xi, cc).min(*v);
                }
                out[t] = p;
            }
        })
        .unwrap();
        let mut tot = vec![0.0; cands.len()];
        for p in pots {
            for (t, v) in tot.iter_mut().zip(p) {
                *t += v;
            }
        }
        tot
    }
    type PotItem<'a> = ((usize, &'a [f64]), &'a mut Vec<f64>);

    let mut centers = Array2::<f64>::zeros((k, d));
    let mut trace = Vec::new();
    if k == 0 {
        return (centers, trace);
    }
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = rng.gen_range(0..n);
    let row = |i: usize| &x[i * d..(i + 1) * d];
    centers
        .row_mut(0)
        .assign(&ndarray::ArrayView1::from(row(first)));
    let mut closest = vec![0.0f64; n];
    update(x, d, row(first), &mut closest, true, threads);
    let mut last = first;
    for c in 1..k {
        let total: f64 = closest.iter().sum();
        if total.is_nan() || total <= 0.0 {
            centers
                .row_mut(c)
                .assign(&ndarray::ArrayView1::from(row(last)));
            continue;
        }
        let mut rv: Vec<(f64, usize)> =
            (0..trials).map(|t| (rng.gen::<f64>() * total, t)).collect();
        rv.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut cands = vec![n - 1; trials];
        ref_sample(&closest, &rv, &mut cands);
        let pots = potentials(x, d, &cands, &closest, threads);
        let mut best = 0;
        for t in 1..trials {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        last = cands[best];
        centers
            .row_mut(c)
            .assign(&ndarray::ArrayView1::from(row(last)));
        if c + 1 < k {
            update(x, d, row(last), &mut closest, false, threads);
        }
        trace.push((cands, pots, closest.clone()));
    }
    (centers, trace)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// Runs the pruned and the reference k-means++ and asserts equal centres and traces
/// (candidates, potentials, `closest` after every step), bit for bit, with the
/// vector kernels this CPU has and with the portable ones.
fn assert_pp_matches_reference(name: &str, x: &Array2<f64>, k: usize, seed: u64, threads: usize) {
    let (n, d) = x.dim();
    let xs = x.as_slice().unwrap();
    let mut r1 = ChaCha8Rng::seed_from_u64(seed);
    let (want, want_trace) = ref_kmeanspp(xs, n, d, k, &mut r1, threads);
    let after = r1.gen::<u64>();
    for portable in [false, true] {
        let mut r2 = ChaCha8Rng::seed_from_u64(seed);
        FORCE_PORTABLE.with(|p| p.set(portable));
        PP_TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
        let got = kmeanspp_impl(xs, n, d, k, &mut r2, threads, &mut NoHooks).unwrap();
        let trace = PP_TRACE.with(|t| t.borrow_mut().take()).unwrap();
        FORCE_PORTABLE.with(|p| p.set(false));
        let ctx = format!("{name}, k {k}, seed {seed}, threads {threads}, portable {portable}");
        assert_eq!(
            bits(got.as_slice().unwrap()),
            bits(want.as_slice().unwrap()),
            "centres, {ctx}"
        );
        assert_eq!(trace.len(), want_trace.len(), "steps, {ctx}");
        for (s, (a, b)) in trace.iter().zip(&want_trace).enumerate() {
            assert_eq!(a.0, b.0, "candidates of step {s}, {ctx}");
            assert_eq!(bits(&a.1), bits(&b.1), "potentials of step {s}, {ctx}");
            assert_eq!(bits(&a.2), bits(&b.2), "closest after step {s}, {ctx}");
        }
        // The generator is left in the same state too (the fit's next draws agree).
        assert_eq!(r2.gen::<u64>(), after, "rng state, {ctx}");
    }
}

fn uniform(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.gen::<f64>())
}

#[test]
fn pruned_kmeans_plus_plus_matches_unpruned_reference_on_clustered_and_uniform_data() {
    // Several blocks of rows (BLOCK = 8192) for the threads to share.
    let sets: Vec<(&str, Array2<f64>, Vec<usize>, u64)> = vec![
        (
            "blobs 2000x5, 8 blobs",
            blobs(2000, 5, 8, 1),
            vec![1, 2, 3, 8, 30],
            3,
        ),
        (
            "blobs 17000x21, 8 blobs",
            blobs(17_000, 21, 8, 2),
            vec![8],
            1,
        ),
        (
            "blobs 3000x3, 40 blobs",
            blobs(3000, 3, 40, 3),
            vec![5, 40],
            2,
        ),
        ("uniform 2000x4", uniform(2000, 4, 4), vec![2, 8, 25], 2),
        ("uniform 17000x2", uniform(17_000, 2, 5), vec![8, 20], 1),
        ("uniform 1000x1", uniform(1000, 1, 6), vec![3, 8, 60], 2),
    ];
    for (name, x, ks, seeds) in &sets {
        for &k in ks {
            for threads in [1, 2, 4] {
                for seed in 0..*seeds {
                    assert_pp_matches_reference(name, x, k, seed, threads);
                }
            }
        }
    }
}

#[test]
fn pruned_kmeans_plus_plus_matches_reference_on_duplicates_and_extreme_scales() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let dup = Array2::from_shape_fn((3000, 3), |_| rng.gen_range(0..3) as f64);
    let few = Array2::from_shape_fn((500, 2), |(i, f)| ((i % 3) * (f + 1)) as f64);
    let b = blobs(4000, 4, 6, 10);
    let mut sets: Vec<(String, Array2<f64>)> = vec![
        ("many duplicates".into(), dup),
        ("3 distinct rows".into(), few),
    ];
    // Squares in the subnormal range or underflowing to 0, and overflowing to +inf.
    for scale in [1e-150, 1e-158, 1e-162, 1e150, 1e153, 1e155] {
        sets.push((format!("blobs x {scale:e}"), &b * scale));
    }
    let mut mixed = b.clone();
    mixed.column_mut(0).mapv_inplace(|v| v * 1e8);
    mixed.column_mut(1).fill(3.0);
    sets.push(("mixed column scales".into(), mixed));
    // Not finite (only `fit` validates; `kmeans_plus_plus` takes anything).
    for (i, bad) in [f64::NAN, f64::INFINITY, f64::MAX].into_iter().enumerate() {
        let mut y = b.clone();
        y[[17 + i, 2]] = bad;
        y[[3000 + i, 0]] = -bad;
        sets.push((format!("one coordinate {bad:e}"), y));
    }
    for (name, x) in &sets {
        for k in [2, 5, 9] {
            for threads in [1, 2] {
                assert_pp_matches_reference(name, x, k, 3, threads);
            }
        }
    }
}

#[test]
fn pruned_kmeans_plus_plus_matches_reference_for_every_width_and_candidate_count() {
    // Widths around the vector chunks (4) and the packing limit (64), and 3 to 8
    // candidates (k 5, 9, 30, 60, 150, 410): one or two groups of four.
    for (i, d) in [1, 2, 3, 4, 5, 7, 8, 9, 16, 21, 63, 64, 65, 70]
        .into_iter()
        .enumerate()
    {
        let x = blobs(700, d, 12, 20 + i as u64);
        for k in [5, 9, 30] {
            assert_pp_matches_reference(&format!("blobs 700x{d}"), &x, k, 4, 2);
        }
    }
    let x = uniform(1200, 3, 21);
    for k in [60, 150, 410] {
        assert_pp_matches_reference("uniform 1200x3", &x, k, 5, 2);
    }
}

#[test]
fn pruned_kmeans_plus_plus_matches_reference_with_more_than_eight_candidates() {
    // k >= 1097 gives 9 candidates per step: the update of a winner past the
    // improvement bits uses the pruning test instead.
    let k = 1100;
    assert_eq!(2 + (k as f64).ln().floor() as usize, PP_MASK_BITS + 1);
    let c = blobs(1150, 2, 30, 12);
    assert_pp_matches_reference("blobs 1150x2", &c, k, 1, 2);
}

#[test]
fn pruned_kmeans_plus_plus_fit_equals_reference_init() {
    // The fit uses the same init: the given-init fit with the reference centres
    // gives the same result as the k-means++ fit.
    let x = blobs(30_000, 6, 8, 13);
    for seed in 0..3 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (init, _) = ref_kmeanspp(x.as_slice().unwrap(), 30_000, 6, 8, &mut rng, 1);
        let pp = fit(
            x.view(),
            &KMeansParams::new(8).seed(seed).threads(2),
            &mut NoHooks,
        )
        .unwrap();
        let given = fit(
            x.view(),
            &KMeansParams::new(8).init(Init::Given(init)),
            &mut NoHooks,
        )
        .unwrap();
        assert_eq!(pp, given, "seed {seed}");
    }
}

#[test]
fn candidate_scan_with_marks_equals_sequential_scan() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for case in 0..200 {
        let n = [1, 5, PP_SCAN, PP_SCAN + 1, 3 * PP_SCAN + 17][case % 5];
        let mut closest: Vec<f64> = (0..n)
            .map(|_| match rng.gen_range(0..4) {
                0 => 0.0,
                1 => rng.gen::<f64>() * 1e-300,
                _ => rng.gen::<f64>() * 10.0,
            })
            .collect();
        if case % 7 == 3 {
            closest[rng.gen_range(0..n)] = f64::INFINITY;
        }
        let (total, ends) = pp_total(&closest);
        assert_eq!(total.to_bits(), closest.iter().sum::<f64>().to_bits());
        // Targets: random, exact running sums (ties must not cross), the total and
        // beyond, NaN (never crossed), sorted as the caller sorts them.
        let mut cum = Vec::with_capacity(n);
        let mut s = 0.0;
        for v in &closest {
            s += v;
            cum.push(s);
        }
        let mut rv: Vec<(f64, usize)> = (0..6)
            .map(|t| {
                let r = match rng.gen_range(0..6) {
                    0 | 1 => rng.gen::<f64>() * total,
                    2 => cum[rng.gen_range(0..n)],
                    3 => total,
                    4 => -f64::NAN,
                    _ => 0.0,
                };
                (r, t)
            })
            .collect();
        rv.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut a, mut b) = (vec![usize::MAX; 6], vec![usize::MAX; 6]);
        pp_sample(&closest, &ends, &rv, &mut a);
        ref_sample(&closest, &rv, &mut b);
        assert_eq!(a, b, "case {case}, n {n}, rv {rv:?}");
    }
}

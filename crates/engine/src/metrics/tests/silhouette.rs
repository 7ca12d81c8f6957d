//! The silhouette kernels against a naive reference, reproducibility, interrupts,
//! sampling and the memory estimate.

use super::*;

// ---------------------------------------------------------------- silhouette kernel

/// Naive O(n^2) silhouette from exact differences.
fn naive_silhouette(x: &Array2<f64>, labels: &[i64]) -> Vec<f64> {
    let dense = Dense::new(labels);
    let n = x.nrows();
    (0..n)
        .map(|i| {
            let mut sums = vec![0.0; dense.k()];
            for j in 0..n {
                let d: f64 = x
                    .row(i)
                    .iter()
                    .zip(x.row(j).iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                sums[dense.idx[j]] += d;
            }
            sil_value(&sums, dense.idx[i], &dense.counts)
        })
        .collect()
}

#[test]
fn kernels_match_naive_on_awkward_data() {
    // Unequal clusters (partial chunks everywhere), a far offset, near-duplicates, a
    // singleton, and clusters whose means coincide.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let sizes = [1usize, 7, 70, 130, 3, 200];
    let d = 5;
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for (c, &sz) in sizes.iter().enumerate() {
        for i in 0..sz {
            for f in 0..d {
                let base = 1e4 + (c % 3) as f64 * 2.0;
                let v = if i % 5 == 0 {
                    0.0
                } else {
                    rng.gen_range(-1.0..1.0)
                };
                rows.push(base + v + f as f64);
            }
            labels.push(c as i64 * 10 - 20);
        }
    }
    let x = Array2::from_shape_vec((labels.len(), d), rows).unwrap();
    let want = naive_silhouette(&x, &labels);
    for simd in kernels() {
        for sched in [Schedule::Symmetric, Schedule::RowWise] {
            let got = silhouette_impl(
                x.view(),
                &labels,
                2,
                Some(sched),
                Some(simd),
                &mut no_interrupt(),
            )
            .unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                close(*g, *w, 1e-10, &format!("{simd:?} {sched:?} s[{i}]"));
            }
        }
    }
}

#[test]
fn silhouette_is_bitwise_reproducible_across_thread_counts() {
    let c = load(CASES[9].1);
    for simd in kernels() {
        for sched in [Schedule::Symmetric, Schedule::RowWise] {
            let run = |threads| {
                silhouette_impl(
                    c.x.view(),
                    &c.labels,
                    threads,
                    Some(sched),
                    Some(simd),
                    &mut no_interrupt(),
                )
                .unwrap()
            };
            let one = run(1);
            assert_eq!(one, run(2), "{simd:?} {sched:?}");
            assert_eq!(one, run(3), "{simd:?} {sched:?}");
            assert_eq!(one, run(2), "{simd:?} {sched:?} again");
        }
    }
}

#[test]
fn silhouette_interrupt_cancels() {
    let c = load(CASES[9].1);
    let mut calls = 0;
    let mut stop = || {
        calls += 1;
        if calls > 2 {
            Err(EngineError::Canceled)
        } else {
            Ok(())
        }
    };
    let r = silhouette_samples_threads(c.x.view(), &c.labels, 1, &mut stop);
    assert_eq!(r, Err(EngineError::Canceled));
    assert_eq!(calls, 3);
    // With a helper thread: whenever the callback errs, the call returns that error
    // (how often it gets polled depends on scheduling).
    for after in [0, 1, 2, 5] {
        let mut calls = 0;
        let mut stop = || {
            calls += 1;
            if calls > after {
                Err(EngineError::Canceled)
            } else {
                Ok(())
            }
        };
        let r = silhouette_samples_threads(c.x.view(), &c.labels, 2, &mut stop);
        if calls > after {
            assert_eq!(r, Err(EngineError::Canceled), "cancel after {after} calls");
        } else {
            assert!(r.is_ok());
        }
    }
}

#[test]
fn silhouette_sampled_is_seeded_and_states_size() {
    let c = load(CASES[9].1);
    let a = silhouette_sampled(c.x.view(), &c.labels, 400, 7).unwrap();
    let b = silhouette_sampled(c.x.view(), &c.labels, 400, 7).unwrap();
    let other = silhouette_sampled(c.x.view(), &c.labels, 400, 8).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.score, other.score);
    assert_eq!((a.sample_size, a.exact), (400, false));
    let exact = c.exp["silhouette_score"].as_f64().unwrap();
    assert!((a.score - exact).abs() < 0.05, "{} vs {exact}", a.score);
    // A sample with a single label is reported with the sample's size.
    let x = Array2::from_shape_vec((6, 1), vec![0., 1., 2., 3., 4., 5.]).unwrap();
    match silhouette_sampled(x.view(), &[0, 0, 0, 0, 0, 1], 2, 3) {
        Ok(s) => assert_eq!(s.sample_size, 2),
        Err(EngineError::InvalidParameter { reason, .. }) => {
            assert!(reason.contains("sample drawn from 6 rows"), "{reason}")
        }
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn silhouette_of_reservoir_exact_and_sampled() {
    let c = load(CASES[0].1);
    let mut r = Reservoir::new(10_000, 1);
    for (row, &l) in c.x.outer_iter().zip(&c.labels) {
        r.push((row.to_vec(), l));
    }
    let s = silhouette_of_reservoir(&r, &mut no_interrupt()).unwrap();
    assert!(s.exact);
    assert_eq!(s.sample_size, c.x.nrows());
    close(
        s.score,
        c.exp["silhouette_score"].as_f64().unwrap(),
        TOL,
        "reservoir exact",
    );
    let mut small = Reservoir::new(50, 1);
    for (row, &l) in c.x.outer_iter().zip(&c.labels) {
        small.push((row.to_vec(), l));
    }
    let s = silhouette_of_reservoir(&small, &mut no_interrupt()).unwrap();
    assert_eq!((s.exact, s.sample_size), (false, 50));
    assert_eq!(
        silhouette_of_reservoir(&Reservoir::new(5, 1), &mut no_interrupt()),
        Err(EngineError::NoRows)
    );
}

#[test]
fn memory_estimate_is_sane() {
    let b = silhouette_memory_bytes(20_000, 16, 8, 2);
    assert!(b > 20_000 * 16 * 8 * 3 && b < 20_000 * 16 * 8 * 8, "{b}");
    // huge k switches to the row-wise schedule: no n x k table per thread
    let big = silhouette_memory_bytes(1_000_000, 4, 100_000, 2);
    assert!(big < 1_000_000 * 4 * 8 * 12, "{big}");
}

// ---------------------------------------------------------------- merge / serialize

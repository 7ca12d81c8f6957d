//! Agreement with scikit-learn, exactness of the accelerated algorithms, hooks,
//! `assign` and `count_distinct_rows`.

use super::*;

// ---- agreement with scikit-learn ---------------------------------------------

#[test]
fn same_initial_centroids_give_sklearn_labels_inertia_and_n_iter() {
    for f in fixtures() {
        let x = mat(&f.x);
        let scale = total_ss(&x);
        for algorithm in [Algorithm::Lloyd, Algorithm::Hamerly, Algorithm::Elkan] {
            for threads in [1, 2] {
                let p = KMeansParams::new(f.k)
                    .init(Init::Given(mat(&f.init)))
                    .tol(f.tol)
                    .max_iter(f.max_iter)
                    .algorithm(algorithm)
                    .threads(threads);
                let r = fit(x.view(), &p, &mut NoHooks).unwrap();
                let tag = format!("{} {algorithm:?} threads={threads}", f.name);
                assert_eq!(r.labels, f.labels, "{tag}: labels");
                assert_eq!(r.n_iter, f.n_iter, "{tag}: n_iter");
                assert!(
                    close(r.inertia, f.inertia, scale),
                    "{tag}: inertia {} vs sklearn {}",
                    r.inertia,
                    f.inertia
                );
                let c = mat(&f.centroids);
                let cscale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (a, b) in r.centroids.iter().zip(c.iter()) {
                    assert!((a - b).abs() <= 1e-9 * cscale, "{tag}: centroid {a} vs {b}");
                }
                assert_eq!(r.converged, f.n_iter < f.max_iter, "{tag}: converged");
            }
        }
    }
}

#[test]
fn seeded_kmeans_plus_plus_is_within_one_percent_of_sklearn_best_of_10() {
    for f in fixtures() {
        let x = mat(&f.x);
        let scale = total_ss(&x);
        let p = KMeansParams::new(f.k).n_init(10).seed(42);
        let r = fit(x.view(), &p, &mut NoHooks).unwrap();
        assert!(
            r.inertia <= f.best_of_10_inertia * 1.01 + 1e-12 * scale,
            "{}: {} vs sklearn best-of-10 {}",
            f.name,
            r.inertia,
            f.best_of_10_inertia
        );
    }
}

// ---- exactness of the accelerated algorithms ----------------------------------

#[test]
fn lloyd_hamerly_elkan_and_thread_counts_give_identical_results() {
    // Several blocks (so several threads), overlapping clusters, 2 restarts.
    for (n, d, k) in [(17_000, 4, 8), (9_000, 10, 12), (9_000, 2, 3)] {
        let x = blobs(n, d, k, 9);
        let base = KMeansParams::new(k).n_init(2).seed(5).tol(0.0).max_iter(20);
        let reference = fit(
            x.view(),
            &base.clone().algorithm(Algorithm::Lloyd).threads(1),
            &mut NoHooks,
        )
        .unwrap();
        for algorithm in [Algorithm::Hamerly, Algorithm::Elkan] {
            for threads in [1, 3] {
                let r = fit(
                    x.view(),
                    &base.clone().algorithm(algorithm).threads(threads),
                    &mut NoHooks,
                )
                .unwrap();
                // (assert! rather than assert_eq!: the Debug output would be huge)
                assert!(r == reference, "{algorithm:?} threads={threads} n={n}");
            }
        }
    }
}

#[test]
fn same_seed_same_result_and_restarts_keep_the_best() {
    let x = blobs(3000, 4, 7, 3);
    let p = KMeansParams::new(7).n_init(5).seed(11);
    let a = fit(x.view(), &p, &mut NoHooks).unwrap();
    let b = fit(x.view(), &p, &mut NoHooks).unwrap();
    assert!(a == b);
    // Run r of n_init=5 is the single run with the same seed and stream r.
    let single = fit(x.view(), &p.clone().n_init(1), &mut NoHooks).unwrap();
    assert!(a.inertia <= single.inertia);
    if a.best_run == 0 {
        assert!(a == single);
    }
    let other = fit(x.view(), &p.clone().seed(12).n_init(1), &mut NoHooks).unwrap();
    assert_eq!(other.labels.len(), 3000);
}

#[test]
fn final_labels_and_inertia_refer_to_the_returned_centroids() {
    let x = blobs(5000, 3, 6, 4);
    for max_iter in [1, 2, 300] {
        let r = fit(
            x.view(),
            &KMeansParams::new(6).max_iter(max_iter),
            &mut NoHooks,
        )
        .unwrap();
        let (labels, inertia) = assign(x.view(), r.centroids.view());
        assert_eq!(labels, r.labels);
        assert_eq!(inertia.to_bits(), r.inertia.to_bits());
        assert_eq!(r.converged, r.n_iter < max_iter || max_iter == 300);
    }
}

#[test]
fn never_returns_an_empty_cluster() {
    // Duplicate initial centroids leave clusters empty; with max_iter = 1 the run
    // stops right after relocation, so the final fix-up is exercised too.
    let x = blobs(2000, 2, 4, 8);
    let init = array![[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [50.0, 50.0]];
    for max_iter in [1, 2, 3, 300] {
        for algorithm in [Algorithm::Lloyd, Algorithm::Hamerly, Algorithm::Elkan] {
            let p = KMeansParams::new(4)
                .init(Init::Given(init.clone()))
                .max_iter(max_iter)
                .algorithm(algorithm);
            let r = fit(x.view(), &p, &mut NoHooks).unwrap();
            let mut counts = [0usize; 4];
            r.labels.iter().for_each(|&l| counts[l as usize] += 1);
            assert!(
                counts.iter().all(|&c| c > 0),
                "{max_iter} {algorithm:?}: {counts:?}"
            );
            let (labels, _) = assign(x.view(), r.centroids.view());
            assert_eq!(labels, r.labels);
        }
    }
}

#[test]
fn k_equal_to_distinct_count_puts_every_distinct_point_in_its_own_cluster() {
    let x = array![[0.0, 1.0], [0.0, 1.0], [5.0, 5.0], [-3.0, 2.0], [5.0, 5.0]];
    for init in [Init::KMeansPlusPlus, Init::Random] {
        let r = fit(x.view(), &KMeansParams::new(3).init(init), &mut NoHooks).unwrap();
        assert_eq!(r.inertia, 0.0);
        assert_eq!(r.labels[0], r.labels[1]);
        assert_eq!(r.labels[2], r.labels[4]);
        assert_ne!(r.labels[0], r.labels[2]);
        assert_ne!(r.labels[0], r.labels[3]);
    }
}

#[test]
fn progress_once_per_iteration_and_interrupt_checks_per_block() {
    let x = blobs(50_000, 3, 5, 6);
    let mut h = Recorder::default();
    let p = KMeansParams::new(5).n_init(2).threads(2);
    let r = fit(x.view(), &p, &mut h).unwrap();
    let runs: Vec<usize> = h.progress.iter().map(|p| p.run).collect();
    assert!(runs.contains(&0) && runs.contains(&1));
    let best: Vec<&Progress> = h.progress.iter().filter(|p| p.run == r.best_run).collect();
    assert_eq!(best.len(), r.n_iter);
    for (i, p) in best.iter().enumerate() {
        assert_eq!(p.iteration, i + 1);
    }
    assert_eq!(best[0].moved, 50_000);
    // Inertia of each assignment never increases (Lloyd's monotonicity).
    for w in best.windows(2) {
        assert!(w[1].inertia <= w[0].inertia * (1.0 + 1e-12));
    }
    // 50k rows = 7 blocks per pass; the calling thread checks between its blocks.
    assert!(h.checks >= 2 * h.progress.len(), "{} checks", h.checks);
}

#[test]
fn interrupt_cancels_training_from_any_phase() {
    let x = blobs(40_000, 3, 4, 6);
    for threads in [1, 2] {
        let p = KMeansParams::new(4).threads(threads).tol(0.0).n_init(2);
        let mut all = Recorder::default();
        fit(x.view(), &p, &mut all).unwrap();
        assert!(all.checks > 20);
        // With 2 threads the calling thread takes a varying share of the blocks, so
        // only a lower bound of the count is fixed: 2 per iteration (one at its
        // start, one before the first block the calling thread takes).
        let iterations = all.progress.len();
        let last = if threads == 1 {
            all.checks - 1
        } else {
            iterations
        };
        for cancel_after in [0, 1, 3, iterations / 2, last] {
            let mut h = Recorder {
                cancel_after: Some(cancel_after),
                ..Default::default()
            };
            assert_eq!(
                fit(x.view(), &p, &mut h).err(),
                Some(EngineError::Canceled),
                "threads {threads}, cancel after {cancel_after} of {}",
                all.checks
            );
        }
    }
    // `assign` runs on 2 threads here: a busy machine can let the worker take every
    // block, so the calling thread may check only once; cancel on the first check.
    let mut h = Recorder {
        cancel_after: Some(0),
        ..Default::default()
    };
    assert_eq!(
        assign_with_hooks(x.view(), x.slice(ndarray::s![0..3, ..]), &mut h).err(),
        Some(EngineError::Canceled)
    );
}

#[test]
fn assign_agrees_with_nearest() {
    let x = blobs(20_000, 7, 5, 12);
    let c = x.slice(ndarray::s![100..109, ..]).to_owned();
    let (labels, inertia) = assign(x.view(), c.view());
    let mut total = 0.0;
    for (i, row) in x.rows().into_iter().enumerate() {
        let n = nearest(c.view(), row.as_slice().unwrap());
        assert_eq!(labels[i] as usize, n.index);
        total += n.dist_sq;
    }
    assert!((total - inertia).abs() <= 1e-9 * total);
    // Column-major input is handled too.
    let xf = x.t().as_standard_layout().to_owned();
    assert_eq!(assign(xf.t(), c.view()).0, labels);
}

#[test]
fn count_distinct_rows_is_exact_and_stops_early() {
    let x = array![
        [1.0, 2.0],
        [1.0, 2.0],
        [0.0, 0.0],
        [-0.0, 0.0],
        [3.0, 1.0],
        [1.0, 2.0]
    ];
    assert_eq!(count_distinct_rows(x.view(), 100), 3);
    assert_eq!(count_distinct_rows(x.view(), 2), 2);
    assert_eq!(count_distinct_rows(x.view(), 0), 0);
    let many = blobs(10_000, 3, 4, 1);
    assert_eq!(count_distinct_rows(many.view(), usize::MAX), 10_000);
}

#[test]
fn canonical_numbering_puts_the_largest_first_and_keeps_the_model() {
    let x = blobs(300, 2, 3, 5);
    // Unequal sizes: drop most of one blob.
    let keep: Vec<usize> = (0..x.nrows())
        .filter(|i| i % 3 != 0 || i % 9 == 0)
        .collect();
    let x = x.select(ndarray::Axis(0), &keep);
    let r = fit(x.view(), &KMeansParams::new(3).seed(4), &mut NoHooks).unwrap();
    let mut c = r.clone();
    c.canonicalize();
    let sizes = |r: &KMeansResult| {
        let mut s = vec![0usize; 3];
        for &l in &r.labels {
            s[l as usize] += 1;
        }
        s
    };
    let s = sizes(&c);
    assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
    for (old, new) in r.labels.iter().zip(&c.labels) {
        assert_eq!(
            r.centroids.row(*old as usize),
            c.centroids.row(*new as usize)
        );
    }
    assert_eq!(c.inertia.to_bits(), r.inertia.to_bits());
    let mut again = c.clone();
    again.canonicalize();
    assert_eq!(again, c);
}

#[test]
fn progress_inertia_is_the_inertia_of_each_iterations_labels() {
    // Later iterations keep their sums from the rows that moved and report the inertia
    // from those sums; it must still be the inertia of that iteration's labels against
    // that iteration's centroids (the centroids a fit with max_iter = t returns).
    let (n, d, k) = (12_000, 5, 6);
    let x = blobs(n, d, k, 21);
    // Every seed from the same blob, so rows keep moving for several iterations.
    let init = x.slice(ndarray::s![0..k * k;k, ..]).to_owned();
    for algorithm in [Algorithm::Lloyd, Algorithm::Hamerly, Algorithm::Elkan] {
        let base = KMeansParams::new(k)
            .init(Init::Given(init.clone()))
            .tol(0.0)
            .algorithm(algorithm)
            .threads(2);
        let mut h = Recorder::default();
        fit(x.view(), &base.clone().max_iter(8), &mut h).unwrap();
        assert!(h.progress.len() >= 3, "{algorithm:?}: {}", h.progress.len());
        let mut moved_after_first = 0;
        for t in 1..h.progress.len() {
            let c = fit(x.view(), &base.clone().max_iter(t), &mut NoHooks)
                .unwrap()
                .centroids;
            let (_, want) = assign(x.view(), c.view());
            let got = h.progress[t].inertia;
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "{algorithm:?} iteration {}: {got} vs {want}",
                t + 1
            );
            moved_after_first += h.progress[t].moved;
        }
        // The incremental path really ran: rows moved after the first iteration.
        assert!(moved_after_first > 0, "{algorithm:?}");
    }
}

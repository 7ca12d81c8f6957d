//! `StepState`: merging, empty clusters, validation and bytes.

use super::*;

// ---- StepState ------------------------------------------------------------------

#[test]
fn step_states_merge_into_one_lloyd_iteration() {
    let x = blobs(3000, 3, 4, 2);
    let c0 = x.slice(ndarray::s![0..4, ..]).to_owned();
    let mut parts: Vec<StepState> = (0..3).map(|_| StepState::new(4, 3)).collect();
    for (i, row) in x.rows().into_iter().enumerate() {
        parts[i % 3]
            .add(c0.view(), row.as_slice().unwrap())
            .unwrap();
    }
    let mut all = StepState::new(4, 3);
    for p in &parts {
        let back = StepState::from_bytes(&p.to_bytes()).unwrap();
        assert_eq!(&back, p);
        all.merge(&back).unwrap();
    }
    assert_eq!(all.rows(), 3000);
    // Same as one iteration of fit from c0.
    let p = KMeansParams::new(4)
        .init(Init::Given(c0.clone()))
        .max_iter(1)
        .algorithm(Algorithm::Lloyd);
    let mut h = Recorder::default();
    let r = fit(x.view(), &p, &mut h).unwrap();
    let c1 = all.new_centroids(c0.view());
    for (a, b) in c1.iter().zip(r.centroids.iter()) {
        assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()));
    }
    assert!((all.inertia() - h.progress[0].inertia).abs() <= 1e-9 * all.inertia());
}

#[test]
fn step_state_keeps_old_centroid_of_an_empty_cluster() {
    let c = array![[0.0], [100.0]];
    let mut s = StepState::new(2, 1);
    s.add(c.view(), &[1.0]).unwrap();
    s.add(c.view(), &[3.0]).unwrap();
    assert_eq!(s.counts(), &[2, 0]);
    assert_eq!(s.new_centroids(c.view()), array![[2.0], [100.0]]);
    assert_eq!(s.inertia(), 1.0 + 9.0);
}

#[test]
fn step_state_rejects_bad_input() {
    let c = array![[0.0, 0.0], [1.0, 1.0]];
    let mut s = StepState::new(2, 2);
    assert!(matches!(
        s.add(c.view(), &[1.0]),
        Err(EngineError::DimensionMismatch {
            expected: 2,
            got: 1
        })
    ));
    assert!(matches!(
        s.add(c.view(), &[1.0, f64::INFINITY]),
        Err(EngineError::NonFinite { feature: 1, .. })
    ));
    let c3 = array![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]];
    assert!(s.add(c3.view(), &[1.0, 1.0]).is_err());
    assert!(s.merge(&StepState::new(3, 2)).is_err());
    assert!(s.merge(&StepState::new(2, 3)).is_err());
}

#[test]
fn step_state_from_bytes_validates() {
    let c = array![[0.0, 0.0], [1.0, 1.0]];
    let mut s = StepState::new(2, 2);
    s.add(c.view(), &[0.5, 0.25]).unwrap();
    let good = s.to_bytes();
    assert_eq!(good.len(), (4 + 1 + 4 + 4 + 8) + 2 * 8 + 4 * 8);
    assert_eq!(StepState::from_bytes(&good).unwrap(), s);
    assert!(StepState::from_bytes(&[]).is_err());
    assert!(StepState::from_bytes(&good[..good.len() - 1]).is_err());
    let mut extra = good.clone();
    extra.push(0);
    assert!(StepState::from_bytes(&extra).is_err());
    let mut magic = good.clone();
    magic[0] = b'X';
    assert!(StepState::from_bytes(&magic).is_err());
    let mut version = good.clone();
    version[4] = 2;
    assert!(StepState::from_bytes(&version).is_err());
    let mut nan = good.clone();
    let o = good.len() - 8;
    nan[o..].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(StepState::from_bytes(&nan).is_err());
    let mut huge = good.clone();
    huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(StepState::from_bytes(&huge).is_err());
}

// ---- Lloyd as passes -------------------------------------------------------------

/// The sum of squares of `x` around its column means (what `segment_inertia(x, 0)` gives).
fn total_ss(x: ArrayView2<f64>) -> f64 {
    let means = x.mean_axis(ndarray::Axis(0)).unwrap();
    x.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .zip(&means)
                .map(|(a, m)| (a - m) * (a - m))
                .sum::<f64>()
        })
        .sum()
}

#[test]
fn lloyd_passes_end_where_the_in_memory_fit_ends() {
    for (n, d, k, seed, tol) in [
        (5000, 4, 5, 3, 1e-4),
        (3000, 8, 8, 7, 1e-4),
        (4000, 3, 6, 11, 0.0),
    ] {
        let x = blobs(n, d, k, seed);
        let c0 = x.slice(ndarray::s![0..k, ..]).to_owned();
        let p = KMeansParams::new(k)
            .init(Init::Given(c0.clone()))
            .tol(tol)
            .max_iter(300)
            .algorithm(Algorithm::Lloyd);
        let r = fit(x.view(), &p, &mut Recorder::default()).unwrap();
        let tol_abs = tolerance_from_total(total_ss(x.view()), n as u64, d, tol);
        // Three "shards": every third row, each its own state, merged as a combine would.
        let pf = lloyd_passes(c0, tol_abs, 300, |c| {
            let mut parts: Vec<StepState> = (0..3).map(|_| StepState::new(k, d)).collect();
            for (i, row) in x.rows().into_iter().enumerate() {
                parts[i % 3].add(c, row.as_slice().unwrap())?;
            }
            let mut all = StepState::new(k, d);
            for part in &parts {
                all.merge(&StepState::from_bytes(&part.to_bytes())?)?;
            }
            Ok(all)
        })
        .unwrap();
        assert_eq!(pf.n_iter, r.n_iter, "n = {n}, k = {k}");
        assert!(pf.converged && r.converged);
        assert_eq!(pf.passes, pf.n_iter + 1);
        assert_eq!(pf.counts.iter().sum::<u64>(), n as u64);
        // The same centroids (up to the order fit numbers them in).
        for c in pf.centroids.rows() {
            let best = r
                .centroids
                .rows()
                .into_iter()
                .map(|o| {
                    o.iter()
                        .zip(c.iter())
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                })
                .fold(f64::INFINITY, f64::min);
            let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            assert!(
                best <= 1e-9 * scale,
                "centroid {c} is {best} from the fit's"
            );
        }
        assert!((pf.inertia - r.inertia).abs() <= 1e-9 * r.inertia);
    }
}

#[test]
fn lloyd_passes_stop_at_max_iter_and_refuse_no_rows() {
    let x = blobs(500, 2, 3, 5);
    let c0 = x.slice(ndarray::s![0..3, ..]).to_owned();
    let pf = lloyd_passes(c0.clone(), 0.0, 2, |c| {
        let mut st = StepState::new(3, 2);
        for row in x.rows() {
            st.add(c, row.as_slice().unwrap())?;
        }
        Ok(st)
    })
    .unwrap();
    assert_eq!((pf.n_iter, pf.passes), (2, 3));
    let err = lloyd_passes(c0, 1e-4, 10, |_| Ok(StepState::new(3, 2))).unwrap_err();
    assert!(matches!(err, EngineError::NoRows));
    let err = lloyd_passes(array![[0.0, 0.0]], 1e-4, 10, |_| Ok(StepState::new(2, 2)));
    assert!(err.is_err());
}

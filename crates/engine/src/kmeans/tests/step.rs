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

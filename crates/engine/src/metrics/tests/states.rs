//! The mergeable states: merging equals one pass, bytes round-trip and garbage is
//! rejected.

use super::*;

fn split3<T: Clone>(v: &[T]) -> [Vec<T>; 3] {
    let n = v.len();
    [
        v[..n / 5].to_vec(),
        v[n / 5..n / 2].to_vec(),
        v[n / 2..].to_vec(),
    ]
}

#[test]
fn cluster_stats_merge_equals_one_pass() {
    let c = load(CASES[7].1);
    let rows: Vec<(i64, Vec<f64>)> =
        c.x.outer_iter()
            .zip(&c.labels)
            .map(|(r, &l)| (l, r.to_vec()))
            .collect();
    let mut one = ClusterStats::new(c.x.ncols());
    rows.iter().for_each(|(l, r)| one.push(*l, r).unwrap());
    let parts = split3(&rows).map(|p| {
        let mut s = ClusterStats::new(c.x.ncols());
        p.iter().for_each(|(l, r)| s.push(*l, r).unwrap());
        s
    });
    let mut merged = ClusterStats::new(0); // empty placeholder adopts the width
    for p in &parts {
        merged.merge(p).unwrap();
    }
    merged.merge(&ClusterStats::new(7)).unwrap(); // empty part: no-op
    assert_eq!((merged.n(), merged.k()), (one.n(), one.k()));
    assert_eq!(merged.sizes(), one.sizes());
    for ((_, a), (_, b)) in merged.centroids().iter().zip(one.centroids()) {
        for (x, y) in a.iter().zip(&b) {
            close(*x, *y, 1e-12, "merged mean");
        }
    }
    close(
        merged.within_ss(),
        one.within_ss(),
        1e-12,
        "merged within_ss",
    );
    close(
        merged.calinski_harabasz().unwrap(),
        one.calinski_harabasz().unwrap(),
        1e-12,
        "merged CH",
    );
    let mut wrong = ClusterStats::new(2);
    wrong.push(0, &[0.0, 0.0]).unwrap();
    assert!(matches!(
        merged.merge(&wrong),
        Err(EngineError::DimensionMismatch { .. })
    ));
}

#[test]
fn contingency_merge_is_exact() {
    let c = load(CASES[8].1);
    let pairs: Vec<(i64, i64)> = c.labels.iter().copied().zip(c.labels_b.clone()).collect();
    let mut one = Contingency::new();
    pairs.iter().for_each(|&(a, b)| one.push(a, b));
    let mut merged = Contingency::new();
    for part in split3(&pairs) {
        let mut p = Contingency::new();
        part.iter().for_each(|&(a, b)| p.push(a, b));
        merged.merge(&p);
    }
    assert_eq!(merged, one);
    assert_eq!(merged.ari(), one.ari());
    assert_eq!(merged.nmi(), one.nmi());
    close(
        one.ari().unwrap(),
        c.exp["ari"].as_f64().unwrap(),
        TOL,
        "contingency ari",
    );
}

#[test]
fn serialization_round_trips() {
    let c = load(CASES[8].1);
    let mut st = ClusterStats::new(c.x.ncols());
    let mut ct = Contingency::new();
    let mut rs = Reservoir::new(25, 3);
    for ((row, &l), &lb) in c.x.outer_iter().zip(&c.labels).zip(&c.labels_b) {
        st.push(l, row.as_slice().unwrap()).unwrap();
        ct.push(l, lb);
        rs.push((row.to_vec(), l));
    }
    assert_eq!(ClusterStats::from_bytes(&st.to_bytes()).unwrap(), st);
    assert_eq!(Contingency::from_bytes(&ct.to_bytes()).unwrap(), ct);
    let back = Reservoir::from_bytes(&rs.to_bytes()).unwrap();
    assert_eq!(back.items(), rs.items());
    assert_eq!((back.seen(), back.capacity()), (rs.seen(), rs.capacity()));
    assert_eq!(back.to_bytes(), rs.to_bytes());
    // the deserialized sample continues exactly like the original
    let (mut a, mut b) = (rs.clone(), back);
    for i in 0..100 {
        a.push((vec![i as f64; 3], i));
        b.push((vec![i as f64; 3], i));
    }
    assert_eq!(a.items(), b.items());
    // empty states
    let e = ClusterStats::new(4);
    assert_eq!(ClusterStats::from_bytes(&e.to_bytes()).unwrap(), e);
    let e = Contingency::new();
    assert_eq!(Contingency::from_bytes(&e.to_bytes()).unwrap(), e);
    let e: Reservoir<(Vec<f64>, i64)> = Reservoir::new(9, 9);
    assert_eq!(Reservoir::from_bytes(&e.to_bytes()).unwrap().len(), 0);
}

#[test]
fn deserialization_rejects_garbage() {
    let mut st = ClusterStats::new(2);
    st.push(1, &[1.0, 2.0]).unwrap();
    st.push(1, &[2.0, 2.0]).unwrap();
    st.push(4, &[0.0, 0.0]).unwrap();
    let mut ct = Contingency::new();
    ct.push(1, 2);
    ct.push(3, 2);
    let mut rs = Reservoir::new(2, 1);
    rs.push((vec![1.0, 2.0], 1));
    rs.push((vec![3.0, 4.0], 2));
    rs.push((vec![5.0, 6.0], 3));
    let blobs = [st.to_bytes(), ct.to_bytes(), rs.to_bytes()];
    let parse = |which: usize, b: &[u8]| -> bool {
        match which {
            0 => ClusterStats::from_bytes(b).is_ok(),
            1 => Contingency::from_bytes(b).is_ok(),
            _ => Reservoir::from_bytes(b).is_ok(),
        }
    };
    for (w, blob) in blobs.iter().enumerate() {
        assert!(parse(w, blob));
        // every truncation, a trailing byte, wrong magic / version
        for len in 0..blob.len() {
            assert!(!parse(w, &blob[..len]), "kind {w} truncated to {len}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(!parse(w, &longer));
        let mut magic = blob.clone();
        magic[0] ^= 0xff;
        assert!(!parse(w, &magic));
        let mut version = blob.clone();
        version[4] = 2;
        assert!(!parse(w, &version));
        // the other kinds' bytes
        for (o, other) in blobs.iter().enumerate() {
            if o != w {
                assert!(!parse(w, other));
            }
        }
        // random garbage never panics
        let mut rng = ChaCha8Rng::seed_from_u64(w as u64);
        for _ in 0..500 {
            let mut g = blob.clone();
            let i = rng.gen_range(5..g.len());
            g[i] = rng.gen();
            let _ = parse(w, &g);
        }
    }
    // semantic checks
    let cs = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blobs[0].clone();
        f(&mut b);
        ClusterStats::from_bytes(&b)
    };
    // header: magic(4) version(1) d(4) k(8); cluster: label(8) count(8) mean(16) m2(16)
    assert!(cs(&|b| b[9..17].copy_from_slice(&u64::MAX.to_le_bytes())).is_err());
    assert!(cs(&|b| b[25..33].copy_from_slice(&0u64.to_le_bytes())).is_err());
    assert!(cs(&|b| b[17..25].copy_from_slice(&9i64.to_le_bytes())).is_err()); // unsorted
    assert!(cs(&|b| b[33..41].copy_from_slice(&f64::NAN.to_le_bytes())).is_err());
    assert!(cs(&|b| b[49..57].copy_from_slice(&(-1.0f64).to_le_bytes())).is_err());
    let ctb = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blobs[1].clone();
        f(&mut b);
        Contingency::from_bytes(&b)
    };
    assert!(ctb(&|b| b[29..37].copy_from_slice(&0u64.to_le_bytes())).is_err());
    assert!(ctb(&|b| b[37..45].copy_from_slice(&0i64.to_le_bytes())).is_err()); // unsorted
    let rsb = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blobs[2].clone();
        f(&mut b);
        Reservoir::from_bytes(&b)
    };
    // header: magic version capacity(5..13) seed seen(21..29) chain count(37..45)
    assert!(rsb(&|b| b[21..29].copy_from_slice(&1u64.to_le_bytes())).is_err());
    assert!(rsb(&|b| b[5..13].copy_from_slice(&1u64.to_le_bytes())).is_err());
}

//! The uplift states: merging partial states (as parallel workers and Citus shards do)
//! equals the state of all rows; states and results round-trip through JSON and through
//! the aggregates' bytes, and bad bytes are refused.
use super::*;
use rand::{Rng, SeedableRng};

fn random_rate_rows(seed: u64, n: usize) -> Vec<(bool, bool)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (rng.gen_bool(0.4), rng.gen_bool(0.07)))
        .collect()
}

#[test]
fn merged_rate_states_equal_the_state_of_all_rows() {
    let rows = random_rate_rows(7, 5000);
    let mut whole = RateState::default();
    for &(t, c) in &rows {
        whole.add(t, c);
    }
    assert_eq!(whole.treated_n + whole.control_n, 5000);
    for cuts in [
        vec![0, 5000],
        vec![1, 2, 4999],
        vec![1234, 2500, 3000, 4000],
    ] {
        let mut merged = RateState::default();
        let mut start = 0;
        for &end in cuts.iter().chain([5000usize].iter()) {
            let mut part = RateState::default();
            for &(t, c) in &rows[start..end] {
                part.add(t, c);
            }
            merged.merge(&part);
            start = end;
        }
        assert_eq!(merged, whole);
    }
}

#[test]
fn merged_mean_states_equal_the_state_of_all_rows() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let rows: Vec<(bool, f64)> = (0..3000)
        .map(|_| {
            let v = if rng.gen_bool(0.6) {
                0.0
            } else {
                (rng.gen::<f64>() * 4.0).exp() * 10.0 + 1e4
            };
            (rng.gen_bool(0.5), v)
        })
        .collect();
    let mut whole = MeanState::default();
    for &(t, v) in &rows {
        whole.add(t, v);
    }
    let rel = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    for parts in [1usize, 2, 3, 7, 64, 3000] {
        let size = rows.len().div_ceil(parts);
        let states: Vec<MeanState> = rows
            .chunks(size)
            .map(|chunk| {
                let mut s = MeanState::default();
                for &(t, v) in chunk {
                    s.add(t, v);
                }
                s
            })
            .collect();
        // Left fold and a pairwise tree: both equal the one-pass state.
        let mut folded = MeanState::default();
        for s in &states {
            folded.merge(s);
        }
        let mut level = states.clone();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| {
                    let mut s = pair[0];
                    if let Some(b) = pair.get(1) {
                        s.merge(b);
                    }
                    s
                })
                .collect();
        }
        for merged in [folded, level[0]] {
            for (m, w) in [
                (merged.treated, whole.treated),
                (merged.control, whole.control),
            ] {
                assert_eq!(m.n, w.n, "{parts} parts");
                assert!(
                    rel(m.mean, w.mean),
                    "{parts} parts: mean {} vs {}",
                    m.mean,
                    w.mean
                );
                assert!(rel(m.m2, w.m2), "{parts} parts: m2 {} vs {}", m.m2, w.m2);
            }
        }
    }
    // Merging an empty state changes nothing, either way round.
    let mut a = whole;
    a.merge(&MeanState::default());
    assert_eq!(a, whole);
    let mut b = MeanState::default();
    b.merge(&whole);
    assert_eq!(b, whole);
}

#[test]
fn states_and_results_round_trip_through_json() {
    let mut r = RateState::default();
    for (t, c) in random_rate_rows(3, 100) {
        r.add(t, c);
    }
    let back: RateState = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    let mut m = MeanState::default();
    for (i, v) in [0.1, 2.5, 3.75, 0.0, 19.99].into_iter().enumerate() {
        m.add(i % 2 == 0, v);
    }
    let back: MeanState = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
    let res = rate_result(&r, 0.95).unwrap();
    let back: RateResult = serde_json::from_str(&serde_json::to_string(&res).unwrap()).unwrap();
    assert_eq!(back, res);
}

// ---- The aggregate states' bytes ---------------------------------------------------

#[test]
fn uplift_states_round_trip_merge_and_refuse_bad_bytes() {
    let mut a = RateAgg {
        confidence: 0.9,
        state: RateState::default(),
    };
    let mut b = a;
    for i in 0..100u64 {
        a.state.add(i % 2 == 0, i % 3 == 0);
        b.state.add(i % 5 == 0, i % 7 == 0);
    }
    assert_eq!(RateAgg::from_bytes(&a.to_bytes()).unwrap(), a);
    let mut ab = a;
    ab.merge(&b).unwrap();
    assert_eq!(ab.state.treated_n + ab.state.control_n, 200);
    let other = RateAgg {
        confidence: 0.95,
        state: RateState::default(),
    };
    assert!(ab.merge(&other).is_err(), "confidence levels differ");
    let mut bad = a;
    bad.state.treated_x = bad.state.treated_n + 1;
    assert!(RateAgg::from_bytes(&bad.to_bytes()).is_err());
    bad = a;
    bad.confidence = 1.5;
    assert!(RateAgg::from_bytes(&bad.to_bytes()).is_err());
    assert!(RateAgg::from_bytes(&a.to_bytes()[..20]).is_err());

    let mut m = MeanAgg {
        confidence: 0.95,
        state: MeanState::default(),
    };
    let mut parts = [m, m, m];
    for i in 0..300 {
        let v = (i as f64 * 0.37).sin() * 100.0;
        m.state.add(i % 2 == 0, v);
        parts[i % 3].state.add(i % 2 == 0, v);
    }
    let back = MeanAgg::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(back, m, "bit-exact round trip");
    let mut merged = parts[0];
    merged.merge(&parts[1]).unwrap();
    merged.merge(&parts[2]).unwrap();
    assert_eq!(merged.state.treated.n, m.state.treated.n);
    assert!(close(merged.state.treated.mean, m.state.treated.mean));
    assert!(close(merged.state.control.m2, m.state.control.m2));
    let mut bad = m;
    bad.state.control.m2 = -1.0;
    assert!(MeanAgg::from_bytes(&bad.to_bytes()).is_err());
    bad = m;
    bad.state.treated.mean = f64::NAN;
    assert!(MeanAgg::from_bytes(&bad.to_bytes()).is_err());
}

//! Seeded uniform sampling of row positions without replacement, for training on more
//! Also [`Reservoir`], the mergeable seeded sample of a stream (`reservoir.rs`).
//! rows than the memory budget allows and for sampled silhouette.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

mod reservoir;
pub use reservoir::{Reservoir, SampleItem};

/// `m` distinct positions out of `0..n`, uniformly at random for a given `seed`,
/// ascending. `m >= n` returns every position. Floyd's algorithm: O(m) time and memory.
pub fn sample_indices(n: usize, m: usize, seed: u64) -> Vec<usize> {
    if m >= n {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen: HashSet<usize> = HashSet::with_capacity(m * 2);
    for j in (n - m)..n {
        let t = rng.gen_range(0..=j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    let mut out: Vec<usize> = chosen.into_iter().collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_m_distinct_sorted_positions_in_range() {
        let s = sample_indices(1000, 100, 7);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&i| i < 1000));
    }

    #[test]
    fn m_at_least_n_is_everything() {
        assert_eq!(sample_indices(5, 5, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample_indices(3, 10, 1), vec![0, 1, 2]);
        assert!(sample_indices(0, 3, 1).is_empty());
    }

    #[test]
    fn same_seed_same_sample_other_seed_other_sample() {
        assert_eq!(
            sample_indices(10_000, 50, 42),
            sample_indices(10_000, 50, 42)
        );
        assert_ne!(
            sample_indices(10_000, 50, 42),
            sample_indices(10_000, 50, 43)
        );
    }

    #[test]
    fn every_position_is_equally_likely() {
        // 20 positions, samples of 5, over 4000 seeds: each position expected 1000 times.
        let mut hits = [0u32; 20];
        for seed in 0..4000 {
            for i in sample_indices(20, 5, seed) {
                hits[i] += 1;
            }
        }
        let chi2: f64 = hits
            .iter()
            .map(|&h| (h as f64 - 1000.0).powi(2) / 1000.0)
            .sum();
        // 19 degrees of freedom: p = 0.001 at 43.8
        assert!(chi2 < 43.8, "chi2 = {chi2}, hits = {hits:?}");
    }
}

//! Seeded uniform sampling: of row positions without replacement ([`sample_indices`], for
//! the sampled silhouette), of rows by their key ([`KeySample`], for training on more rows
//! than the memory budget allows, independent of the order rows come in), and
//! [`Reservoir`], the mergeable seeded sample of a stream (`reservoir.rs`).

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

/// A seeded Bernoulli sample by key: a key is kept when its hash falls below a share of
/// the hash range. Which keys are kept depends only on the key, the seed and the share,
/// never on the order keys come in (so a table rewritten in another physical order gives
/// the same sample); the sample's size is `keep` on average, not exactly.
#[derive(Debug, Clone, Copy)]
pub struct KeySample {
    threshold: u64,
    seed: u64,
}

impl KeySample {
    /// Keep about `keep` of `of` keys (every key when `keep >= of`).
    pub fn new(keep: usize, of: usize, seed: u64) -> Self {
        let threshold = if keep >= of {
            u64::MAX
        } else {
            ((keep as f64 / of as f64) * 18_446_744_073_709_551_616.0) as u64
        };
        KeySample {
            threshold,
            seed: crate::hash::fmix64(seed ^ 0x6b65_7973_616d_706c),
        }
    }

    /// Whether the integer key `key` is in the sample.
    pub fn keeps_int(&self, key: i64) -> bool {
        self.threshold == u64::MAX || crate::hash::absorb(self.seed, key as u64) < self.threshold
    }

    /// Whether the key with text form `key` is in the sample.
    pub fn keeps_text(&self, key: &str) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        let mut h = crate::hash::absorb(self.seed, key.len() as u64);
        for chunk in key.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = crate::hash::absorb(h, u64::from_le_bytes(w));
        }
        h < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sample_keeps_about_the_share_whatever_the_order() {
        let s = KeySample::new(1_000, 10_000, 5);
        let kept: Vec<i64> = (0..10_000).filter(|&k| s.keeps_int(k)).collect();
        assert!((850..1150).contains(&kept.len()), "{}", kept.len());
        let rev: Vec<i64> = (0..10_000).rev().filter(|&k| s.keeps_int(k)).collect();
        assert_eq!(kept, rev.into_iter().rev().collect::<Vec<_>>());
        let texts = (0..10_000)
            .filter(|k| s.keeps_text(&format!("c{k}")))
            .count();
        assert!((850..1150).contains(&texts), "{texts}");
        let other = KeySample::new(1_000, 10_000, 6);
        assert_ne!(
            kept,
            (0..10_000)
                .filter(|&k| other.keeps_int(k))
                .collect::<Vec<_>>()
        );
        let all = KeySample::new(10, 10, 1);
        assert!(all.keeps_int(i64::MIN) && all.keeps_text(""));
    }

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

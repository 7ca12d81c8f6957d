//! Distinct rows: [`count_distinct_rows`] (exact; -0.0 equals 0.0).

use super::*;

pub(super) fn canonical_bits(v: f64) -> u64 {
    // -0.0 and 0.0 are the same point.
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

pub(super) fn row_hash(r: ndarray::ArrayView1<f64>) -> u64 {
    // FNV-1a over the canonical bit patterns, then a final mix.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &v in r.iter() {
        let b = canonical_bits(v);
        h ^= b;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h ^ (h >> 32)
}

/// Number of distinct rows of `x` (exact; -0.0 equals 0.0), counting stops as soon as
/// `stop_at` distinct rows have been seen (then `stop_at` is returned).
pub fn count_distinct_rows(x: ArrayView2<f64>, stop_at: usize) -> usize {
    if stop_at == 0 {
        return 0;
    }
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut distinct = 0usize;
    for (i, r) in x.outer_iter().enumerate() {
        let h = row_hash(r);
        let bucket = seen.entry(h).or_default();
        let dup = bucket.iter().any(|&j| {
            x.row(j)
                .iter()
                .zip(r.iter())
                .all(|(a, b)| canonical_bits(*a) == canonical_bits(*b))
        });
        if !dup {
            bucket.push(i);
            distinct += 1;
            if distinct >= stop_at {
                return distinct;
            }
        }
    }
    distinct
}

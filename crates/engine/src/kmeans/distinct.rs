//! Distinct rows: [`count_distinct_rows`] (exact; -0.0 equals 0.0).

use super::*;
use crate::hash::{canonical_bits, row_hash};

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

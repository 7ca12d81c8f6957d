//! Segment lineage across model versions (`segment_refresh`): the transition table
//! between the current version's segments and a new fit's, each pair's Jaccard over the
//! customers present in both, the one-to-one matching that decides which new segment
//! inherits which old id, fresh ids, the adjusted Rand index and Hennig's bands.
//!
//! **Matching rule.** New segments are matched to old ones by a minimum-cost
//! assignment (the Hungarian method, [`crate::matching::hungarian`]) whose cost for the
//! pair (old i, new j) is `1 - jaccard(i, j)` plus `1e-6 * distance(i, j) / max
//! distance`: the matching maximizes the total Jaccard, and among matchings of equal
//! Jaccard takes the nearer centroids. A new segment inherits its partner's id (and
//! label) only when their Jaccard is above [`INHERIT_JACCARD`] (0.5); it can then be
//! the only such partner, since two disjoint sets cannot each share more than half of a
//! third's union. Any other new segment gets a fresh id, above every id the model has
//! ever used. Old segments nobody inherits are retired.
//!
//! **Jaccard** of old segment i and new segment j is `|i ∩ j| / |i ∪ j|` over the
//! customers present in both versions: a customer new to the source, or gone from it,
//! has not moved between segments and does not count (they are counted apart, as
//! migrations from and to NULL).
use crate::matching::hungarian;
use crate::metrics::Contingency;
use ndarray::{Array2, ArrayView2};

/// A new segment inherits an old id only when their Jaccard is above this.
pub const INHERIT_JACCARD: f64 = 0.5;

/// Counts of customers by (old segment or none, new segment or none).
#[derive(Debug, Clone, PartialEq)]
pub struct Transitions {
    k_old: usize,
    k_new: usize,
    /// (k_old + 1) x (k_new + 1), row-major; the last row counts customers new to the
    /// source, the last column customers gone from it.
    counts: Vec<u64>,
}

impl Transitions {
    /// An empty table between `k_old` old and `k_new` new segments (0-based indexes).
    pub fn new(k_old: usize, k_new: usize) -> Transitions {
        Transitions {
            k_old,
            k_new,
            counts: vec![0; (k_old + 1) * (k_new + 1)],
        }
    }

    fn at(&self, old: Option<usize>, new: Option<usize>) -> usize {
        let i = old.unwrap_or(self.k_old);
        let j = new.unwrap_or(self.k_new);
        assert!(
            i <= self.k_old && j <= self.k_new,
            "transition out of range"
        );
        i * (self.k_new + 1) + j
    }

    /// Count `n` customers moving from `old` (None: new to the source) to `new` (None:
    /// gone from it).
    pub fn add(&mut self, old: Option<usize>, new: Option<usize>, n: u64) {
        let at = self.at(old, new);
        self.counts[at] += n;
    }

    /// Customers counted from `old` to `new`.
    pub fn get(&self, old: Option<usize>, new: Option<usize>) -> u64 {
        self.counts[self.at(old, new)]
    }

    pub fn k_old(&self) -> usize {
        self.k_old
    }

    pub fn k_new(&self) -> usize {
        self.k_new
    }

    /// Old segment i's customers that are still in the source.
    fn old_shared(&self, i: usize) -> u64 {
        (0..self.k_new).map(|j| self.get(Some(i), Some(j))).sum()
    }

    /// New segment j's customers that were in the source before.
    fn new_shared(&self, j: usize) -> u64 {
        (0..self.k_old).map(|i| self.get(Some(i), Some(j))).sum()
    }

    /// Customers present in both versions.
    pub fn shared(&self) -> u64 {
        (0..self.k_old).map(|i| self.old_shared(i)).sum()
    }

    /// Jaccard of old segment `i` and new segment `j` over the shared customers (0 when
    /// neither has any).
    pub fn jaccard(&self, i: usize, j: usize) -> f64 {
        let both = self.get(Some(i), Some(j));
        let union = self.old_shared(i) + self.new_shared(j) - both;
        if union == 0 {
            0.0
        } else {
            both as f64 / union as f64
        }
    }

    /// Hennig's cluster-wise stability of old segment `i`: its best Jaccard with any new
    /// segment (0 with no new segment).
    pub fn best_jaccard(&self, i: usize) -> f64 {
        (0..self.k_new)
            .map(|j| self.jaccard(i, j))
            .fold(0.0, f64::max)
    }

    /// Adjusted Rand index of the two versions over the shared customers (None when
    /// there are none).
    pub fn ari(&self) -> Option<f64> {
        let mut c = Contingency::new();
        for i in 0..self.k_old {
            for j in 0..self.k_new {
                c.push_n(i as i64, j as i64, self.get(Some(i), Some(j)));
            }
        }
        c.ari().ok()
    }
}

/// What a new segment was matched with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Its Hungarian partner (old index), if it got one (not when k grew past the old k).
    pub from: Option<usize>,
    /// Jaccard with that partner.
    pub jaccard: f64,
    /// Whether it inherits the partner's id: `jaccard > INHERIT_JACCARD`.
    pub inherits: bool,
}

/// Match each new segment (index j) to an old one (index i); see the module doc.
/// `old_centroids` must already be in the new encoded space (see
/// `FittedEncoder::carry_to`).
///
/// Panics if the shapes disagree with `t`.
pub fn match_segments(
    t: &Transitions,
    old_centroids: ArrayView2<f64>,
    new_centroids: ArrayView2<f64>,
) -> Vec<Match> {
    let (ko, kn) = (t.k_old, t.k_new);
    assert_eq!(old_centroids.nrows(), ko, "old centroids");
    assert_eq!(new_centroids.nrows(), kn, "new centroids");
    let dist = Array2::from_shape_fn((ko, kn), |(i, j)| {
        old_centroids
            .row(i)
            .iter()
            .zip(new_centroids.row(j).iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
    });
    let max = dist.iter().copied().fold(0.0, f64::max);
    let scale = if max > 0.0 && max.is_finite() {
        1e-6 / max
    } else {
        0.0
    };
    let cost = Array2::from_shape_fn((ko, kn), |(i, j)| {
        let d = if dist[[i, j]].is_finite() {
            dist[[i, j]]
        } else {
            max
        };
        1.0 - t.jaccard(i, j) + d * scale
    });
    let mut from = vec![None; kn];
    if ko <= kn {
        for (i, j) in hungarian(cost.view()).into_iter().enumerate() {
            from[j] = Some(i);
        }
    } else {
        for (j, i) in hungarian(cost.t()).into_iter().enumerate() {
            from[j] = Some(i);
        }
    }
    from.into_iter()
        .enumerate()
        .map(|(j, f)| {
            let jaccard = f.map_or(0.0, |i| t.jaccard(i, j));
            Match {
                from: f,
                jaccard,
                inherits: f.is_some() && jaccard > INHERIT_JACCARD,
            }
        })
        .collect()
}

/// Segment ids of the new segments: an inheriting segment takes its partner's id
/// (`old_ids[i]`), the others fresh ids `last_id + 1, ...` in index order. Returns the
/// ids and the new highest id.
pub fn stable_ids(matches: &[Match], old_ids: &[i32], last_id: i32) -> (Vec<i32>, i32) {
    let mut next = last_id;
    let ids = matches
        .iter()
        .map(|m| match m.from {
            Some(i) if m.inherits => old_ids[i],
            _ => {
                next += 1;
                next
            }
        })
        .collect();
    (ids, next)
}

/// Hennig's (2007) bands of cluster-wise stability (the Jaccard of a segment with its
/// best match): >= 0.85 highly stable, >= 0.75 stable, >= 0.6 pattern only, <= 0.5
/// dissolved, in between unstable.
pub fn band(jaccard: f64) -> &'static str {
    if jaccard >= 0.85 {
        "highly stable"
    } else if jaccard >= 0.75 {
        "stable"
    } else if jaccard >= 0.6 {
        "pattern only"
    } else if jaccard > 0.5 {
        "unstable"
    } else {
        "dissolved"
    }
}

/// Centroids to start a warm refresh from, given the current version's centroids (in
/// the new encoded space) and sizes: with `k` no larger than the current k, the `k`
/// largest segments' centroids (ties: the lower index); with a larger `k`, all of them
/// (the caller adds the rest with `kmeans::extend_seeds`). Returned in the current
/// version's order.
pub fn warm_centroids(old: ArrayView2<f64>, sizes: &[u64], k: usize) -> Array2<f64> {
    if k >= old.nrows() {
        return old.to_owned();
    }
    let mut order: Vec<usize> = (0..old.nrows()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let mut keep: Vec<usize> = order[..k].to_vec();
    keep.sort_unstable();
    old.select(ndarray::Axis(0), &keep)
}

#[cfg(test)]
mod tests;

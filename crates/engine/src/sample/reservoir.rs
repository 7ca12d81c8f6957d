//! [`Reservoir`]: a mergeable, seeded, uniform sample of a stream (bottom-k by hash
//! key), and [`SampleItem`], the items it can hold.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::codec::*;
use crate::error::EngineError;
use crate::hash::{absorb, fmix64};

/// Items a [`Reservoir`] can hold. `feed` folds the item's bits into a running hash; the
/// reservoir keys each item by a hash of (seed, every item pushed before it in the same
/// part, the item). Parts sampled independently — in parallel workers or Citus shards
/// that all received the same seed — therefore get independent keys as soon as their
/// contents differ, and merging keeps a uniform sample without coordinating stream ids.
pub trait SampleItem {
    /// Folds this item into the hash state `h` and returns the new state.
    fn feed(&self, h: u64) -> u64;
}

impl SampleItem for f64 {
    fn feed(&self, h: u64) -> u64 {
        absorb(h, self.to_bits())
    }
}

impl SampleItem for i64 {
    fn feed(&self, h: u64) -> u64 {
        absorb(h, *self as u64)
    }
}

impl SampleItem for u64 {
    fn feed(&self, h: u64) -> u64 {
        absorb(h, *self)
    }
}

impl<A: SampleItem> SampleItem for Vec<A> {
    fn feed(&self, h: u64) -> u64 {
        self.iter()
            .fold(absorb(h, self.len() as u64), |h, v| v.feed(h))
    }
}

impl<A: SampleItem, B: SampleItem> SampleItem for (A, B) {
    fn feed(&self, h: u64) -> u64 {
        self.1.feed(self.0.feed(h))
    }
}

#[derive(Debug, Clone)]
pub(super) struct Keyed<T> {
    pub(super) key: u64,
    pub(super) item: T,
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Mergeable seeded reservoir sample: keeps the `capacity` items with the smallest keys
/// (bottom-k sampling), which is a uniform sample without replacement of everything
/// pushed into all merged parts. Deterministic for a given seed and push order; merging
/// is order-independent.
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    pub(super) capacity: usize,
    pub(super) seed: u64,
    pub(super) seen: u64,
    pub(super) chain: u64,
    pub(super) heap: BinaryHeap<Keyed<T>>,
}

impl<T> Reservoir<T> {
    /// An empty sample of at most `capacity` items.
    pub fn new(capacity: usize, seed: u64) -> Reservoir<T> {
        Reservoir {
            capacity,
            seed,
            seen: 0,
            chain: fmix64(seed ^ 0x243f_6a88_85a3_08d3),
            heap: BinaryHeap::new(),
        }
    }

    pub(super) fn offer(&mut self, key: u64, item: T) {
        if self.heap.len() < self.capacity {
            self.heap.push(Keyed { key, item });
        } else if let Some(mut top) = self.heap.peek_mut() {
            if key < top.key {
                *top = Keyed { key, item };
            }
        }
    }

    /// Combines another part: the result is the bottom-k of the union (capacity becomes
    /// the smaller of the two), and `seen` adds up.
    pub fn merge(&mut self, other: Reservoir<T>) {
        self.seen += other.seen;
        if other.capacity < self.capacity {
            self.capacity = other.capacity;
            while self.heap.len() > self.capacity {
                self.heap.pop();
            }
        }
        for e in other.heap {
            self.offer(e.key, e.item);
        }
    }

    /// Items pushed into this sample and every part merged into it.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Maximum sample size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Current sample size (= min(capacity, seen)).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The sampled items, in key order (deterministic).
    pub fn items(&self) -> Vec<&T> {
        let mut v: Vec<&Keyed<T>> = self.heap.iter().collect();
        v.sort_by_key(|e| e.key);
        v.into_iter().map(|e| &e.item).collect()
    }
}

impl<T: SampleItem> Reservoir<T> {
    /// Offers one item.
    pub fn push(&mut self, item: T) {
        self.seen += 1;
        self.chain = fmix64(item.feed(self.chain) ^ 0x1319_8a2e_0370_7344);
        let key = fmix64(self.chain ^ self.seed.wrapping_mul(0xa409_3822_299f_31d1));
        self.offer(key, item);
    }
}

impl Reservoir<(Vec<f64>, i64)> {
    /// Compact versioned serialization (magic "PSRS", version 1) of the silhouette
    /// aggregate's sample.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(RESERVOIR_MAGIC, 0);
        for v in [self.capacity as u64, self.seed, self.seen, self.chain] {
            w.put(v);
        }
        let mut entries: Vec<&Keyed<(Vec<f64>, i64)>> = self.heap.iter().collect();
        entries.sort_by_key(|e| e.key);
        w.put(entries.len() as u64);
        for e in entries {
            w.put(e.key);
            w.put(e.item.1);
            w.put(e.item.0.len() as u32);
            for v in &e.item.0 {
                w.put(v);
            }
        }
        w.finish()
    }

    /// Parses [`Reservoir::to_bytes`] output, rejecting anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Reservoir<(Vec<f64>, i64)>, EngineError> {
        let mut r = ByteReader::open(bytes, "reservoir sample state", RESERVOIR_MAGIC)?;
        let capacity = r.u64()?;
        let seed = r.u64()?;
        let seen = r.u64()?;
        let chain = r.u64()?;
        let count = r.u64()?;
        r.expect_items(count, 20)?;
        if count != capacity.min(seen) {
            return Err(r.bad("sample size is not min(capacity, seen)"));
        }
        let mut out = Reservoir {
            capacity: usize::try_from(capacity).map_err(|_| r.bad("capacity too large"))?,
            seed,
            seen,
            chain,
            heap: BinaryHeap::with_capacity(count as usize),
        };
        let mut prev: Option<u64> = None;
        for _ in 0..count {
            let key = r.u64()?;
            if prev.is_some_and(|p| p > key) {
                return Err(r.bad("entries are not sorted by key"));
            }
            prev = Some(key);
            let label = r.i64()?;
            let len = r.u32()? as u64;
            r.expect_items(len, 8)?;
            let mut v = Vec::with_capacity(len as usize);
            for _ in 0..len {
                v.push(r.f64()?);
            }
            out.heap.push(Keyed {
                key,
                item: (v, label),
            });
        }
        r.finish()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_basics_and_determinism() {
        let mut r = Reservoir::new(10, 42);
        for i in 0..5i64 {
            r.push(i);
        }
        assert_eq!((r.len(), r.seen()), (5, 5));
        let mut all: Vec<i64> = r.items().into_iter().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        let fill = |seed: u64, range: std::ops::Range<i64>| {
            let mut r = Reservoir::new(10, seed);
            range.for_each(|i| r.push(i));
            r
        };
        let (a, b) = (fill(42, 0..1000), fill(42, 0..1000));
        assert_eq!(a.items(), b.items());
        assert_eq!((a.len(), a.seen()), (10, 1000));
        assert_ne!(a.items(), fill(43, 0..1000).items());
        // merge: sizes add up; order of merging does not matter
        let (p, q, s) = (fill(5, 0..300), fill(5, 300..350), fill(5, 350..1000));
        let mut m1 = p.clone();
        m1.merge(q.clone());
        m1.merge(s.clone());
        let mut m2 = s;
        m2.merge(p);
        m2.merge(q);
        assert_eq!((m1.len(), m1.seen()), (10, 1000));
        assert_eq!(m1.items(), m2.items());
        // capacity: the smaller one wins
        let mut c = Reservoir::new(3, 1);
        c.merge(fill(1, 0..100));
        assert_eq!((c.len(), c.capacity(), c.seen()), (3, 3, 100));
        assert_eq!(Reservoir::<i64>::new(0, 1).len(), 0);
    }

    #[test]
    fn reservoir_merged_parts_are_uniform() {
        // 30 items in 3 unequal parts (all with the same seed, as parallel workers would
        // be), capacity 6: each item must be kept with probability 6/30.
        let trials = 6000u64;
        let (n, cap) = (30usize, 6usize);
        let mut hits = vec![0u64; n];
        let mut pair_hits = 0u64; // items 0 and 29 together: 6/30 * 5/29
        for seed in 0..trials {
            let mut parts: Vec<Reservoir<f64>> =
                (0..3).map(|_| Reservoir::new(cap, seed)).collect();
            for i in 0..n {
                let part = if i < 4 {
                    0
                } else if i < 16 {
                    1
                } else {
                    2
                };
                parts[part].push(i as f64);
            }
            let mut m = parts.pop().unwrap();
            for p in parts {
                m.merge(p);
            }
            assert_eq!((m.len(), m.seen()), (cap, n as u64));
            let items: Vec<usize> = m.items().iter().map(|&&v| v as usize).collect();
            items.iter().for_each(|&i| hits[i] += 1);
            if items.contains(&0) && items.contains(&29) {
                pair_hits += 1;
            }
        }
        let expect = trials as f64 * cap as f64 / n as f64;
        let chi2: f64 = hits
            .iter()
            .map(|&h| (h as f64 - expect).powi(2) / expect)
            .sum();
        // 29 degrees of freedom: P(chi2 > 70) < 1e-4
        assert!(chi2 < 70.0, "chi2 = {chi2}, hits = {hits:?}");
        let pair_expect = trials as f64 * (6.0 / 30.0) * (5.0 / 29.0);
        let sd = (pair_expect * (1.0 - pair_expect / trials as f64)).sqrt();
        assert!(
            (pair_hits as f64 - pair_expect).abs() < 4.0 * sd,
            "pair {pair_hits} vs {pair_expect}"
        );
    }
}

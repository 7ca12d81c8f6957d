//! A fast, non-cryptographic hasher (the Fx hash used by rustc) for the per-row hash
//! maps: category interning and lookup, id uniqueness. SipHash, std's default, is
//! designed against adversarial keys and costs several times more per short key; here
//! the keys are the caller's own data inside the caller's own query, so a crafted
//! collision can only slow down that caller's statement (which stays interruptible).
//!
//! Every hash of the crate lives here:
//! - [`FxHasher`] / [`FxHashMap`] / [`FxHashSet`]: hash maps keyed by the caller's data.
//! - `fmix64` / `absorb`: the keys of the reservoir sample. These decide which rows are
//!   sampled, so their values must never change.
//! - `canonical_bits` / `row_hash`: exact distinct-row counting for k-means (-0.0 equals
//!   0.0); the hash only buckets rows that are then compared exactly.
use std::hash::{BuildHasherDefault, Hasher};

/// Fx hasher state.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `BuildHasher` for std collections: `HashMap<K, V, FxBuild>`.
pub type FxBuild = BuildHasherDefault<FxHasher>;
/// A `HashMap` with the Fx hasher.
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;
/// A `HashSet` with the Fx hasher.
pub type FxHashSet<K> = std::collections::HashSet<K, FxBuild>;

// ---------------------------------------------------------------------------------------
// Reservoir keys (output affecting)

/// MurmurHash3's 64-bit finalizer. Its values decide which rows a [`Reservoir`]
/// keeps (through [`absorb`] and the reservoir's keys), so it must never change.
///
/// [`Reservoir`]: crate::sample::Reservoir
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Folds the word `w` into the running hash `h` (the [`SampleItem`] hashes). Output
/// affecting: it must never change.
///
/// [`SampleItem`]: crate::sample::SampleItem
#[inline]
pub(crate) fn absorb(h: u64, w: u64) -> u64 {
    fmix64(h.rotate_left(29) ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

// ---------------------------------------------------------------------------------------
// Distinct rows

/// The bits of `v` with -0.0 and 0.0 made equal (the same point), for exact row
/// equality.
pub(crate) fn canonical_bits(v: f64) -> u64 {
    // -0.0 and 0.0 are the same point.
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Hash of a row (FNV-1a over [`canonical_bits`], then a final mix) for
/// [`count_distinct_rows`](crate::kmeans::count_distinct_rows). Only buckets rows that
/// are then compared exactly: it does not affect results.
pub(crate) fn row_hash(r: ndarray::ArrayView1<f64>) -> u64 {
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

/// A map from integer ids to small values for lookups in arbitrary order (a source read
/// out of id order, looked up in an id-sorted table): open addressing with linear
/// probing over a power-of-two table at most half full, and [`IdTable::get_many`]
/// prefetching the slots of the ids a few places ahead, so that a batch costs about one
/// memory latency, not one per id. `u32::MAX` is not a storable value.
#[derive(Debug, Clone)]
pub struct IdTable {
    slots: Vec<(i64, u32)>,
    mask: usize,
}

/// An empty slot's value.
const ID_TABLE_EMPTY: u32 = u32::MAX;
/// Ids ahead whose slots [`IdTable::get_many`] prefetches.
const ID_TABLE_AHEAD: usize = 16;

impl IdTable {
    /// The table of `pairs` (ids unique; a later pair of the same id is ignored).
    ///
    /// # Panics
    /// If a value is `u32::MAX`.
    pub fn new(pairs: &[(i64, u32)]) -> Self {
        let cap = (pairs.len() * 2).next_power_of_two().max(16);
        let mut t = IdTable {
            slots: vec![(0, ID_TABLE_EMPTY); cap],
            mask: cap - 1,
        };
        for &(id, v) in pairs {
            assert_ne!(
                v, ID_TABLE_EMPTY,
                "IdTable: u32::MAX is not a storable value"
            );
            let mut i = t.slot(id);
            while t.slots[i].1 != ID_TABLE_EMPTY && t.slots[i].0 != id {
                i = (i + 1) & t.mask;
            }
            if t.slots[i].1 == ID_TABLE_EMPTY {
                t.slots[i] = (id, v);
            }
        }
        t
    }

    #[inline]
    fn slot(&self, id: i64) -> usize {
        fmix64(id as u64) as usize & self.mask
    }

    /// The value of `id`.
    #[inline]
    pub fn get(&self, id: i64) -> Option<u32> {
        let mut i = self.slot(id);
        loop {
            let (k, v) = self.slots[i];
            if v == ID_TABLE_EMPTY {
                return None;
            }
            if k == id {
                return Some(v);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The value of each id (None where the id is None or absent), in order.
    pub fn get_many(&self, ids: &[Option<i64>]) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if let Some(Some(ahead)) = ids.get(i + ID_TABLE_AHEAD) {
                crate::simd::prefetch(&self.slots[self.slot(*ahead)]);
            }
            out.push(id.and_then(|id| self.get(id)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equal_keys_hash_equal_and_maps_work() {
        let b = FxBuild::default();
        assert_eq!(b.hash_one("north"), b.hash_one(String::from("north")));
        assert_ne!(b.hash_one("north"), b.hash_one("south"));
        let mut m: FxHashMap<String, u32> = FxHashMap::default();
        for (i, s) in ["a", "bb", "ccc", "dddddddddd", ""].iter().enumerate() {
            m.insert(s.to_string(), i as u32);
        }
        assert_eq!(m.get("dddddddddd"), Some(&3));
        assert_eq!(m.get(""), Some(&4));
        let mut s: FxHashSet<i64> = FxHashSet::default();
        assert!(s.insert(-1) && s.insert(1) && !s.insert(-1));
    }

    #[test]
    fn spreads_sequential_integers() {
        // Sequential ids (the common case) must not pile into few buckets: hashbrown
        // picks the bucket from the low bits and a 7-bit tag from the top bits.
        let b = FxBuild::default();
        let mut buckets = std::collections::HashSet::new();
        let mut tags = std::collections::HashSet::new();
        for i in 0..4096i64 {
            let h = b.hash_one(i);
            buckets.insert(h & 4095);
            tags.insert(h >> 57);
        }
        assert_eq!(buckets.len(), 4096);
        assert!(tags.len() > 100, "{}", tags.len());
    }

    #[test]
    fn id_table_finds_every_id_and_only_those() {
        let pairs: Vec<(i64, u32)> = (0..5000i64)
            .map(|i| (i * 7919 - 1_000_000, (i % 13) as u32))
            .chain([(i64::MIN, 3), (i64::MAX, 4), (0, 5)])
            .collect();
        let t = IdTable::new(&pairs);
        for &(id, v) in &pairs {
            assert_eq!(t.get(id), Some(v), "id {id}");
        }
        for id in [1i64, -1, 7918, i64::MIN + 1, i64::MAX - 1] {
            assert_eq!(t.get(id), None, "id {id}");
        }
        // A batch (shuffled, with absent and NULL ids) agrees with one by one.
        let mut ids: Vec<Option<i64>> = pairs.iter().rev().map(|p| Some(p.0)).collect();
        ids.extend([None, Some(1), None, Some(i64::MAX)]);
        let want: Vec<Option<u32>> = ids.iter().map(|i| i.and_then(|i| t.get(i))).collect();
        assert_eq!(t.get_many(&ids), want);
        assert_eq!(want.iter().filter(|v| v.is_some()).count(), pairs.len() + 1);
        // Empty table, and the first of two pairs with the same id wins.
        assert_eq!(IdTable::new(&[]).get(0), None);
        assert_eq!(IdTable::new(&[(9, 1), (9, 2)]).get(9), Some(1));
    }
}

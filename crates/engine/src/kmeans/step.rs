//! One mergeable Lloyd step ([`StepState`]) for a parallel SQL aggregate.

use super::*;

/// State of one Lloyd step over a partition of the rows: per-centroid sums and counts
/// and the inertia against the step's input centroids. States of disjoint partitions
/// [`merge`](StepState::merge) exactly (up to float addition order), so a parallel or
/// distributed aggregate can run one k-means iteration per pass.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub(super) k: usize,
    pub(super) d: usize,
    pub(super) sums: Vec<f64>,
    pub(super) counts: Vec<u64>,
    pub(super) inertia: f64,
}

pub(super) const STEP_MAGIC: &[u8; 4] = b"PSKS";
pub(super) const STEP_VERSION: u8 = 1;
pub(super) const STEP_HEADER: usize = 4 + 1 + 4 + 4 + 8;

impl StepState {
    /// Empty state for k centroids of d features.
    pub fn new(k: usize, d: usize) -> Self {
        StepState {
            k,
            d,
            sums: vec![0.0; k * d],
            counts: vec![0; k],
            inertia: 0.0,
        }
    }

    /// Number of centroids.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of features.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Rows per centroid.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Total rows added.
    pub fn rows(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds one row: assigns it to its nearest centroid (as [`nearest`]) and accumulates.
    /// Errors on a centroid matrix or row of the wrong shape, or a non-finite value
    /// (`row` is this state's count of rows so far).
    pub fn add(&mut self, centroids: ArrayView2<f64>, x: &[f64]) -> Result<(), EngineError> {
        if centroids.nrows() != self.k {
            return Err(EngineError::invalid(
                "centroids",
                format!(
                    "has {} rows, the step state has k = {}",
                    centroids.nrows(),
                    self.k
                ),
            ));
        }
        if centroids.ncols() != self.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: centroids.ncols(),
            });
        }
        EngineError::check_row(x, self.d, self.rows() as usize)?;
        let nb = nearest(centroids, x);
        let j = nb.index;
        for (s, v) in self.sums[j * self.d..(j + 1) * self.d].iter_mut().zip(x) {
            *s += *v;
        }
        self.counts[j] += 1;
        self.inertia += nb.dist_sq;
        Ok(())
    }

    /// Adds another partition's state (same k and d).
    pub fn merge(&mut self, other: &StepState) -> Result<(), EngineError> {
        if other.k != self.k || other.d != self.d {
            return Err(EngineError::invalid(
                "step state",
                format!(
                    "cannot merge a k = {}, d = {} state into a k = {}, d = {} state",
                    other.k, other.d, self.k, self.d
                ),
            ));
        }
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += *b;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.inertia += other.inertia;
        Ok(())
    }

    /// Centroids after the step: the mean of each cluster; a cluster that received no
    /// row keeps its old centroid (the aggregate has no rows left to re-seed it from).
    ///
    /// Panics if `old` is not k x d.
    pub fn new_centroids(&self, old: ArrayView2<f64>) -> Array2<f64> {
        assert_eq!(old.dim(), (self.k, self.d), "new_centroids: shape mismatch");
        let mut out = old.to_owned();
        for j in 0..self.k {
            if self.counts[j] > 0 {
                let alpha = 1.0 / self.counts[j] as f64;
                for f in 0..self.d {
                    out[[j, f]] = self.sums[j * self.d + f] * alpha;
                }
            }
        }
        out
    }

    /// Inertia of the added rows against the step's input centroids.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Little-endian serialisation: "PSKS", version 1, k u32, d u32, inertia f64,
    /// k counts u64, k*d sums f64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(STEP_HEADER + self.k * 8 + self.k * self.d * 8);
        b.extend_from_slice(STEP_MAGIC);
        b.push(STEP_VERSION);
        b.extend_from_slice(&(self.k as u32).to_le_bytes());
        b.extend_from_slice(&(self.d as u32).to_le_bytes());
        b.extend_from_slice(&self.inertia.to_le_bytes());
        for c in &self.counts {
            b.extend_from_slice(&c.to_le_bytes());
        }
        for s in &self.sums {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b
    }

    /// Parses [`to_bytes`](StepState::to_bytes) output, validating magic, version,
    /// length and that every number is finite.
    pub fn from_bytes(b: &[u8]) -> Result<StepState, EngineError> {
        let bad = |why: &str| EngineError::invalid("k-means step state", why.to_string());
        if b.len() < STEP_HEADER {
            return Err(bad("too short"));
        }
        if &b[0..4] != STEP_MAGIC {
            return Err(bad("bad magic"));
        }
        if b[4] != STEP_VERSION {
            return Err(bad(&format!("unsupported version {}", b[4])));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let k = u32_at(5);
        let d = u32_at(9);
        let inertia = f64::from_bits(u64_at(13));
        let need = k
            .checked_mul(d)
            .and_then(|kd| kd.checked_add(k))
            .and_then(|m| m.checked_mul(8))
            .and_then(|m| m.checked_add(STEP_HEADER))
            .ok_or_else(|| bad("size overflow"))?;
        if b.len() != need {
            return Err(bad(&format!(
                "length {} but k = {k}, d = {d} needs {need}",
                b.len()
            )));
        }
        if !(inertia.is_finite() && inertia >= 0.0) {
            return Err(bad("inertia is not a finite non-negative number"));
        }
        let mut o = STEP_HEADER;
        let mut counts = Vec::with_capacity(k);
        for _ in 0..k {
            counts.push(u64_at(o));
            o += 8;
        }
        let mut sums = Vec::with_capacity(k * d);
        for _ in 0..k * d {
            let v = f64::from_bits(u64_at(o));
            if !v.is_finite() {
                return Err(bad("non-finite sum"));
            }
            sums.push(v);
            o += 8;
        }
        Ok(StepState {
            k,
            d,
            sums,
            counts,
            inertia,
        })
    }
}

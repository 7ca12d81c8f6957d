//! One mergeable Lloyd step ([`StepState`]) for a parallel SQL aggregate.

use super::*;
use crate::codec::{ByteReader, ByteWriter, STEP_STATE_MAGIC};

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

    /// Serialisation through the crate's byte codec: "PSKS", version, k u32, d u32,
    /// inertia f64, k counts u64, k*d sums f64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(STEP_STATE_MAGIC, 16 + self.k * 8 + self.k * self.d * 8);
        w.put(self.k as u32);
        w.put(self.d as u32);
        w.put(self.inertia);
        for c in &self.counts {
            w.put(c);
        }
        for s in &self.sums {
            w.put(s);
        }
        w.finish()
    }

    /// Parses [`to_bytes`](StepState::to_bytes) output, validating magic, version,
    /// length and that every number is finite.
    pub fn from_bytes(b: &[u8]) -> Result<StepState, EngineError> {
        let mut r = ByteReader::open(b, "k-means step state", STEP_STATE_MAGIC)?;
        let k = r.u32()? as usize;
        let d = r.u32()? as usize;
        let inertia = r.f64()?;
        if !(inertia.is_finite() && inertia >= 0.0) {
            return Err(r.bad("inertia is not a finite non-negative number"));
        }
        let values = (k as u64)
            .checked_mul(d as u64)
            .and_then(|kd| kd.checked_add(k as u64))
            .ok_or_else(|| r.bad("size overflow"))?;
        r.expect_items(values, 8)?;
        let mut counts = Vec::with_capacity(k);
        for _ in 0..k {
            counts.push(r.u64()?);
        }
        let mut sums = Vec::with_capacity(k * d);
        for _ in 0..k * d {
            sums.push(r.finite()?);
        }
        r.finish()?;
        Ok(StepState {
            k,
            d,
            sums,
            counts,
            inertia,
        })
    }
}

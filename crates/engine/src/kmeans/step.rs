//! One mergeable Lloyd step ([`StepState`]) for a parallel SQL aggregate.

use super::*;
use crate::codec::{ByteReader, ByteWriter, CENTROID_STEP_MAGIC, STEP_STATE_MAGIC};

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
        let mut w = ByteWriter::new(STEP_STATE_MAGIC, self.byte_len());
        self.put_fields(&mut w);
        w.finish()
    }

    fn byte_len(&self) -> usize {
        16 + self.k * 8 + self.k * self.d * 8
    }

    fn put_fields(&self, w: &mut ByteWriter) {
        w.put(self.k as u32);
        w.put(self.d as u32);
        w.put(self.inertia);
        for c in &self.counts {
            w.put(c);
        }
        for s in &self.sums {
            w.put(s);
        }
    }

    /// Parses [`to_bytes`](StepState::to_bytes) output, validating magic, version,
    /// length and that every number is finite.
    pub fn from_bytes(b: &[u8]) -> Result<StepState, EngineError> {
        let mut r = ByteReader::open(b, "k-means step state", STEP_STATE_MAGIC)?;
        let step = Self::read_fields(&mut r)?;
        r.finish()?;
        Ok(step)
    }

    fn read_fields(r: &mut ByteReader) -> Result<StepState, EngineError> {
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
        Ok(StepState {
            k,
            d,
            sums,
            counts,
            inertia,
        })
    }
}

/// A step together with the centroids it steps from: the whole state of the SQL
/// aggregate `segment_kmeans_step` (its final function needs the old centroids, which
/// empty clusters keep).
#[derive(Debug, Clone, PartialEq)]
pub struct CentroidStep {
    pub step: StepState,
    /// The k x d centroids, row-major.
    pub centroids: Vec<f64>,
}

impl CentroidStep {
    /// An empty step from `centroids` (k x d, row-major).
    pub fn new(centroids: Vec<f64>, k: usize, d: usize) -> Self {
        CentroidStep {
            step: StepState::new(k, d),
            centroids,
        }
    }

    /// The centroids of the next iteration (see [`StepState::new_centroids`]).
    pub fn new_centroids(&self) -> Array2<f64> {
        let old = ArrayView2::from_shape((self.step.k, self.step.d), &self.centroids)
            .expect("k x d centroids");
        self.step.new_centroids(old)
    }

    /// Bytes: magic `PSKC`, the step's fields, then the centroids.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(
            CENTROID_STEP_MAGIC,
            self.step.byte_len() + self.centroids.len() * 8,
        );
        self.step.put_fields(&mut w);
        for c in &self.centroids {
            w.put(c);
        }
        w.finish()
    }

    /// Parses [`to_bytes`](CentroidStep::to_bytes) output.
    pub fn from_bytes(b: &[u8]) -> Result<CentroidStep, EngineError> {
        let mut r = ByteReader::open(b, "k-means step state", CENTROID_STEP_MAGIC)?;
        let step = StepState::read_fields(&mut r)?;
        let n = (step.k as u64) * (step.d as u64);
        r.expect_items(n, 8)?;
        let mut centroids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            centroids.push(r.finite()?);
        }
        r.finish()?;
        Ok(CentroidStep { step, centroids })
    }
}

//! Rows gathered whole, for the aggregates that need all of them at once
//! (`segment_davies_bouldin`, `segment_kmeans`): vectors, labels and the k-means
//! arguments, held within a memory budget. Combines exactly by concatenation.
use crate::codec::{ByteReader, ByteWriter, GATHERED_MAGIC};
use crate::error::EngineError;
use ndarray::ArrayView2;

/// Gathered rows of `d` values each.
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered {
    d: usize,
    data: Vec<f64>,
    labels: Vec<i64>,
    /// `segment_kmeans`'s k (None until given).
    pub k: Option<i32>,
    /// `segment_kmeans`'s seed.
    pub seed: i64,
}

impl Gathered {
    pub fn new(d: usize) -> Self {
        Gathered {
            d,
            data: Vec::new(),
            labels: Vec::new(),
            k: None,
            seed: 0,
        }
    }

    fn bytes_after(&self, rows: usize) -> usize {
        (self.labels.len() + rows).saturating_mul((self.d + 1) * 8)
    }

    fn check_budget(&self, rows: usize, budget: usize) -> Result<(), EngineError> {
        let needed = self.bytes_after(rows);
        if needed > budget {
            return Err(EngineError::MemoryBudget { needed, budget });
        }
        Ok(())
    }

    /// Add a row; errors on a vector of another length, or when the rows would take
    /// more than `budget` bytes (checked every 65,536 rows).
    pub fn push(&mut self, x: &[f64], label: i64, budget: usize) -> Result<(), EngineError> {
        if x.len() != self.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: x.len(),
            });
        }
        if self.labels.len().is_multiple_of(65_536) {
            self.check_budget(1, budget)?;
        }
        self.data.extend_from_slice(x);
        self.labels.push(label);
        Ok(())
    }

    /// Append another partition's rows (its k and seed where this one has none).
    pub fn merge(&mut self, other: &Gathered, budget: usize) -> Result<(), EngineError> {
        if other.d != self.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: other.d,
            });
        }
        self.check_budget(other.labels.len(), budget)?;
        self.data.extend_from_slice(&other.data);
        self.labels.extend_from_slice(&other.labels);
        if self.k.is_none() {
            self.k = other.k;
            self.seed = other.seed;
        }
        Ok(())
    }

    /// The rows as an n x d matrix.
    pub fn view(&self) -> ArrayView2<'_, f64> {
        ArrayView2::from_shape((self.labels.len(), self.d), &self.data).expect("rows x d")
    }

    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Bytes: magic `PSCL`, d, n, k (-1 for none), seed, the values, the labels.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(GATHERED_MAGIC, 32 + self.bytes_after(0));
        w.put(self.d as u64);
        w.put(self.labels.len() as u64);
        w.put(self.k.map_or(-1i64, i64::from));
        w.put(self.seed);
        for v in &self.data {
            w.put(v);
        }
        for l in &self.labels {
            w.put(l);
        }
        w.finish()
    }

    /// Parses [`to_bytes`](Gathered::to_bytes) output.
    pub fn from_bytes(b: &[u8]) -> Result<Gathered, EngineError> {
        let mut r = ByteReader::open(b, "gathered rows", GATHERED_MAGIC)?;
        let d = r.u64()?;
        let n = r.u64()?;
        let k = r.i64()?;
        let seed = r.i64()?;
        let values = n
            .checked_mul(d.checked_add(1).ok_or_else(|| r.bad("size overflow"))?)
            .ok_or_else(|| r.bad("size overflow"))?;
        r.expect_items(values, 8)?;
        if k > i64::from(i32::MAX) || k < -1 {
            return Err(r.bad("k out of range"));
        }
        let mut data = Vec::with_capacity((n * d) as usize);
        for _ in 0..n * d {
            data.push(r.f64()?);
        }
        let mut labels = Vec::with_capacity(n as usize);
        for _ in 0..n {
            labels.push(r.i64()?);
        }
        r.finish()?;
        Ok(Gathered {
            d: d as usize,
            data,
            labels,
            k: (k >= 0).then_some(k as i32),
            seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_merges_and_stops_at_the_budget() {
        let mut a = Gathered::new(2);
        a.push(&[1.0, 2.0], 1, 1 << 20).unwrap();
        let mut b = Gathered::new(2);
        b.k = Some(3);
        b.seed = 9;
        b.push(&[3.0, 4.0], 2, 1 << 20).unwrap();
        a.merge(&b, 1 << 20).unwrap();
        assert_eq!(a.view().row(1).to_vec(), [3.0, 4.0]);
        assert_eq!(a.labels(), [1, 2]);
        assert_eq!((a.k, a.seed), (Some(3), 9));
        assert_eq!(
            a.push(&[1.0], 0, 1 << 20),
            Err(EngineError::DimensionMismatch {
                expected: 2,
                got: 1
            })
        );
        // Two rows of three 8-byte values take 48 bytes: a 40-byte budget refuses them.
        let e = a.merge(&b, 40).unwrap_err();
        assert_eq!(
            e,
            EngineError::MemoryBudget {
                needed: 72,
                budget: 40
            }
        );
        assert_eq!(
            Gathered::new(2).push(&[0.0, 0.0], 0, 8),
            Err(EngineError::MemoryBudget {
                needed: 24,
                budget: 8
            })
        );
    }
}

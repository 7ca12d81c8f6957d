//! The one byte codec of every aggregate state ([`StepState`](crate::kmeans::StepState),
//! [`ClusterStats`](crate::metrics::ClusterStats), [`Contingency`](crate::metrics::Contingency),
//! [`Reservoir`](crate::sample::Reservoir), [`CentroidStep`](crate::kmeans::CentroidStep),
//! [`Gathered`](crate::gathered::Gathered)): a 4-byte magic naming the state, a version
//! byte, then little-endian fields. [`ByteWriter`] writes it; [`ByteReader`] reads it
//! with length checks and the same error for every state ("corrupt serialized state at
//! byte N: ..." naming the state). These bytes travel between PostgreSQL's parallel
//! aggregate workers and between Citus nodes (the flat form of `segment.agg_state`, in
//! text as `kind:hex`); every node of a cluster runs the same pg_segment version. A
//! layout change bumps [`FORMAT_VERSION`], so older bytes are refused, never misread.

use crate::error::EngineError;

pub(crate) const FORMAT_VERSION: u8 = 1;
pub const CLUSTER_STATS_MAGIC: &[u8; 4] = b"PSCS";
pub const CONTINGENCY_MAGIC: &[u8; 4] = b"PSCT";
pub(crate) const RESERVOIR_MAGIC: &[u8; 4] = b"PSRS";
pub(crate) const STEP_STATE_MAGIC: &[u8; 4] = b"PSKS";
pub const CENTROID_STEP_MAGIC: &[u8; 4] = b"PSKC";
pub(crate) const GATHERED_MAGIC: &[u8; 4] = b"PSCL";
pub const UPLIFT_RATE_MAGIC: &[u8; 4] = b"PSUR";
pub const UPLIFT_MEAN_MAGIC: &[u8; 4] = b"PSUM";

/// A value [`ByteWriter::put`] writes (little-endian).
pub(crate) trait Field {
    fn write_to(&self, out: &mut Vec<u8>);
}

macro_rules! le_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn write_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_field!(u32, u64, i64, f64);

impl<T: Field> Field for &T {
    fn write_to(&self, out: &mut Vec<u8>) {
        (**self).write_to(out)
    }
}

/// Writes a state: the header at creation, then the fields in order.
pub(crate) struct ByteWriter {
    out: Vec<u8>,
}

impl ByteWriter {
    /// A state named by `magic`, of about `capacity` bytes after the header.
    pub(crate) fn new(magic: &[u8; 4], capacity: usize) -> ByteWriter {
        let mut out = Vec::with_capacity(5 + capacity);
        out.extend_from_slice(magic);
        out.push(FORMAT_VERSION);
        ByteWriter { out }
    }

    pub(crate) fn put(&mut self, v: impl Field) {
        v.write_to(&mut self.out);
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Reads a state written by [`ByteWriter`], rejecting anything malformed.
pub(crate) struct ByteReader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) what: &'static str,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn open(
        buf: &'a [u8],
        what: &'static str,
        magic: &[u8; 4],
    ) -> Result<Self, EngineError> {
        let mut r = ByteReader { buf, pos: 0, what };
        let m: [u8; 4] = r.take()?;
        if &m != magic {
            return Err(r.bad("wrong magic bytes"));
        }
        let [version]: [u8; 1] = r.take()?;
        if version != FORMAT_VERSION {
            return Err(r.bad(&format!("unsupported format version {version}")));
        }
        Ok(r)
    }

    pub(crate) fn bad(&self, reason: &str) -> EngineError {
        EngineError::invalid(
            self.what,
            format!("corrupt serialized state at byte {}: {reason}", self.pos),
        )
    }

    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], EngineError> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let mut out = [0u8; N];
                out.copy_from_slice(&self.buf[self.pos..end]);
                self.pos = end;
                Ok(out)
            }
            None => Err(self.bad("truncated")),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, EngineError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, EngineError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, EngineError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, EngineError> {
        Ok(f64::from_le_bytes(self.take()?))
    }

    pub(crate) fn finite(&mut self) -> Result<f64, EngineError> {
        let v = self.f64()?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad("non-finite value"))
        }
    }

    /// Rejects counts that cannot fit in the remaining bytes (before allocating).
    pub(crate) fn expect_items(&self, count: u64, min_bytes_each: u64) -> Result<(), EngineError> {
        let rest = (self.buf.len() - self.pos) as u64;
        match count.checked_mul(min_bytes_each) {
            Some(need) if need <= rest => Ok(()),
            _ => Err(self.bad("item count exceeds the data")),
        }
    }

    pub(crate) fn finish(self) -> Result<(), EngineError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::kmeans::StepState;
    use crate::metrics::{ClusterStats, Contingency};
    use crate::sample::Reservoir;
    use ndarray::array;

    /// Every state's bytes: they round-trip, and every truncation, a wrong magic and a
    /// wrong version are rejected with the codec's error.
    #[test]
    fn every_state_round_trips_and_rejects_truncation_and_wrong_magic() {
        let mut step = StepState::new(2, 2);
        let c = array![[0.0, 0.0], [5.0, 5.0]];
        step.add(c.view(), &[1.0, 0.5]).unwrap();
        step.add(c.view(), &[4.0, 6.0]).unwrap();
        let mut stats = ClusterStats::new(2);
        stats.push(3, &[1.0, 2.0]).unwrap();
        stats.push(-1, &[0.5, 0.25]).unwrap();
        let mut ct = Contingency::new();
        ct.push(1, 2);
        ct.push(1, 3);
        let mut rs: Reservoir<(Vec<f64>, i64)> = Reservoir::new(4, 9);
        for i in 0..6 {
            rs.push((vec![i as f64, 1.0], i));
        }
        let mut cstep = crate::kmeans::CentroidStep::new(vec![0.0, 0.0, 5.0, 5.0], 2, 2);
        cstep.step.add(c.view(), &[4.0, 6.0]).unwrap();
        let mut gathered = crate::gathered::Gathered::new(2);
        gathered.push(&[1.0, 2.0], 3, 1 << 20).unwrap();
        gathered.push(&[-1.0, 0.5], 0, 1 << 20).unwrap();
        gathered.k = Some(2);
        type Parse = fn(&[u8]) -> bool;
        let cases: [(&[u8; 4], Vec<u8>, Parse); 6] = [
            (b"PSKC", cstep.to_bytes(), |b| {
                crate::kmeans::CentroidStep::from_bytes(b)
                    .map(|s| s.to_bytes())
                    .ok()
                    == Some(b.to_vec())
            }),
            (b"PSCL", gathered.to_bytes(), |b| {
                crate::gathered::Gathered::from_bytes(b)
                    .map(|s| s.to_bytes())
                    .ok()
                    == Some(b.to_vec())
            }),
            (b"PSKS", step.to_bytes(), |b| {
                StepState::from_bytes(b).map(|s| s.to_bytes()).ok() == Some(b.to_vec())
            }),
            (b"PSCS", stats.to_bytes(), |b| {
                ClusterStats::from_bytes(b).map(|s| s.to_bytes()).ok() == Some(b.to_vec())
            }),
            (b"PSCT", ct.to_bytes(), |b| {
                Contingency::from_bytes(b).map(|s| s.to_bytes()).ok() == Some(b.to_vec())
            }),
            (b"PSRS", rs.to_bytes(), |b| {
                Reservoir::from_bytes(b).map(|s| s.to_bytes()).ok() == Some(b.to_vec())
            }),
        ];
        for (magic, bytes, parses) in cases {
            assert_eq!(&bytes[..4], magic);
            assert_eq!(bytes[4], super::FORMAT_VERSION);
            assert!(parses(&bytes), "{magic:?} round trip");
            for len in 0..bytes.len() {
                assert!(!parses(&bytes[..len]), "{magic:?} truncated to {len}");
            }
            let mut wrong = bytes.clone();
            wrong[0] ^= 1;
            assert!(!parses(&wrong), "{magic:?} wrong magic");
            let mut version = bytes.clone();
            version[4] += 1;
            assert!(!parses(&version), "{magic:?} wrong version");
        }
    }
}

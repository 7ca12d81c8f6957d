//! The byte format of the aggregate states: magic, version, little-endian fields,
//! validated reading.

use crate::error::EngineError;

pub(crate) const FORMAT_VERSION: u8 = 1;
pub(crate) const CLUSTER_STATS_MAGIC: &[u8; 4] = b"PSCS";
pub(crate) const CONTINGENCY_MAGIC: &[u8; 4] = b"PSCT";
pub(crate) const RESERVOIR_MAGIC: &[u8; 4] = b"PSRS";

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

//! Agreement between two labelings: adjusted Rand index, normalized mutual information,
//! and the mergeable [`Contingency`] table behind them.

use super::*;

#[cfg(test)]
pub(super) fn check_pair(a: &[i64], b: &[i64]) -> Result<(), EngineError> {
    if a.len() != b.len() {
        return Err(EngineError::DimensionMismatch {
            expected: a.len(),
            got: b.len(),
        });
    }
    if a.is_empty() {
        return Err(EngineError::NoRows);
    }
    Ok(())
}

/// Adjusted Rand index of two labelings (sklearn's `adjusted_rand_score`). Errors on
/// empty input (sklearn returns 1.0 there).
#[cfg(test)]
pub(crate) fn adjusted_rand_index(a: &[i64], b: &[i64]) -> Result<f64, EngineError> {
    check_pair(a, b)?;
    let mut c = Contingency::new();
    a.iter().zip(b).for_each(|(&x, &y)| c.push(x, y));
    c.ari()
}

/// Normalized mutual information with arithmetic-mean normalization (sklearn's
/// `normalized_mutual_info_score` default). Errors on empty input.
#[cfg(test)]
pub(crate) fn normalized_mutual_info(a: &[i64], b: &[i64]) -> Result<f64, EngineError> {
    check_pair(a, b)?;
    let mut c = Contingency::new();
    a.iter().zip(b).for_each(|(&x, &y)| c.push(x, y));
    c.nmi()
}

/// Mergeable contingency table of two labelings: exact integer counts, so partial states
/// from parallel workers combine exactly. ARI and NMI are computed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contingency {
    pub(super) cells: BTreeMap<(i64, i64), u64>,
    pub(super) n: u64,
}

impl Contingency {
    /// An empty table.
    pub fn new() -> Contingency {
        Contingency::default()
    }

    /// Counts one row labeled `a` by the first labeling and `b` by the second.
    pub fn push(&mut self, a: i64, b: i64) {
        *self.cells.entry((a, b)).or_insert(0) += 1;
        self.n += 1;
    }

    /// Counts `count` rows labeled `a` and `b` (nothing when 0).
    pub fn push_n(&mut self, a: i64, b: i64, count: u64) {
        if count > 0 {
            *self.cells.entry((a, b)).or_insert(0) += count;
            self.n += count;
        }
    }

    /// Adds another table's counts (exact).
    pub fn merge(&mut self, other: &Contingency) {
        for (&key, &v) in &other.cells {
            *self.cells.entry(key).or_insert(0) += v;
        }
        self.n += other.n;
    }

    /// Number of rows counted.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Number of non-empty cells.
    pub fn cells(&self) -> usize {
        self.cells.len()
    }

    pub(super) fn marginals(&self) -> (Vec<u64>, Vec<u64>) {
        let mut ra: BTreeMap<i64, u64> = BTreeMap::new();
        let mut rb: BTreeMap<i64, u64> = BTreeMap::new();
        for (&(a, b), &v) in &self.cells {
            *ra.entry(a).or_insert(0) += v;
            *rb.entry(b).or_insert(0) += v;
        }
        (ra.into_values().collect(), rb.into_values().collect())
    }

    /// Adjusted Rand index (sklearn's formula on the pair confusion matrix, computed in
    /// exact integer arithmetic; 1.0 when the labelings agree up to a permutation).
    pub fn ari(&self) -> Result<f64, EngineError> {
        if self.n == 0 {
            return Err(EngineError::NoRows);
        }
        let (ma, mb) = self.marginals();
        let n = self.n as i128;
        let sq = |v: u64| (v as i128) * (v as i128);
        let ss: i128 = self.cells.values().map(|&v| sq(v)).sum();
        let sa: i128 = ma.iter().map(|&v| sq(v)).sum();
        let sb: i128 = mb.iter().map(|&v| sq(v)).sum();
        let tp = ss - n;
        let fp = sb - ss;
        let fneg = sa - ss;
        let tn = n * n - fp - fneg - ss;
        if fneg == 0 && fp == 0 {
            return Ok(1.0);
        }
        let exact = || -> Option<(i128, i128)> {
            let num = tp.checked_mul(tn)?.checked_sub(fneg.checked_mul(fp)?)?;
            let d1 = (tp + fneg).checked_mul(fneg + tn)?;
            let d2 = (tp + fp).checked_mul(fp + tn)?;
            Some((num, d1.checked_add(d2)?))
        };
        Ok(match exact() {
            // Python: 2.0 * int / int (each int rounded to the nearest double once).
            Some((num, den)) => 2.0 * (num as f64) / (den as f64),
            None => {
                let (tp, tn, fp, fneg) = (tp as f64, tn as f64, fp as f64, fneg as f64);
                2.0 * (tp * tn - fneg * fp) / ((tp + fneg) * (fneg + tn) + (tp + fp) * (fp + tn))
            }
        })
    }

    /// Normalized mutual information, arithmetic normalization (sklearn's default and its
    /// special cases: 1.0 when both labelings have one cluster, 0.0 when MI is 0).
    pub fn nmi(&self) -> Result<f64, EngineError> {
        if self.n == 0 {
            return Err(EngineError::NoRows);
        }
        let (ma, mb) = self.marginals();
        if ma.len() == 1 && mb.len() == 1 {
            return Ok(1.0);
        }
        if ma.len() == 1 || mb.len() == 1 {
            return Ok(0.0);
        }
        // Index of each label in the marginals (cells are sorted by (a, b)).
        let la: Vec<i64> = {
            let mut v: Vec<i64> = self.cells.keys().map(|k| k.0).collect();
            v.dedup();
            v
        };
        let lb: Vec<i64> = {
            let mut v: Vec<i64> = self.cells.keys().map(|k| k.1).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let total = self.n as f64;
        let log_total = total.ln();
        let log_sum = total.ln(); // log(pi.sum()) == log(pj.sum()) == log(n)
        let mut mi = Neumaier::default();
        for (&(a, b), &v) in &self.cells {
            let pi = ma[la.binary_search(&a).unwrap_or(0)];
            let pj = mb[lb.binary_search(&b).unwrap_or(0)];
            let nz = v as f64;
            let c_nm = nz / total;
            let outer = (pi as u128 * pj as u128) as f64;
            let log_outer = -outer.ln() + log_sum + log_sum;
            let term = c_nm * (nz.ln() - log_total) + c_nm * log_outer;
            if term.abs() >= f64::EPSILON {
                mi.add(term);
            }
        }
        let mi = mi.value().max(0.0);
        if mi == 0.0 {
            return Ok(0.0);
        }
        let (ha, hb) = (entropy(&ma), entropy(&mb));
        Ok(mi / ((ha + hb) / 2.0))
    }

    /// Compact versioned serialization (magic "PSCT", version 1, sorted cells).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(CONTINGENCY_MAGIC, 13 + 24 * self.cells.len());
        w.put(self.cells.len() as u64);
        for (&(a, b), &v) in &self.cells {
            w.put(a);
            w.put(b);
            w.put(v);
        }
        w.finish()
    }

    /// Parses [`Contingency::to_bytes`] output, rejecting anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Contingency, EngineError> {
        let mut r = ByteReader::open(bytes, "contingency state", CONTINGENCY_MAGIC)?;
        let cells = r.u64()?;
        r.expect_items(cells, 24)?;
        let mut out = Contingency::new();
        let mut prev: Option<(i64, i64)> = None;
        for _ in 0..cells {
            let key = (r.i64()?, r.i64()?);
            let v = r.u64()?;
            if v == 0 {
                return Err(r.bad("a cell has count 0"));
            }
            if prev.is_some_and(|p| p >= key) {
                return Err(r.bad("cells are not strictly sorted"));
            }
            prev = Some(key);
            out.n = out
                .n
                .checked_add(v)
                .ok_or_else(|| r.bad("row count overflows"))?;
            out.cells.insert(key, v);
        }
        r.finish()?;
        Ok(out)
    }
}

/// sklearn's `_entropy` from label counts.
pub(super) fn entropy(counts: &[u64]) -> f64 {
    if counts.len() <= 1 {
        return 0.0;
    }
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let log_sum = sum.ln();
    let mut h = Neumaier::default();
    for &c in counts {
        let p = c as f64;
        h.add((p / sum) * (p.ln() - log_sum));
    }
    -h.value()
}

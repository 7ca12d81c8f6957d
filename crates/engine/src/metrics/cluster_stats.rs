//! [`ClusterStats`]: mergeable per-cluster counts and sums (centroids, within-cluster
//! sum of squares, Calinski–Harabasz) for the SQL aggregate.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ClusterAcc {
    pub(super) count: u64,
    pub(super) mean: Vec<f64>,
    pub(super) m2: Vec<f64>,
}

/// Mergeable per-cluster count / mean / M2 (Welford updates, Chan et al. combine): the
/// state of the inertia and Calinski–Harabasz aggregates. Combining partial states is
/// exact in real arithmetic (floating-point results agree to rounding).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStats {
    pub(super) d: usize,
    pub(super) n: u64,
    pub(super) clusters: BTreeMap<i64, ClusterAcc>,
}

impl ClusterStats {
    /// An empty state for `d`-dimensional rows.
    pub fn new(d: usize) -> ClusterStats {
        ClusterStats {
            d,
            n: 0,
            clusters: BTreeMap::new(),
        }
    }

    /// Adds one row with its label. Errors on a wrong length or a non-finite value (the
    /// reported row is the number of rows this state had already seen).
    pub fn push(&mut self, label: i64, x: &[f64]) -> Result<(), EngineError> {
        EngineError::check_row(x, self.d, self.n as usize)?;
        let d = self.d;
        let acc = self.clusters.entry(label).or_insert_with(|| ClusterAcc {
            count: 0,
            mean: vec![0.0; d],
            m2: vec![0.0; d],
        });
        acc.count += 1;
        let cnt = acc.count as f64;
        for ((m, m2), &v) in acc.mean.iter_mut().zip(acc.m2.iter_mut()).zip(x) {
            let delta = v - *m;
            *m += delta / cnt;
            *m2 += delta * (v - *m);
        }
        self.n += 1;
        Ok(())
    }

    /// Combines another partial state into this one (Chan et al. pairwise update).
    pub fn merge(&mut self, other: &ClusterStats) -> Result<(), EngineError> {
        if other.n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            *self = other.clone();
            return Ok(());
        }
        if self.d != other.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: other.d,
            });
        }
        for (&label, o) in &other.clusters {
            match self.clusters.get_mut(&label) {
                None => {
                    self.clusters.insert(label, o.clone());
                }
                Some(s) => {
                    let (na, nb) = (s.count as f64, o.count as f64);
                    let nt = na + nb;
                    for f in 0..self.d {
                        let delta = o.mean[f] - s.mean[f];
                        s.mean[f] += delta * (nb / nt);
                        s.m2[f] += o.m2[f] + delta * delta * (na * nb / nt);
                    }
                    s.count += o.count;
                }
            }
        }
        self.n += other.n;
        Ok(())
    }

    /// Rows pushed (over all merged parts).
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Number of distinct labels seen.
    pub fn k(&self) -> usize {
        self.clusters.len()
    }

    /// Row length this state expects.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Calinski–Harabasz index of everything pushed (same rules as [`calinski_harabasz`]).
    pub fn calinski_harabasz(&self) -> Result<f64, EngineError> {
        if self.n == 0 {
            return Err(EngineError::NoRows);
        }
        if self.d == 0 {
            return Err(EngineError::NoFeatures);
        }
        let n = usize::try_from(self.n).unwrap_or(usize::MAX);
        check_number_of_labels(self.k(), n)?;
        let nf = self.n as f64;
        let mut gmean = vec![Neumaier::default(); self.d];
        for c in self.clusters.values() {
            for (g, &m) in gmean.iter_mut().zip(&c.mean) {
                g.add(c.count as f64 * m);
            }
        }
        let gmean: Vec<f64> = gmean.iter().map(|g| g.value() / nf).collect();
        let mut extra = Neumaier::default();
        for c in self.clusters.values() {
            let s: f64 = c
                .mean
                .iter()
                .zip(&gmean)
                .map(|(m, g)| (m - g) * (m - g))
                .sum();
            extra.add(c.count as f64 * s);
        }
        Ok(ch_ratio(
            extra.value(),
            self.within_ss(),
            nf,
            self.k() as f64,
        ))
    }

    /// Within-cluster sum of squares: the inertia of the rows around their cluster means.
    pub fn within_ss(&self) -> f64 {
        let mut s = Neumaier::default();
        for c in self.clusters.values() {
            c.m2.iter().for_each(|&v| s.add(v));
        }
        s.value()
    }

    /// Cluster means, sorted by label.
    pub fn centroids(&self) -> Vec<(i64, Vec<f64>)> {
        self.clusters
            .iter()
            .map(|(&l, c)| (l, c.mean.clone()))
            .collect()
    }

    /// Cluster sizes, sorted by label.
    pub fn sizes(&self) -> Vec<(i64, u64)> {
        self.clusters.iter().map(|(&l, c)| (l, c.count)).collect()
    }

    /// Compact versioned serialization (magic "PSCS", version 1, clusters sorted by label).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(
            CLUSTER_STATS_MAGIC,
            17 + self.clusters.len() * (16 + 16 * self.d),
        );
        w.put(self.d as u32);
        w.put(self.clusters.len() as u64);
        for (&l, c) in &self.clusters {
            w.put(l);
            w.put(c.count);
            for v in c.mean.iter().chain(&c.m2) {
                w.put(v);
            }
        }
        w.finish()
    }

    /// Parses [`ClusterStats::to_bytes`] output, rejecting anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterStats, EngineError> {
        let mut r = ByteReader::open(bytes, "cluster statistics state", CLUSTER_STATS_MAGIC)?;
        let d = r.u32()? as usize;
        let k = r.u64()?;
        let per = 16u64
            .checked_add(16u64.checked_mul(d as u64).ok_or_else(|| r.bad("size"))?)
            .ok_or_else(|| r.bad("size"))?;
        r.expect_items(k, per)?;
        let mut out = ClusterStats::new(d);
        let mut prev: Option<i64> = None;
        for _ in 0..k {
            let label = r.i64()?;
            let count = r.u64()?;
            if count == 0 {
                return Err(r.bad("a cluster has count 0"));
            }
            if prev.is_some_and(|p| p >= label) {
                return Err(r.bad("clusters are not strictly sorted by label"));
            }
            prev = Some(label);
            let mut mean = Vec::with_capacity(d);
            let mut m2 = Vec::with_capacity(d);
            for _ in 0..d {
                mean.push(r.finite()?);
            }
            for _ in 0..d {
                let v = r.finite()?;
                if v < 0.0 {
                    return Err(r.bad("negative sum of squares"));
                }
                m2.push(v);
            }
            out.n = out
                .n
                .checked_add(count)
                .ok_or_else(|| r.bad("row count overflows"))?;
            out.clusters.insert(label, ClusterAcc { count, mean, m2 });
        }
        r.finish()?;
        Ok(out)
    }
}

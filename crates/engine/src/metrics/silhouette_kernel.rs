//! The exact silhouette's kernel: rows sorted by cluster and packed into 8-lane panels,
//! the portable distance tiles (dot-product expansion with an exactness guard), the
//! symmetric and row-wise task schedules, and the per-row silhouette value.

use super::*;
pub(crate) use crate::simd::Simd;

/// Upper bound on the worker threads the exact silhouette uses by default (the calling
/// thread counts as one). Use [`silhouette_samples_threads`] to choose explicitly.
pub const DEFAULT_MAX_THREADS: usize = crate::defaults::SILHOUETTE_MAX_THREADS;

/// Lanes of one column chunk in the packed panels.
pub(crate) const LANES: usize = 8;
/// Rows per block (a block never straddles two clusters). Multiple of LANES.
pub(crate) const BLOCK_ROWS: usize = 64;
/// Below this many rows a second thread costs more than it saves.
pub(crate) const PARALLEL_MIN_ROWS: usize = 1024;
/// The symmetric schedule keeps an n x k table of sums per part; above this many bytes in
/// total it switches to the row-wise schedule (2x the arithmetic, O(threads*64*k) state).
pub(crate) const SYMMETRIC_STATE_LIMIT: usize = 256 << 20;
/// Fixed number of parts of the symmetric schedule (and so its maximum thread count).
/// Fixed, not per-thread, so results do not depend on how many threads ran.
pub(crate) const SYMMETRIC_PARTS: usize = 2;
/// Relative guard of the ||a||^2 + ||b||^2 - 2ab expansion: a pair whose squared distance
/// is below GUARD * (||a||^2 + ||b||^2) is recomputed exactly (scaled up for wide data).
pub(crate) const GUARD: f64 = 1e-4;

pub(crate) type Lane = [f64; LANES];

/// Result of [`silhouette_sampled`]: the mean silhouette and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Silhouette {
    /// Mean silhouette coefficient over the rows used.
    pub score: f64,
    /// Number of rows the score was computed on.
    pub sample_size: usize,
    /// True when every row was used (no sampling).
    pub exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Each unordered pair once; per-thread n x k sums.
    Symmetric,
    /// Each ordered pair; per-task 64 x k sums, finalized immediately.
    RowWise,
}

pub(crate) struct Block {
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) cluster: usize,
    pub(crate) chunk0: usize,
    pub(crate) chunks: usize,
}

/// Rows sorted by cluster and packed into 8-lane column chunks, once centered on the global
/// mean (for pairs in different clusters) and once on each row's own cluster mean (for
/// pairs in the same cluster): centering keeps the norms small relative to the distances,
/// so the dot-product expansion loses almost nothing, and the guard catches the rest.
pub(crate) struct SilhouettePanels {
    pub(crate) n: usize,
    pub(crate) d: usize,
    pub(crate) k: usize,
    pub(crate) counts: Vec<usize>,
    pub(crate) order: Vec<usize>,
    pub(crate) rows: Vec<f64>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) gpanel: Vec<Lane>,
    pub(crate) cpanel: Vec<Lane>,
    pub(crate) gnorm: Vec<Lane>,
    pub(crate) cnorm: Vec<Lane>,
    pub(crate) mask: Vec<Lane>,
    pub(crate) full: Vec<bool>,
    pub(crate) guard: f64,
}

impl SilhouettePanels {
    pub(super) fn new(x: &ArrayView2<f64>, dense: &Dense) -> SilhouettePanels {
        let (n, d, k) = (x.nrows(), x.ncols(), dense.k());
        let mut starts = vec![0usize; k + 1];
        for c in 0..k {
            starts[c + 1] = starts[c] + dense.counts[c];
        }
        let mut fill = starts.clone();
        let mut order = vec![0usize; n];
        for (i, &c) in dense.idx.iter().enumerate() {
            order[fill[c]] = i;
            fill[c] += 1;
        }
        let mut rows = Vec::with_capacity(n * d);
        for &i in &order {
            rows.extend(x.row(i).iter().copied());
        }
        // Means used only as shifts (any shift is exact for differences).
        let mut gmean = vec![0.0; d];
        let mut cmean = vec![0.0; k * d];
        for c in 0..k {
            for p in starts[c]..starts[c + 1] {
                for f in 0..d {
                    cmean[c * d + f] += rows[p * d + f];
                }
            }
            for f in 0..d {
                gmean[f] += cmean[c * d + f];
                cmean[c * d + f] /= dense.counts[c] as f64;
            }
        }
        for g in gmean.iter_mut() {
            *g /= n as f64;
        }
        let mut blocks = Vec::new();
        let mut nchunks = 0;
        for c in 0..k {
            let mut s = starts[c];
            while s < starts[c + 1] {
                let len = BLOCK_ROWS.min(starts[c + 1] - s);
                let chunks = len.div_ceil(LANES);
                blocks.push(Block {
                    start: s,
                    len,
                    cluster: c,
                    chunk0: nchunks,
                    chunks,
                });
                nchunks += chunks;
                s += len;
            }
        }
        let zero = [0.0; LANES];
        let mut gpanel = vec![zero; nchunks * d];
        let mut cpanel = vec![zero; nchunks * d];
        let mut gnorm = vec![zero; nchunks];
        let mut cnorm = vec![zero; nchunks];
        let mut mask = vec![zero; nchunks];
        let mut full = vec![false; nchunks];
        for b in &blocks {
            for ch in 0..b.chunks {
                let g = b.chunk0 + ch;
                let lanes = LANES.min(b.len - ch * LANES);
                full[g] = lanes == LANES;
                for l in 0..lanes {
                    let p = b.start + ch * LANES + l;
                    mask[g][l] = 1.0;
                    for f in 0..d {
                        let v = rows[p * d + f];
                        let gv = v - gmean[f];
                        let cv = v - cmean[b.cluster * d + f];
                        gpanel[g * d + f][l] = gv;
                        cpanel[g * d + f][l] = cv;
                        gnorm[g][l] += gv * gv;
                        cnorm[g][l] += cv * cv;
                    }
                }
            }
        }
        SilhouettePanels {
            n,
            d,
            k,
            counts: dense.counts.clone(),
            order,
            rows,
            blocks,
            gpanel,
            cpanel,
            gnorm,
            cnorm,
            mask,
            full,
            guard: GUARD * (d as f64 / 64.0).max(1.0),
        }
    }

    #[inline]
    pub(crate) fn exact(&self, p: usize, q: usize) -> f64 {
        let d = self.d;
        euclid(
            &self.rows[p * d..(p + 1) * d],
            &self.rows[q * d..(q + 1) * d],
        )
    }

    #[inline(always)]
    pub(crate) fn run_task_generic<const K: u8>(
        &self,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        match schedule {
            Schedule::Symmetric => {
                self.task_symmetric::<K>(bi, sums, rowacc, colacc);
                None
            }
            Schedule::RowWise => Some(self.task_rowwise::<K>(bi, rowacc, colacc)),
        }
    }

    /// Distances between the rows of block `bi` and the rows of block `bj`: their sum over
    /// `bj` is added to `rowacc[row of bi]`; with `with_cols`, their sum over `bi` is
    /// added to `colacc[row of bj]`. Micro-tiles of M x 8 pairs: dot products (register
    /// blocked), then squared distances by the expansion, exact recomputation of any pair
    /// the guard flags, one sqrt per pair.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn tile<const M: usize>(
        &self,
        bi: usize,
        bj: usize,
        with_cols: bool,
        rowacc: &mut [f64],
        colacc: &mut [f64],
        strip: &mut [Strip],
    ) {
        let (a, b) = (&self.blocks[bi], &self.blocks[bj]);
        let (panel, norm) = if a.cluster == b.cluster {
            (&self.cpanel, &self.cnorm)
        } else {
            (&self.gpanel, &self.gnorm)
        };
        let (d, guard) = (self.d, self.guard);
        for ca in 0..a.chunks {
            let ga = a.chunk0 + ca;
            let apan = &panel[ga * d..(ga + 1) * d];
            let (an, am) = (&norm[ga], &self.mask[ga]);
            for r0 in (0..LANES).step_by(M) {
                if am[r0] == 0.0 {
                    break; // lanes fill in order: the rest of this chunk is padding
                }
                let ar: [f64; M] = std::array::from_fn(|r| an[(r0 + r) % LANES]);
                for (dst, src) in strip.iter_mut().zip(apan) {
                    *dst = std::array::from_fn(|r| src[(r0 + r) % LANES]);
                }
                let strip: &[Strip] = strip;
                let mut rs = [[0.0f64; LANES]; M];
                for cb in 0..b.chunks {
                    let gb = b.chunk0 + cb;
                    let bpan = &panel[gb * d..(gb + 1) * d];
                    let bn = &norm[gb];
                    let mut acc = micro::<M>(strip, bpan);
                    let mut flagged = false;
                    for r in 0..M {
                        for c in 0..LANES {
                            let s = ar[r] + bn[c];
                            let d2 = s - 2.0 * acc[r][c];
                            flagged |= d2 < guard * s;
                            acc[r][c] = d2;
                        }
                    }
                    if flagged || !(self.full[ga] && self.full[gb]) {
                        self.slow_dist(&mut acc, (a, ca, r0), (b, cb), &ar, bn);
                    } else {
                        for r in 0..M {
                            for c in 0..LANES {
                                acc[r][c] = acc[r][c].sqrt();
                            }
                        }
                    }
                    for r in 0..M {
                        for c in 0..LANES {
                            rs[r][c] += acc[r][c];
                        }
                    }
                    if with_cols {
                        let cs = &mut colacc[cb * LANES..(cb + 1) * LANES];
                        for r in 0..M {
                            for c in 0..LANES {
                                cs[c] += acc[r][c];
                            }
                        }
                    }
                }
                for (r, lanes) in rs.iter().enumerate() {
                    rowacc[ca * LANES + r0 + r] += lanes.iter().sum::<f64>();
                }
            }
        }
    }

    /// Turns a micro-tile of squared distances into distances when some pair needs care:
    /// padding lanes become 0, pairs the guard flags are recomputed exactly.
    #[cold]
    #[inline(never)]
    pub(crate) fn slow_dist<const M: usize>(
        &self,
        d2: &mut [Lane; M],
        (a, ca, r0): (&Block, usize, usize),
        (b, cb): (&Block, usize),
        an: &[f64; M],
        bn: &Lane,
    ) {
        for r in 0..M {
            let ia = ca * LANES + r0 + r;
            for c in 0..LANES {
                let jb = cb * LANES + c;
                let v = d2[r][c];
                d2[r][c] = if ia >= a.len || jb >= b.len {
                    0.0
                } else if v < self.guard * (an[r] + bn[c]) {
                    self.exact(a.start + ia, b.start + jb)
                } else {
                    v.sqrt()
                };
            }
        }
    }

    pub(crate) fn flush_rows(
        &self,
        block: &Block,
        rowacc: &[f64],
        sums: &mut [f64],
        cluster: usize,
        base: usize,
    ) {
        for (i, v) in rowacc[..block.len].iter().enumerate() {
            sums[(block.start + i - base) * self.k + cluster] += v;
        }
    }

    /// Symmetric task: row block `bi` against blocks `bi..`, into the n x k `sums`.
    #[inline(always)]
    pub(crate) fn task_symmetric<const K: u8>(
        &self,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) {
        let a = &self.blocks[bi];
        let mut strip = vec![[0.0f64; STRIP]; self.d];
        let mut bj = bi;
        while bj < self.blocks.len() {
            let cl = self.blocks[bj].cluster;
            rowacc.fill(0.0);
            while bj < self.blocks.len() && self.blocks[bj].cluster == cl {
                if bj == bi {
                    self.tile_k::<K>(bi, bi, false, rowacc, colacc, &mut strip);
                } else {
                    colacc.fill(0.0);
                    self.tile_k::<K>(bi, bj, true, rowacc, colacc, &mut strip);
                    let b = &self.blocks[bj];
                    for (j, v) in colacc[..b.len].iter().enumerate() {
                        sums[(b.start + j) * self.k + a.cluster] += v;
                    }
                }
                bj += 1;
            }
            self.flush_rows(a, rowacc, sums, cl, 0);
        }
    }

    /// Row-wise task: row block `bi` against every block; returns its rows' silhouettes.
    #[inline(always)]
    pub(crate) fn task_rowwise<const K: u8>(
        &self,
        bi: usize,
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Vec<f64> {
        let a = &self.blocks[bi];
        let mut strip = vec![[0.0f64; STRIP]; self.d];
        let mut sums = vec![0.0; a.len * self.k];
        let mut bj = 0;
        while bj < self.blocks.len() {
            let cl = self.blocks[bj].cluster;
            rowacc.fill(0.0);
            while bj < self.blocks.len() && self.blocks[bj].cluster == cl {
                self.tile_k::<K>(bi, bj, false, rowacc, colacc, &mut strip);
                bj += 1;
            }
            self.flush_rows(a, rowacc, &mut sums, cl, a.start);
        }
        (0..a.len)
            .map(|i| sil_value(&sums[i * self.k..(i + 1) * self.k], a.cluster, &self.counts))
            .collect()
    }
}

/// M x 8 dot products between the strip of M rows (feature-major) and one 8-row chunk.
#[inline(always)]
pub(crate) fn micro<const M: usize>(a: &[Strip], b: &[Lane]) -> [Lane; M] {
    let mut acc = [[0.0f64; LANES]; M];
    for (av, bv) in a.iter().zip(b) {
        for (acc_row, &s) in acc.iter_mut().zip(av) {
            for (x, &y) in acc_row.iter_mut().zip(bv) {
                *x += s * y;
            }
        }
    }
    acc
}

/// Micro-tile height of the portable kernel (keeps the accumulators in 16 SSE registers).
pub(crate) const PORTABLE_MR: usize = 2;
/// Micro-tile height of the AVX2 kernel, and the width of the A-row strip buffer.
pub(crate) const STRIP: usize = 4;
/// Rows of one micro-tile strip, feature-major (only the first M lanes are used).
pub(crate) type Strip = [f64; STRIP];
pub(crate) const KERNEL_PORTABLE: u8 = 0;
#[cfg(target_arch = "x86_64")]
pub(crate) const KERNEL_AVX2: u8 = 1;

/// sklearn's per-sample silhouette from the sums of distances to each cluster.
pub(crate) fn sil_value(sums: &[f64], own: usize, counts: &[usize]) -> f64 {
    if counts[own] <= 1 {
        return 0.0;
    }
    let a = sums[own] / (counts[own] - 1) as f64;
    let mut b = f64::INFINITY;
    for (c, (&s, &n)) in sums.iter().zip(counts).enumerate() {
        if c != own {
            b = b.min(s / n as f64);
        }
    }
    let m = a.max(b);
    if m == 0.0 || !m.is_finite() {
        0.0
    } else {
        (b - a) / m
    }
}

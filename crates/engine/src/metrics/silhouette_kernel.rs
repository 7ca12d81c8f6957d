//! The exact silhouette's kernel: rows sorted by cluster and packed into 8-lane panels,
//! the portable distance tiles (dot-product expansion with an exactness guard), the
//! symmetric and row-wise task schedules, and the per-row silhouette value.

use super::*;

/// Upper bound on the worker threads the exact silhouette uses by default (the calling
/// thread counts as one). Use [`silhouette_samples_threads`] to choose explicitly.
pub const DEFAULT_MAX_THREADS: usize = 2;

/// Lanes of one column chunk in the packed panels.
pub(super) const LANES: usize = 8;
/// Rows per block (a block never straddles two clusters). Multiple of LANES.
pub(super) const BLOCK_ROWS: usize = 64;
/// Below this many rows a second thread costs more than it saves.
pub(super) const PARALLEL_MIN_ROWS: usize = 1024;
/// The symmetric schedule keeps an n x k table of sums per part; above this many bytes in
/// total it switches to the row-wise schedule (2x the arithmetic, O(threads*64*k) state).
pub(super) const SYMMETRIC_STATE_LIMIT: usize = 256 << 20;
/// Fixed number of parts of the symmetric schedule (and so its maximum thread count).
/// Fixed, not per-thread, so results do not depend on how many threads ran.
pub(super) const SYMMETRIC_PARTS: usize = 2;
/// Relative guard of the ||a||^2 + ||b||^2 - 2ab expansion: a pair whose squared distance
/// is below GUARD * (||a||^2 + ||b||^2) is recomputed exactly (scaled up for wide data).
pub(super) const GUARD: f64 = 1e-4;

pub(super) type Lane = [f64; LANES];

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
pub(super) enum Schedule {
    /// Each unordered pair once; per-thread n x k sums.
    Symmetric,
    /// Each ordered pair; per-task 64 x k sums, finalized immediately.
    RowWise,
}

pub(super) struct Block {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) cluster: usize,
    pub(super) chunk0: usize,
    pub(super) chunks: usize,
}

/// Rows sorted by cluster and packed into 8-lane column chunks, once centered on the global
/// mean (for pairs in different clusters) and once on each row's own cluster mean (for
/// pairs in the same cluster): centering keeps the norms small relative to the distances,
/// so the dot-product expansion loses almost nothing, and the guard catches the rest.
pub(super) struct Packed {
    pub(super) n: usize,
    pub(super) d: usize,
    pub(super) k: usize,
    pub(super) counts: Vec<usize>,
    pub(super) order: Vec<usize>,
    pub(super) rows: Vec<f64>,
    pub(super) blocks: Vec<Block>,
    pub(super) gpanel: Vec<Lane>,
    pub(super) cpanel: Vec<Lane>,
    pub(super) gnorm: Vec<Lane>,
    pub(super) cnorm: Vec<Lane>,
    pub(super) mask: Vec<Lane>,
    pub(super) full: Vec<bool>,
    pub(super) guard: f64,
}

impl Packed {
    pub(super) fn new(x: &ArrayView2<f64>, dense: &Dense) -> Packed {
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
        Packed {
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
    pub(super) fn exact(&self, p: usize, q: usize) -> f64 {
        let d = self.d;
        euclid(
            &self.rows[p * d..(p + 1) * d],
            &self.rows[q * d..(q + 1) * d],
        )
    }

    /// Runs one task (row block `bi`) with the best kernel this CPU offers. Symmetric
    /// tasks add into `sums`; row-wise tasks return their rows' silhouettes.
    #[allow(unsafe_code)]
    pub(super) fn run_task(
        &self,
        simd: Simd,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        #[cfg(target_arch = "x86_64")]
        if simd == Simd::Avx2Fma {
            // SAFETY: `Simd::Avx2Fma` is only ever chosen by `Simd::detect` after
            // `is_x86_feature_detected!` confirmed AVX2 and FMA on this CPU. The callee is
            // ordinary safe code compiled with those features enabled.
            return unsafe { self.run_task_avx2(schedule, bi, sums, rowacc, colacc) };
        }
        let _ = simd;
        self.run_task_generic::<KERNEL_PORTABLE>(schedule, bi, sums, rowacc, colacc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn run_task_avx2(
        &self,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        self.run_task_generic::<KERNEL_AVX2>(schedule, bi, sums, rowacc, colacc)
    }

    #[inline(always)]
    pub(super) fn run_task_generic<const K: u8>(
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

    /// One tile with kernel `K` (always inlined into `run_task_avx2` / `run_task`).
    #[inline(always)]
    #[allow(unsafe_code)]
    pub(super) fn tile_k<const K: u8>(
        &self,
        bi: usize,
        bj: usize,
        with_cols: bool,
        rowacc: &mut [f64],
        colacc: &mut [f64],
        strip: &mut [Strip],
    ) {
        #[cfg(target_arch = "x86_64")]
        if K == KERNEL_AVX2 {
            // SAFETY: K == KERNEL_AVX2 is instantiated only by `run_task_avx2`, which
            // `run_task` calls only after run-time detection of AVX2 and FMA.
            return unsafe { self.tile_avx2(bi, bj, with_cols, rowacc, colacc, strip) };
        }
        self.tile::<PORTABLE_MR>(bi, bj, with_cols, rowacc, colacc, strip)
    }

    /// Distances between the rows of block `bi` and the rows of block `bj`: their sum over
    /// `bj` is added to `rowacc[row of bi]`; with `with_cols`, their sum over `bi` is
    /// added to `colacc[row of bj]`. Micro-tiles of M x 8 pairs: dot products (register
    /// blocked), then squared distances by the expansion, exact recomputation of any pair
    /// the guard flags, one sqrt per pair.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    pub(super) fn tile<const M: usize>(
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
    pub(super) fn slow_dist<const M: usize>(
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

    pub(super) fn flush_rows(
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
    pub(super) fn task_symmetric<const K: u8>(
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
    pub(super) fn task_rowwise<const K: u8>(
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
pub(super) fn micro<const M: usize>(a: &[Strip], b: &[Lane]) -> [Lane; M] {
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

/// Which distance kernel the CPU supports (detected once per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Simd {
    /// Baseline code (SSE2 on x86-64, NEON on aarch64) as the compiler vectorizes it.
    Portable,
    /// x86-64 with AVX2 and FMA, detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Simd {
    pub(super) fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Simd::Avx2Fma;
        }
        Simd::Portable
    }
}

/// Micro-tile height of the portable kernel (keeps the accumulators in 16 SSE registers).
pub(super) const PORTABLE_MR: usize = 2;
/// Micro-tile height of the AVX2 kernel, and the width of the A-row strip buffer.
pub(super) const STRIP: usize = 4;
/// Rows of one micro-tile strip, feature-major (only the first M lanes are used).
pub(super) type Strip = [f64; STRIP];
pub(super) const KERNEL_PORTABLE: u8 = 0;
#[cfg(target_arch = "x86_64")]
pub(super) const KERNEL_AVX2: u8 = 1;

/// sklearn's per-sample silhouette from the sums of distances to each cluster.
pub(super) fn sil_value(sums: &[f64], own: usize, counts: &[usize]) -> f64 {
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

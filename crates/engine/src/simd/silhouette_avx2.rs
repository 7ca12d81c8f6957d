//! The AVX2+FMA distance tile of the exact silhouette.

use std::arch::x86_64::*;

use super::{lanes, Simd};
use crate::metrics::silhouette_kernel::{
    Schedule, SilhouettePanels, Strip, BLOCK_ROWS, KERNEL_AVX2, KERNEL_PORTABLE, LANES, PORTABLE_MR,
};

impl SilhouettePanels {
    /// Runs one task (row block `bi`) with the best kernel this CPU offers. Symmetric
    /// tasks add into `sums`; row-wise tasks return their rows' silhouettes.
    pub(crate) fn run_task(
        &self,
        simd: Simd,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        #[cfg(target_arch = "x86_64")]
        if simd == (Simd::Avx2 { fma: true }) {
            // SAFETY: `Simd::Avx2 { fma: true }` is only ever chosen by `Simd::detect` after
            // `is_x86_feature_detected!` confirmed AVX2 and FMA on this CPU. The callee is
            // ordinary safe code compiled with those features enabled.
            return unsafe { self.run_task_avx2(schedule, bi, sums, rowacc, colacc) };
        }
        let _ = simd;
        self.run_task_generic::<KERNEL_PORTABLE>(schedule, bi, sums, rowacc, colacc)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn run_task_avx2(
        &self,
        schedule: Schedule,
        bi: usize,
        sums: &mut [f64],
        rowacc: &mut [f64],
        colacc: &mut [f64],
    ) -> Option<Vec<f64>> {
        self.run_task_generic::<KERNEL_AVX2>(schedule, bi, sums, rowacc, colacc)
    }

    /// One tile with kernel `K` (always inlined into `run_task_avx2` / `run_task`).
    #[inline(always)]
    pub(crate) fn tile_k<const K: u8>(
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

    /// The [`SilhouettePanels::tile`] computation with explicit AVX2/FMA intrinsics (4 x 8 pairs per
    /// micro-tile, accumulators in 8 ymm registers; column sums stay in registers for the
    /// whole tile). No raw pointers: loads are `_mm256_setr_pd` of array elements.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn tile_avx2(
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
        let d = self.d;
        let guard = _mm256_set1_pd(self.guard);
        let two = _mm256_set1_pd(2.0);
        let zero = _mm256_setzero_pd();
        let mut colv = [zero; 2 * (BLOCK_ROWS / LANES)];
        for ca in 0..a.chunks {
            let ga = a.chunk0 + ca;
            let apan = &panel[ga * d..(ga + 1) * d];
            let (an, am) = (&norm[ga], &self.mask[ga]);
            for r0 in [0usize, 4] {
                if am[r0] == 0.0 {
                    break; // lanes fill in order: the rest of this chunk is padding
                }
                for (dst, src) in strip.iter_mut().zip(apan) {
                    *dst = [src[r0], src[r0 + 1], src[r0 + 2], src[r0 + 3]];
                }
                let strip: &[Strip] = strip;
                let ar = [an[r0], an[r0 + 1], an[r0 + 2], an[r0 + 3]];
                let na = ar.map(|v| _mm256_set1_pd(v));
                let mut rowv = [zero; 4];
                // Software pipeline: the previous micro-tile's squared distances are
                // square-rooted (divider unit) before, and independently of, this one's
                // dot products (FMA pipes), so the out-of-order core overlaps the two.
                let mut pend = [zero; 8];
                let mut pend_cb: Option<usize> = None;
                for cb in 0..b.chunks {
                    if pend_cb.is_some() {
                        for v in 0..8 {
                            pend[v] = _mm256_sqrt_pd(pend[v]);
                        }
                    }
                    let gb = b.chunk0 + cb;
                    let bpan = &panel[gb * d..(gb + 1) * d];
                    let mut acc = [zero; 8];
                    for (av, bv) in strip.iter().zip(bpan) {
                        let b0 = _mm256_setr_pd(bv[0], bv[1], bv[2], bv[3]);
                        let b1 = _mm256_setr_pd(bv[4], bv[5], bv[6], bv[7]);
                        for r in 0..4 {
                            let s = _mm256_set1_pd(av[r]);
                            acc[2 * r] = _mm256_fmadd_pd(s, b0, acc[2 * r]);
                            acc[2 * r + 1] = _mm256_fmadd_pd(s, b1, acc[2 * r + 1]);
                        }
                    }
                    if let Some(pcb) = pend_cb.take() {
                        accumulate(&pend, &mut rowv, &mut colv, pcb, with_cols);
                    }
                    let bn = &norm[gb];
                    let bnv = [
                        _mm256_setr_pd(bn[0], bn[1], bn[2], bn[3]),
                        _mm256_setr_pd(bn[4], bn[5], bn[6], bn[7]),
                    ];
                    let mut bad = zero;
                    for i in 0..8 {
                        let s = _mm256_add_pd(na[i / 2], bnv[i % 2]);
                        let d2 = _mm256_fnmadd_pd(two, acc[i], s); // s - 2 * dot
                        let lim = _mm256_mul_pd(guard, s);
                        bad = _mm256_or_pd(bad, _mm256_cmp_pd::<_CMP_LT_OQ>(d2, lim));
                        acc[i] = d2;
                    }
                    if _mm256_movemask_pd(bad) != 0 || !(self.full[ga] && self.full[gb]) {
                        let mut tmp = [[0.0f64; LANES]; 4];
                        for (r, t) in tmp.iter_mut().enumerate() {
                            let (lo, hi) = (lanes(acc[2 * r]), lanes(acc[2 * r + 1]));
                            *t = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]];
                        }
                        self.slow_dist(&mut tmp, (a, ca, r0), (b, cb), &ar, bn);
                        for (r, t) in tmp.iter().enumerate() {
                            acc[2 * r] = _mm256_setr_pd(t[0], t[1], t[2], t[3]);
                            acc[2 * r + 1] = _mm256_setr_pd(t[4], t[5], t[6], t[7]);
                        }
                        accumulate(&acc, &mut rowv, &mut colv, cb, with_cols);
                    } else {
                        pend = acc;
                        pend_cb = Some(cb);
                    }
                }
                if let Some(pcb) = pend_cb {
                    for v in pend.iter_mut() {
                        *v = _mm256_sqrt_pd(*v);
                    }
                    accumulate(&pend, &mut rowv, &mut colv, pcb, with_cols);
                }
                for (r, rv) in rowv.iter().enumerate() {
                    let l = lanes(*rv);
                    rowacc[ca * LANES + r0 + r] += (l[0] + l[1]) + (l[2] + l[3]);
                }
            }
        }
        if with_cols {
            for (j, v) in colv.iter().take(2 * b.chunks).enumerate() {
                for (c, x) in lanes(*v).iter().enumerate() {
                    colacc[4 * j + c] += x;
                }
            }
        }
    }
}

/// Adds a resolved 4 x 8 micro-tile of distances (row-major pairs of vectors) to the row
/// sums and, with `with_cols`, to the column sums of chunk `cb`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn accumulate(
    dist: &[std::arch::x86_64::__m256d; 8],
    rowv: &mut [std::arch::x86_64::__m256d; 4],
    colv: &mut [std::arch::x86_64::__m256d],
    cb: usize,
    with_cols: bool,
) {
    for (r, rv) in rowv.iter_mut().enumerate() {
        *rv = _mm256_add_pd(*rv, _mm256_add_pd(dist[2 * r], dist[2 * r + 1]));
    }
    if with_cols {
        for h in 0..2 {
            let col = _mm256_add_pd(
                _mm256_add_pd(dist[h], dist[2 + h]),
                _mm256_add_pd(dist[4 + h], dist[6 + h]),
            );
            colv[2 * cb + h] = _mm256_add_pd(colv[2 * cb + h], col);
        }
    }
}

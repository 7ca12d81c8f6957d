//! k-means' side of the dispatch: the centroid layout of the AVX2 kernels
//! ([`PackedCentroids`]) and the wrappers that run the portable code (in
//! `crate::kmeans`) or the AVX2 kernels (`kmeans_avx2.rs`, no FMA: the same bits) for
//! the [`Simd`] level they are given.

#[cfg(target_arch = "x86_64")]
use super::kmeans_avx2 as avx2;
use super::prefetch_row;
use super::Simd;
use crate::kmeans::estep::{estep_rows, Acc, Block, Ctx};
use crate::kmeans::nearest::{argmin, argmin2, sqdist};
use crate::kmeans::plusplus::PpBlock;
use crate::kmeans::Nearest;

/// Centroids in the layout of the AVX2 E-step kernel: groups of four centroids (the last
/// centroid repeated past k), each stored as `ceil(d / 4)` chunks of 4 centroids x 4
/// features (zeros past d), so the kernel reads them with aligned-free contiguous loads
/// and no bounds checks per centroid. Empty for the portable kernel or when d > 4 *
/// [`PACK_MAX_CHUNKS`] (the AVX2 kernel then reads the k x d matrix directly).
pub(crate) struct PackedCentroids {
    /// Chunks of four features per row (0 when not packed).
    pub(crate) chunks: usize,
    pub(crate) v: Vec<f64>,
}

/// Widest rows (in chunks of four features) the packed AVX2 kernel handles.
pub(crate) const PACK_MAX_CHUNKS: usize = 16;

impl PackedCentroids {
    pub(crate) fn new(simd: Simd, centers: &[f64], k: usize, d: usize) -> PackedCentroids {
        let chunks = d.div_ceil(4);
        if simd == Simd::Portable || chunks > PACK_MAX_CHUNKS || k == 0 {
            return PackedCentroids {
                chunks: 0,
                v: Vec::new(),
            };
        }
        let groups = k.div_ceil(4);
        let mut v = vec![0.0; groups * chunks * 16];
        for g in 0..groups {
            for q in 0..chunks {
                for i in 0..4 {
                    let j = (4 * g + i).min(k - 1);
                    for l in 0..4 {
                        let f = 4 * q + l;
                        if f < d {
                            v[((g * chunks + q) * 4 + i) * 4 + l] = centers[j * d + f];
                        }
                    }
                }
            }
        }
        PackedCentroids { chunks, v }
    }
}

/// [`argmin2`] through the kernel `simd` selects: (first index of the minimum, minimum,
/// second smallest distance (infinite when k = 1)). Bit-identical for every kernel as
/// long as no distance is NaN (the training paths validate their input as finite).
#[inline(always)]
pub(crate) fn argmin2_with(
    simd: Simd,
    p: &PackedCentroids,
    c: &[f64],
    k: usize,
    d: usize,
    xi: &[f64],
) -> (usize, f64, f64) {
    match simd {
        Simd::Portable => argmin2(c, k, d, xi),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` only exists after `is_x86_feature_detected!("avx2")`
        // confirmed AVX2 on this CPU; the callees have no other requirement (no raw
        // pointers, every slice access is bounds-checked).
        Simd::Avx2 { .. } => unsafe {
            if p.chunks > 0 {
                avx2::argmin2_packed(p, k, xi)
            } else {
                avx2::argmin2(c, k, d, xi)
            }
        },
    }
}

/// [`argmin`] through the kernel `simd` selects (same conditions as [`argmin2_with`]).
#[inline(always)]
pub(crate) fn argmin_with(
    simd: Simd,
    p: &PackedCentroids,
    c: &[f64],
    k: usize,
    d: usize,
    xi: &[f64],
) -> (usize, f64) {
    match simd {
        Simd::Portable => argmin(c, k, d, xi),
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 { .. } => {
            let (a, da, _) = argmin2_with(simd, p, c, k, d, xi);
            (a, da)
        }
    }
}

/// `(a.sqrt(), b.sqrt())`, as one packed square root on AVX2 (correctly rounded either
/// way, so the bits are the same).
#[inline(always)]
pub(crate) fn sqrt2_with(simd: Simd, a: f64, b: f64) -> (f64, f64) {
    match simd {
        Simd::Portable => (a.sqrt(), b.sqrt()),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 { .. } => unsafe { avx2::sqrt2(a, b) },
    }
}

/// `out[j] = sqdist(x, c_j)` for every row of the k x d matrix `c`, through the kernel
/// `simd` selects (bit-identical for every kernel, NaN included).
#[inline(always)]
pub(crate) fn dists_with(simd: Simd, c: &[f64], k: usize, d: usize, x: &[f64], out: &mut [f64]) {
    match simd {
        Simd::Portable => {
            for (o, cj) in out[..k].iter_mut().zip(c.chunks_exact(d)) {
                *o = sqdist(x, cj);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 { .. } => unsafe { avx2::dists(c, k, d, x, out) },
    }
}

/// One block of [`pp_potentials`] through the AVX2 kernel (see [`pp_pot_block`]):
/// `false` (nothing done) when it does not apply (portable kernel, rows too wide to
/// pack, more than 8 candidates). `ht` holds the thresholds owner-major with a stride
/// of [`pp_lanes`]`(nc)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pp_pot_block_with(
    simd: Simd,
    p: &PackedCentroids,
    nc: usize,
    ht: &[f64],
    x: &[f64],
    d: usize,
    blk: &mut PpBlock,
    out: &mut [f64],
) -> bool {
    let (start, c, o, mk) = blk;
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 { .. } if p.chunks > 0 && nc <= 8 => unsafe {
            if nc <= 4 {
                avx2::pot_block::<1>(p, nc, ht, x, d, *start, c, o, mk, out);
            } else {
                avx2::pot_block::<2>(p, nc, ht, x, d, *start, c, o, mk, out);
            }
            true
        },
        _ => false,
    }
}

/// Threshold (and distance buffer) stride of [`pp_pot_block_with`] for `nc`
/// candidates on `simd` with rows packed in `p`: a multiple of four lanes when the
/// vector kernel runs, else `nc`.
pub(crate) fn pp_lanes(simd: Simd, p: &PackedCentroids, nc: usize) -> usize {
    if simd != Simd::Portable && p.chunks > 0 && nc <= 8 {
        nc.div_ceil(4) * 4
    } else {
        nc
    }
}

/// `out[j] = sqdist(row, center)` for the listed rows of `x` (row `start + list[j]`)
/// through the kernel `simd` selects (bit-identical for every kernel, NaN included:
/// same operands in the same order). With `ahead > 0`, rows that many list entries
/// ahead are prefetched.
#[inline(always)]
pub(crate) fn pp_center_rows_with(
    simd: Simd,
    center: &[f64],
    x: &[f64],
    start: usize,
    list: &[u32],
    out: &mut [f64],
    ahead: usize,
) {
    let d = center.len();
    match simd {
        Simd::Portable => {
            let row = |r: u32| &x[(start + r as usize) * d..(start + r as usize + 1) * d];
            for (j, (&r, o)) in list.iter().zip(out.iter_mut()).enumerate() {
                if ahead > 0 {
                    if let Some(&ra) = list.get(j + ahead) {
                        prefetch_row(row(ra));
                    }
                }
                *o = sqdist(row(r), center);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `argmin2_with`: AVX2 was detected on this CPU.
        Simd::Avx2 { .. } => unsafe { avx2::center_rows(center, x, start, list, out, ahead) },
    }
}

/// [`avx2::nearest`] when `simd` is AVX2 (`None` otherwise, or when a distance is NaN:
/// the caller then runs the scalar decisions). For 1 <= k <= [`NEAREST_MAX_K`].
#[inline(always)]
pub(crate) fn nearest_with(
    simd: Simd,
    c: &[f64],
    k: usize,
    d: usize,
    x: &[f64],
) -> Option<Nearest> {
    match simd {
        Simd::Portable => None,
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` means `is_x86_feature_detected!("avx2")` held.
        Simd::Avx2 { .. } => unsafe { avx2::nearest(c, k, d, x) },
    }
}

/// Most centroids [`nearest_with`] handles (more go through the batches).
#[cfg(target_arch = "x86_64")]
pub(crate) const NEAREST_MAX_K: usize = avx2::NEAREST_MAX_K;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const NEAREST_MAX_K: usize = 0;

/// One E-step block through the kernel `cx.simd` selects.
pub(crate) fn estep_block(cx: &Ctx, b: Block, acc: &mut Acc) {
    acc.reset();
    match cx.simd {
        Simd::Portable => estep_rows(cx, b, acc),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` only exists after `is_x86_feature_detected!("avx2")`.
        Simd::Avx2 { .. } => unsafe { estep_rows_avx2(cx, b, acc) },
    }
}

/// [`estep_rows`] compiled with AVX2 enabled, so that the AVX2 kernel inlines into the
/// row loop. Same operations in the same order as the portable instance.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn estep_rows_avx2(cx: &Ctx, b: Block, acc: &mut Acc) {
    estep_rows(cx, b, acc)
}

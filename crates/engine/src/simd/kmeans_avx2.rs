//! AVX2 versions of the all-centroid distance loops. One vector holds the distances of
//! one row to four centroids; each of them is accumulated exactly like [`sqdist`]: lane
//! `l` of the per-centroid accumulator sums the squared differences of features `l, l +
//! 4, l + 8, ...` in order (the missing features of a last partial chunk are zeros,
//! which add an exact +0), then `(l0 + l1) + (l2 + l3)`, done for four centroids at once
//! with two `hadd`s, two lane permutes and one add. Multiplies and adds stay separate
//! (no FMA), as in the portable code, so both give the same bits on every input.

use std::arch::x86_64::*;

use super::kmeans::{PackedCentroids, PACK_MAX_CHUNKS};
use super::{lanes, prefetch_row};
use crate::kmeans::plusplus::{PP_AHEAD, PP_TINY};
use crate::kmeans::Nearest;

// The hot helpers are macros: `#[inline(always)]` is not allowed on `#[target_feature]`
// functions, and LLVM does not always inline a plain `#[inline]` one into the loops.

/// `acc = sq` on the first chunk, else `acc + sq` (`0.0 + sq == sq` bit for bit: a
/// square is never -0.0, so the first chunk may skip the scalar code's add).
macro_rules! acc_sq {
    ($acc:expr, $first:expr, $xv:expr, $cv:expr) => {{
        let t = _mm256_sub_pd($xv, $cv);
        let sq = _mm256_mul_pd(t, t);
        $acc = if $first { sq } else { _mm256_add_pd($acc, sq) };
    }};
}

/// `(l0 + l1) + (l2 + l3)` of each of four accumulators, as one vector.
macro_rules! reduce4 {
    ($acc:expr) => {{
        let acc: [__m256d; 4] = $acc;
        // [a0_0+a0_1, a1_0+a1_1, a0_2+a0_3, a1_2+a1_3] and the same for a2, a3.
        let h01 = _mm256_hadd_pd(acc[0], acc[1]);
        let h23 = _mm256_hadd_pd(acc[2], acc[3]);
        let lo = _mm256_permute2f128_pd::<0x20>(h01, h23);
        let hi = _mm256_permute2f128_pd::<0x31>(h01, h23);
        _mm256_add_pd(lo, hi)
    }};
}

/// One step of the four-lane running search over the distances `v` of centroids
/// `jv` (lanes past the last centroid, `jv >= kv`, are made +inf when `partial`:
/// +inf never changes the minimum, index or second). The operations are those of the
/// scalar loop: `second = min(second, max(best, v))`, index where `v < best`, `best =
/// min(best, v)` (`_mm256_min_pd(a, b)` is `a < b ? a : b`, as the scalar `fmin`).
macro_rules! step {
    ($v:expr, $partial:expr, $jv:ident, $kv:expr, $best:ident, $second:ident, $bi:ident) => {{
        let mut v: __m256d = $v;
        if $partial {
            let inf = _mm256_set1_pd(f64::INFINITY);
            v = _mm256_blendv_pd(v, inf, _mm256_cmp_pd::<_CMP_GE_OQ>($jv, $kv));
        }
        $second = _mm256_min_pd($second, _mm256_max_pd($best, v));
        $bi = _mm256_blendv_pd($bi, $jv, _mm256_cmp_pd::<_CMP_LT_OQ>(v, $best));
        $best = _mm256_min_pd($best, v);
        $jv = _mm256_add_pd($jv, _mm256_set1_pd(4.0));
    }};
}

/// Minimum of the four lanes, in every lane (`min` is exact, so any order works).
macro_rules! hmin {
    ($v:expr) => {{
        let v: __m256d = $v;
        let m = _mm256_min_pd(v, _mm256_permute_pd::<0b0101>(v));
        _mm256_min_pd(m, _mm256_permute2f128_pd::<1>(m, m))
    }};
}

/// The lanes of four running (minimum, first index, second smallest) searches merged
/// into one, branch-free: the minimum, the lowest index among the lanes holding it,
/// and the second smallest value of the union (`min(seconds, second smallest of the
/// minima)`). Exact for non-NaN values.
macro_rules! merge_lanes {
    ($best:expr, $second:expr, $bi:expr) => {{
        let best: __m256d = $best;
        let sw = _mm256_permute_pd::<0b0101>(best);
        let (mn, mx) = (_mm256_min_pd(best, sw), _mm256_max_pd(best, sw));
        let mn_sw = _mm256_permute2f128_pd::<1>(mn, mn);
        let mx_sw = _mm256_permute2f128_pd::<1>(mx, mx);
        let m = _mm256_min_pd(mn, mn_sw);
        let second_of_best = _mm256_min_pd(_mm256_min_pd(mx, mx_sw), _mm256_max_pd(mn, mn_sw));
        let second = _mm256_min_pd(hmin!($second), second_of_best);
        let big = _mm256_set1_pd(f64::INFINITY);
        let eq = _mm256_cmp_pd::<_CMP_EQ_OQ>(best, m);
        let idx = hmin!(_mm256_blendv_pd(big, $bi, eq));
        (
            _mm_cvtsd_f64(_mm256_castpd256_pd128(idx)) as usize,
            _mm_cvtsd_f64(_mm256_castpd256_pd128(m)),
            _mm_cvtsd_f64(_mm256_castpd256_pd128(second)),
        )
    }};
}

/// Squared distances of the row (chunks `xc`) to the four centroids of one packed
/// group `pg` (`xc.len()` chunks of 16 values).
macro_rules! group_dist {
    ($xc:expr, $pg:expr) => {{
        let pg: &[f64] = $pg;
        let mut acc = [_mm256_setzero_pd(); 4];
        for (c, xv) in $xc.iter().enumerate() {
            let cq = &pg[16 * c..16 * c + 16];
            acc_sq!(acc[0], c == 0, *xv, load4(&cq[0..4]));
            acc_sq!(acc[1], c == 0, *xv, load4(&cq[4..8]));
            acc_sq!(acc[2], c == 0, *xv, load4(&cq[8..12]));
            acc_sq!(acc[3], c == 0, *xv, load4(&cq[12..16]));
        }
        reduce4!(acc)
    }};
}

/// The search over all packed groups for the row chunks `xc`.
macro_rules! search_packed {
    ($p:expr, $k:expr, $xc:expr) => {{
        let (p, k) = ($p, $k);
        let xc = $xc;
        let q = xc.len();
        let inf = _mm256_set1_pd(f64::INFINITY);
        let (mut best, mut second, mut bi) = (inf, inf, _mm256_setzero_pd());
        let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
        let kv = _mm256_set1_pd(k as f64);
        let groups = k.div_ceil(4);
        let partial = k % 4 != 0;
        for g in 0..groups {
            let v = group_dist!(xc, &p.v[16 * q * g..16 * q * (g + 1)]);
            let last = partial && g + 1 == groups;
            step!(v, last, jv, kv, best, second, bi);
        }
        merge_lanes!(best, second, bi)
    }};
}

/// Four consecutive values (one 256-bit load after inlining; no raw pointer).
#[inline]
#[target_feature(enable = "avx2")]
fn load4(s: &[f64]) -> __m256d {
    let a: &[f64; 4] = s[..4].try_into().expect("four values");
    _mm256_setr_pd(a[0], a[1], a[2], a[3])
}

/// Up to four values, zero-filled to four lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn tail4(s: &[f64]) -> __m256d {
    match *s {
        [a] => _mm256_setr_pd(a, 0.0, 0.0, 0.0),
        [a, b] => _mm256_setr_pd(a, b, 0.0, 0.0),
        [a, b, c] => _mm256_setr_pd(a, b, c, 0.0),
        _ => load4(s),
    }
}

/// Chunk `i` of a row (zero-filled past its end).
#[inline]
#[target_feature(enable = "avx2")]
fn chunk(x: &[f64], i: usize) -> __m256d {
    tail4(&x[4 * i..x.len().min(4 * i + 4)])
}

/// Squared distances of `x` to the four centroid rows `c` (each `x.len()` long), each
/// bit-identical to `sqdist(x, c[i])`.
macro_rules! dist4 {
    ($x:expr, $c:expr) => {{
        let (x, c): (&[f64], [&[f64]; 4]) = ($x, $c);
        let mut acc = [_mm256_setzero_pd(); 4];
        for i in 0..x.len().div_ceil(4) {
            let xv = chunk(x, i);
            for (a, cj) in acc.iter_mut().zip(c) {
                acc_sq!(*a, i == 0, xv, chunk(cj, i));
            }
        }
        reduce4!(acc)
    }};
}

/// Centroid rows `g..g + 4` of the k x d matrix `c`, the last one repeated past k.
#[inline(always)]
fn rows4(c: &[f64], k: usize, d: usize, g: usize) -> [&[f64]; 4] {
    let row = |i: usize| {
        let j = (g + i).min(k - 1);
        &c[j * d..j * d + d]
    };
    [row(0), row(1), row(2), row(3)]
}

/// `crate::kmeans::argmin2` over centroids packed by `PackedCentroids::new` (`p.chunks > 0`).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn argmin2_packed(p: &PackedCentroids, k: usize, x: &[f64]) -> (usize, f64, f64) {
    match p.chunks {
        1 => search_packed!(p, k, [chunk(x, 0)]),
        2 => search_packed!(p, k, [chunk(x, 0), chunk(x, 1)]),
        3 => search_packed!(p, k, [chunk(x, 0), chunk(x, 1), chunk(x, 2)]),
        4 => search_packed!(p, k, [chunk(x, 0), chunk(x, 1), chunk(x, 2), chunk(x, 3)]),
        // Rows of up to 32 features (typical encoded customer rows) stay in registers.
        5 => search_packed!(
            p,
            k,
            [
                chunk(x, 0),
                chunk(x, 1),
                chunk(x, 2),
                chunk(x, 3),
                chunk(x, 4)
            ]
        ),
        6 => search_packed!(
            p,
            k,
            [
                chunk(x, 0),
                chunk(x, 1),
                chunk(x, 2),
                chunk(x, 3),
                chunk(x, 4),
                chunk(x, 5)
            ]
        ),
        7 => search_packed!(
            p,
            k,
            [
                chunk(x, 0),
                chunk(x, 1),
                chunk(x, 2),
                chunk(x, 3),
                chunk(x, 4),
                chunk(x, 5),
                chunk(x, 6)
            ]
        ),
        8 => search_packed!(
            p,
            k,
            [
                chunk(x, 0),
                chunk(x, 1),
                chunk(x, 2),
                chunk(x, 3),
                chunk(x, 4),
                chunk(x, 5),
                chunk(x, 6),
                chunk(x, 7)
            ]
        ),
        q => {
            let mut buf = [_mm256_setzero_pd(); PACK_MAX_CHUNKS];
            for (i, v) in buf[..q].iter_mut().enumerate() {
                *v = chunk(x, i);
            }
            search_packed!(p, k, &buf[..q])
        }
    }
}

/// `crate::kmeans::argmin2` on the k x d matrix `c` (rows too wide to pack).
#[target_feature(enable = "avx2")]
pub(crate) fn argmin2(c: &[f64], k: usize, d: usize, x: &[f64]) -> (usize, f64, f64) {
    let inf = _mm256_set1_pd(f64::INFINITY);
    let (mut best, mut second, mut bi) = (inf, inf, _mm256_setzero_pd());
    let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
    let kv = _mm256_set1_pd(k as f64);
    for g in (0..k).step_by(4) {
        let v = dist4!(x, rows4(c, k, d, g));
        step!(v, g + 4 > k, jv, kv, best, second, bi);
    }
    merge_lanes!(best, second, bi)
}

/// [`crate::kmeans::nearest`] on the k x d matrix `c` for 1 <= k <= [`NEAREST_MAX_K`]:
/// `None` when a distance is NaN (the caller then runs the scalar decisions, whose
/// NaN behaviour is the reference). Otherwise the index is the first minimum (as
/// the scalar loop), and the runner-up is the first index other than it holding
/// the smallest remaining value, which is what the scalar loop keeps: its second is
/// the second smallest value of the multiset, replaced only by a strictly smaller one
/// or handed down from an earlier best (itself a first occurrence).
#[target_feature(enable = "avx2")]
pub(crate) fn nearest(c: &[f64], k: usize, d: usize, x: &[f64]) -> Option<Nearest> {
    let mut dv = [_mm256_setzero_pd(); NEAREST_MAX_K / 4];
    let groups = k.div_ceil(4);
    let dv = &mut dv[..groups];
    let inf = _mm256_set1_pd(f64::INFINITY);
    let (mut best, mut second, mut bi) = (inf, inf, _mm256_setzero_pd());
    let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
    let kv = _mm256_set1_pd(k as f64);
    let mut nan = _mm256_setzero_pd();
    for (g, slot) in dv.iter_mut().enumerate() {
        let mut v = dist4!(x, rows4(c, k, d, 4 * g));
        nan = _mm256_or_pd(nan, _mm256_cmp_pd::<_CMP_UNORD_Q>(v, v));
        if 4 * g + 4 > k {
            v = _mm256_blendv_pd(v, inf, _mm256_cmp_pd::<_CMP_GE_OQ>(jv, kv));
        }
        *slot = v;
        step!(v, false, jv, kv, best, second, bi);
    }
    if _mm256_movemask_pd(nan) != 0 {
        return None;
    }
    let (a, dist_sq, s) = merge_lanes!(best, second, bi);
    let mut runner_up = None;
    if k > 1 {
        let sv = _mm256_set1_pd(s);
        let av = _mm256_set1_pd(a as f64);
        let mut jv = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
        for (g, v) in dv.iter().enumerate() {
            let hit = _mm256_andnot_pd(
                _mm256_cmp_pd::<_CMP_EQ_OQ>(jv, av),
                _mm256_cmp_pd::<_CMP_EQ_OQ>(*v, sv),
            );
            let m = _mm256_movemask_pd(hit);
            if m != 0 {
                runner_up = Some((4 * g + m.trailing_zeros() as usize, s));
                break;
            }
            jv = _mm256_add_pd(jv, _mm256_set1_pd(4.0));
        }
    }
    Some(Nearest {
        index: a,
        dist_sq,
        runner_up,
    })
}

/// `[sqdist(rows[i], c)]`: four rows against one centre, each accumulated exactly
/// as [`crate::kmeans::sqdist`] with the same operand order (row minus centre).
#[inline]
#[target_feature(enable = "avx2")]
fn rows_dist4(rows: [&[f64]; 4], c: &[f64]) -> __m256d {
    let d = c.len();
    let mut acc = [_mm256_setzero_pd(); 4];
    // Chunk 0 sets the accumulators, full chunks add, then the partial one.
    let cv = chunk(c, 0);
    for (a, r) in acc.iter_mut().zip(rows) {
        acc_sq!(*a, true, chunk(r, 0), cv);
    }
    for i in 1..d / 4 {
        let cv = load4(&c[4 * i..4 * i + 4]);
        for (a, r) in acc.iter_mut().zip(rows) {
            acc_sq!(*a, false, load4(&r[4 * i..4 * i + 4]), cv);
        }
    }
    if d > 4 && !d.is_multiple_of(4) {
        let i = d / 4;
        let cv = tail4(&c[4 * i..]);
        for (a, r) in acc.iter_mut().zip(rows) {
            acc_sq!(*a, false, tail4(&r[4 * i..d]), cv);
        }
    }
    reduce4!(acc)
}

/// `crate::kmeans::pp_center_rows_with` on AVX2.
#[target_feature(enable = "avx2")]
pub(crate) fn center_rows(
    c: &[f64],
    x: &[f64],
    start: usize,
    list: &[u32],
    out: &mut [f64],
    ahead: usize,
) {
    let d = c.len();
    for (g, (four, o)) in list.chunks(4).zip(out.chunks_mut(4)).enumerate() {
        if ahead > 0 {
            for &r in list.iter().skip(4 * g + ahead).take(4) {
                let r = start + r as usize;
                prefetch_row(&x[r * d..(r + 1) * d]);
            }
        }
        let last = four[four.len() - 1];
        let mut rows: [&[f64]; 4] = [&[]; 4];
        for (i, rw) in rows.iter_mut().enumerate() {
            let r = start + *four.get(i).unwrap_or(&last) as usize;
            *rw = &x[r * d..(r + 1) * d];
        }
        let l = lanes(rows_dist4(rows, c));
        let m = o.len().min(four.len());
        o[..m].copy_from_slice(&l[..m]);
    }
}

/// The distances of the listed rows of `x` (row `start + list[j]`, width `d`) to the
/// `4 * G` candidates packed in `p` (`p.chunks > 0`), `out[j * w + t]`, each row
/// read once for all of them; bit-identical to `sqdist(row, candidate)` (row minus
/// candidate, lanes and order as in `group_dist!`). With `ahead > 0`, rows that many
/// list entries ahead are prefetched.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
fn cand_rows<const G: usize>(
    p: &PackedCentroids,
    w: usize,
    x: &[f64],
    d: usize,
    start: usize,
    list: &[u32],
    out: &mut [f64],
    ahead: usize,
) {
    let q = p.chunks;
    for (j, (&r, o)) in list.iter().zip(out.chunks_exact_mut(w)).enumerate() {
        if ahead > 0 {
            if let Some(&ra) = list.get(j + ahead) {
                let ra = start + ra as usize;
                prefetch_row(&x[ra * d..(ra + 1) * d]);
            }
        }
        let r = start + r as usize;
        let xi = &x[r * d..(r + 1) * d];
        let mut acc = [[_mm256_setzero_pd(); 4]; G];
        // Chunk 0 sets the accumulators, full chunks add, then the partial one.
        let group = |a: &mut [__m256d; 4], first: bool, xv: __m256d, cq: &[f64]| {
            acc_sq!(a[0], first, xv, load4(&cq[0..4]));
            acc_sq!(a[1], first, xv, load4(&cq[4..8]));
            acc_sq!(a[2], first, xv, load4(&cq[8..12]));
            acc_sq!(a[3], first, xv, load4(&cq[12..16]));
        };
        let xv = chunk(xi, 0);
        for (g, a) in acc.iter_mut().enumerate() {
            group(a, true, xv, &p.v[16 * g * q..16 * g * q + 16]);
        }
        for c in 1..d / 4 {
            let xv = load4(&xi[4 * c..4 * c + 4]);
            for (g, a) in acc.iter_mut().enumerate() {
                let at = 16 * (g * q + c);
                group(a, false, xv, &p.v[at..at + 16]);
            }
        }
        if d > 4 && !d.is_multiple_of(4) {
            let c = d / 4;
            let xv = tail4(&xi[4 * c..]);
            for (g, a) in acc.iter_mut().enumerate() {
                let at = 16 * (g * q + c);
                group(a, false, xv, &p.v[at..at + 16]);
            }
        }
        for (a, og) in acc.iter().zip(o.chunks_exact_mut(4)) {
            og.copy_from_slice(&lanes(reduce4!(*a)));
        }
    }
}

/// `crate::kmeans::pp_pot_block` on AVX2 for at most `4 * G` candidates (`nc`) packed in
/// `p`: the pruning tests, the sums and the improvement bits work on four
/// candidates per vector (lane t sums candidate t in row order, so the sums are
/// those of the scalar code), and each listed row is read once for all candidates.
/// `ht` holds the thresholds owner-major with a stride of `4 * G` lanes.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub(crate) fn pot_block<const G: usize>(
    p: &PackedCentroids,
    nc: usize,
    ht: &[f64],
    x: &[f64],
    d: usize,
    start: usize,
    c: &[f64],
    o: &[u32],
    mk: &mut [u8],
    out: &mut [f64],
) {
    const CH: usize = 512;
    let w = 4 * G;
    let mut need = [0u32; CH];
    let mut list = [0u32; CH];
    let mut sbuf = [0.0f64; CH * 8 + 8];
    let zero = _mm256_setzero_pd();
    let tiny = _mm256_set1_pd(PP_TINY);
    let lanebits = _mm256_setr_epi64x(1, 2, 4, 8);
    let full = (1u32 << nc) - 1;
    let mut acc = [zero; G];
    for (g, a) in acc.iter_mut().enumerate() {
        let mut t = [0.0; 4];
        for (l, tl) in t.iter_mut().enumerate() {
            if 4 * g + l < nc {
                *tl = out[4 * g + l];
            }
        }
        *a = load4(&t);
    }
    for c0 in (0..c.len()).step_by(CH) {
        let len = (c.len() - c0).min(CH);
        // 1. The candidates each row must compute (`crate::kmeans::pp_need`, four at once;
        // ordered comparisons are false on NaN as the scalar ones).
        let mut cnt = 0;
        for (r, nr) in need[..len].iter_mut().enumerate() {
            let v = _mm256_set1_pd(c[c0 + r]);
            let a = o[c0 + r] as usize;
            let mut bits = 0u32;
            for g in 0..G {
                let h = load4(&ht[(a * G + g) * 4..(a * G + g) * 4 + 4]);
                let le = _mm256_cmp_pd::<_CMP_LE_OQ>(v, h);
                let ge = _mm256_cmp_pd::<_CMP_GE_OQ>(v, tiny);
                let z = _mm256_cmp_pd::<_CMP_EQ_OQ>(v, zero);
                let skip = _mm256_or_pd(z, _mm256_and_pd(le, ge));
                bits |= (!(_mm256_movemask_pd(skip) as u32) & 15) << (4 * g);
            }
            bits &= full;
            *nr = bits;
            list[cnt] = (c0 + r) as u32;
            cnt += (bits != 0) as usize;
        }
        // 2. Their distances to all candidates (prefetched when the list skips rows).
        let ahead = if cnt < len { PP_AHEAD } else { 0 };
        cand_rows::<G>(p, w, x, d, start, &list[..cnt], &mut sbuf, ahead);
        // 3. In row order: lanes of pruned candidates add closest_i, the others
        // min(s, closest_i) (`_mm256_min_pd(s, v)` is `s < v ? s : v`, which is
        // `s.min(v)` for the non-NaN, non-negative `v` here).
        let mut j = 0;
        for (r, &bits) in need[..len].iter().enumerate() {
            let v = _mm256_set1_pd(c[c0 + r]);
            let mut b = 0u32;
            for (g, a) in acc.iter_mut().enumerate() {
                let s = load4(&sbuf[j * w + 4 * g..j * w + 4 * g + 4]);
                let gb = _mm256_set1_epi64x(((bits >> (4 * g)) & 15) as i64);
                let on = _mm256_castsi256_pd(_mm256_cmpeq_epi64(
                    _mm256_and_si256(gb, lanebits),
                    lanebits,
                ));
                let val = _mm256_blendv_pd(v, _mm256_min_pd(s, v), on);
                *a = _mm256_add_pd(*a, val);
                let lt = _mm256_and_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(s, v), on);
                b |= (_mm256_movemask_pd(lt) as u32) << (4 * g);
            }
            mk[c0 + r] = b as u8;
            j += (bits != 0) as usize;
        }
    }
    for (g, a) in acc.iter().enumerate() {
        let l = lanes(*a);
        for (i, v) in l.iter().enumerate() {
            if 4 * g + i < nc {
                out[4 * g + i] = *v;
            }
        }
    }
}

/// Most centroids [`nearest`] handles in registers (more go through the batches).
pub(crate) const NEAREST_MAX_K: usize = 64;

/// `(a.sqrt(), b.sqrt())` with one `vsqrtpd`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn sqrt2(a: f64, b: f64) -> (f64, f64) {
    let r = _mm_sqrt_pd(_mm_setr_pd(a, b));
    (_mm_cvtsd_f64(r), _mm_cvtsd_f64(_mm_unpackhi_pd(r, r)))
}

/// The distances of `x` to every row of the k x d matrix `c`, written to `out[j]`
/// (`out.len() >= k`).
#[target_feature(enable = "avx2")]
pub(crate) fn dists(c: &[f64], k: usize, d: usize, x: &[f64], out: &mut [f64]) {
    for g in (0..k).step_by(4) {
        let v = dist4!(x, rows4(c, k, d, g));
        let lo = _mm256_castpd256_pd128(v);
        let hi = _mm256_extractf128_pd::<1>(v);
        let l = [
            _mm_cvtsd_f64(lo),
            _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)),
            _mm_cvtsd_f64(hi),
            _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)),
        ];
        let n = (k - g).min(4);
        out[g..g + n].copy_from_slice(&l[..n]);
    }
}

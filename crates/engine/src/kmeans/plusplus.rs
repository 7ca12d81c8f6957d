//! Greedy k-means++ with exact pruning by the triangle inequality. Every row keeps, next
//! to `closest_i` (its squared distance to the nearest chosen centre), the index
//! `owner_i` of the chosen centre m that gave it. For a candidate (or new) centre c and
//! every chosen centre m_j, `h_j = (1 - DELTA) |c - m_j|^2 / 4` is computed once. A row
//! with `closest_i <= h_{owner_i}` satisfies |c - m| >= 2 |x_i - m|, so |x_i - c| >= |c -
//! m| - |x_i - m| >= |x_i - m|, with a relative margin (DELTA) far above the rounding of
//! the three computed distances: the computed |x_i - c|^2 would be >= closest_i, so
//! min(closest_i, |x_i - c|^2) == closest_i and a strict improvement is impossible. Such
//! rows skip the distance. All other distances are computed with `sqdist` as before and
//! every sum keeps its order (per block in row order, then blocks in order), so the
//! chosen centres, the `closest` values and the potentials are bit-identical to the
//! unpruned computation, for every thread count. Rows with `closest_i == 0` never change
//! (min(s, 0) == 0 for s >= 0 and for NaN), so they are always skipped; tiny positive
//! values (subnormal range, where rounding is not relative) are never skipped.

use super::*;

/// Smallest positive `closest` value a row may be pruned with: far above the subnormal
/// range, so the absolute underflow error of a distance (at most d * 2^-1075) is
/// negligible next to the relative margin.
pub(crate) const PP_TINY: f64 = 1e-200;

/// Candidates whose "strictly improves this row" bit a potentials pass records (one
/// byte per row); a later winner (2 + ln k > 8 candidates: k >= 1097) is updated with
/// the pruning test instead.
pub(crate) const PP_MASK_BITS: usize = 8;

/// Rows per prefix-sum mark of the sampling scan.
pub(crate) const PP_SCAN: usize = 1024;

/// Pruning thresholds of centre `c` against the chosen centres `chosen` (rows of the
/// m x d matrix): `(1 - DELTA) |c - m_j|^2 / 4`, or -1 (never prune) when that distance
/// is not finite.
pub(crate) fn pp_thresholds(c: &[f64], chosen: &[f64], d: usize, out: &mut [f64]) {
    for (h, mj) in out.iter_mut().zip(chosen.chunks_exact(d)) {
        let d2 = sqdist(c, mj);
        *h = if d2.is_finite() {
            down(d2) * 0.25
        } else {
            -1.0
        };
    }
}

/// Whether a row with closest value `v` must compute its distance to a centre whose
/// threshold for the row's owner is `h`; `false` when it certainly keeps `v` (see the
/// section comment). Branch-free: the pruning pattern of the rows is data dependent.
#[inline(always)]
pub(crate) fn pp_need(v: f64, h: f64) -> bool {
    !((v == 0.0) | ((v <= h) & (v >= PP_TINY)))
}

/// Which rows [`pp_update`] recomputes.
#[derive(Clone, Copy)]
pub(crate) enum PpRows<'a> {
    /// Every row, writing unconditionally (the first centre).
    All,
    /// Rows whose `improves` byte has this bit set (the winner's potentials pass found
    /// it strictly closer there, and nowhere else).
    Bit(u8),
    /// Rows not pruned by these thresholds (indexed by owner).
    Pruned(&'a [f64]),
}

/// Rows `start..` of a k-means++ pass: their slices of `closest`, `owner` and
/// `improves`.
pub(crate) type PpBlock<'a> = (usize, &'a mut [f64], &'a mut [u32], &'a mut [u8]);

/// Blocks of [`BLOCK`] rows over the per-row state.
pub(crate) fn pp_blocks<'a>(
    closest: &'a mut [f64],
    owner: &'a mut [u32],
    improves: &'a mut [u8],
) -> Vec<PpBlock<'a>> {
    let nb = closest.len().div_ceil(BLOCK);
    closest
        .chunks_mut(BLOCK)
        .zip(split_blocks(owner, BLOCK, 1, nb))
        .zip(split_blocks(improves, BLOCK, 1, nb))
        .enumerate()
        .map(|(b, ((c, o), m))| (b * BLOCK, c, o, m))
        .collect()
}

/// Rows per sub-chunk of a pruned pass: the rows to compute are listed first (from
/// `closest`, `owner` and the thresholds alone), so the rows' data can be prefetched.
pub(crate) const PP_CHUNK: usize = 1024;

/// How many listed rows ahead a pruned pass prefetches.
pub(crate) const PP_AHEAD: usize = 8;

/// Squared distance of the selected rows (`which`) to `center`, min-ed into `closest`
/// (replaced only when strictly smaller, or always for [`PpRows::All`]), `owner` set to
/// `index` where it was. Deterministic.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pp_update(
    x: &[f64],
    center: &[f64],
    index: u32,
    which: PpRows,
    closest: &mut [f64],
    owner: &mut [u32],
    improves: &mut [u8],
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<(), EngineError> {
    let simd = Simd::detect();
    let items = pp_blocks(closest, owner, improves);
    run_blocks(items, threads, hooks, &|(start, c, o, m): PpBlock| {
        let mut list = [0u32; PP_CHUNK];
        let mut dist = [0.0f64; PP_CHUNK];
        for c0 in (0..c.len()).step_by(PP_CHUNK) {
            let len = (c.len() - c0).min(PP_CHUNK);
            let mut cnt = 0;
            for r in c0..c0 + len {
                let need = match which {
                    PpRows::All => true,
                    PpRows::Bit(bit) => m[r] & bit != 0,
                    PpRows::Pruned(h) => pp_need(c[r], h[o[r] as usize]),
                };
                list[cnt] = r as u32;
                cnt += need as usize;
            }
            // Dense lists stream by themselves; sparse ones are prefetched ahead.
            let ahead = if cnt < len { PP_AHEAD } else { 0 };
            pp_center_rows_with(simd, center, x, start, &list[..cnt], &mut dist, ahead);
            for (&r, &t) in list[..cnt].iter().zip(&dist) {
                let r = r as usize;
                if matches!(which, PpRows::All) || t < c[r] {
                    c[r] = t;
                    o[r] = index;
                }
            }
        }
    })
}

/// Values of the per-chunk distance buffer of [`pp_potentials`] (on the stack).
pub(crate) const PP_SBUF: usize = 4096;

/// `if c { a } else { b }` without a branch (the rows' pruning pattern is data
/// dependent, so branches would be mispredicted).
#[inline(always)]
pub(crate) fn pick(c: bool, a: f64, b: f64) -> f64 {
    let m = (c as u64).wrapping_neg();
    f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// One block of [`pp_potentials`] for `N` candidates, portable (`N` = `nc` when `N <=
/// 8`, so that the per-candidate loops unroll and the sums stay in registers;
/// otherwise `N` = 64 and `nc` candidates are used): per chunk of rows, 1. which
/// candidates each row must compute, 2. those distances (rows prefetched when the list
/// skips rows), 3. the sums in row order. `ht` holds the thresholds owner-major.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn pp_pot_block<const N: usize>(
    nc: usize,
    x: &[f64],
    d: usize,
    cmat: &[f64],
    ht: &[f64],
    blk: PpBlock,
    out: &mut [f64],
) {
    let nc = if N <= 8 { N } else { nc };
    let (start, c, o, mk) = blk;
    let chunk_rows = (PP_SBUF / nc).min(PP_CHUNK);
    let row = |r: u32| &x[(start + r as usize) * d..(start + r as usize + 1) * d];
    let mut need = [0u64; PP_CHUNK];
    let mut list = [0u32; PP_CHUNK];
    let mut sbuf = [0.0f64; PP_SBUF + 64];
    let mut acc = [0.0f64; N];
    acc[..nc].copy_from_slice(&out[..nc]);
    for c0 in (0..c.len()).step_by(chunk_rows) {
        let len = (c.len() - c0).min(chunk_rows);
        // 1. The candidates each row must compute (bit t: candidate t not pruned).
        let mut cnt = 0;
        for (r, nr) in need[..len].iter_mut().enumerate() {
            let (v, a) = (c[c0 + r], o[c0 + r] as usize);
            let mut bits = 0u64;
            for (t, &h) in ht[a * nc..(a + 1) * nc].iter().enumerate() {
                bits |= (pp_need(v, h) as u64) << t;
            }
            *nr = bits;
            list[cnt] = (c0 + r) as u32;
            cnt += (bits != 0) as usize;
        }
        let list = &list[..cnt];
        // 2. Their distances.
        let ahead = if cnt < len { PP_AHEAD } else { 0 };
        for (j, (&r, s)) in list.iter().zip(sbuf.chunks_exact_mut(nc)).enumerate() {
            if ahead > 0 {
                if let Some(&ra) = list.get(j + ahead) {
                    prefetch_row(row(ra));
                }
            }
            let bits = need[r as usize - c0];
            for (t, st) in s.iter_mut().enumerate() {
                if bits >> t & 1 != 0 {
                    *st = sqdist(row(r), &cmat[t * d..(t + 1) * d]);
                }
            }
        }
        // 3. In row order: pruned candidates add closest_i, the others min(s, closest_i).
        let mut j = 0;
        for (r, &bits) in need[..len].iter().enumerate() {
            let v = c[c0 + r];
            let s = &sbuf[j * nc..(j + 1) * nc];
            let mut b = 0u8;
            for (t, (p, &st)) in acc[..nc].iter_mut().zip(s).enumerate() {
                let on = bits >> t & 1 != 0;
                b |= (((st < v) & on & (t < PP_MASK_BITS)) as u8) << (t % 8);
                *p += pick(on, st.min(v), v);
            }
            mk[c0 + r] = b;
            j += (bits != 0) as usize;
        }
    }
    out[..nc].copy_from_slice(&acc[..nc]);
}

/// For each candidate row, the potential sum_i min(closest_i, |x_i - x_cand|^2), summed
/// per block in row order and then over blocks in order (deterministic), in one pass
/// over the rows for all candidates. `h` holds each candidate's thresholds against the
/// `m` chosen centres (candidate-major); `improves[i]` gets bit t set when candidate t
/// (< [`PP_MASK_BITS`]) is strictly closer to row i than `closest_i`. (`closest` and
/// `owner` are only read; they are borrowed mutably to share the blocks with
/// [`pp_update`].)
#[allow(clippy::too_many_arguments)]
pub(crate) fn pp_potentials(
    x: &[f64],
    d: usize,
    cands: &[usize],
    h: &[f64],
    m: usize,
    closest: &mut [f64],
    owner: &mut [u32],
    improves: &mut [u8],
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<Vec<f64>, EngineError> {
    let nc = cands.len();
    // One bit per candidate: 2 + ln(k) <= 64 for every k a usize can hold.
    assert!((1..=64).contains(&nc), "{nc} candidates");
    let simd = Simd::detect();
    let mut pots: Vec<Vec<f64>> = (0..closest.len().div_ceil(BLOCK))
        .map(|_| vec![0.0; nc])
        .collect();
    let items: Vec<(PpBlock, &mut Vec<f64>)> = pp_blocks(closest, owner, improves)
        .into_iter()
        .zip(pots.iter_mut())
        .collect();
    // The candidates as an nc x d matrix (and packed for the vector kernel), and the
    // thresholds owner-major: the row's thresholds side by side, `hw` apart (padding:
    // -1, never prune).
    let cmat: Vec<f64> = cands
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let packed = PackedCentroids::new(simd, &cmat, nc, d);
    let hw = pp_lanes(simd, &packed, nc);
    let ht: Vec<f64> = (0..m * hw)
        .map(|i| match i % hw {
            t if t < nc => h[t * m + i / hw],
            _ => -1.0,
        })
        .collect();
    let (cm, pk, ht) = (&cmat[..], &packed, &ht[..]);
    run_blocks(items, threads, hooks, &|(mut blk, out): (
        PpBlock,
        &mut Vec<f64>,
    )| {
        if pp_pot_block_with(simd, pk, nc, ht, x, d, &mut blk, out) {
            return;
        }
        match nc {
            1 => pp_pot_block::<1>(nc, x, d, cm, ht, blk, out),
            2 => pp_pot_block::<2>(nc, x, d, cm, ht, blk, out),
            3 => pp_pot_block::<3>(nc, x, d, cm, ht, blk, out),
            4 => pp_pot_block::<4>(nc, x, d, cm, ht, blk, out),
            5 => pp_pot_block::<5>(nc, x, d, cm, ht, blk, out),
            6 => pp_pot_block::<6>(nc, x, d, cm, ht, blk, out),
            7 => pp_pot_block::<7>(nc, x, d, cm, ht, blk, out),
            8 => pp_pot_block::<8>(nc, x, d, cm, ht, blk, out),
            _ => pp_pot_block::<64>(nc, x, d, cm, ht, blk, out),
        }
    })?;
    let mut tot = vec![0.0; nc];
    for p in pots {
        for (t, v) in tot.iter_mut().zip(p) {
            *t += v;
        }
    }
    Ok(tot)
}

/// The sequential sum of `closest` (in row order, as `iter().sum()`), and the running
/// sum after every [`PP_SCAN`] rows, for [`pp_sample`].
pub(crate) fn pp_total(closest: &[f64]) -> (f64, Vec<f64>) {
    let mut ends = Vec::with_capacity(closest.len().div_ceil(PP_SCAN));
    let mut cum = 0.0;
    for ch in closest.chunks(PP_SCAN) {
        for v in ch {
            cum += v;
        }
        ends.push(cum);
    }
    (cum, ends)
}

/// The candidates for the sorted targets `rv` (value, candidate slot): for each target
/// in order, the first row where the running sum of `closest` exceeds it; once a
/// target is never exceeded (rounding or NaN), it and all later ones take the last row
/// with positive weight. Identical to one sequential scan (the running sum never
/// decreases), but it only rescans the [`PP_SCAN`] rows where a target is crossed.
pub(crate) fn pp_sample(closest: &[f64], ends: &[f64], rv: &[(f64, usize)], cands: &mut [usize]) {
    let n = closest.len();
    for (q, &(r, slot)) in rv.iter().enumerate() {
        // The first mark past the target (a NaN target is never passed).
        let passed = |e: &f64| e.partial_cmp(&r) == Some(std::cmp::Ordering::Greater);
        let b = ends.partition_point(|e| !passed(e));
        if b == ends.len() {
            // Rounding could leave the last values above the sum: take the last row with
            // positive weight, like numpy's clip to n-1 but never a zero-weight row.
            let lastpos = closest.iter().rposition(|v| *v > 0.0).unwrap_or(n - 1);
            for r in &rv[q..] {
                cands[r.1] = lastpos;
            }
            return;
        }
        let mut cum = if b == 0 { 0.0 } else { ends[b - 1] };
        let start = b * PP_SCAN;
        let end = (start + PP_SCAN).min(n);
        let mut hit = end - 1;
        for (i, v) in closest[start..end].iter().enumerate() {
            cum += v;
            if cum > r {
                hit = start + i;
                break;
            }
        }
        cands[slot] = hit;
    }
}

//! One E-step block: the per-block accumulator, the context the block reads, and the
//! Lloyd / Hamerly / Elkan row loops with their exact bound tests.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Lloyd,
    Hamerly,
    Elkan,
}

/// What an E-step tallies. Only the first pass touches every row: later passes of a run
/// keep the run's per-cluster sums up to date from the rows that changed cluster, so a
/// row whose bounds hold is never read (the label sums are exact functions of the labels
/// up to float rounding: each moved row is added to its new cluster and subtracted from
/// its old one, in block order, whatever the thread count).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// First E-step of a run: every row's sums, counts, squared norm and distance.
    First,
    /// Later E-steps: the sums and counts of the rows that changed cluster only (added
    /// to the new cluster, subtracted from the old); no distances.
    Iterate,
    /// The final labelling: counts and the exact inertia, no sums.
    Final,
}

/// Per-block accumulator of one E-step (see [`Pass`] for what each field holds).
pub(crate) struct Acc {
    pub(crate) sums: Vec<f64>,
    pub(crate) counts: Vec<i64>,
    pub(crate) inertia: f64,
    /// Sum of the rows' squared norms (first pass only).
    pub(crate) sq: f64,
    pub(crate) moved: usize,
}

impl Acc {
    pub(crate) fn new(k: usize, d: usize) -> Self {
        Acc {
            sums: vec![0.0; k * d],
            counts: vec![0; k],
            inertia: 0.0,
            sq: 0.0,
            moved: 0,
        }
    }
    pub(crate) fn reset(&mut self) {
        self.sums.iter_mut().for_each(|v| *v = 0.0);
        self.counts.iter_mut().for_each(|v| *v = 0);
        self.inertia = 0.0;
        self.sq = 0.0;
        self.moved = 0;
    }
}

/// Everything an E-step block reads.
pub(crate) struct Ctx<'a> {
    pub(crate) x: &'a [f64],
    pub(crate) d: usize,
    pub(crate) k: usize,
    pub(crate) centers: &'a [f64],
    /// Inflated per-centre shift since the previous E-step.
    pub(crate) shift: &'a [f64],
    /// Largest shift, its centre, and the second largest shift.
    pub(crate) smax: (f64, usize, f64),
    /// Deflated half distance from each centre to its nearest other centre.
    pub(crate) half: &'a [f64],
    /// Deflated half centre-centre distances, k x k (Elkan only).
    pub(crate) cc_half: &'a [f64],
    /// Cumulative inflated shifts per epoch, (epoch + 1) x k (Elkan only).
    pub(crate) cum: &'a [f64],
    /// Index of this E-step among the run's E-steps.
    pub(crate) epoch: usize,
    pub(crate) kind: Kind,
    pub(crate) pass: Pass,
    /// Kernel of the all-centroid searches (chosen once per E-step).
    pub(crate) simd: Simd,
    /// `centers` in the AVX2 kernel's layout (empty for the portable kernel).
    pub(crate) packed: &'a PackedCentroids,
}

pub(crate) struct Block<'a> {
    pub(crate) start: usize,
    pub(crate) labels: &'a mut [u32],
    pub(crate) upper: &'a mut [f64],
    pub(crate) lower: &'a mut [f64],
    pub(crate) lowk: &'a mut [f32],
    pub(crate) stamp: &'a mut [u32],
}

/// Rows ahead of the current one whose data a sparse sweep prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Tallies row `xi`, now in cluster `a` (was `a0`; `da` its squared distance to `a`,
/// needed in the first and final passes only).
#[inline(always)]
pub(crate) fn record(cx: &Ctx, acc: &mut Acc, xi: &[f64], a: usize, a0: usize, da: f64) {
    let d = cx.d;
    match cx.pass {
        Pass::First => {
            for (s, v) in acc.sums[a * d..(a + 1) * d].iter_mut().zip(xi) {
                *s += *v;
            }
            let mut q = 0.0;
            for v in xi {
                q += v * v;
            }
            acc.sq += q;
            acc.counts[a] += 1;
            acc.inertia += da;
            acc.moved += 1;
        }
        Pass::Iterate => {
            if a != a0 {
                for (s, v) in acc.sums[a * d..(a + 1) * d].iter_mut().zip(xi) {
                    *s += *v;
                }
                for (s, v) in acc.sums[a0 * d..(a0 + 1) * d].iter_mut().zip(xi) {
                    *s -= *v;
                }
                acc.counts[a] += 1;
                acc.counts[a0] -= 1;
                acc.moved += 1;
            }
        }
        Pass::Final => {
            acc.counts[a] += 1;
            acc.inertia += da;
            acc.moved += usize::from(a != a0);
        }
    }
}

/// Hamerly's full search for one row: its nearest and second-nearest centres give the
/// label and both bounds; the row is tallied (its old label is ignored in the first
/// pass, see [`record`]).
#[inline(always)]
fn hamerly_search(
    cx: &Ctx,
    acc: &mut Acc,
    xi: &[f64],
    upper: &mut f64,
    lower: &mut f64,
    label: &mut u32,
) {
    let (a, da, s2) = argmin2_with(cx.simd, cx.packed, cx.centers, cx.k, cx.d, xi);
    let (sa, s2) = sqrt2_with(cx.simd, da, s2);
    *upper = up(sa);
    *lower = down(s2);
    let a0 = *label as usize;
    *label = a as u32;
    record(cx, acc, xi, a, a0, da);
}

#[inline(always)]
pub(crate) fn estep_rows(cx: &Ctx, b: Block, acc: &mut Acc) {
    let d = cx.d;
    let k = cx.k;
    let Block {
        start,
        labels,
        upper,
        lower,
        lowk,
        stamp,
    } = b;
    let rows = cx.x[start * d..(start + labels.len()) * d].chunks_exact(d);
    let first = cx.pass == Pass::First;
    // Distances of rows whose bounds hold are needed for the exact final inertia only.
    let exact = cx.pass == Pass::Final;
    match (cx.kind, first) {
        (Kind::Lloyd, _) => {
            for (xi, lab) in rows.zip(labels.iter_mut()) {
                let (a, da) = argmin_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                let a0 = *lab as usize;
                *lab = a as u32;
                record(cx, acc, xi, a, a0, da);
            }
        }
        (Kind::Hamerly, true) => {
            for (r, xi) in rows.enumerate() {
                hamerly_search(cx, acc, xi, &mut upper[r], &mut lower[r], &mut labels[r]);
            }
        }
        (Kind::Hamerly, false) if !exact => {
            // Two sweeps. The first brings every row's bounds forward and never reads
            // the row itself: a row whose bounds hold keeps its cluster, and only the
            // rows that changed cluster enter the sums. The second visits the rows whose
            // bounds failed, in row order (so the sums are added in the same order as
            // Lloyd's), prefetching the rows ahead. (The final pass, which needs every
            // row's distance, goes through the one-sweep loop below.)
            // How far a row's second-nearest bound decays: the largest shift of any
            // centre other than its own.
            let (smax, smax_j, smax2) = cx.smax;
            let (decay, decay_j) = (up(smax), up(smax2));
            // The block's rows whose bounds fail (a block's worth of u32 at most, freed
            // with the block: per-block buffers kept across E-steps would add 4 bytes a
            // row to the working set).
            let mut cand = vec![0u32; labels.len()];
            let mut nc = 0;
            for r in 0..labels.len() {
                let a = labels[r] as usize;
                let u = up(upper[r] + cx.shift[a]);
                let l = down(lower[r]) - if a == smax_j { decay_j } else { decay };
                upper[r] = u;
                lower[r] = l;
                // Without a branch: the row is written and kept only when its bounds
                // fail (a data-dependent branch here mispredicts on most rows).
                cand[nc] = r as u32;
                nc += usize::from(u >= l.max(cx.half[a]));
            }
            cand.truncate(nc);
            let xs = &cx.x[start * d..(start + labels.len()) * d];
            for (i, &r) in cand.iter().enumerate() {
                if let Some(&p) = cand.get(i + PREFETCH_AHEAD) {
                    prefetch_row(&xs[p as usize * d..(p as usize + 1) * d]);
                }
                let r = r as usize;
                let xi = &xs[r * d..(r + 1) * d];
                // Straight to all k distances: measured faster here than first testing
                // the distance to the current centre (that test is a branch that goes
                // either way on about half of these rows), and it tightens both bounds.
                hamerly_search(cx, acc, xi, &mut upper[r], &mut lower[r], &mut labels[r]);
            }
        }
        (Kind::Hamerly, false) => {
            let (smax, smax_j, smax2) = cx.smax;
            for (r, xi) in rows.enumerate() {
                let a0 = labels[r] as usize;
                let mut a = a0;
                let mut u = up(upper[r] + cx.shift[a]);
                let l = down(lower[r]) - up(if a == smax_j { smax2 } else { smax });
                let m = l.max(cx.half[a]);
                let da;
                if u < m {
                    lower[r] = l;
                    da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                } else {
                    let t = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                    // Same test as `up(sqrt(t)) < m`, without waiting for the square
                    // root: sqrt(t) * (1 + 1.5 DELTA) < m, squared (m > 0 here or it
                    // fails).
                    if m > 0.0 && t * (1.0 + 3.0 * DELTA) < m * m {
                        u = up(t.sqrt());
                        lower[r] = l;
                        da = t;
                    } else {
                        let (na, nda, s2) = argmin2_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                        let (sa, s2) = sqrt2_with(cx.simd, nda, s2);
                        a = na;
                        da = nda;
                        u = up(sa);
                        lower[r] = down(s2);
                    }
                }
                upper[r] = u;
                labels[r] = a as u32;
                record(cx, acc, xi, a, a0, da);
            }
        }
        (Kind::Elkan, true) => {
            for ((r, xi), lk) in rows.enumerate().zip(lowk.chunks_exact_mut(k)) {
                let mut best = f64::INFINITY;
                let mut a = 0;
                for (j, cj) in cx.centers.chunks_exact(d).enumerate() {
                    let v = sqdist(xi, cj);
                    lk[j] = down32(down(v.sqrt()));
                    if v < best {
                        best = v;
                        a = j;
                    }
                }
                upper[r] = up(best.sqrt());
                stamp[r] = 0;
                labels[r] = a as u32;
                record(cx, acc, xi, a, a, best);
            }
        }
        (Kind::Elkan, false) => {
            // Lazy bounds: a row's bounds are brought forward (by the cumulative centre
            // shifts since its stamp) only when the row is not pruned outright.
            let e = cx.epoch;
            let se = &cx.cum[e * k..(e + 1) * k];
            for ((r, xi), lk) in rows.enumerate().zip(lowk.chunks_exact_mut(k)) {
                let t = stamp[r] as usize;
                let st = &cx.cum[t * k..(t + 1) * k];
                let decay = |j: usize| up(se[j] - st[j]) + 1e-12 * se[j];
                let a0 = labels[r] as usize;
                let mut a = a0;
                let mut u = up(upper[r] + decay(a0));
                let mut da = f64::NAN;
                if u >= cx.half[a] {
                    for (j, l) in lk.iter_mut().enumerate() {
                        *l = down32(down(*l as f64) - decay(j));
                    }
                    let mut tight = false;
                    for j in 0..k {
                        if j == a {
                            continue;
                        }
                        let lj = lk[j] as f64;
                        if u < lj || u < cx.cc_half[a * k + j] {
                            continue;
                        }
                        if !tight {
                            da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                            let s = da.sqrt();
                            u = up(s);
                            lk[a] = down32(down(s));
                            tight = true;
                            if u < lj || u < cx.cc_half[a * k + j] {
                                continue;
                            }
                        }
                        let dj = sqdist(xi, &cx.centers[j * d..(j + 1) * d]);
                        let sj = dj.sqrt();
                        lk[j] = down32(down(sj));
                        if dj < da || (dj == da && j < a) {
                            a = j;
                            da = dj;
                            u = up(sj);
                        }
                    }
                    upper[r] = u;
                    stamp[r] = e as u32;
                }
                if exact && da.is_nan() {
                    da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                }
                labels[r] = a as u32;
                record(cx, acc, xi, a, a0, da);
            }
        }
    }
}

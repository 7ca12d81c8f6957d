//! One E-step block: the per-block accumulator, the context the block reads, and the
//! Lloyd / Hamerly / Elkan row loops with their exact bound tests.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Lloyd,
    Hamerly,
    Elkan,
}

/// Per-block accumulator of one E-step.
pub(crate) struct Acc {
    pub(crate) sums: Vec<f64>,
    pub(crate) counts: Vec<u64>,
    pub(crate) inertia: f64,
    pub(crate) moved: usize,
}

impl Acc {
    pub(crate) fn new(k: usize, d: usize) -> Self {
        Acc {
            sums: vec![0.0; k * d],
            counts: vec![0; k],
            inertia: 0.0,
            moved: 0,
        }
    }
    pub(crate) fn reset(&mut self) {
        self.sums.iter_mut().for_each(|v| *v = 0.0);
        self.counts.iter_mut().for_each(|v| *v = 0);
        self.inertia = 0.0;
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
    pub(crate) first: bool,
    pub(crate) accumulate: bool,
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

#[inline(always)]
pub(crate) fn accumulate(cx: &Ctx, acc: &mut Acc, xi: &[f64], a: usize, da: f64) {
    if cx.accumulate {
        let d = cx.d;
        for (s, v) in acc.sums[a * d..(a + 1) * d].iter_mut().zip(xi) {
            *s += *v;
        }
    }
    acc.counts[a] += 1;
    acc.inertia += da;
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
    match (cx.kind, cx.first) {
        (Kind::Lloyd, _) => {
            for (xi, lab) in rows.zip(labels.iter_mut()) {
                let (a, da) = argmin_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                if cx.first || *lab != a as u32 {
                    acc.moved += 1;
                    *lab = a as u32;
                }
                accumulate(cx, acc, xi, a, da);
            }
        }
        (Kind::Hamerly, true) => {
            for (r, xi) in rows.enumerate() {
                let (a, da, s2) = argmin2_with(cx.simd, cx.packed, cx.centers, k, d, xi);
                let (sa, s2) = sqrt2_with(cx.simd, da, s2);
                upper[r] = up(sa);
                lower[r] = down(s2);
                acc.moved += 1;
                labels[r] = a as u32;
                accumulate(cx, acc, xi, a, da);
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
                if a != a0 {
                    acc.moved += 1;
                    labels[r] = a as u32;
                }
                accumulate(cx, acc, xi, a, da);
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
                acc.moved += 1;
                labels[r] = a as u32;
                accumulate(cx, acc, xi, a, best);
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
                if da.is_nan() {
                    da = sqdist(xi, &cx.centers[a * d..(a + 1) * d]);
                }
                if a != a0 {
                    acc.moved += 1;
                    labels[r] = a as u32;
                }
                accumulate(cx, acc, xi, a, da);
            }
        }
    }
}

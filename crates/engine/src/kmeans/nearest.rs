//! The scalar distance kernel every path shares (`sqdist`, `argmin`, `argmin2`, the
//! bound margins `up`/`down`), [`nearest`] (nearest centroid with runner-up) and
//! [`CentroidIndex`] (centroids packed once for many lookups).

use super::*;

/// Nearest centroid of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    /// Index of the nearest centroid (lowest index on ties).
    pub index: usize,
    /// Squared euclidean distance to it.
    pub dist_sq: f64,
    /// Second nearest centroid and its squared distance; `None` when k = 1.
    pub runner_up: Option<(usize, f64)>,
}

// ---------------------------------------------------------------------------------------
// Distance kernel

/// Squared euclidean distance with four interleaved accumulators (vectorisable). The
/// one distance used everywhere, so every code path makes the same decisions.
#[inline(always)]
pub(crate) fn sqdist(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let ac = a.chunks_exact(4);
    let bc = b.chunks_exact(4);
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (p, q) in ac.zip(bc) {
        for l in 0..4 {
            let t = p[l] - q[l];
            acc[l] += t * t;
        }
    }
    for (l, (p, q)) in ar.iter().zip(br).enumerate() {
        let t = p - q;
        acc[l] += t * t;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[inline(always)]
pub(crate) fn up(v: f64) -> f64 {
    v * (1.0 + DELTA)
}

#[inline(always)]
pub(crate) fn down(v: f64) -> f64 {
    v * (1.0 - DELTA)
}

/// Largest f32 <= v (0 for v <= 0 or NaN).
#[inline(always)]
pub(crate) fn down32(v: f64) -> f32 {
    if v.is_nan() || v <= 0.0 {
        return 0.0;
    }
    let f = v as f32;
    if f as f64 > v {
        f.next_down()
    } else {
        f
    }
}

/// First index of the minimum distance and that distance.
#[inline(always)]
pub(crate) fn argmin(c: &[f64], k: usize, d: usize, xi: &[f64]) -> (usize, f64) {
    let mut best = f64::INFINITY;
    let mut bi = 0;
    // Plain index arithmetic: `chunks_exact(d)` would divide by d on every call.
    for j in 0..k {
        let v = sqdist(xi, &c[j * d..j * d + d]);
        if v < best {
            best = v;
            bi = j;
        }
    }
    (bi, best)
}

/// Like [`argmin`], plus the second-smallest distance (infinite when k = 1). The
/// update `second = min(second, max(best, v))` equals the branchy "if v < best {second =
/// best} else if v < second {second = v}" and keeps the dependency chains short.
#[inline(always)]
pub(crate) fn argmin2(c: &[f64], k: usize, d: usize, xi: &[f64]) -> (usize, f64, f64) {
    #[inline(always)]
    fn fmin(a: f64, b: f64) -> f64 {
        if a < b {
            a
        } else {
            b
        }
    }
    let mut best = f64::INFINITY;
    let mut second = f64::INFINITY;
    let mut bi = 0;
    for j in 0..k {
        let v = sqdist(xi, &c[j * d..j * d + d]);
        second = fmin(second, if best > v { best } else { v });
        if v < best {
            bi = j;
        }
        best = fmin(best, v);
    }
    (bi, best, second)
}

/// Nearest centroid of `x` (lowest index on ties) with the runner-up. Allocation-free.
///
/// Panics if `x.len()` differs from the number of centroid columns or there are no
/// centroids.
pub fn nearest(centroids: ArrayView2<f64>, x: &[f64]) -> Nearest {
    let (k, d) = centroids.dim();
    assert!(k > 0, "nearest: no centroids");
    assert_eq!(
        x.len(),
        d,
        "nearest: vector length differs from centroid width"
    );
    let mut best = (usize::MAX, f64::INFINITY);
    let mut second: Option<(usize, f64)> = None;
    let mut consider = |j: usize, v: f64| {
        if best.0 == usize::MAX {
            best = (j, v);
        } else if v < best.1 {
            second = Some(best);
            best = (j, v);
        } else if second.is_none_or(|s| v < s.1) {
            second = Some((j, v));
        }
    };
    match centroids.as_slice() {
        #[cfg(target_arch = "x86_64")]
        // Small problems stay scalar: measured, the AVX2 set-up does not pay off below
        // ~128 products (k = 3, d = 3: 33 vs 44 ns). Both give the same bits.
        Some(c) if k * d >= 128 && k <= NEAREST_MAX_K && Simd::detect() != Simd::Portable => {
            match nearest_with(Simd::detect(), c, k, d, x) {
                Some(nb) => return nb,
                None => {
                    for (j, cj) in c.chunks_exact(d).enumerate() {
                        consider(j, sqdist(x, cj));
                    }
                }
            }
        }
        Some(c) => {
            // Distances in batches on the stack (allocation-free), then the scalar
            // decisions, so that NaN inputs behave as they always did.
            const BATCH: usize = 64;
            let simd = Simd::detect();
            let mut buf = [0.0f64; BATCH];
            for j0 in (0..k).step_by(BATCH) {
                let m = (k - j0).min(BATCH);
                let out = &mut buf[..m];
                dists_with(simd, &c[j0 * d..(j0 + m) * d], m, d, x, out);
                for (i, &v) in out.iter().enumerate() {
                    consider(j0 + i, v);
                }
            }
        }
        None => {
            for (j, row) in centroids.outer_iter().enumerate() {
                // Same accumulation order as `sqdist` (element i goes to lane i % 4).
                let mut acc = [0.0f64; 4];
                for (i, (p, q)) in x.iter().zip(row.iter()).enumerate() {
                    let t = p - q;
                    acc[i % 4] += t * t;
                }
                consider(j, (acc[0] + acc[1]) + (acc[2] + acc[3]));
            }
        }
    }
    Nearest {
        index: best.0,
        dist_sq: best.1,
        runner_up: second,
    }
}

/// Centroids prepared for many single-row nearest-centroid lookups (what
/// `segment_assign` does per row): the packed layout the training E-step uses, built
/// once. For rows whose distances are all finite (every encoded row), `index(x)` equals
/// `nearest(centroids, x).index`: the same distance bits, the same first minimum.
pub struct CentroidIndex {
    pub(crate) simd: Simd,
    pub(crate) packed: PackedCentroids,
    pub(crate) c: Vec<f64>,
    pub(crate) k: usize,
    pub(crate) d: usize,
}

impl CentroidIndex {
    /// Pack a k x d centroid matrix (k >= 1).
    ///
    /// Panics if there are no centroids.
    pub fn new(centroids: ArrayView2<f64>) -> CentroidIndex {
        let (k, d) = centroids.dim();
        assert!(k > 0, "CentroidIndex: no centroids");
        let simd = Simd::detect();
        let c = contiguous(centroids).into_owned();
        let packed = PackedCentroids::new(simd, &c, k, d);
        CentroidIndex {
            simd,
            packed,
            c,
            k,
            d,
        }
    }

    /// Index of the nearest centroid (lowest on ties).
    ///
    /// Panics if `x.len()` is not the centroid width.
    #[inline]
    pub fn index(&self, x: &[f64]) -> usize {
        self.nearest(x).0
    }

    /// Index of the nearest centroid (lowest on ties) and its squared distance, the same
    /// bits as `nearest(centroids, x).dist_sq` for finite rows.
    ///
    /// Panics if `x.len()` is not the centroid width.
    #[inline]
    pub fn nearest(&self, x: &[f64]) -> (usize, f64) {
        assert_eq!(
            x.len(),
            self.d,
            "CentroidIndex: vector length differs from centroid width"
        );
        let (i, dist_sq, _) = argmin2_with(self.simd, &self.packed, &self.c, self.k, self.d, x);
        (i, dist_sq)
    }
}

//! Initial centroids: greedy k-means++ seeding (from every row or a sample) and random
//! init (k distinct rows).

use super::*;
use crate::hash::canonical_bits;

/// One step of greedy k-means++ as the tests observe it: the candidates, their
/// potentials, and `closest` after the step.
#[cfg(test)]
pub(super) type PpStep = (Vec<usize>, Vec<f64>, Vec<f64>);

#[cfg(test)]
thread_local! {
    /// When `Some`, [`kmeanspp_impl`] records every step (tests compare them with the
    /// unpruned reference bit for bit).
    pub(super) static PP_TRACE: std::cell::RefCell<Option<Vec<PpStep>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn kmeanspp_impl<R: Rng + ?Sized>(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    rng: &mut R,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<Array2<f64>, EngineError> {
    if k == 0 {
        return Ok(Array2::<f64>::zeros((k, d)));
    }
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = rng.gen_range(0..n);
    let row = |i: usize| &x[i * d..(i + 1) * d];
    // The chosen centres so far, row-major (the result's first rows).
    let mut chosen: Vec<f64> = Vec::with_capacity(k * d);
    chosen.extend_from_slice(row(first));
    let mut closest = vec![0.0f64; n];
    let mut owner = vec![0u32; n];
    let mut improves = vec![0u8; n];
    pp_update(
        x,
        row(first),
        0,
        PpRows::All,
        &mut closest,
        &mut owner,
        &mut improves,
        threads,
        hooks,
    )?;
    let mut last = first;
    let mut h = vec![0.0; trials * k];
    for c in 1..k {
        hooks.check_interrupt()?;
        let (total, ends) = pp_total(&closest);
        if total.is_nan() || total <= 0.0 {
            // Fewer distinct rows than k (only possible without `check`): repeat.
            chosen.extend_from_slice(row(last));
            continue;
        }
        let mut rv: Vec<(f64, usize)> =
            (0..trials).map(|t| (rng.gen::<f64>() * total, t)).collect();
        rv.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut cands = vec![n - 1; trials];
        pp_sample(&closest, &ends, &rv, &mut cands);
        for (t, &ci) in cands.iter().enumerate() {
            pp_thresholds(row(ci), &chosen, d, &mut h[t * c..(t + 1) * c]);
        }
        let pots = pp_potentials(
            x,
            d,
            &cands,
            &h[..trials * c],
            c,
            &mut closest,
            &mut owner,
            &mut improves,
            threads,
            hooks,
        )?;
        let mut best = 0;
        for t in 1..trials {
            if pots[t] < pots[best] {
                best = t;
            }
        }
        last = cands[best];
        chosen.extend_from_slice(row(last));
        if c + 1 < k {
            let which = if best < PP_MASK_BITS {
                PpRows::Bit(1 << best)
            } else {
                PpRows::Pruned(&h[best * c..(best + 1) * c])
            };
            pp_update(
                x,
                row(last),
                c as u32,
                which,
                &mut closest,
                &mut owner,
                &mut improves,
                threads,
                hooks,
            )?;
        }
        #[cfg(test)]
        PP_TRACE.with(|tr| {
            if let Some(v) = tr.borrow_mut().as_mut() {
                v.push((cands.clone(), pots.clone(), closest.clone()));
            }
        });
    }
    Array2::from_shape_vec((k, d), chosen).map_err(|e| EngineError::Internal(e.to_string()))
}

/// Greedy k-means++ seeding exactly as scikit-learn's `_kmeans_plusplus`: the first
/// centre uniformly at random, then for each next centre `2 + floor(ln k)` candidates
/// sampled with probability proportional to D(x)^2, keeping the candidate that lowers
/// the potential most. With at least k distinct rows the centres are distinct rows.
///
/// Panics if `x` has no rows.
#[cfg(test)]
pub(crate) fn kmeans_plus_plus(x: ArrayView2<f64>, k: usize, rng: &mut impl Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    assert!(n > 0, "kmeans_plus_plus: no rows");
    let xs = contiguous(x);
    kmeanspp_impl(&xs, n, d, k, rng, resolve_threads(0), &mut NoHooks)
        .expect("NoHooks never interrupts")
}

/// Greedy k-means++ from every row, or (see [`KMeansParams::init_sample`]) from a
/// uniform sample of `sample` rows when there are more than twice as many.
#[allow(clippy::too_many_arguments)]
pub(super) fn seed_plus_plus<R: Rng + ?Sized>(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    sample: usize,
    rng: &mut R,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<Array2<f64>, EngineError> {
    if sample > 0 && n / 2 > sample {
        let idx = crate::sample::sample_indices(n, sample, rng.gen::<u64>());
        let mut sub = Vec::with_capacity(sample * d);
        for &i in &idx {
            sub.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
        let view = ArrayView2::from_shape((sample, d), &sub)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if count_distinct_rows(view, k) >= k {
            return kmeanspp_impl(&sub, sample, d, k, rng, threads, hooks);
        }
    }
    kmeanspp_impl(x, n, d, k, rng, threads, hooks)
}

/// k distinct rows in random order (partial Fisher-Yates, skipping duplicates).
pub(super) fn random_init<R: Rng + ?Sized>(
    x: &[f64],
    n: usize,
    d: usize,
    k: usize,
    rng: &mut R,
    hooks: &mut dyn Hooks,
) -> Result<Array2<f64>, EngineError> {
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    for t in 0..n {
        if t % CHECK_EVERY == 0 {
            hooks.check_interrupt()?;
        }
        let j = rng.gen_range(t..n);
        idx.swap(t, j);
        let c = idx[t] as usize;
        let xc = &x[c * d..(c + 1) * d];
        if !chosen.iter().any(|&o| {
            x[o * d..(o + 1) * d]
                .iter()
                .zip(xc)
                .all(|(a, b)| canonical_bits(*a) == canonical_bits(*b))
        }) {
            chosen.push(c);
            if chosen.len() == k {
                break;
            }
        }
    }
    let mut out = Array2::zeros((k, d));
    for (r, &c) in chosen.iter().enumerate() {
        out.row_mut(r)
            .assign(&ndarray::ArrayView1::from(&x[c * d..(c + 1) * d]));
    }
    Ok(out)
}

/// `given` centroids plus `k - given.nrows()` more, drawn as k-means++ draws its later
/// seeds: each with probability proportional to its squared distance to the nearest
/// centroid so far (one candidate per draw), from a seeded uniform sample of `sample`
/// rows when there are more than twice as many (0: every row). The warm start of a
/// refresh that raises k. Deterministic for the same rows, `given`, `k` and `seed`.
/// With `k <= given.nrows()`, the first `k` given rows.
///
/// Panics if `x` has no rows or the widths differ.
pub fn extend_seeds(
    x: ArrayView2<f64>,
    given: ArrayView2<f64>,
    k: usize,
    sample: usize,
    seed: u64,
) -> Array2<f64> {
    let (n, d) = x.dim();
    assert!(n > 0, "extend_seeds: no rows");
    assert_eq!(given.ncols(), d, "extend_seeds: widths differ");
    if k <= given.nrows() {
        return given.slice(ndarray::s![..k, ..]).to_owned();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows: Vec<usize> = if sample > 0 && n / 2 > sample {
        crate::sample::sample_indices(n, sample, rng.gen::<u64>())
    } else {
        (0..n).collect()
    };
    let sq = |i: usize, c: ndarray::ArrayView1<f64>| -> f64 {
        x.row(i)
            .iter()
            .zip(c.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    };
    let mut closest: Vec<f64> = rows
        .iter()
        .map(|&i| {
            given
                .rows()
                .into_iter()
                .map(|c| sq(i, c))
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let mut out: Vec<f64> = given.iter().copied().collect();
    for _ in given.nrows()..k {
        let total: f64 = closest.iter().sum();
        let pick = if total > 0.0 && total.is_finite() {
            let mut r = rng.gen::<f64>() * total;
            let mut at = rows.len() - 1;
            for (p, &c) in closest.iter().enumerate() {
                if r < c {
                    at = p;
                    break;
                }
                r -= c;
            }
            at
        } else {
            rng.gen_range(0..rows.len())
        };
        let chosen = x.row(rows[pick]).to_owned();
        for (p, &i) in rows.iter().enumerate() {
            closest[p] = closest[p].min(sq(i, chosen.view()));
        }
        out.extend(chosen.iter());
    }
    Array2::from_shape_vec((k, d), out).expect("k x d")
}

//! Training and batch assignment: [`fit`] (restarts, best run), [`assign`], and
//! scikit-learn's tolerance.

use super::*;

pub(super) fn contiguous<'a>(x: ArrayView2<'a, f64>) -> Cow<'a, [f64]> {
    match x.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().copied().collect()),
    }
}

/// scikit-learn's tolerance: `tol` times the mean of the per-feature (population)
/// variances (two passes, block-parallel, summed in block order).
pub(super) fn tolerance(
    x: &[f64],
    n: usize,
    d: usize,
    tol: f64,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<f64, EngineError> {
    if tol == 0.0 {
        return Ok(0.0);
    }
    let pass = |center: Option<&[f64]>, hooks: &mut dyn Hooks| {
        let mut parts: Vec<Vec<f64>> = (0..n.div_ceil(BLOCK)).map(|_| vec![0.0; d]).collect();
        let items: Vec<(&[f64], &mut Vec<f64>)> =
            x.chunks(BLOCK * d).zip(parts.iter_mut()).collect();
        run_blocks(items, threads, hooks, &|(rows, out): (
            &[f64],
            &mut Vec<f64>,
        )| {
            for xi in rows.chunks_exact(d) {
                match center {
                    None => out.iter_mut().zip(xi).for_each(|(s, v)| *s += v),
                    Some(m) => {
                        for ((s, v), c) in out.iter_mut().zip(xi).zip(m) {
                            let t = v - c;
                            *s += t * t;
                        }
                    }
                }
            }
        })?;
        let mut tot = vec![0.0; d];
        for p in parts {
            tot.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        }
        Ok::<Vec<f64>, EngineError>(tot)
    };
    let mut mean = pass(None, hooks)?;
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let var = pass(Some(&mean), hooks)?;
    Ok(var.iter().map(|v| v / n as f64).sum::<f64>() / d as f64 * tol)
}

/// Trains k-means: validates with [`KMeansParams::check`], then runs `n_init` restarts
/// (stream `r` of `seed` for restart `r`) and keeps the lowest inertia (earliest run on
/// ties). Deterministic for the same data, parameters and seed, whatever the thread
/// count.
pub fn fit(
    x: ArrayView2<f64>,
    params: &KMeansParams,
    hooks: &mut dyn Hooks,
) -> Result<KMeansResult, EngineError> {
    params.check(x)?;
    let (n, d) = x.dim();
    let k = params.k;
    let xs = contiguous(x);
    let kind = match params.algorithm.resolve(n, k, d) {
        Algorithm::Lloyd | Algorithm::Auto => Kind::Lloyd,
        Algorithm::Hamerly => Kind::Hamerly,
        Algorithm::Elkan => Kind::Elkan,
    };
    let threads = resolve_threads(params.threads);
    let tol_abs = tolerance(&xs, n, d, params.tol, threads, hooks)?;
    let runs = if matches!(params.init, Init::Given(_)) {
        1
    } else {
        params.n_init
    };
    let mut work = Work {
        labels: Vec::new(),
        upper: Vec::new(),
        lower: Vec::new(),
        lowk: Vec::new(),
        stamp: Vec::new(),
        accs: Vec::new(),
    };
    let mut best: Option<(RunOutcome, Vec<u32>, usize)> = None;
    for run in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(run as u64);
        let init = match &params.init {
            Init::KMeansPlusPlus => {
                seed_plus_plus(&xs, n, d, k, params.init_sample, &mut rng, threads, hooks)?
            }
            Init::Random => random_init(&xs, n, d, k, &mut rng, hooks)?,
            Init::Given(c) => c.clone(),
        };
        let out = run_once(
            &xs,
            n,
            d,
            init,
            params.max_iter,
            tol_abs,
            kind,
            threads,
            run,
            &mut work,
            hooks,
        )?;
        if best.as_ref().is_none_or(|b| out.inertia < b.0.inertia) {
            let labels = std::mem::take(&mut work.labels);
            if let Some((_, old, _)) = best.take() {
                work.labels = old;
            }
            best = Some((out, labels, run));
        }
    }
    let (out, labels, best_run) = best.ok_or_else(|| EngineError::Internal("no run".into()))?;
    Ok(KMeansResult {
        centroids: out.centers,
        labels,
        inertia: out.inertia,
        n_iter: out.n_iter,
        converged: out.converged,
        best_run,
    })
}

/// Labels of every row against `centroids` (nearest, lowest index on ties) and the
/// inertia. Same decisions as [`nearest`] and [`fit`].
///
/// Panics if the widths differ or there are no centroids.
pub fn assign(x: ArrayView2<f64>, centroids: ArrayView2<f64>) -> (Vec<u32>, f64) {
    assign_with_hooks(x, centroids, &mut NoHooks).expect("NoHooks never interrupts")
}

/// [`assign`] with interrupt checks (every block of rows).
///
/// Panics if the widths differ or there are no centroids.
pub(crate) fn assign_with_hooks(
    x: ArrayView2<f64>,
    centroids: ArrayView2<f64>,
    hooks: &mut dyn Hooks,
) -> Result<(Vec<u32>, f64), EngineError> {
    let (n, d) = x.dim();
    let k = centroids.nrows();
    assert!(k > 0, "assign: no centroids");
    assert_eq!(centroids.ncols(), d, "assign: width mismatch");
    let xs = contiguous(x);
    let cs = contiguous(centroids);
    let mut work = Work {
        labels: vec![0; n],
        upper: Vec::new(),
        lower: Vec::new(),
        lowk: Vec::new(),
        stamp: Vec::new(),
        accs: Vec::new(),
    };
    let geo = Geometry::new(k);
    run_estep(
        &xs,
        d,
        k,
        &cs,
        &geo,
        Kind::Lloyd,
        Pass::Final,
        &mut work,
        resolve_threads(0),
        hooks,
    )?;
    let inertia = work.accs.iter().map(|a| a.inertia).sum();
    Ok((work.labels, inertia))
}

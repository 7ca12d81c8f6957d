//! One k-means run: work buffers, the centre geometry the bounds need, the parallel
//! E-step, empty-cluster relocation and the Lloyd iterations (`run_once`).

use super::*;

/// Work buffers of one run, reused across restarts.
pub(super) struct Work {
    pub(super) labels: Vec<u32>,
    pub(super) upper: Vec<f64>,
    pub(super) lower: Vec<f64>,
    pub(super) lowk: Vec<f32>,
    pub(super) stamp: Vec<u32>,
    pub(super) accs: Vec<Acc>,
}

/// Centre-derived quantities the bound algorithms need.
pub(super) struct Geometry {
    pub(super) shift: Vec<f64>,
    pub(super) smax: (f64, usize, f64),
    pub(super) half: Vec<f64>,
    pub(super) cc_half: Vec<f64>,
    pub(super) cum: Vec<f64>,
}

impl Geometry {
    pub(super) fn new(k: usize) -> Self {
        Geometry {
            shift: vec![0.0; k],
            smax: (0.0, 0, 0.0),
            half: vec![0.0; k],
            cc_half: Vec::new(),
            cum: vec![0.0; k],
        }
    }

    /// Recomputes the centre-centre half distances for `centers` (k x d).
    pub(super) fn update_centers(&mut self, centers: &[f64], k: usize, d: usize, kind: Kind) {
        match kind {
            Kind::Lloyd => {}
            Kind::Hamerly => {
                for a in 0..k {
                    let ca = &centers[a * d..(a + 1) * d];
                    let mut m = f64::INFINITY;
                    for j in 0..k {
                        if j != a {
                            m = m.min(sqdist(ca, &centers[j * d..(j + 1) * d]));
                        }
                    }
                    self.half[a] = down(0.5 * m.sqrt());
                }
            }
            Kind::Elkan => {
                self.cc_half.resize(k * k, 0.0);
                for a in 0..k {
                    self.cc_half[a * k + a] = 0.0;
                    for j in a + 1..k {
                        let v = down(
                            0.5 * sqdist(
                                &centers[a * d..(a + 1) * d],
                                &centers[j * d..(j + 1) * d],
                            )
                            .sqrt(),
                        );
                        self.cc_half[a * k + j] = v;
                        self.cc_half[j * k + a] = v;
                    }
                }
                for a in 0..k {
                    let mut m = f64::INFINITY;
                    for j in 0..k {
                        if j != a {
                            m = m.min(self.cc_half[a * k + j]);
                        }
                    }
                    self.half[a] = m;
                }
            }
        }
    }

    /// Records the (inflated) per-centre shift from `old` to `new`.
    pub(super) fn update_shift(&mut self, old: &[f64], new: &[f64], k: usize, d: usize) {
        let mut best = (0.0f64, 0usize, 0.0f64);
        for j in 0..k {
            let s = up(sqdist(&old[j * d..(j + 1) * d], &new[j * d..(j + 1) * d]).sqrt());
            self.shift[j] = s;
            if s > best.0 {
                best = (s, j, best.0);
            } else if s > best.2 {
                best.2 = s;
            }
        }
        self.smax = best;
        let last = self.cum.len() - k;
        for j in 0..k {
            let v = self.cum[last + j] + self.shift[j];
            self.cum.push(v);
        }
    }

    pub(super) fn epoch(&self, k: usize) -> usize {
        self.cum.len() / k.max(1) - 1
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_estep(
    x: &[f64],
    d: usize,
    k: usize,
    centers: &[f64],
    geo: &Geometry,
    kind: Kind,
    pass: Pass,
    work: &mut Work,
    threads: usize,
    hooks: &mut dyn Hooks,
) -> Result<(), EngineError> {
    let n = work.labels.len();
    let rows = block_rows(n, k, d);
    let nb = n_blocks(n, rows);
    if work.accs.len() != nb || work.accs.first().is_some_and(|a| a.sums.len() != k * d) {
        work.accs = (0..nb).map(|_| Acc::new(k, d)).collect();
    }
    let labels = work.labels.chunks_mut(rows);
    let upper = split_blocks(&mut work.upper, rows, 1, nb);
    let lower = split_blocks(&mut work.lower, rows, 1, nb);
    let lowk = split_blocks(&mut work.lowk, rows, k, nb);
    let stamp = split_blocks(&mut work.stamp, rows, 1, nb);
    let items: Vec<(Block, &mut Acc)> = labels
        .zip(upper)
        .zip(lower)
        .zip(lowk)
        .zip(stamp)
        .zip(work.accs.iter_mut())
        .enumerate()
        .map(|(b, (((((labels, upper), lower), lowk), stamp), acc))| {
            (
                Block {
                    start: b * rows,
                    labels,
                    upper,
                    lower,
                    lowk,
                    stamp,
                },
                acc,
            )
        })
        .collect();
    let simd = Simd::detect();
    let packed = PackedCentroids::new(simd, centers, k, d);
    let cx = Ctx {
        x,
        d,
        k,
        centers,
        shift: &geo.shift,
        smax: geo.smax,
        half: &geo.half,
        cc_half: &geo.cc_half,
        cum: &geo.cum,
        epoch: geo.epoch(k),
        kind,
        pass,
        simd,
        packed: &packed,
    };
    run_blocks(items, threads, hooks, &|(b, acc): (Block, &mut Acc)| {
        estep_block(&cx, b, acc)
    })
}

/// Totals of one E-step over its blocks, in block order.
pub(super) struct Totals {
    pub(super) sums: Vec<f64>,
    pub(super) counts: Vec<i64>,
    pub(super) inertia: f64,
    pub(super) sq: f64,
    pub(super) moved: usize,
}

/// Totals over blocks, in block order (so independent of the thread count).
pub(super) fn reduce(accs: &[Acc], k: usize, d: usize) -> Totals {
    let mut t = Totals {
        sums: vec![0.0; k * d],
        counts: vec![0; k],
        inertia: 0.0,
        sq: 0.0,
        moved: 0,
    };
    for a in accs {
        for (s, v) in t.sums.iter_mut().zip(&a.sums) {
            *s += *v;
        }
        for (c, v) in t.counts.iter_mut().zip(&a.counts) {
            *c += *v;
        }
        t.inertia += a.inertia;
        t.sq += a.sq;
        t.moved += a.moved;
    }
    t
}

/// Counts of a final pass as unsigned.
fn unsigned(counts: &[i64]) -> Vec<u64> {
    counts.iter().map(|&c| c.max(0) as u64).collect()
}

/// Inertia of the labels behind `sums` / `counts` against `centers`, from the sums
/// alone: sum |x|^2 - 2 sum_j c_j . S_j + sum_j n_j |c_j|^2 (for progress reports
/// only; the run's returned inertia comes from an exact pass).
fn inertia_from_sums(sq: f64, sums: &[f64], counts: &[i64], centers: &[f64], d: usize) -> f64 {
    let mut v = sq;
    for ((c, s), &n) in centers
        .chunks_exact(d)
        .zip(sums.chunks_exact(d))
        .zip(counts)
    {
        let mut cs = 0.0;
        let mut cc = 0.0;
        for (a, b) in c.iter().zip(s) {
            cs += a * b;
            cc += a * a;
        }
        v += n as f64 * cc - 2.0 * cs;
    }
    v.max(0.0)
}

/// Indices of the rows farthest from their assigned centre, sorted by distance (desc)
/// then index, at most `m` of them.
pub(super) fn farthest_rows(
    x: &[f64],
    d: usize,
    labels: &[u32],
    centers: &[f64],
    m: usize,
    hooks: &mut dyn Hooks,
) -> Result<Vec<(usize, f64)>, EngineError> {
    let n = labels.len();
    let mut dist = Vec::with_capacity(n);
    for (i, (xi, &l)) in x.chunks_exact(d).zip(labels).enumerate() {
        if i % CHECK_EVERY == 0 {
            hooks.check_interrupt()?;
        }
        let l = l as usize;
        dist.push(sqdist(xi, &centers[l * d..(l + 1) * d]));
    }
    let cmp = |a: &usize, b: &usize| dist[*b].total_cmp(&dist[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..n).collect();
    let m = m.min(n);
    if m == 0 {
        return Ok(Vec::new());
    }
    if m < n {
        idx.select_nth_unstable_by(m - 1, cmp);
        idx.truncate(m);
    }
    idx.sort_unstable_by(cmp);
    Ok(idx.into_iter().map(|i| (i, dist[i])).collect())
}

/// scikit-learn's `_relocate_empty_clusters_dense`: each empty cluster takes the row
/// farthest from its (old) centre; labels are left unchanged. Rows whose cluster would
/// become empty are skipped.
#[allow(clippy::too_many_arguments)]
pub(super) fn relocate_empty(
    x: &[f64],
    d: usize,
    k: usize,
    labels: &[u32],
    old_centers: &[f64],
    sums: &mut [f64],
    counts: &mut [u64],
    hooks: &mut dyn Hooks,
) -> Result<(), EngineError> {
    let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
    if empty.is_empty() {
        return Ok(());
    }
    let far = farthest_rows(x, d, labels, old_centers, empty.len() + k, hooks)?;
    if far.first().is_none_or(|f| f.1 == 0.0) {
        return Ok(());
    }
    let mut cand = far.into_iter();
    for j in empty {
        for (p, _) in cand.by_ref() {
            let old = labels[p] as usize;
            if counts[old] <= 1 {
                continue;
            }
            let xp = &x[p * d..(p + 1) * d];
            for f in 0..d {
                sums[old * d + f] -= xp[f];
                sums[j * d + f] = xp[f];
            }
            counts[j] = 1;
            counts[old] -= 1;
            break;
        }
    }
    Ok(())
}

pub(super) struct RunOutcome {
    pub(super) centers: Array2<f64>,
    pub(super) inertia: f64,
    pub(super) n_iter: usize,
    pub(super) converged: bool,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_once(
    x: &[f64],
    n: usize,
    d: usize,
    init: Array2<f64>,
    max_iter: usize,
    tol_abs: f64,
    kind: Kind,
    threads: usize,
    run: usize,
    work: &mut Work,
    hooks: &mut dyn Hooks,
) -> Result<RunOutcome, EngineError> {
    let k = init.nrows();
    let mut centers: Vec<f64> = init.iter().copied().collect();
    // Zeroed allocations (pages are mapped on first touch, by whichever thread writes
    // them); the first E-step overwrites every entry and counts every row as moved.
    fn zeroed<T: Clone + Default>(v: &mut Vec<T>, len: usize) {
        if v.len() != len {
            *v = vec![T::default(); len];
        }
    }
    zeroed(&mut work.labels, n);
    match kind {
        Kind::Lloyd => {}
        Kind::Hamerly => {
            zeroed(&mut work.upper, n);
            zeroed(&mut work.lower, n);
        }
        Kind::Elkan => {
            zeroed(&mut work.upper, n);
            zeroed(&mut work.lowk, n * k);
            zeroed(&mut work.stamp, n);
        }
    }
    let mut geo = Geometry::new(k);
    geo.update_centers(&centers, k, d, kind);
    // The run's label sums and counts (what a full pass over the current labels would
    // sum) and the rows' total squared norm, both from the first pass.
    let mut lsums = vec![0.0; k * d];
    let mut lcounts = vec![0i64; k];
    let mut sq = 0.0;
    let mut converged = false;
    let mut n_iter = max_iter;
    for i in 0..max_iter {
        hooks.check_interrupt()?;
        let pass = if i == 0 { Pass::First } else { Pass::Iterate };
        run_estep(x, d, k, &centers, &geo, kind, pass, work, threads, hooks)?;
        let t = reduce(&work.accs, k, d);
        let inertia = if i == 0 {
            lsums = t.sums;
            lcounts = t.counts;
            sq = t.sq;
            t.inertia
        } else {
            for (s, v) in lsums.iter_mut().zip(&t.sums) {
                *s += *v;
            }
            for (c, v) in lcounts.iter_mut().zip(&t.counts) {
                *c += *v;
            }
            inertia_from_sums(sq, &lsums, &lcounts, &centers, d)
        };
        let moved = t.moved;
        let mut sums = lsums.clone();
        let mut counts = unsigned(&lcounts);
        if counts.contains(&0) {
            relocate_empty(
                x,
                d,
                k,
                &work.labels,
                &centers,
                &mut sums,
                &mut counts,
                hooks,
            )?;
        }
        let mut new_centers = centers.clone();
        for j in 0..k {
            if counts[j] > 0 {
                let alpha = 1.0 / counts[j] as f64;
                for f in 0..d {
                    new_centers[j * d + f] = sums[j * d + f] * alpha;
                }
            }
        }
        let shift_tot: f64 = (0..k)
            .map(|j| {
                sqdist(
                    &centers[j * d..(j + 1) * d],
                    &new_centers[j * d..(j + 1) * d],
                )
            })
            .sum();
        hooks.progress(&Progress {
            run,
            iteration: i + 1,
            inertia,
            moved,
            k,
        });
        if kind != Kind::Lloyd {
            geo.update_shift(&centers, &new_centers, k, d);
            geo.update_centers(&new_centers, k, d, kind);
        }
        centers = new_centers;
        if i > 0 && moved == 0 {
            converged = true;
            n_iter = i + 1;
            break;
        }
        if shift_tot <= tol_abs {
            converged = true;
            n_iter = i + 1;
            break;
        }
    }
    // Final E-step: labels and the exact inertia against the returned centroids (as
    // sklearn).
    let final_pass = |centers: &[f64], kind: Kind, work: &mut Work, hooks: &mut dyn Hooks| {
        hooks.check_interrupt()?;
        run_estep(
            x,
            d,
            k,
            centers,
            &geo,
            kind,
            Pass::Final,
            work,
            threads,
            hooks,
        )?;
        let t = reduce(&work.accs, k, d);
        Ok::<_, EngineError>((unsigned(&t.counts), t.inertia))
    };
    let (mut counts, mut inertia) = final_pass(&centers, kind, work, hooks)?;
    // Never return an empty cluster: give each one the farthest row, then reassign.
    let mut rounds = 0;
    while counts.contains(&0) && rounds <= k {
        rounds += 1;
        let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
        let far = farthest_rows(x, d, &work.labels, &centers, empty.len() + k, hooks)?;
        let mut cand = far.into_iter();
        for j in empty {
            for (p, _) in cand.by_ref() {
                let old = work.labels[p] as usize;
                if counts[old] <= 1 {
                    continue;
                }
                counts[old] -= 1;
                counts[j] = 1;
                centers[j * d..(j + 1) * d].copy_from_slice(&x[p * d..(p + 1) * d]);
                break;
            }
        }
        (counts, inertia) = final_pass(&centers, Kind::Lloyd, work, hooks)?;
    }
    Ok(RunOutcome {
        centers: Array2::from_shape_vec((k, d), centers)
            .map_err(|e| EngineError::Internal(e.to_string()))?,
        inertia,
        n_iter,
        converged,
    })
}

//! The silhouette API: exact per-row values and score (threads, interrupts, memory
//! estimate), the seeded sampled score, and the score of a reservoir sample.

use super::*;

pub(super) type Interrupt<'a> = &'a mut dyn FnMut() -> Result<(), EngineError>;

pub(super) enum WorkerOut {
    /// Symmetric schedule: (part, n x k sums) for each part this thread ran.
    Sums(Vec<(usize, Vec<f64>)>),
    /// Row-wise schedule: (block, silhouettes of its rows).
    Rows(Vec<(usize, Vec<f64>)>),
}

/// One thread's share. Symmetric schedule: the thread runs parts `thread`, `thread +
/// threads`, ... of [`SYMMETRIC_PARTS`]; part `q` owns row blocks `q`, `q + PARTS`, ...
/// (static, so every sum is added in the same order whatever the thread count: results
/// are bitwise reproducible). Row-wise schedule: blocks are handed out dynamically (each
/// row's result is computed by one task, so the order does not matter).
pub(super) fn run_worker(
    p: &SilhouettePanels,
    simd: Simd,
    schedule: Schedule,
    (thread, threads): (usize, usize),
    next: &AtomicUsize,
    cancel: &AtomicBool,
    mut interrupt: Option<Interrupt<'_>>,
) -> Result<WorkerOut, EngineError> {
    let mut rowacc = vec![0.0; BLOCK_ROWS];
    let mut colacc = vec![0.0; BLOCK_ROWS];
    let mut check = |cancel: &AtomicBool| -> Result<(), EngineError> {
        if let Some(f) = interrupt.as_mut() {
            if let Err(e) = f() {
                cancel.store(true, AtomicOrdering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    };
    match schedule {
        Schedule::Symmetric => {
            let mut parts = Vec::new();
            for part in (thread..SYMMETRIC_PARTS).step_by(threads) {
                let mut sums = vec![0.0; p.n * p.k];
                for bi in (part..p.blocks.len()).step_by(SYMMETRIC_PARTS) {
                    if cancel.load(AtomicOrdering::Relaxed) {
                        break;
                    }
                    p.run_task(simd, schedule, bi, &mut sums, &mut rowacc, &mut colacc);
                    check(cancel)?;
                }
                parts.push((part, sums));
            }
            Ok(WorkerOut::Sums(parts))
        }
        Schedule::RowWise => {
            let mut rows = Vec::new();
            let mut none: [f64; 0] = [];
            loop {
                let bi = next.fetch_add(1, AtomicOrdering::Relaxed);
                if cancel.load(AtomicOrdering::Relaxed) || bi >= p.blocks.len() {
                    break;
                }
                if let Some(sil) =
                    p.run_task(simd, schedule, bi, &mut none, &mut rowacc, &mut colacc)
                {
                    rows.push((bi, sil));
                }
                check(cancel)?;
            }
            Ok(WorkerOut::Rows(rows))
        }
    }
}

/// Bytes the exact silhouette allocates for `n` rows, `d` features and `k` clusters on
/// `threads` threads (the packed copies plus the per-thread sums), for budget checks.
pub fn silhouette_memory_bytes(n: usize, d: usize, k: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let padded = n.saturating_add(k.saturating_mul(LANES));
    let packed = padded
        .saturating_mul(2 * d + 3)
        .saturating_add(n.saturating_mul(d))
        .saturating_mul(8)
        .saturating_add(n.saturating_mul(16));
    let state = symmetric_state_bytes(n, k);
    if state <= SYMMETRIC_STATE_LIMIT {
        packed.saturating_add(state)
    } else {
        let rowwise = threads
            .saturating_mul(BLOCK_ROWS)
            .saturating_mul(k)
            .saturating_add(n);
        packed.saturating_add(rowwise.saturating_mul(8))
    }
}

/// Bytes of the symmetric schedule's per-part n x k sums.
pub(super) fn symmetric_state_bytes(n: usize, k: usize) -> usize {
    (8 * SYMMETRIC_PARTS).saturating_mul(n).saturating_mul(k)
}

/// Name of the distance kernel the exact silhouette uses on this CPU ("avx2+fma" or
/// "portable"), for benchmarks and diagnostics.
pub fn silhouette_kernel() -> &'static str {
    match Simd::detect() {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 { fma: true } => "avx2+fma",
        _ => "portable",
    }
}

/// Exact per-row silhouette coefficients, in input order (sklearn's `silhouette_samples`
/// with the Euclidean metric). Chunked and memory-bounded: O(n*d + 2*n*k) memory, never an
/// n x n matrix (row-wise O(threads*64*k) state when 16*n*k passes 256 MiB). Runs on up to
/// [`DEFAULT_MAX_THREADS`] threads; `interrupt` is called regularly on the calling thread.
/// Results are bitwise reproducible and do not depend on the thread count.
pub fn silhouette_samples(
    x: ArrayView2<f64>,
    labels: &[i64],
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Vec<f64>, EngineError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(DEFAULT_MAX_THREADS);
    silhouette_samples_threads(x, labels, threads, interrupt)
}

/// [`silhouette_samples`] with an explicit thread count (1 = only the calling thread).
pub fn silhouette_samples_threads(
    x: ArrayView2<f64>,
    labels: &[i64],
    threads: usize,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Vec<f64>, EngineError> {
    silhouette_impl(x, labels, threads, None, None, interrupt)
}

pub(super) fn silhouette_impl(
    x: ArrayView2<f64>,
    labels: &[i64],
    threads: usize,
    force: Option<Schedule>,
    force_simd: Option<Simd>,
    interrupt: Interrupt<'_>,
) -> Result<Vec<f64>, EngineError> {
    check_input(&x, labels)?;
    let dense = Dense::new(labels);
    check_number_of_labels(dense.k(), x.nrows())?;
    interrupt()?;
    let p = SilhouettePanels::new(&x, &dense);
    let (n, k) = (p.n, p.k);
    let mut threads = threads.max(1).min(p.blocks.len());
    if n < PARALLEL_MIN_ROWS {
        threads = 1;
    }
    let schedule = force.unwrap_or(if symmetric_state_bytes(n, k) <= SYMMETRIC_STATE_LIMIT {
        Schedule::Symmetric
    } else {
        Schedule::RowWise
    });
    if schedule == Schedule::Symmetric {
        threads = threads.min(SYMMETRIC_PARTS);
    }
    let simd = force_simd.unwrap_or_else(Simd::detect);
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let outs: Vec<Result<WorkerOut, EngineError>> = std::thread::scope(|s| {
        // Helper threads: pure arithmetic on `p`; they never touch Postgres.
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                let (p, next, cancel) = (&p, &next, &cancel);
                s.spawn(move || run_worker(p, simd, schedule, (t, threads), next, cancel, None))
            })
            .collect();
        let mine = run_worker(
            &p,
            simd,
            schedule,
            (0, threads),
            &next,
            &cancel,
            Some(&mut *interrupt),
        );
        let mut outs = vec![mine];
        // Keep honouring interrupts while the helpers finish their last tasks.
        while outs[0].is_ok() && !handles.iter().all(|h| h.is_finished()) {
            if let Err(e) = interrupt() {
                cancel.store(true, AtomicOrdering::Relaxed);
                outs[0] = Err(e);
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        for h in handles {
            match h.join() {
                Ok(r) => outs.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        outs
    });
    let mut sil_sorted = vec![0.0; n];
    let mut parts: Vec<(usize, Vec<f64>)> = Vec::new();
    for out in outs {
        match out? {
            WorkerOut::Sums(mut s) => parts.append(&mut s),
            WorkerOut::Rows(rows) => {
                for (bi, vals) in rows {
                    let start = p.blocks[bi].start;
                    sil_sorted[start..start + vals.len()].copy_from_slice(&vals);
                }
            }
        }
    }
    // Parts are added in part order: the same result for any thread count.
    parts.sort_by_key(|(part, _)| *part);
    let mut parts = parts.into_iter().map(|(_, s)| s);
    if let Some(mut sums) = parts.next() {
        for other in parts {
            sums.iter_mut().zip(&other).for_each(|(a, b)| *a += b);
        }
        for b in &p.blocks {
            for pos in b.start..b.start + b.len {
                sil_sorted[pos] = sil_value(&sums[pos * k..(pos + 1) * k], b.cluster, &p.counts);
            }
        }
    }
    let mut out = vec![0.0; n];
    for (pos, &orig) in p.order.iter().enumerate() {
        out[orig] = sil_sorted[pos];
    }
    Ok(out)
}

pub(super) fn mean_of(v: &[f64]) -> f64 {
    let mut s = Neumaier::default();
    v.iter().for_each(|&x| s.add(x));
    s.value() / v.len() as f64
}

/// Exact mean silhouette over all rows (sklearn's `silhouette_score`, no sampling).
pub fn silhouette_score(x: ArrayView2<f64>, labels: &[i64]) -> Result<f64, EngineError> {
    let s = silhouette_samples(x, labels, &mut || Ok(()))?;
    Ok(mean_of(&s))
}

/// Mean silhouette: exact when `n <= max_samples`, else on a seeded uniform sample of
/// `max_samples` rows drawn without replacement (the result states its size).
#[cfg(test)]
pub(crate) fn silhouette_sampled(
    x: ArrayView2<f64>,
    labels: &[i64],
    max_samples: usize,
    seed: u64,
) -> Result<Silhouette, EngineError> {
    silhouette_sampled_with(x, labels, max_samples, seed, &mut || Ok(()))
}

/// [`silhouette_sampled`] with an interrupt callback (called on the calling thread).
#[cfg(test)]
pub(crate) fn silhouette_sampled_with(
    x: ArrayView2<f64>,
    labels: &[i64],
    max_samples: usize,
    seed: u64,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Silhouette, EngineError> {
    if max_samples < 2 {
        return Err(EngineError::invalid(
            "max_samples",
            format!("must be at least 2, got {max_samples}"),
        ));
    }
    check_input(&x, labels)?;
    let n = x.nrows();
    if n <= max_samples {
        let s = silhouette_samples(x, labels, interrupt)?;
        return Ok(Silhouette {
            score: mean_of(&s),
            sample_size: n,
            exact: true,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, n, max_samples).into_vec();
    idx.sort_unstable();
    let sub = x.select(ndarray::Axis(0), &idx);
    let sub_labels: Vec<i64> = idx.iter().map(|&i| labels[i]).collect();
    let s = silhouette_samples(sub.view(), &sub_labels, interrupt).map_err(|e| sample_err(e, n))?;
    Ok(Silhouette {
        score: mean_of(&s),
        sample_size: max_samples,
        exact: false,
    })
}

pub(super) fn sample_err(e: EngineError, n: usize) -> EngineError {
    match e {
        EngineError::InvalidParameter { name, reason } if name == "labels" => EngineError::invalid(
            "labels",
            format!("in the silhouette sample drawn from {n} rows: {reason}"),
        ),
        other => other,
    }
}

/// Mean silhouette of a reservoir sample of `(vector, label)` pairs (the silhouette
/// aggregate's state): exact when the reservoir saw no more rows than it holds.
pub fn silhouette_of_reservoir(
    r: &Reservoir<(Vec<f64>, i64)>,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Result<Silhouette, EngineError> {
    let items = r.items();
    if items.is_empty() {
        return Err(EngineError::NoRows);
    }
    let d = items[0].0.len();
    let mut flat = Vec::with_capacity(items.len() * d);
    let mut labels = Vec::with_capacity(items.len());
    for (v, l) in &items {
        if v.len() != d {
            return Err(EngineError::DimensionMismatch {
                expected: d,
                got: v.len(),
            });
        }
        flat.extend_from_slice(v);
        labels.push(*l);
    }
    let x = Array2::from_shape_vec((items.len(), d), flat)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    let exact = r.seen() as usize == items.len();
    let s = silhouette_samples(x.view(), &labels, interrupt).map_err(|e| {
        if exact {
            e
        } else {
            sample_err(e, r.seen() as usize)
        }
    })?;
    Ok(Silhouette {
        score: mean_of(&s),
        sample_size: items.len(),
        exact,
    })
}

//! The deterministic block-parallel driver: thread count, `run_blocks` (a shared queue
//! of blocks, interrupt checks on the calling thread) and the block sizes.

use super::*;

pub(super) fn resolve_threads(threads: usize) -> usize {
    let t = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    t.clamp(1, MAX_THREADS)
}

/// Runs `f(item)` for every item on up to `threads` threads that take items from a
/// shared queue (so a core busy with other work slows nobody down). The calling thread
/// works too and checks for interrupts before each item it takes. `f` must write its
/// results into the item itself: what a thread computes never depends on which thread
/// runs it.
pub(super) fn run_blocks<I, F>(
    items: Vec<I>,
    threads: usize,
    hooks: &mut dyn Hooks,
    f: &F,
) -> Result<(), EngineError>
where
    I: Send,
    F: Fn(I) + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        for it in items {
            hooks.check_interrupt()?;
            f(it);
        }
        return Ok(());
    }
    let queue = Mutex::new(items.into_iter());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let abort = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Worker threads only do arithmetic on the slices they own. They never call into
        // Postgres (no hooks, no palloc, no elog, no interrupt handling): only the calling
        // thread runs `hooks`, and it joins every worker before returning.
        for _ in 1..threads {
            s.spawn(|| {
                while !abort.load(Ordering::Relaxed) {
                    match next() {
                        Some(it) => f(it),
                        None => return,
                    }
                }
            });
        }
        loop {
            if let Err(e) = hooks.check_interrupt() {
                abort.store(true, Ordering::Relaxed);
                return Err(e);
            }
            match next() {
                Some(it) => f(it),
                None => return Ok(()),
            }
        }
    })
}

/// Rows per block for an (n, k, d) problem: [`BLOCK`], or more when k * d is so large
/// that per-block partial sums would exceed [`PARTIAL_BUDGET`]. Depends on the shape
/// only (never on the thread count).
pub(super) fn block_rows(n: usize, k: usize, d: usize) -> usize {
    let per_block = (k * d + k) * 8;
    let max_blocks = (PARTIAL_BUDGET / per_block.max(1)).max(1);
    BLOCK.max(n.div_ceil(max_blocks))
}

pub(super) fn n_blocks(n: usize, rows: usize) -> usize {
    n.div_ceil(rows)
}

/// Splits `v` into `nb` consecutive chunks of `rows * stride` (empty slices if `v` is).
pub(super) fn split_blocks<T>(v: &mut [T], rows: usize, stride: usize, nb: usize) -> Vec<&mut [T]> {
    if v.is_empty() {
        (0..nb).map(|_| <&mut [T]>::default()).collect()
    } else {
        v.chunks_mut(rows * stride).collect()
    }
}

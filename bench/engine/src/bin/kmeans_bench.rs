//! Times `kmeans::fit` on a raw little-endian f64 matrix with given initial centroids and
//! prints one JSON line. Usage:
//!
//! kmeans_bench --data X.f64 --n N --d D --init C.f64 --k K [--max-iter M] [--tol T]
//!              [--algorithm auto|lloyd|hamerly|elkan] [--threads T] [--repeat R]

use ndarray::Array2;
use pg_segment_engine::error::EngineError;
use pg_segment_engine::kmeans::{fit, Algorithm, Hooks, Init, KMeansParams, Progress};
use std::time::Instant;

fn read_f64(path: &str, len: usize) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    assert_eq!(bytes.len(), len * 8, "{path}: expected {len} f64 values");
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Records per-iteration wall times (from the calling thread only).
struct Timer {
    last: Instant,
    iter_ms: Vec<f64>,
    checks: usize,
}

impl Hooks for Timer {
    fn check_interrupt(&mut self) -> Result<(), EngineError> {
        self.checks += 1;
        Ok(())
    }
    fn progress(&mut self, _p: &Progress) {
        let now = Instant::now();
        self.iter_ms
            .push(now.duration_since(self.last).as_secs_f64() * 1e3);
        self.last = now;
    }
}

/// The memory-bandwidth floor of one k-means iteration: the fastest of `repeat` passes
/// that read every value of `x` once (a sum per thread over its half of the rows, the
/// access pattern of an E-step that touches every row), in milliseconds.
fn floor_ms(x: &[f64], d: usize, threads: usize, repeat: usize) -> f64 {
    let rows = x.len() / d;
    let per = rows.div_ceil(threads.max(1)) * d;
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let t0 = Instant::now();
        let total: f64 = std::thread::scope(|s| {
            let hs: Vec<_> = x
                .chunks(per)
                .map(|c| {
                    s.spawn(move || {
                        // Four independent sums, so the pass is bound by memory, not by
                        // the latency of one chain of additions.
                        let mut acc = [0.0f64; 4];
                        for q in c.chunks_exact(4) {
                            for (a, v) in acc.iter_mut().zip(q) {
                                *a += *v;
                            }
                        }
                        acc.iter().sum::<f64>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        std::hint::black_box(total);
        best = best.min(t0.elapsed().as_secs_f64() * 1e3);
    }
    best
}

/// Peak resident set size of this process in bytes (Linux), 0 if unknown.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let need = |name: &str| get(name).unwrap_or_else(|| panic!("missing {name}"));
    let n: usize = need("--n").parse().unwrap();
    let d: usize = need("--d").parse().unwrap();
    let k: usize = need("--k").parse().unwrap();
    let max_iter: usize = get("--max-iter").map_or(300, |v| v.parse().unwrap());
    let tol: f64 = get("--tol").map_or(1e-4, |v| v.parse().unwrap());
    let threads: usize = get("--threads").map_or(0, |v| v.parse().unwrap());
    let repeat: usize = get("--repeat").map_or(1, |v| v.parse().unwrap());
    let algorithm = match get("--algorithm").as_deref().unwrap_or("auto") {
        "auto" => Algorithm::Auto,
        "lloyd" => Algorithm::Lloyd,
        "hamerly" => Algorithm::Hamerly,
        "elkan" => Algorithm::Elkan,
        other => panic!("unknown algorithm {other}"),
    };
    let x = Array2::from_shape_vec((n, d), read_f64(&need("--data"), n * d)).unwrap();
    let c = Array2::from_shape_vec((k, d), read_f64(&need("--init"), k * d)).unwrap();
    let params = KMeansParams::new(k)
        .init(Init::Given(c))
        .max_iter(max_iter)
        .tol(tol)
        .algorithm(algorithm)
        .threads(threads);
    let resolved = algorithm.resolve(n, k, d);
    let mut times = Vec::new();
    let mut last = None;
    let mut iter_ms = Vec::new();
    let mut iter_ms_first = Vec::new();
    for _ in 0..repeat {
        let mut hooks = Timer {
            last: Instant::now(),
            iter_ms: Vec::new(),
            checks: 0,
        };
        let t0 = Instant::now();
        let r = fit(x.view(), &params, &mut hooks).expect("fit");
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        if iter_ms_first.is_empty() {
            iter_ms_first = hooks.iter_ms.clone();
        }
        iter_ms = hooks.iter_ms;
        last = Some((r, hooks.checks));
    }
    let (r, checks) = last.unwrap();
    let threads_floor = if threads == 0 { 2 } else { threads };
    let floor = floor_ms(x.as_slice().unwrap(), d, threads_floor, 10);
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let extra = params.memory_estimate(n, d);
    let threads_used = if threads == 0 {
        std::thread::available_parallelism()
            .map_or(1, |v| v.get())
            .min(4)
    } else {
        threads
    };
    println!(
        "{}",
        serde_json::json!({
            "n": n, "d": d, "k": k,
            "algorithm": format!("{resolved:?}"),
            "threads": threads_used,
            "ms": median,
            "ms_all": times,
            "iter_ms": iter_ms,
            "iter_ms_first_run": iter_ms_first,
            "inertia": r.inertia,
            "n_iter": r.n_iter,
            "converged": r.converged,
            "interrupt_checks": checks,
            "bytes_per_row": (8 * d) as f64 + extra as f64 / n as f64,
            "extra_bytes_per_row": extra as f64 / n as f64,
            "peak_rss_bytes": peak_rss(),
            "floor_ms": floor,
        })
    );
}

//! Times the exact `metrics::silhouette_samples` (mean = silhouette score) on a raw
//! little-endian f64 matrix with i64 labels and prints one JSON line. Usage:
//!
//! silhouette_bench --data X.f64 --labels L.i64 --n N --d D [--threads T] [--repeat R]
//!
//! `--threads 0` (default) uses the engine's default (up to 2 threads).

use ndarray::Array2;
use pg_segment_engine::metrics::{
    silhouette_kernel, silhouette_memory_bytes, silhouette_samples, silhouette_samples_threads,
};
use std::time::Instant;

fn read_words(path: &str, len: usize) -> Vec<[u8; 8]> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    assert_eq!(bytes.len(), len * 8, "{path}: expected {len} 8-byte values");
    bytes
        .chunks_exact(8)
        .map(|c| c.try_into().unwrap())
        .collect()
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
    let threads: usize = get("--threads").map_or(0, |v| v.parse().unwrap());
    let repeat: usize = get("--repeat").map_or(3, |v| v.parse().unwrap());
    let x: Vec<f64> = read_words(&need("--data"), n * d)
        .into_iter()
        .map(f64::from_le_bytes)
        .collect();
    let labels: Vec<i64> = read_words(&need("--labels"), n)
        .into_iter()
        .map(i64::from_le_bytes)
        .collect();
    let x = Array2::from_shape_vec((n, d), x).unwrap();
    let mut k = labels.clone();
    k.sort_unstable();
    k.dedup();
    let threads_used = if threads == 0 {
        std::thread::available_parallelism()
            .map_or(1, |v| v.get())
            .min(2)
    } else {
        threads
    };
    let mut times = Vec::new();
    let mut score = f64::NAN;
    let mut checks = 0usize;
    for _ in 0..repeat {
        let mut calls = 0usize;
        let mut interrupt = || {
            calls += 1;
            Ok(())
        };
        let t0 = Instant::now();
        let s = if threads == 0 {
            silhouette_samples(x.view(), &labels, &mut interrupt)
        } else {
            silhouette_samples_threads(x.view(), &labels, threads, &mut interrupt)
        }
        .expect("silhouette");
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        score = s.iter().sum::<f64>() / n as f64;
        checks = calls;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "n": n, "d": d, "k": k.len(),
            "threads": threads_used,
            "kernel": silhouette_kernel(),
            "ms": sorted[sorted.len() / 2],
            "ms_all": times,
            "score": score,
            "interrupt_checks": checks,
            "memory_bytes": silhouette_memory_bytes(n, d, k.len(), threads_used),
        })
    );
}

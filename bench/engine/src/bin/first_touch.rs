//! What the first write to fresh memory costs on this machine: maps `MB` megabytes
//! (anonymous, as the allocator does for large buffers), writes one byte per 4 KB page
//! with 1 or 2 threads, and prints the time per page. Training's read and encode phases
//! fill that many fresh bytes per row (bench/memory_bench.sh prints this next to its
//! scale curve), so where this cost grows with the size, so do those phases.
//!
//! first_touch MB [MB ...]

use std::time::Instant;

const PAGE: usize = 4096;

fn touch(buf: &mut [u8]) {
    for p in buf.chunks_mut(PAGE) {
        // SAFETY-free: a plain write; volatile so the loop is not folded away.
        unsafe { std::ptr::write_volatile(p.as_mut_ptr(), 1) };
    }
}

fn run(mb: usize, threads: usize) -> f64 {
    let bytes = mb << 20;
    // vec![0u8; n] of this size is a fresh anonymous mapping (calloc): untouched pages.
    let mut buf = vec![0u8; bytes];
    let t0 = Instant::now();
    if threads == 1 {
        touch(&mut buf);
    } else {
        let per = bytes.div_ceil(threads).div_ceil(PAGE) * PAGE;
        std::thread::scope(|s| {
            for c in buf.chunks_mut(per) {
                s.spawn(move || touch(c));
            }
        });
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / (bytes / PAGE) as f64;
    std::hint::black_box(&buf);
    us
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("MB"))
        .collect();
    for mb in sizes {
        let one = run(mb, 1);
        let two = run(mb, 2);
        println!(
            "first write to fresh memory, {mb:>5} MB: {one:.2} us per 4 KB page (1 thread), {two:.2} us (2 threads)"
        );
    }
}

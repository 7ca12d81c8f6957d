//! Everything in the crate that needs `unsafe`: run-time CPU feature detection (one
//! [`Simd`] level, detected once and cached), the shared vector helpers, the x86-64
//! kernels of k-means and of the exact silhouette, and the dispatch wrappers that call
//! them only after detection. The rest of the crate is `#![deny(unsafe_code)]`.
//!
//! The two users keep their own numeric policies, so that results stay bit-identical:
//! - `kmeans_avx2.rs` (dispatched from `kmeans.rs`): AVX2, **no FMA**. Every distance
//!   is computed with the operations and order of the portable `sqdist`, so the AVX2
//!   and portable k-means give the same bits on every input.
//! - `silhouette_avx2.rs`: AVX2 **with FMA** (dot-product expansion with an exactness
//!   guard); it agrees with the portable silhouette kernel to ~1e-11 relative, not bit
//!   for bit, and each is bitwise reproducible across thread counts.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU8, Ordering};

pub(crate) mod kmeans;
#[cfg(target_arch = "x86_64")]
pub(crate) mod kmeans_avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod silhouette_avx2;

/// The vector code this CPU runs, detected at run time ([`Simd::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    /// Baseline code (SSE2 on x86-64, NEON on aarch64) as the compiler vectorizes it.
    Portable,
    /// x86-64 with AVX2 (k-means' kernels), and FMA too when `fma` (the silhouette's
    /// kernel needs both). Only ever constructed after `is_x86_feature_detected!`
    /// confirmed those features on this CPU.
    #[cfg(target_arch = "x86_64")]
    Avx2 {
        /// FMA is available as well.
        fma: bool,
    },
}

#[cfg(test)]
thread_local! {
    /// Tests force the portable kernels on the calling thread to compare both paths.
    pub(crate) static FORCE_PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The detected level: 0 = not yet detected, 1 = portable, 2 = AVX2, 3 = AVX2 and FMA.
static LEVEL: AtomicU8 = AtomicU8::new(0);

impl Simd {
    /// The fastest code this CPU runs (detected once, then cached).
    #[inline]
    pub(crate) fn detect() -> Simd {
        #[cfg(test)]
        if FORCE_PORTABLE.with(|f| f.get()) {
            return Simd::Portable;
        }
        match LEVEL.load(Ordering::Relaxed) {
            0 => {
                let level = Simd::detect_now();
                LEVEL.store(level.code(), Ordering::Relaxed);
                level
            }
            code => Simd::from_code(code),
        }
    }

    #[cold]
    fn detect_now() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Simd::Avx2 {
                fma: std::is_x86_feature_detected!("fma"),
            };
        }
        Simd::Portable
    }

    fn code(self) -> u8 {
        match self {
            Simd::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 { fma: false } => 2,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 { fma: true } => 3,
        }
    }

    #[inline]
    fn from_code(code: u8) -> Simd {
        match code {
            #[cfg(target_arch = "x86_64")]
            2 => Simd::Avx2 { fma: false },
            #[cfg(target_arch = "x86_64")]
            3 => Simd::Avx2 { fma: true },
            _ => Simd::Portable,
        }
    }
}

/// The four lanes of an AVX vector, without raw pointers.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn lanes(v: std::arch::x86_64::__m256d) -> [f64; 4] {
    use std::arch::x86_64::*;
    let lo = _mm256_castpd256_pd128(v);
    let hi = _mm256_extractf128_pd::<1>(v);
    [
        _mm_cvtsd_f64(lo),
        _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo)),
        _mm_cvtsd_f64(hi),
        _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi)),
    ]
}

/// Hints the CPU to bring the cache line holding `*v` into the cache.
#[inline(always)]
pub(crate) fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint: it never faults and has no effect on the
        // program's memory; the address is that of a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((v as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Hints the CPU to bring every cache line of `row` into the cache. The rows a pruned
/// pass computes are scattered, which the hardware prefetchers do not follow.
#[inline(always)]
pub(crate) fn prefetch_row(row: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = row.as_ptr().cast::<i8>();
        let bytes = std::mem::size_of_val(row);
        let mut off = 0;
        while off < bytes {
            // SAFETY: a prefetch is only a hint: it never faults and has no effect on
            // the program's memory; the address lies within `row` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
        if bytes > 0 {
            // SAFETY: as above (the last byte, whose line the loop may have missed).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(bytes - 1)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

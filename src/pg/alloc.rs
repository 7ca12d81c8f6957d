//! The extension's Rust heap: the system allocator, with one addition. Allocations of
//! 8 MiB or more (training buffers: raw columns, the encoded matrix, labels, distances)
//! are marked `MADV_HUGEPAGE`, so that on kernels whose transparent huge pages are in
//! `madvise` mode (Debian's default) they fault in 2 MiB at a time instead of 4 KiB.
//! Filling a million-row training set otherwise costs ~100k page faults. Only the
//! aligned interior of a block is marked; nothing else changes (where the hint is not
//! honoured, the memory behaves exactly as before). PostgreSQL's own memory (palloc) is
//! not affected. `SET pg_segment.huge_pages = off` turns the hint off (for hosts where
//! huge pages are costly to obtain, e.g. a freshly booted VM whose memory the hypervisor
//! has not backed yet).
//!
//! The allocator also counts the bytes it has handed out and not taken back, and their
//! high-water mark ([`in_use`], [`peak_since`]): training reports its peak beside its
//! memory estimate, so that the estimate is checked against what a fit really uses.
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Bytes allocated through this allocator and not yet freed (all threads).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE` has been since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed).wrapping_add(by);
    // A plain load first: the compare-and-swap loop runs only when a new peak is set.
    if now > PEAK.load(Relaxed) {
        PEAK.fetch_max(now, Relaxed);
    }
}

#[inline]
fn shrank(by: usize) {
    LIVE.fetch_sub(by, Relaxed);
}

/// Bytes of the Rust heap in use now.
pub fn in_use() -> usize {
    LIVE.load(Relaxed)
}

/// Start a new high-water mark at the current use; returns that use.
pub fn reset_peak() -> usize {
    let now = LIVE.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

/// The most bytes in use since [`reset_peak`] returned `base`, above `base`.
pub fn peak_since(base: usize) -> usize {
    PEAK.load(Relaxed).saturating_sub(base)
}

/// `pg_segment.huge_pages`: whether large allocations get the hint (default on).
pub static HUGE_PAGES: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Defines `pg_segment.huge_pages` (called from `_PG_init`).
pub fn define_gucs() {
    GucRegistry::define_bool_guc(
        c"pg_segment.huge_pages",
        c"Ask for transparent huge pages for pg_segment's large training buffers.",
        c"Allocations of 8 MiB or more made by pg_segment (raw columns, the encoded matrix, \
          labels) are marked MADV_HUGEPAGE, which saves most of their page faults when \
          transparent huge pages are in madvise mode. Turn off where huge pages are \
          expensive to obtain.",
        &HUGE_PAGES,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The setting, readable from any thread (`GucSetting::get` insists on the backend's
/// main thread; training's worker threads allocate too).
#[cfg(target_os = "linux")]
fn enabled() -> bool {
    // SAFETY: a plain bool that PostgreSQL writes only from the backend's main thread
    // while it processes a SET, never while one of pg_segment's calls (and so one of its
    // worker threads) is running.
    #[allow(unsafe_code)]
    unsafe {
        HUGE_PAGES.as_ptr().read_volatile()
    }
}

/// See the module documentation.
pub struct HugePageHint;

/// Blocks this large or larger get the hint.
const BIG: usize = 8 << 20;
const HUGE_PAGE: usize = 2 << 20;

#[cfg(target_os = "linux")]
fn advise(p: *mut u8, len: usize) {
    if !enabled() {
        return;
    }
    let start = (p as usize).next_multiple_of(HUGE_PAGE);
    let end = (p as usize + len) & !(HUGE_PAGE - 1);
    if end > start {
        // SAFETY: [start, end) lies inside the block just allocated, and start is page
        // aligned; MADV_HUGEPAGE is advisory only (it does not change the contents, and
        // an error, e.g. THP compiled out, leaves the memory as it was).
        #[allow(unsafe_code)]
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_p: *mut u8, _len: usize) {}

// SAFETY: every method forwards to `System` with the same arguments and returns its
// result unchanged; `advise` only touches address-space attributes of the block, and
// the counters are plain atomics.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for HugePageHint {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (the caller upholds alloc's contract).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
            if layout.size() >= BIG {
                advise(p, layout.size());
            }
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
            if layout.size() >= BIG {
                advise(p, layout.size());
            }
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
            if new_size >= BIG {
                advise(p, new_size);
            }
        }
        p
    }
}

/// Fault in the pages of each (address, bytes) range as writes would, without reading or
/// changing their contents (`MADV_POPULATE_WRITE`, Linux 5.14+; elsewhere, or where the
/// kernel refuses, nothing happens and the pages fault in when first written). Used on
/// an otherwise idle core while the backend's main thread scans the source, so that the
/// kernel's zeroing of fresh pages is not paid on the scan's critical path. Pages already
/// present (e.g. written meanwhile by the scan) are left as they are. Works in pieces of
/// [`PREFAULT_STEP`] bytes and returns early once `stop` is set (what is left then
/// faults in when first written, as without this).
#[cfg(target_os = "linux")]
pub fn prefault(ranges: &[(usize, usize)], stop: &std::sync::atomic::AtomicBool) {
    const PAGE: usize = 4096;
    for &(start, len) in ranges {
        let mut s = start.next_multiple_of(PAGE);
        let e = start.saturating_add(len) & !(PAGE - 1);
        while e > s {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let step = (e - s).min(PREFAULT_STEP);
            // SAFETY: advisory only: populating page tables leaves the memory's contents
            // as they are (zero for pages not yet touched); a range that was freed
            // meanwhile makes the call fail, which is ignored.
            #[allow(unsafe_code)]
            unsafe {
                libc::madvise(s as *mut libc::c_void, step, libc::MADV_POPULATE_WRITE);
            }
            s += step;
        }
    }
}

/// Bytes [`prefault`] populates between two looks at its stop flag.
pub const PREFAULT_STEP: usize = 32 << 20;

#[cfg(not(target_os = "linux"))]
pub fn prefault(_ranges: &[(usize, usize)], _stop: &std::sync::atomic::AtomicBool) {}

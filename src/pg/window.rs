//! Window functions that need the whole partition (PostgreSQL's window API,
//! `utils/windowapi.h`, which pgrx's bindings leave out; its five functions have had the
//! same signatures since PostgreSQL 9.0).
//!
//! [`per_partition`] reads argument 0 (a float8) of every row of the partition once,
//! computes one result per row, keeps the results in the partition's local memory
//! (zeroed by PostgreSQL at the partition's first call, freed with the partition), and
//! returns the current row's. Called any other way than as a window function it raises
//! an error instead of reading `fcinfo->context` as a window object.
use crate::error::{raise, Code};
use pgrx::pg_sys;
use pgrx::FromDatum;
use std::os::raw::{c_int, c_void};

const WINDOW_SEEK_HEAD: c_int = 1;

// Called only through `guarded` below, which turns a PostgreSQL error raised inside
// into a Rust panic (as pgrx's own bindings do).
unsafe extern "C-unwind" {
    fn WinGetPartitionLocalMemory(winobj: *mut c_void, sz: usize) -> *mut c_void;
    fn WinGetCurrentPosition(winobj: *mut c_void) -> i64;
    fn WinGetPartitionRowCount(winobj: *mut c_void) -> i64;
    fn WinGetFuncArgInPartition(
        winobj: *mut c_void,
        argno: c_int,
        relpos: c_int,
        seektype: c_int,
        set_mark: bool,
        isnull: *mut bool,
        isout: *mut bool,
    ) -> pg_sys::Datum;
    fn WinGetFuncArgCurrent(winobj: *mut c_void, argno: c_int, isnull: *mut bool) -> pg_sys::Datum;
}

/// Call into PostgreSQL, converting an ERROR into pgrx's panic.
unsafe fn guarded<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the caller is on the backend's main thread (window functions run there).
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(f) }
}

/// The current row's result of `compute`, which gets argument 0 of every row of the
/// partition (float8; NULL and NaN as None) and argument 1 of the current row (text),
/// and returns one value per row (None: NULL). `compute` runs once per partition.
///
/// `fcinfo` must be the one PostgreSQL passed to the calling `#[pg_extern]` function
/// (pgrx hands it over), as for the aggregate-state functions in [`super::agg_state`].
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn per_partition(
    fcinfo: pg_sys::FunctionCallInfo,
    what: &str,
    compute: impl FnOnce(&[Option<f64>], Option<String>) -> Vec<Option<f64>>,
) -> Option<f64> {
    // SAFETY: fcinfo is the one PostgreSQL passed to this call. Its context is a
    // WindowObjectData (whose first field is its NodeTag) exactly when the call is a
    // window function's; otherwise it is NULL or another node, checked before use.
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_WindowObjectData {
            raise(
                Code::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("{what} with a float8 argument is a window function"),
                Some(format!(
                    "Call it with OVER, e.g. {what}(p_value) OVER (), or pass an array: {what}(array_agg(p_value))."
                )),
            );
        }
        let winobj = context as *mut c_void;
        let n = guarded(|| WinGetPartitionRowCount(winobj)).max(0) as usize;
        let at = guarded(|| WinGetCurrentPosition(winobj)).max(0) as usize;
        // Layout: [computed flag as f64][one f64 per row, NaN for NULL].
        let mem =
            guarded(|| WinGetPartitionLocalMemory(winobj, (n + 1) * std::mem::size_of::<f64>()))
                as *mut f64;
        let cells = std::slice::from_raw_parts_mut(mem, n + 1);
        if cells[0] == 0.0 {
            let mut values = Vec::with_capacity(n);
            for row in 0..n {
                let (mut isnull, mut isout) = (false, false);
                let d = guarded(|| {
                    WinGetFuncArgInPartition(
                        winobj,
                        0,
                        row as c_int,
                        WINDOW_SEEK_HEAD,
                        false,
                        &mut isnull,
                        &mut isout,
                    )
                });
                values.push(f64::from_datum(d, isnull || isout).filter(|v| !v.is_nan()));
            }
            let mut isnull = false;
            let d = guarded(|| WinGetFuncArgCurrent(winobj, 1, &mut isnull));
            let text = String::from_datum(d, isnull);
            let out = compute(&values, text);
            for (cell, v) in cells[1..].iter_mut().zip(out) {
                *cell = v.unwrap_or(f64::NAN);
            }
            cells[0] = 1.0;
        }
        cells.get(at + 1).copied().filter(|v| !v.is_nan())
    }
}

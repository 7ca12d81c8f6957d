//! Reading float8[] and float8[][] arguments without copying where possible, with clear
//! errors for NULL elements, wrong dimensionality and empty arrays.
use super::error::{raise, Code};
use pgrx::array::RawArray;
use pgrx::prelude::*;
use std::ptr::NonNull;

/// The elements of a one-dimensional float8[] (no NULLs allowed), borrowed.
pub fn vector<'a>(arr: &'a Array<'_, f64>, what: &str) -> &'a [f64] {
    match arr.as_slice() {
        Ok(s) => s,
        Err(_) => raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} must not contain NULL elements"),
            Some("Replace NULLs with a value (coalesce) or filter the rows.".into()),
        ),
    }
}

/// A float8[][] as (row-major values, rows, cols). A one-dimensional array is one row.
pub fn matrix(arr: Array<'_, f64>, what: &str) -> (Vec<f64>, usize, usize) {
    if arr.contains_nulls() {
        raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} must not contain NULL elements"),
            None,
        );
    }
    // SAFETY: the pointer comes from a valid, detoasted Array that we consume here; the
    // ArrayType stays alive in the current memory context for the rest of the call.
    let mut raw = unsafe {
        RawArray::from_ptr(
            NonNull::new(arr.into_array_type() as *mut pgrx::pg_sys::ArrayType)
                .expect("array pointer is not null"),
        )
    };
    let dims: Vec<usize> = raw.dims().iter().map(|d| *d as usize).collect();
    let (rows, cols) = match dims.as_slice() {
        [] => (0, 0),
        [c] => (1, *c),
        [r, c] => (*r, *c),
        _ => raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("{what} must be a two-dimensional array, got {} dimensions", dims.len()),
            Some("Pass centroids as float8[][], one row per centroid.".into()),
        ),
    };
    if rows == 0 || cols == 0 {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("{what} must not be empty"),
            None,
        );
    }
    // SAFETY: no NULLs (checked above), element type float8, length rows*cols.
    let data = unsafe { raw.data::<f64>().as_ref().to_vec() };
    (data, rows, cols)
}

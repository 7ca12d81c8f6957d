//! Reading float8[] and float8[][] arguments without copying where possible, with clear
//! errors for NULL elements, wrong dimensionality and empty arrays.
use crate::error::{raise, Code};
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
            format!(
                "{what} must be a two-dimensional array, got {} dimensions",
                dims.len()
            ),
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

/// A one-dimensional float8[] Datum of `v`, built in one allocation and one copy (pgrx's
/// `Vec<f64>` conversion appends element by element; this runs per row).
pub fn float8_vector(v: &[f64]) -> pgrx::pg_sys::Datum {
    // ArrayType header (16 bytes), then dims[1] and lbounds[1] (8 bytes): the data
    // starts at 24, already MAXALIGNed; no NULL bitmap (dataoffset 0).
    const HEADER: usize = 24;
    let bytes = HEADER + std::mem::size_of_val(v);
    if bytes > crate::pg::varlena::MAX_VARLENA {
        raise(
            Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("a float8[] of {} elements is too large", v.len()),
            None,
        );
    }
    // SAFETY: a zeroed palloc of the full size, every header field set as
    // construct_md_array sets it for a one-dimensional float8 array without NULLs.
    unsafe {
        let p = pgrx::pg_sys::palloc0(bytes).cast::<u8>();
        pgrx::set_varsize_4b(p.cast(), bytes as i32);
        let a = p.cast::<pgrx::pg_sys::ArrayType>();
        (*a).ndim = 1;
        (*a).dataoffset = 0;
        (*a).elemtype = pgrx::pg_sys::FLOAT8OID;
        let dims = p.add(16).cast::<i32>();
        dims.write(v.len() as i32);
        dims.add(1).write(1);
        std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(HEADER).cast::<f64>(), v.len());
        pgrx::pg_sys::Datum::from(p)
    }
}

/// A rows x cols matrix returned to SQL as a two-dimensional float8[] (PostgreSQL has a
/// single float8[] type for every number of dimensions).
pub struct Matrix {
    pub data: Vec<f64>,
    pub rows: usize,
    pub cols: usize,
}

impl Matrix {
    /// From an ndarray matrix.
    pub fn from_array(m: &ndarray::Array2<f64>) -> Self {
        Matrix {
            data: m.iter().copied().collect(),
            rows: m.nrows(),
            cols: m.ncols(),
        }
    }
}

impl pgrx::IntoDatum for Matrix {
    fn into_datum(self) -> Option<pgrx::pg_sys::Datum> {
        let mut elems: Vec<pgrx::pg_sys::Datum> = self
            .data
            .iter()
            .map(|v| pgrx::pg_sys::Datum::from(v.to_bits()))
            .collect();
        let mut dims = [
            self.rows as std::os::raw::c_int,
            self.cols as std::os::raw::c_int,
        ];
        let mut lbs = [1 as std::os::raw::c_int, 1];
        // SAFETY: float8 is pass-by-value on 64-bit builds (FLOAT8PASSBYVAL), 8 bytes,
        // 'd' aligned; elems holds rows*cols Datums and there are no NULLs.
        let arr = unsafe {
            pgrx::pg_sys::construct_md_array(
                elems.as_mut_ptr(),
                std::ptr::null_mut(),
                2,
                dims.as_mut_ptr(),
                lbs.as_mut_ptr(),
                pgrx::pg_sys::FLOAT8OID,
                8,
                true,
                b'd' as std::os::raw::c_char,
            )
        };
        Some(pgrx::pg_sys::Datum::from(arr))
    }

    fn type_oid() -> pgrx::pg_sys::Oid {
        pgrx::pg_sys::FLOAT8ARRAYOID
    }
}

// SAFETY: the Datum built above is a float8[].
unsafe impl pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for Matrix {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Matrix);
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<
        pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
        pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
    > = Ok(pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("double precision[]"));
    const RETURN_SQL: Result<
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
    > = Ok(pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
        pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("double precision[]"),
    ));
}

// SAFETY: returns the Datum from into_datum (or NULL), as pgrx does for its own types.
unsafe impl pgrx::callconv::BoxRet for Matrix {
    unsafe fn box_into<'fcx>(
        self,
        fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
    ) -> pgrx::datum::Datum<'fcx> {
        use pgrx::IntoDatum;
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

//! Turning Datums of a source row into the engine's [`Value`]s, by column type, with
//! the same meaning `segment_train` gives them when it reads the source with SQL casts
//! (`::float8` for numeric columns, `::text` for text and enums, booleans as booleans).
use crate::engine::encode::{ColumnKind, Value};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// How to read one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    F8,
    F4,
    I2,
    I4,
    I8,
    Numeric,
    Bool,
    /// text / varchar: borrowed straight from the varlena.
    Text,
    /// char(n): like `::text`, trailing blanks removed.
    Bpchar,
    /// Anything else: the type's output function (enums, name, citext, ...).
    Output(pg_sys::Oid),
}

/// The engine's column kind for a type category (`pg_type.typcategory`), or None when
/// pg_segment cannot use the type as a feature.
pub fn kind_of_category(category: &str) -> Option<ColumnKind> {
    match category {
        "N" => Some(ColumnKind::Numeric),
        "B" => Some(ColumnKind::Bool),
        "S" | "E" => Some(ColumnKind::Text),
        _ => None,
    }
}

/// The converter for a type (domains resolve to their base type).
pub fn conv_for(type_oid: pg_sys::Oid, kind: ColumnKind) -> Conv {
    // SAFETY: getBaseType only reads the syscache.
    let base = unsafe { pg_sys::getBaseType(type_oid) };
    match base {
        pg_sys::FLOAT8OID => Conv::F8,
        pg_sys::FLOAT4OID => Conv::F4,
        pg_sys::INT2OID => Conv::I2,
        pg_sys::INT4OID => Conv::I4,
        pg_sys::INT8OID => Conv::I8,
        pg_sys::NUMERICOID => Conv::Numeric,
        pg_sys::BOOLOID => Conv::Bool,
        pg_sys::TEXTOID | pg_sys::VARCHAROID => Conv::Text,
        pg_sys::BPCHAROID => Conv::Bpchar,
        _ => {
            let _ = kind;
            let mut out = pg_sys::Oid::INVALID;
            let mut varlena = false;
            // SAFETY: syscache lookup; errors (no such type) are reported by Postgres.
            unsafe { pg_sys::getTypeOutputInfo(base, &mut out, &mut varlena) };
            Conv::Output(out)
        }
    }
}

/// Read a non-NULL Datum as a [`Value`]. Borrowed text lives in the current memory
/// context, which outlives the engine call that consumes the value.
///
/// # Safety
/// `datum` must be a valid, non-NULL Datum of the type `conv` was made for.
pub unsafe fn value_of(conv: Conv, datum: pg_sys::Datum) -> Value<'static> {
    unsafe {
        match conv {
            Conv::F8 => Value::Num(f64::from_datum(datum, false).unwrap_or(f64::NAN)),
            Conv::F4 => Value::Num(f32::from_datum(datum, false).map_or(f64::NAN, f64::from)),
            Conv::I2 => Value::Num(i16::from_datum(datum, false).map_or(f64::NAN, f64::from)),
            Conv::I4 => Value::Num(i32::from_datum(datum, false).map_or(f64::NAN, f64::from)),
            Conv::I8 => Value::Num(i64::from_datum(datum, false).map_or(f64::NAN, |v| v as f64)),
            Conv::Numeric => Value::Num(
                pgrx::direct_function_call::<f64>(pg_sys::numeric_float8, &[Some(datum)])
                    .unwrap_or(f64::NAN),
            ),
            Conv::Bool => Value::Bool(bool::from_datum(datum, false).unwrap_or(false)),
            Conv::Text => match <&'static str>::from_datum(datum, false) {
                Some(s) => Value::Text(s),
                None => Value::Null,
            },
            Conv::Bpchar => match <&'static str>::from_datum(datum, false) {
                Some(s) => Value::Text(s.trim_end_matches(' ')),
                None => Value::Null,
            },
            Conv::Output(func) => {
                let p = pg_sys::OidOutputFunctionCall(func, datum);
                match CStr::from_ptr(p).to_str() {
                    Ok(s) => Value::Text(s),
                    Err(_) => Value::Null,
                }
            }
        }
    }
}

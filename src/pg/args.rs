//! Argument types read as PostgreSQL passes them, where pgrx's own conversion does not
//! fit: [`RegClass`] (a relation by OID, NULL allowed, nothing opened) and [`RawJsonb`].
//!
//! jsonb arguments are read without a text round-trip through serde_json.
//! pgrx's `JsonB` argument prints the value and parses the text with serde_json, which
//! fails (XX000) on nesting deeper than 128 levels or numbers beyond float8. Here a
//! jsonb argument stays the detoasted jsonb: `segment_assign` looks up just the model's
//! keys in the binary container (other keys are never looked at, however deep they
//! nest), and `segment_train`'s features spec is parsed with errors that say what is
//! wrong (22023) instead of failing inside the conversion.
use crate::error::{raise, Code};
use crate::pg::values::numeric_to_f64;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// A jsonb argument, detoasted, valid for the current call.
pub struct RawJsonb(*mut pg_sys::Jsonb);

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a non-NULL jsonb Datum; the detoasted copy (if any) lives in the
        // current memory context, at least as long as the call.
        unsafe {
            Some(RawJsonb(
                pg_sys::pg_detoast_datum(datum.cast_mut_ptr()).cast::<pg_sys::Jsonb>(),
            ))
        }
    }
}

/// Makes a `FromDatum` type usable as a `#[pg_extern]` argument of SQL type `$sql`, the
/// way pgrx does for its own types (`argue_from_datum!`). Declare such arguments as
/// `Option<T>`: a NULL then arrives as `None` instead of failing inside pgrx.
macro_rules! argument_type {
    ($ty:ty, $sql:literal) => {
        // SAFETY: the argument is a Datum of SQL type $sql, read through FromDatum like
        // pgrx's own argument types.
        unsafe impl<'fcx> ArgAbi<'fcx> for $ty {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                // SAFETY: as for pgrx's own FromDatum argument types.
                unsafe {
                    arg.unbox_arg_using_from_datum()
                        .unwrap_or_else(|| panic!("argument {index} must not be null"))
                }
            }
        }
        pgrx::impl_sql_translatable!($ty, arg_only = $sql);
    };
}

argument_type!(RawJsonb, "jsonb");
argument_type!(RegClass, "regclass");

/// One key's value in a jsonb object.
pub enum Scalar<'a> {
    Missing,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    /// An array or object.
    Nested,
}

impl RawJsonb {
    fn header(&self) -> u32 {
        // SAFETY: self.0 is a detoasted jsonb (see from_polymorphic_datum).
        unsafe { (*self.0).root.header }
    }

    /// Whether the top level is an object.
    pub fn is_object(&self) -> bool {
        self.header() & pg_sys::JB_FOBJECT != 0
    }

    /// What the top level is, for messages.
    pub fn kind(&self) -> &'static str {
        let h = self.header();
        if h & pg_sys::JB_FOBJECT != 0 {
            "an object"
        } else if h & pg_sys::JB_FSCALAR != 0 {
            "a scalar"
        } else {
            "an array"
        }
    }

    /// The value of top-level key `key` (the top level must be an object). Numbers
    /// beyond float8's range become ±Infinity, which the encoder treats as it treats
    /// NaN and NULL (per the feature's NULL policy).
    pub fn get(&self, key: &str) -> Scalar<'_> {
        // SAFETY: getKeyJsonValueFromContainer reads the binary container of a valid
        // jsonb object; strings and numerics it returns point into that container.
        unsafe {
            let mut v: pg_sys::JsonbValue = std::mem::zeroed();
            let found = pg_sys::getKeyJsonValueFromContainer(
                &mut (*self.0).root,
                key.as_ptr().cast(),
                key.len() as i32,
                &mut v,
            );
            if found.is_null() {
                return Scalar::Missing;
            }
            match v.type_ {
                pg_sys::jbvType::jbvNull => Scalar::Null,
                pg_sys::jbvType::jbvBool => Scalar::Bool(v.val.boolean),
                pg_sys::jbvType::jbvNumeric => {
                    Scalar::Num(numeric_to_f64(pg_sys::Datum::from(v.val.numeric)))
                }
                pg_sys::jbvType::jbvString => {
                    let s = std::slice::from_raw_parts(
                        v.val.string.val.cast::<u8>(),
                        v.val.string.len as usize,
                    );
                    // jsonb strings are valid in the database encoding; pg_segment's
                    // text handling assumes UTF-8 (as for rows).
                    match std::str::from_utf8(s) {
                        Ok(s) => Scalar::Str(s),
                        Err(_) => raise(
                            Code::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                            format!("the value of key \"{key}\" is not valid UTF-8"),
                            None,
                        ),
                    }
                }
                _ => Scalar::Nested,
            }
        }
    }

    /// The value as JSON text (jsonb's own output).
    pub fn text(&self) -> String {
        // SAFETY: jsonb_out of a valid jsonb returns a palloc'd C string.
        unsafe {
            let p = pgrx::direct_function_call::<&CStr>(
                pg_sys::jsonb_out,
                &[Some(pg_sys::Datum::from(self.0))],
            )
            .unwrap_or(c"null");
            p.to_string_lossy().into_owned()
        }
    }

    /// The value parsed as a serde_json value, for the features spec of `segment_train`.
    /// Nesting beyond serde_json's limit (128) and numbers beyond float8 are reported as
    /// 22023 naming `argument`.
    pub fn parse(&self, function: &str, argument: &str) -> serde_json::Value {
        serde_json::from_str(&self.text()).unwrap_or_else(|e| {
            let why = e.to_string();
            let (what, hint) = if why.contains("recursion limit") {
                (
                    "nests too deeply".to_string(),
                    "pg_segment reads at most 127 levels of nesting; a features spec needs 3.",
                )
            } else if why.contains("out of range") {
                (
                    "has a number outside the range of float8".to_string(),
                    "Numbers in a spec must be finite double precision values.",
                )
            } else {
                (format!("cannot be read: {why}"), "Check the JSON.")
            };
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{function}: argument \"{argument}\" {what}"),
                Some(hint.into()),
            )
        })
    }
}

/// A `regclass` argument: the relation's OID, nothing opened or locked (the statements
/// that read it take their own locks and report a dropped relation).
pub struct RegClass(pub pg_sys::Oid);

impl FromDatum for RegClass {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null).then(|| RegClass(pg_sys::Oid::from(datum.value() as u32)))
    }
}

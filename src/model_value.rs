//! The by-value model: the type `segment_model`, `segment_model(name [, version])`, and
//! the forms of `segment_assign`, `segment_assign_detail` and `segment_encode` that take
//! one.
//!
//! A `segment_model` value holds one version of a model (its name, version, fitted
//! encoder, centroids, segment ids and labels) and reads no catalog, so the functions
//! taking it are IMMUTABLE and run where the catalog is not: on Citus workers, whose
//! shards' rows are assigned where they live. Its text form is JSON whose floats
//! round-trip exactly (so a value can be bound as a parameter, written as a literal, or
//! shipped to a worker as text). In memory the text is preceded by a 64-bit hash of it,
//! so that a call site sees whether a row brings the model it already decoded without
//! comparing the whole value.
use crate::assign::AssignCache;
use crate::catalog::{self, LoadedModel};
use crate::error::{raise, Code};
use crate::pg::{call_site, varlena};
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyElement, Internal};
use std::hash::{Hash, Hasher};

const WHAT: &str = "segment_model";
const HASH_BYTES: usize = 8;

fn text_hash(text: &str) -> [u8; HASH_BYTES] {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish().to_le_bytes()
}

/// The canonical text of a model value.
pub(crate) fn to_text(m: &LoadedModel) -> String {
    let mut v = m.to_plan_json();
    v["model"] = serde_json::Value::String(m.name.clone());
    v.to_string()
}

/// A model from the text of a value, or an error with SQLSTATE `code`.
fn parse(text: &str, code: Code) -> LoadedModel {
    let bad = |why: String| -> ! {
        raise(
            code,
            format!("invalid input for type segment_model: {why}"),
            Some("A segment_model value comes from segment_model('<model>'), or from its own text form.".into()),
        )
    };
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| bad(e.to_string()));
    let name = v["model"]
        .as_str()
        .unwrap_or_else(|| bad("no model name".into()))
        .to_string();
    LoadedModel::from_plan_json(&name, v).unwrap_or_else(|why| bad(why))
}

/// A value of type segment_model for `m`.
fn datum_of(m: &LoadedModel) -> pg_sys::Datum {
    let text = to_text(m);
    varlena::from_parts(&[&text_hash(&text), text.as_bytes()], WHAT)
}

/// The text of a value (after its hash).
fn text_of<'a>(d: pg_sys::Datum) -> &'a str {
    let b = varlena::bytes(d);
    b.get(HASH_BYTES..)
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or_else(|| {
            raise(
                Code::ERRCODE_DATA_CORRUPTED,
                "segment_model value is damaged",
                None,
            )
        })
}

/// What a call site of the by-value functions keeps: the model it decoded, known by the
/// hash and length of its value.
struct ValueCache {
    key: ([u8; HASH_BYTES], usize),
    cache: AssignCache,
}

/// The decoded model of `model` at this call site (decoded again only when a row brings
/// another value).
fn cache<'a>(fcinfo: pg_sys::FunctionCallInfo, model: pg_sys::Datum) -> &'a mut AssignCache {
    let bytes = varlena::bytes(model);
    let key = (
        bytes
            .get(..HASH_BYTES)
            .and_then(|h| h.try_into().ok())
            .unwrap_or_default(),
        bytes.len(),
    );
    let (slot, mcxt) = call_site::slot::<ValueCache>(fcinfo);
    if slot.as_ref().is_none_or(|c| c.key != key) {
        let m = parse(text_of(model), Code::ERRCODE_DATA_CORRUPTED);
        *slot = Some(ValueCache {
            key,
            cache: AssignCache::new(mcxt, m, None),
        });
    }
    &mut slot.as_mut().expect("filled above").cache
}

#[pg_schema]
mod segment {
    use super::*;

    /// Text input of `segment_model`: the JSON of its text output, or a model's name
    /// (its current version, read from the catalog as `segment_model(name)` reads it;
    /// like a regclass literal, resolved when the statement is parsed). A call
    /// `segment_model('name')` with one literal argument is this input: PostgreSQL reads
    /// it as a cast to the type of that name.
    #[pg_extern(stable, parallel_safe, strict, sql = false)]
    fn _model_in(input: &core::ffi::CStr) -> Internal {
        let text = input.to_str().unwrap_or_else(|_| {
            raise(
                Code::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid input for type segment_model: not UTF-8",
                None,
            )
        });
        let text = text.trim();
        let m = if text.starts_with('{') {
            parse(text, Code::ERRCODE_INVALID_TEXT_REPRESENTATION)
        } else {
            catalog::check_model_name(text);
            catalog::load(text, None)
        };
        Internal::from(Some(datum_of(&m)))
    }

    /// Text output of `segment_model`: JSON; floats round-trip exactly.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _model_out(model: Internal) -> std::ffi::CString {
        let d = model.unwrap().expect("strict");
        std::ffi::CString::new(text_of(d)).unwrap_or_else(|_| {
            raise(
                Code::ERRCODE_DATA_CORRUPTED,
                "segment_model value is damaged",
                None,
            )
        })
    }

    /// Binary input of `segment_model`: the UTF-8 bytes of its text form.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _model_recv(buf: Internal) -> Internal {
        let bytes = varlena::receive_buffer(buf);
        let code = Code::ERRCODE_INVALID_BINARY_REPRESENTATION;
        let text = std::str::from_utf8(&bytes).unwrap_or_else(|_| {
            raise(
                code,
                "invalid input for type segment_model: not UTF-8",
                None,
            )
        });
        Internal::from(Some(datum_of(&parse(text, code))))
    }

    /// Binary output of `segment_model`: the UTF-8 bytes of its text form.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _model_send(model: Internal) -> Vec<u8> {
        text_of(model.unwrap().expect("strict")).as_bytes().to_vec()
    }
}

/// One version of a model as a value (default: the current version), for assignment
/// where the catalog is not (Citus workers). Same privileges as `segment_assign` by
/// name: the model's owner, and roles it was shared with.
///
/// ```sql
/// WITH m AS (SELECT segment_model('customers') AS model)
/// SELECT c.customer_id, segment_assign(m.model, c) FROM crm.customer_features c, m;
/// ```
///
/// A call site loads its model once per statement and returns the same value for every
/// row (as `segment_assign` by name does), so `segment_assign(segment_model('m', NULL),
/// c)` reads the catalog once, not once per row.
#[pg_extern(stable, parallel_safe, sql = false)]
fn segment_model(
    name: Option<&str>,
    version: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let Some(name) = name else {
        return Internal::from(None);
    };
    let (slot, mcxt) = call_site::slot::<ModelCache>(fcinfo);
    if let Some(c) = slot
        .as_ref()
        .filter(|c| c.name == name && c.version == version)
    {
        return Internal::from(Some(c.datum));
    }
    catalog::check_model_name(name);
    let text = to_text(&catalog::load(name, version));
    let datum = varlena::from_parts_in(mcxt, &[&text_hash(&text), text.as_bytes()], WHAT);
    *slot = Some(ModelCache {
        name: name.to_string(),
        version,
        datum,
    });
    Internal::from(Some(datum))
}

/// What a call site of `segment_model` keeps for the statement: the value it returned
/// (allocated in the call site's memory), for the name and version it was asked.
struct ModelCache {
    name: String,
    version: Option<i32>,
    datum: pg_sys::Datum,
}

/// The segment (1-based) of a row, under a model passed by value; reads no catalog.
#[pg_extern(immutable, parallel_safe, sql = false)]
fn segment_assign_value(
    model: Internal,
    row: Option<AnyElement>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<i32> {
    let c = cache(fcinfo, model.unwrap()?);
    c.encode_row(&row?).then(|| c.segment())
}

/// `segment_assign_detail` under a model passed by value; reads no catalog.
#[pg_extern(immutable, parallel_safe, sql = false)]
fn segment_assign_detail_value(
    model: Internal,
    row: Option<AnyElement>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "segment_assignment")> {
    let c = cache(fcinfo, model.unwrap()?);
    if !c.encode_row(&row?) {
        return None;
    }
    let nr = c.nearest();
    Some(c.detail(&nr, fcinfo))
}

/// `segment_encode` under a model passed by value; reads no catalog. (The training by
/// passes encodes every row with it, once per pass.)
#[pg_extern(immutable, parallel_safe, sql = false)]
fn segment_encode_value(
    model: Internal,
    row: Option<AnyElement>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let (Some(model), Some(row)) = (model.unwrap(), row) else {
        return Internal::from(None);
    };
    let c = cache(fcinfo, model);
    Internal::from(
        c.encode_row(&row)
            .then(|| crate::pg::arrays::float8_vector(&c.out)),
    )
}

// The type and the functions' CREATE statements: sql/model_value.sql.
pgrx::extension_sql_file!("../sql/model_value.sql", name = "model_value");

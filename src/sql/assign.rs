//! Per-row assignment: `segment_assign` (row, jsonb and pre-encoded float8[] forms),
//! `segment_assign_detail` and `segment_encode`.
//!
//! The model is loaded once per call site per statement: the first call caches it in
//! `flinfo->fn_extra` (memory of the call site's FmgrInfo, freed with the statement), so
//! every later row reuses the decoded encoder, centroids and the row type's attribute
//! map. A statement keeps the version it loaded even if a refresh switches the current
//! version meanwhile. Backends are single-threaded, so the cache needs no locking.
use super::args::{RawJsonb, Scalar};
use super::call_site;
use super::error::{raise, Code};
use super::model::{self, LoadedModel};
use super::values::{conv_for, value_of, Conv};
use crate::engine::encode::{self, ColumnKind, Value};
use crate::engine::kmeans::{self, CentroidIndex, Nearest};
use ndarray::ArrayView2;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyElement};

/// Attribute map of one row type: for each model feature, its attribute number
/// (0-based) and converter.
struct RowMap {
    type_id: pg_sys::Oid,
    typmod: i32,
    tupdesc: pg_sys::TupleDesc,
    attrs: Vec<(usize, Conv)>,
    datums: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// Per-row values, reused (they borrow from the current row only).
    values: Vec<Value<'static>>,
}

struct AssignCache {
    /// The call site's memory context (fn_mcxt): where the row descriptor copy lives.
    mcxt: pg_sys::MemoryContext,
    model: LoadedModel,
    /// The centroids packed for per-row lookups (segment_assign needs only the index).
    index: CentroidIndex,
    requested_version: Option<i32>,
    rowmap: Option<RowMap>,
    /// The argument type last checked to be a row type.
    row_type_checked: pg_sys::Oid,
    /// segment._assign_planned: for each model feature, its argument number and converter.
    cols: Option<Vec<(usize, Conv)>>,
    /// Per-row values of segment._assign_planned, reused (they borrow from the current row).
    col_values: Vec<Value<'static>>,
    out: Vec<f64>,
}

// heap_deform_tuple cannot fail on a well-formed tuple, so the hot path calls it directly
// rather than through pgrx's error guard (a sigsetjmp per call).
unsafe extern "C" {
    #[link_name = "heap_deform_tuple"]
    fn heap_deform_tuple_unguarded(
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
        values: *mut pg_sys::Datum,
        isnull: *mut bool,
    );
}

/// The cache of this call site, loading (or reloading, when the model name or version
/// argument changed) as needed.
fn cache<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    model: &str,
    version: Option<i32>,
) -> &'a mut AssignCache {
    // SAFETY: this call's fcinfo; every function here keeps an AssignCache.
    let (slot, mcxt) = unsafe { call_site::slot::<AssignCache>(fcinfo) };
    let stale = slot
        .as_ref()
        .is_none_or(|c| c.model.name != model || c.requested_version != version);
    if stale {
        model::check_model_name(model);
        *slot = Some(AssignCache::new(mcxt, model::load(model, version), version));
    }
    slot.as_mut().expect("cache was just filled")
}

impl AssignCache {
    fn new(mcxt: pg_sys::MemoryContext, m: LoadedModel, version: Option<i32>) -> Self {
        let index = CentroidIndex::new(
            ArrayView2::from_shape((m.k, m.dim), &m.centroids)
                .expect("centroid shape checked at load"),
        );
        AssignCache {
            mcxt,
            index,
            out: vec![0.0; m.dim],
            model: m,
            requested_version: version,
            rowmap: None,
            row_type_checked: pg_sys::Oid::INVALID,
            cols: None,
            col_values: Vec::new(),
        }
    }

    fn centroids(&self) -> ArrayView2<'_, f64> {
        ArrayView2::from_shape((self.model.k, self.model.dim), &self.model.centroids)
            .expect("centroid shape checked at load")
    }

    fn ctx(&self) -> String {
        format!("model \"{}\"", self.model.name)
    }

    /// Encode `vals` into `self.out`; false when a NULL policy "skip" drops the row.
    #[inline]
    fn encode(&mut self, vals: &[Value<'_>]) -> bool {
        match self.model.encoder.transform_row(vals, &mut self.out) {
            Ok(keep) => keep,
            Err(e) => super::error::raise_engine(e, &self.ctx()),
        }
    }

    fn nearest(&self) -> Nearest {
        kmeans::nearest(self.centroids(), &self.out)
    }

    /// The 1-based segment of `self.out` (what segment_assign returns).
    fn segment(&self) -> i32 {
        self.index.index(&self.out) as i32 + 1
    }

    /// Map the features of a row type to its attributes (once per row type).
    fn map_row(&mut self, type_id: pg_sys::Oid, typmod: i32) {
        if self
            .rowmap
            .as_ref()
            .is_some_and(|r| r.type_id == type_id && r.typmod == typmod)
        {
            return;
        }
        // SAFETY: lookup_rowtype_tupdesc errors out for non-composite types; we copy the
        // descriptor into the cache's memory context and release the reference.
        unsafe {
            let td = pg_sys::lookup_rowtype_tupdesc(type_id, typmod);
            let natts = (*td).natts as usize;
            let mut names = Vec::with_capacity(natts);
            for i in 0..natts {
                let att = super::pg_compat::tupdesc_attr(td, i);
                let name = std::ffi::CStr::from_ptr((*att).attname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                names.push((name, (*att).atttypid, (*att).attisdropped));
            }
            let copy =
                PgMemoryContexts::For(self.mcxt).switch_to(|_| pg_sys::CreateTupleDescCopy(td));
            pg_sys::DecrTupleDescRefCount(td);
            let features = self.model.encoder.feature_names();
            let mut attrs = Vec::with_capacity(features.len());
            for f in &features {
                match names.iter().position(|(n, _, dropped)| n == f && !dropped) {
                    Some(i) => attrs.push((i, conv_for(names[i].1))),
                    None => raise(
                        Code::ERRCODE_UNDEFINED_COLUMN,
                        format!(
                            "column \"{f}\" is missing from the row passed to segment_assign for model \"{}\"",
                            self.model.name
                        ),
                        Some(format!(
                            "The model's features are: {}. Extra columns are ignored.",
                            features.join(", ")
                        )),
                    ),
                }
            }
            self.rowmap = Some(RowMap {
                type_id,
                typmod,
                tupdesc: copy,
                attrs,
                datums: vec![pg_sys::Datum::from(0); natts],
                nulls: vec![true; natts],
                values: Vec::with_capacity(features.len()),
            });
        }
    }

    /// Encode a composite row Datum; false when skipped.
    fn encode_row(&mut self, row: &AnyElement) -> bool {
        // SAFETY: the argument's type is checked to be composite before its header is
        // read; heap_deform_tuple fills exactly natts entries.
        unsafe {
            if row.oid() != self.row_type_checked {
                if !pg_sys::type_is_rowtype(row.oid()) {
                    raise(
                        Code::ERRCODE_DATATYPE_MISMATCH,
                        "segment_assign expects a row (for example the table alias c in segment_assign('m', c)), jsonb or float8[]",
                        None,
                    );
                }
                self.row_type_checked = row.oid();
            }
            let p = row.datum().cast_mut_ptr::<u8>();
            // A row Datum is a 4-byte-header varlena; only a compressed or out-of-line
            // one (e.g. read from a composite column) needs detoasting.
            let inline = cfg!(target_endian = "little") && *p & 0x03 == 0x00;
            let header = if inline {
                p as pg_sys::HeapTupleHeader
            } else {
                pg_sys::pg_detoast_datum(p.cast()) as pg_sys::HeapTupleHeader
            };
            let type_id = pgrx::heap_tuple_header_get_type_id(header);
            let typmod = pgrx::heap_tuple_header_get_typmod(header);
            self.map_row(type_id, typmod);
            let map = self.rowmap.as_mut().expect("mapped");
            let mut tuple = pg_sys::HeapTupleData {
                t_len: pgrx::heap_tuple_header_get_datum_length(header) as u32,
                t_data: header,
                ..Default::default()
            };
            heap_deform_tuple_unguarded(
                &mut tuple,
                map.tupdesc,
                map.datums.as_mut_ptr(),
                map.nulls.as_mut_ptr(),
            );
            // Fast path: every feature a plain value (see FittedEncoder::put_num).
            let enc = &self.model.encoder;
            let out = &mut self.out;
            let fast = map.attrs.iter().enumerate().all(|(f, &(i, conv))| {
                !map.nulls[i] && put_value(enc, f, value_of(conv, map.datums[i]), out)
            });
            if fast {
                return true;
            }
            // The buffer is taken out while `self` encodes, then put back for the next row.
            let mut values = std::mem::take(&mut map.values);
            values.clear();
            for &(i, conv) in &map.attrs {
                values.push(if map.nulls[i] {
                    Value::Null
                } else {
                    value_of(conv, map.datums[i])
                });
            }
            let keep = self.encode(&values);
            self.rowmap.as_mut().expect("mapped").values = values;
            keep
        }
    }

    /// Encode a jsonb object keyed by feature name; false when skipped. Only the
    /// model's keys are read (see jsonb.rs).
    fn encode_json(&mut self, obj: &RawJsonb) -> bool {
        if !obj.is_object() {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "segment_assign for model \"{}\" expects a jsonb object, got {}",
                    self.model.name,
                    obj.kind()
                ),
                Some(
                    "Pass an object such as '{\"age\": 34, \"region\": \"north\"}'::jsonb.".into(),
                ),
            );
        }
        let features: Vec<String> = self
            .model
            .encoder
            .feature_names()
            .iter()
            .map(|f| f.to_string())
            .collect();
        let kinds = self.model.encoder.feature_kinds();
        let mut vals = Vec::with_capacity(features.len());
        for (f, kind) in features.iter().zip(kinds) {
            vals.push(match obj.get(f) {
                Scalar::Missing => raise(
                    Code::ERRCODE_UNDEFINED_COLUMN,
                    format!("key \"{f}\" is missing from the jsonb passed to segment_assign for model \"{}\"", self.model.name),
                    Some(format!("The model's features are: {}. Use null for a missing value.", features.join(", "))),
                ),
                Scalar::Null => Value::Null,
                Scalar::Bool(b) => Value::Bool(b),
                Scalar::Num(x) => Value::Num(x),
                Scalar::Str(s) if kind == ColumnKind::Numeric => Value::Num(self.numeric_text(f, s)),
                Scalar::Str(s) => Value::Text(s),
                Scalar::Nested => raise(
                    Code::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "feature \"{f}\" of model \"{}\": expected a scalar, got an array or object",
                        self.model.name
                    ),
                    None,
                ),
            });
        }
        self.encode(&vals)
    }

    /// A JSON string given for a numeric feature: accepted when it parses as a number.
    fn numeric_text(&self, feature: &str, s: &str) -> f64 {
        s.trim().parse::<f64>().unwrap_or_else(|_| {
            raise(
                Code::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!(
                    "feature \"{feature}\" of model \"{}\" is numeric, got the string \"{s}\"",
                    self.model.name
                ),
                None,
            )
        })
    }

    /// Copy a pre-encoded vector into `self.out` after checking its length.
    fn encoded(&mut self, v: &[f64]) {
        if v.len() != self.model.dim {
            raise(
                Code::ERRCODE_DATA_EXCEPTION,
                format!(
                    "model \"{}\" expects {} encoded values, got {}",
                    self.model.name,
                    self.model.dim,
                    v.len()
                ),
                Some("Encode rows with segment_encode(model, row) to get vectors of the right length.".into()),
            );
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            raise(
                Code::ERRCODE_DATA_EXCEPTION,
                format!("encoded value {} at position {} is not finite", v[i], i + 1),
                None,
            );
        }
        self.out.copy_from_slice(v);
    }

    fn detail(&self, nr: &Nearest) -> pgrx::composite_type!('static, "segment_assignment") {
        fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
            r.unwrap_or_else(|e| raise(Code::ERRCODE_INTERNAL_ERROR, e.to_string(), None))
        }
        let mut t = ok(PgHeapTuple::new_composite_type("segment_assignment"));
        let d = nr.dist_sq.sqrt();
        ok(t.set_by_name("segment", nr.index as i32 + 1));
        ok(t.set_by_name("label", self.model.labels.get(nr.index).cloned().flatten()));
        ok(t.set_by_name("distance", d));
        ok(t.set_by_name("runner_up", nr.runner_up.map(|(i, _)| i as i32 + 1)));
        ok(t.set_by_name("margin", nr.runner_up.map(|(_, sq)| sq.sqrt() - d)));
        t
    }
}

/// The segment (1-based) of a row of the model's source, or of any row type with
/// columns named like the model's features (extra columns are ignored). NULL when the
/// row or the model name is NULL (the NULL row of an outer join), or when a feature's
/// NULL policy is "skip" and that feature is NULL. `version` pins a version (default:
/// the current one).
///
/// ```sql
/// SELECT c.customer_id, segment_assign('customers', c) FROM crm.customer_features c;
/// ```
#[pg_extern(stable, parallel_safe, name = "segment_assign")]
fn segment_assign_row(
    model: Option<&str>,
    row: Option<AnyElement>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<i32> {
    let c = cache(fcinfo, model?, version);
    if !c.encode_row(&row?) {
        return None;
    }
    Some(c.segment())
}

/// Feature `f`'s non-NULL value written straight into `out` when it is the plain case;
/// false sends the row down the general path (`transform_row`), which decides the rest
/// (NULL policies, NaN, type and ordinal errors) with the same result bits.
#[inline(always)]
fn put_value(enc: &encode::FittedEncoder, f: usize, v: Value<'_>, out: &mut [f64]) -> bool {
    match v {
        Value::Num(x) => enc.put_num(f, x, out),
        Value::Text(t) => enc.put_text(f, t, out),
        _ => false,
    }
}

super::planner::function_info_v1!(pg_finfo_segment_assign_cols);

/// `segment._assign_cols`, the planner's target in 0.1.0. Kept only so that the 0.1.0
/// install script still loads with this library; `ALTER EXTENSION pg_segment UPDATE`
/// drops the function.
///
/// # Safety
/// Called by fmgr.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn segment_assign_cols(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    model::check_catalog_version();
    raise(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "segment._assign_cols is no longer used",
        Some("Run ALTER EXTENSION pg_segment UPDATE;".into()),
    )
}

super::planner::function_info_v1!(pg_finfo_segment_assign_planned);

/// `segment._assign_planned(model text, planned text, VARIADIC cols "any")`: what the
/// planner turns `segment_assign(model, row)` into (see [`super::planner`]). `planned`
/// is the model as it was when the query was planned (so planning and execution can
/// never disagree about it), and the feature columns arrive as separate arguments in
/// the order of its features.
///
/// # Safety
/// Called by fmgr with this signature (at least 2 arguments).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn segment_assign_planned(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr passes nargs arguments; argument types are read from the call's
    // expression (get_fn_expr_argtype), so each Datum is converted as what it is.
    unsafe {
        let nargs = (*fcinfo).nargs as usize;
        let args = (*fcinfo).args.as_slice(nargs);
        if nargs < 2 || args[0].isnull || args[1].isnull {
            (*fcinfo).isnull = true;
            return pg_sys::Datum::from(0);
        }
        let (slot, mcxt) = call_site::slot::<AssignCache>(fcinfo);
        if slot.is_none() {
            // The planner writes both as constants, so they are read once per call site.
            let name = super::values::text_str(args[0].value).unwrap_or_default();
            let planned = super::values::text_str(args[1].value).unwrap_or_default();
            let m = LoadedModel::from_plan_text(name, planned);
            let mut c = AssignCache::new(mcxt, m, None);
            let features = c.model.encoder.feature_names().len();
            if nargs != 2 + features {
                raise(
                    Code::ERRCODE_DATA_CORRUPTED,
                    format!(
                        "model \"{name}\": the plan passes {} columns for {features} features",
                        nargs - 2
                    ),
                    None,
                );
            }
            c.cols = Some(
                (0..features)
                    .map(|f| {
                        let arg = 2 + f;
                        let typ = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, arg as i32);
                        (arg, conv_for(typ))
                    })
                    .collect(),
            );
            *slot = Some(c);
        }
        let c = slot.as_mut().expect("filled above");
        // Fast path: every feature a plain value (see FittedEncoder::put_num).
        let enc = &c.model.encoder;
        let out = &mut c.out;
        let cols = c.cols.as_ref().expect("mapped");
        let fast = cols.iter().enumerate().all(|(f, &(i, conv))| {
            !args[i].isnull && put_value(enc, f, value_of(conv, args[i].value), out)
        });
        if fast {
            return pg_sys::Datum::from(c.segment());
        }
        let mut values = std::mem::take(&mut c.col_values);
        values.clear();
        for &(i, conv) in c.cols.as_ref().expect("mapped") {
            values.push(if args[i].isnull {
                Value::Null
            } else {
                value_of(conv, args[i].value)
            });
        }
        let keep = c.encode(&values);
        c.col_values = values;
        if !keep {
            (*fcinfo).isnull = true;
            return pg_sys::Datum::from(0);
        }
        pg_sys::Datum::from(c.segment())
    }
}

/// The segment (1-based) of a jsonb object keyed by feature name. A missing key is an
/// error; JSON null is NULL; unseen categories go to the one-hot "(other)" column; keys
/// the model does not read are ignored. NULL in gives NULL out.
///
/// ```sql
/// SELECT segment_assign('customers', '{"age": 34, "income": 52000, "region": "north"}'::jsonb);
/// ```
#[pg_extern(stable, parallel_safe, name = "segment_assign")]
fn segment_assign_json(
    model: Option<&str>,
    features: Option<RawJsonb>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<i32> {
    let c = cache(fcinfo, model?, version);
    if !c.encode_json(&features?) {
        return None;
    }
    Some(c.segment())
}

/// The segment (1-based) of an already-encoded vector (as from `segment_encode`). NULL
/// in gives NULL out.
///
/// ```sql
/// SELECT segment_assign('customers', ARRAY[0.1, -1.2, 0, 1]::float8[]);
/// ```
#[pg_extern(stable, parallel_safe, name = "segment_assign")]
fn segment_assign_encoded(
    model: Option<&str>,
    encoded: Option<Array<'_, f64>>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<i32> {
    let c = cache(fcinfo, model?, version);
    c.encoded(super::arrays::vector(&encoded?, "encoded"));
    Some(c.segment())
}

/// Segment, label, distance to its centroid, the runner-up segment and the margin
/// (runner-up distance minus own distance) of a row. NULL when skipped, or for a NULL
/// row or model name.
///
/// ```sql
/// SELECT (segment_assign_detail('customers', c)).* FROM crm.customer_features c;
/// ```
#[pg_extern(stable, parallel_safe, name = "segment_assign_detail")]
fn segment_assign_detail_row(
    model: Option<&str>,
    row: Option<AnyElement>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "segment_assignment")> {
    let c = cache(fcinfo, model?, version);
    if !c.encode_row(&row?) {
        return None;
    }
    let nr = c.nearest();
    Some(c.detail(&nr))
}

/// `segment_assign_detail` for a jsonb object keyed by feature name.
#[pg_extern(stable, parallel_safe, name = "segment_assign_detail")]
fn segment_assign_detail_json(
    model: Option<&str>,
    features: Option<RawJsonb>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<pgrx::composite_type!('static, "segment_assignment")> {
    let c = cache(fcinfo, model?, version);
    if !c.encode_json(&features?) {
        return None;
    }
    let nr = c.nearest();
    Some(c.detail(&nr))
}

/// The encoded feature vector of a row, in the model's encoded column order
/// (`segment.versions.feature_names`). NULL when skipped, or for a NULL row or model.
///
/// ```sql
/// SELECT segment_encode('customers', c) FROM crm.customer_features c LIMIT 3;
/// ```
#[pg_extern(stable, parallel_safe, name = "segment_encode")]
fn segment_encode_row(
    model: Option<&str>,
    row: Option<AnyElement>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<Vec<f64>> {
    let c = cache(fcinfo, model?, version);
    c.encode_row(&row?).then(|| c.out.clone())
}

/// The encoded feature vector of a jsonb object keyed by feature name.
#[pg_extern(stable, parallel_safe, name = "segment_encode")]
fn segment_encode_json(
    model: Option<&str>,
    features: Option<RawJsonb>,
    version: default!(Option<i32>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<Vec<f64>> {
    let c = cache(fcinfo, model?, version);
    c.encode_json(&features?).then(|| c.out.clone())
}

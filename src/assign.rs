//! Per-row assignment: `segment_assign` (row, jsonb and pre-encoded float8[] forms),
//! `segment_assign_detail` and `segment_encode`.
//!
//! The model is loaded once per call site per statement: the first call caches it in
//! `flinfo->fn_extra` (memory of the call site's FmgrInfo, freed with the statement), so
//! every later row reuses the decoded encoder, centroids and the row type's attribute
//! map. A statement keeps the version it loaded even if a refresh switches the current
//! version meanwhile. Backends are single-threaded, so the cache needs no locking.
use crate::catalog::{self, LoadedModel};
use crate::engine::encode::{self, ColumnKind, Value};
use crate::engine::kmeans::{self, CentroidIndex, Nearest};
use crate::error::{raise, Code};
use crate::pg::args::{RawJsonb, Scalar};
use crate::pg::call_site;
use crate::pg::rows::{Attribute, RowReader};
use crate::pg::values::Features;
use ndarray::ArrayView2;
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyElement};

pub(crate) struct AssignCache {
    model: LoadedModel,
    /// The centroids packed for per-row lookups (segment_assign needs only the index).
    index: CentroidIndex,
    requested_version: Option<i32>,
    /// Deforms row arguments (and maps the model's features to the attributes of the
    /// row type it last saw).
    rows: RowReader,
    /// Per-row values, reused (they borrow from the current row only).
    values: Vec<Value<'static>>,
    pub(crate) out: Vec<f64>,
}

/// The cache of this call site, loading (or reloading, when the model name or version
/// argument changed) as needed.
fn cache<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    model: &str,
    version: Option<i32>,
) -> &'a mut AssignCache {
    let (slot, mcxt) = call_site::slot::<AssignCache>(fcinfo);
    let stale = slot
        .as_ref()
        .is_none_or(|c| c.model.name != model || c.requested_version != version);
    if stale {
        catalog::check_model_name(model);
        *slot = Some(AssignCache::new(
            mcxt,
            catalog::load(model, version),
            version,
        ));
    }
    slot.as_mut().expect("cache was just filled")
}

impl AssignCache {
    pub(crate) fn new(mcxt: pg_sys::MemoryContext, m: LoadedModel, version: Option<i32>) -> Self {
        let index = CentroidIndex::new(
            ArrayView2::from_shape((m.k, m.dim), &m.centroids)
                .expect("centroid shape checked at load"),
        );
        AssignCache {
            index,
            out: vec![0.0; m.dim],
            model: m,
            requested_version: version,
            rows: RowReader::new(mcxt),
            values: Vec::new(),
        }
    }

    /// The cache of `segment._assign_planned`: the model as the planner wrote it into
    /// the plan, and `nargs` arguments in all (the model, the plan text, then one per
    /// feature in the model's order).
    pub(crate) fn planned(
        mcxt: pg_sys::MemoryContext,
        name: &str,
        planned: &str,
        nargs: usize,
    ) -> Self {
        let c = AssignCache::new(mcxt, LoadedModel::from_plan_text(name, planned), None);
        let features = c.model.encoder.feature_names().len();
        if nargs != 2 + features {
            raise(
                Code::ERRCODE_DATA_CORRUPTED,
                format!(
                    "model \"{name}\": the plan passes {} columns for {features} features",
                    nargs.saturating_sub(2)
                ),
                None,
            );
        }
        c
    }

    fn centroids(&self) -> ArrayView2<'_, f64> {
        ArrayView2::from_shape((self.model.k, self.model.dim), &self.model.centroids)
            .expect("centroid shape checked at load")
    }

    /// Encode `vals` into `self.out`; false when a NULL policy "skip" drops the row.
    #[inline]
    fn encode(&mut self, vals: &[Value<'_>]) -> bool {
        transform(&self.model, vals, &mut self.out)
    }

    pub(crate) fn nearest(&self) -> Nearest {
        kmeans::nearest(self.centroids(), &self.out)
    }

    /// The segment id of `self.out` (what segment_assign returns).
    pub(crate) fn segment(&self) -> i32 {
        self.model.segment_id(self.index.index(&self.out))
    }

    /// Encode a composite row Datum; false when skipped.
    pub(crate) fn encode_row(&mut self, row: &AnyElement) -> bool {
        let model = &self.model;
        let features = self.rows.deform(row, |columns, anonymous| {
            map_features(model, columns, anonymous)
        });
        encode_features(&self.model, &mut self.out, &mut self.values, &features)
    }

    /// `segment._assign_planned`'s row: the model's features as the plan passes them;
    /// None when a NULL policy "skip" drops the row.
    pub(crate) fn assign_planned(&mut self, features: &Features) -> Option<i32> {
        encode_features(&self.model, &mut self.out, &mut self.values, features)
            .then(|| self.segment())
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

    /// The `segment_assignment` of `nr`, as the function called (`fcinfo`) returns it: its
    /// declared result type, found by the function's OID rather than by name, so that no
    /// search_path (the caller's, or a Citus worker's session) decides which type it is.
    pub(crate) fn detail(
        &self,
        nr: &Nearest,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> pgrx::composite_type!('static, "segment_assignment") {
        fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
            r.unwrap_or_else(|e| raise(Code::ERRCODE_INTERNAL_ERROR, e.to_string(), None))
        }
        let mut t = ok(PgHeapTuple::new_composite_type_by_oid(
            crate::pg::call_site::result_type(fcinfo),
        ));
        let d = nr.dist_sq.sqrt();
        ok(t.set_by_name("segment", self.model.segment_id(nr.index)));
        ok(t.set_by_name("label", self.model.labels.get(nr.index).cloned().flatten()));
        ok(t.set_by_name("distance", d));
        ok(t.set_by_name(
            "runner_up",
            nr.runner_up.map(|(i, _)| self.model.segment_id(i)),
        ));
        ok(t.set_by_name("margin", nr.runner_up.map(|(_, sq)| sq.sqrt() - d)));
        t
    }
}

/// For each model feature, the attribute of a row type holding it: by name, or, for an
/// anonymous `ROW(...)` (`anonymous`: columns named `f1`, `f2`, ...) holding exactly as
/// many values as the model has features, by position in the model's feature order. A
/// feature found neither way is an error.
fn map_features(model: &LoadedModel, columns: &[Attribute], anonymous: bool) -> Vec<usize> {
    let features = model.encoder.feature_names();
    let by_name: Vec<Option<usize>> = features
        .iter()
        .map(|f| columns.iter().position(|c| c.name == *f && !c.dropped))
        .collect();
    if let Some(missing) = by_name.iter().position(Option::is_none) {
        if anonymous && columns.len() == features.len() {
            return (0..columns.len()).collect();
        }
        raise(
            Code::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "column \"{}\" is missing from the row passed to segment_assign for model \"{}\"",
                features[missing], model.name
            ),
            Some(format!(
                "The model's features are: {}. Extra columns are ignored. An anonymous ROW(...) of exactly {} value{} is read in this order.",
                features.join(", "),
                features.len(),
                if features.len() == 1 { "" } else { "s" }
            )),
        )
    }
    by_name.into_iter().flatten().collect()
}

/// Encode one row's features into `out`; false when a NULL policy "skip" drops it.
/// Plain values go straight into `out` (see FittedEncoder::put_num); anything else sends
/// the row down the general path, which decides the rest (NULL policies, NaN, type and
/// ordinal errors) with the same result bits. `values` is a reused buffer.
#[inline]
fn encode_features(
    model: &LoadedModel,
    out: &mut [f64],
    values: &mut Vec<Value<'static>>,
    x: &Features,
) -> bool {
    let enc = &model.encoder;
    if (0..x.len()).all(|f| put_value(enc, f, x.get(f), out)) {
        return true;
    }
    values.clear();
    values.extend((0..x.len()).map(|f| x.get(f)));
    transform(model, values, out)
}

/// The general path: encode `vals` into `out` (NULL policies, NaN, type and ordinal
/// errors, raised naming the model); false when a NULL policy "skip" drops the row.
fn transform(model: &LoadedModel, vals: &[Value<'_>], out: &mut [f64]) -> bool {
    match model.encoder.transform_row(vals, out) {
        Ok(keep) => keep,
        Err(e) => crate::error::raise_engine(e, &format!("model \"{}\"", model.name)),
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
    c.encoded(crate::pg::arrays::vector(&encoded?, "encoded"));
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
    Some(c.detail(&nr, fcinfo))
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
    Some(c.detail(&nr, fcinfo))
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

// Comments, and the planner support wiring of segment_assign(model, row): sql/assign.sql.
pgrx::extension_sql_file!(
    "../sql/assign.sql",
    name = "assign",
    requires = [
        segment_assign_row,
        segment_assign_json,
        segment_assign_encoded,
        segment_assign_detail_row,
        segment_assign_detail_json,
        segment_encode_row,
        segment_encode_json,
    ],
);

//! `segment_train`: read a source through SPI with the caller's privileges, encode it per
//! the features spec, fit k-means (choosing k when asked), store the model in the
//! catalog and materialize every row's assignment. Everything happens in the caller's
//! transaction, so an error anywhere leaves nothing behind.
use super::args::{RawJsonb, RegClass};
use super::error::{raise, raise_detail, Code, OrRaise};
use super::model::{check_catalog_version, check_model_name, invalidate_plans, require};
use super::reader::{self, Id, IdKind, Ids};
use super::spi;
use super::values::kind_of_category;
use super::writer::AssignWriter;
use crate::engine::encode::{self, ColumnKind, FeatureSpec, RawColumns, Value};
use crate::engine::hash::FxHashSet;
use crate::engine::quality::{nearest_all, quality, silhouette_sample, Quality};
use crate::engine::{kmeans, sample, EngineError};
use ndarray::{Array2, ArrayView2};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// k-means++ seeds come from a seeded uniform sample of this many rows when the
/// training set has more than twice as many (the Lloyd iterations use every row).
pub const INIT_SAMPLE: usize = 100_000;

struct SourceColumn {
    name: String,
    type_oid: pg_sys::Oid,
    type_name: String,
    kind: Option<ColumnKind>,
}

struct Source {
    oid: pg_sys::Oid,
    qualified: String,
    columns: Vec<SourceColumn>,
}

fn ctx(model: &str) -> String {
    format!("segment_train(\"{model}\")")
}

fn describe_source(oid: pg_sys::Oid) -> Source {
    let (qualified, relkind) = spi::two::<String, String>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
             ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )
    .map(|(a, b)| (a.unwrap_or_default(), b.unwrap_or_default()))
    .unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", oid.to_u32()),
            None,
        )
    });
    if !matches!(relkind.as_str(), "r" | "v" | "m" | "p" | "f") {
        raise(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{qualified}\" is not a table, view or materialized view"),
            None,
        );
    }
    let columns = spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attname::pg_catalog.text, a.atttypid,
                    pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory::pg_catalog.text
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t
                 ON t.oid OPERATOR(pg_catalog.=) a.atttypid
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[oid.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let cat: String = r.get(4)?.unwrap_or_default();
            out.push(SourceColumn {
                name: r.get(1)?.unwrap_or_default(),
                type_oid: r.get(2)?.unwrap_or(pg_sys::Oid::INVALID),
                type_name: r.get(3)?.unwrap_or_default(),
                kind: kind_of_category(&cat),
            });
        }
        Ok(out)
    });
    Source {
        oid,
        qualified,
        columns,
    }
}

/// Training reads exactly the id and feature columns, with the caller's privileges: a
/// column grant on those suffices (as for any SELECT), and a missing one is named.
fn check_column_privileges(model: &str, source: &Source, columns: &[&str]) {
    let columns: Vec<&str> = columns.to_vec();
    let missing = spi::one::<String>(
        "SELECT u.c FROM pg_catalog.unnest($2::pg_catalog.text[]) WITH ORDINALITY u(c, i)
          WHERE NOT pg_catalog.has_column_privilege($1, u.c, 'SELECT') ORDER BY u.i LIMIT 1",
        &[source.oid.into(), columns.into()],
    );
    if let Some(col) = missing {
        raise(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "{}: permission denied for column \"{col}\" of relation {}",
                ctx(model),
                source.qualified
            ),
            Some(format!(
                "segment_train reads the id and feature columns with your privileges: GRANT SELECT ({}) ON {} TO the role that trains the model.",
                spi::ident(&col),
                source.qualified
            )),
        );
    }
}

fn already_exists(model: &str) -> ! {
    raise(
        Code::ERRCODE_DUPLICATE_OBJECT,
        format!("model \"{model}\" already exists"),
        Some(format!(
            "Drop it first with SELECT segment_drop('{model}'), or choose another name."
        )),
    )
}

/// A fit whose centroids or inertia are not finite is never stored (the encoder's
/// range check makes this unreachable; it guards the catalog all the same).
fn check_fit(model: &str, centroids: &Array2<f64>, inertia: f64) {
    if !inertia.is_finite() || centroids.iter().any(|v| !v.is_finite()) {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!(
                "{}: the fit overflowed float8 (inertia {inertia})",
                ctx(model)
            ),
            Some("Scale the features (standard, log_standard) or lower their weights.".into()),
        );
    }
}

fn undefined_column(col: &str, source: &Source) -> ! {
    let names: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
    raise(
        Code::ERRCODE_UNDEFINED_COLUMN,
        format!(
            "column \"{col}\" of relation {} does not exist",
            source.qualified
        ),
        Some(format!("Its columns are: {}.", names.join(", "))),
    )
}

/// Resolve the features spec against the source's columns.
fn resolve_spec(
    model: &str,
    features: Option<&serde_json::Value>,
    id_column: &str,
    source: &Source,
) -> Vec<FeatureSpec> {
    let usable: Vec<(String, ColumnKind)> = source
        .columns
        .iter()
        .filter_map(|c| c.kind.map(|k| (c.name.clone(), k)))
        .collect();
    let specs = match features {
        None | Some(serde_json::Value::Null) => {
            let specs = encode::default_spec(&usable, id_column);
            let ignored: Vec<String> = source
                .columns
                .iter()
                .filter(|c| c.kind.is_none() && c.name != id_column)
                .map(|c| format!("{} ({})", c.name, c.type_name))
                .collect();
            if !ignored.is_empty() {
                notice!(
                    "segment_train(\"{model}\"): default features leave out columns of other types: {}",
                    ignored.join(", ")
                );
            }
            specs
        }
        Some(v) => encode::parse_spec(v).or_raise(&ctx(model)),
    };
    if specs.is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{}: no features to train on", ctx(model)),
            Some("Name features in the features argument, or give the source numeric, text or boolean columns besides the id.".into()),
        );
    }
    for s in &specs {
        if s.name == id_column {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "{}: the id column \"{id_column}\" cannot also be a feature",
                    ctx(model)
                ),
                None,
            );
        }
        match source.columns.iter().find(|c| c.name == s.name) {
            None => undefined_column(&s.name, source),
            Some(c) if c.kind.is_none() => raise(
                Code::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "{}: feature \"{}\" has type {}, which pg_segment cannot encode",
                    ctx(model),
                    s.name,
                    c.type_name
                ),
                Some(
                    "Use numeric, text, enum or boolean columns; cast other types in a view."
                        .into(),
                ),
            ),
            _ => {}
        }
    }
    encode::check_kinds(&specs, &usable).unwrap_or_else(|e| {
        raise(
            Code::ERRCODE_DATATYPE_MISMATCH,
            format!("{}: {e}", ctx(model)),
            e.hint(),
        )
    });
    specs
}

/// Phase timings, reported at DEBUG1 (`SET client_min_messages = debug1`).
struct Phase {
    model: String,
    at: Instant,
}

impl Phase {
    fn new(model: &str) -> Self {
        Phase {
            model: model.to_string(),
            at: Instant::now(),
        }
    }

    fn done(&mut self, what: &str) {
        debug1!(
            "segment_train(\"{}\"): {what}: {:.3} s",
            self.model,
            self.at.elapsed().as_secs_f64()
        );
        self.at = Instant::now();
    }
}

/// Engine hooks: interrupts and progress go to Postgres from the calling thread.
pub(crate) struct PgHooks;

impl kmeans::Hooks for PgHooks {
    fn check_interrupt(&mut self) -> Result<(), EngineError> {
        check_for_interrupts!();
        Ok(())
    }
    fn progress(&mut self, p: &kmeans::Progress) {
        debug2!(
            "segment_train: run {} iteration {} inertia {} moved {}",
            p.run,
            p.iteration,
            p.inertia,
            p.moved
        );
    }
}

fn interrupt() -> Result<(), EngineError> {
    check_for_interrupts!();
    Ok(())
}

/// What was read from the source.
struct Read {
    raw: RawColumns,
    ids: Ids,
    rows_read: u64,
    null_ids: u64,
    sampled: bool,
    /// Integer ids not read in increasing order: row positions sorted by id.
    id_sorted: Option<Vec<u32>>,
}

impl Read {
    /// The positions into `kept` (rows kept for training, increasing) in id order for
    /// integer ids (so the assignment table's primary key builds from sorted input),
    /// else in read order.
    fn id_order(&self, kept: &[usize]) -> Vec<usize> {
        let Some(sorted) = &self.id_sorted else {
            return (0..kept.len()).collect();
        };
        let mut pos = vec![u32::MAX; self.ids.len()];
        for (i, &r) in kept.iter().enumerate() {
            pos[r] = i as u32;
        }
        sorted
            .iter()
            .map(|&r| pos[r as usize])
            .filter(|&i| i != u32::MAX)
            .map(|i| i as usize)
            .collect()
    }
}

/// Integer ids: None when strictly increasing (so unique), else row positions sorted by
/// id; Err(id) names a duplicate.
fn sort_int_ids(ids: &[i64]) -> Result<Option<Vec<u32>>, i64> {
    if ids.windows(2).all(|w| w[0] < w[1]) {
        return Ok(None);
    }
    let mut pairs: Vec<(i64, u32)> = ids
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as u32))
        .collect();
    pairs.sort_unstable();
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(w[0].0);
    }
    Ok(Some(pairs.into_iter().map(|(_, i)| i).collect()))
}

fn feature_kinds(source: &Source, specs: &[FeatureSpec]) -> Vec<ColumnKind> {
    specs
        .iter()
        .map(|s| {
            source
                .columns
                .iter()
                .find(|c| c.name == s.name)
                .and_then(|c| c.kind)
                .expect("features were checked against the source")
        })
        .collect()
}

fn feature_query(
    source: &Source,
    id_column: &str,
    id_kind: IdKind,
    specs: &[FeatureSpec],
) -> String {
    let features: Vec<(&str, ColumnKind, pg_sys::Oid)> = specs
        .iter()
        .map(|s| {
            let c = source
                .columns
                .iter()
                .find(|c| c.name == s.name)
                .expect("checked");
            (s.name.as_str(), c.kind.expect("checked"), c.type_oid)
        })
        .collect();
    reader::select_query(&source.qualified, id_column, id_kind, &features)
}

fn read_source(
    model: &str,
    source: &Source,
    id_column: &str,
    id_kind: IdKind,
    specs: &[FeatureSpec],
    budget: usize,
    seed: u64,
) -> Read {
    let kinds = feature_kinds(source, specs);
    let query = feature_query(source, id_column, id_kind, specs);

    // Rows beyond the memory budget: train on a seeded uniform sample of row positions.
    // The exact count costs a scan, so tables whose planner estimate is well inside the
    // budget skip it (the read itself still stops at twice the budget).
    let per_row = 16 * specs.len() + 64 + 8 * encode_width_estimate(specs);
    let capacity = (budget / per_row.max(1)).max(1_000);
    let estimate = spi::one::<f32>(
        "SELECT CASE WHEN c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m}'::pg_catalog.\"char\"[])
                     THEN c.reltuples END
           FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[source.oid.into()],
    )
    .unwrap_or(-1.0);
    let total = if estimate >= 0.0 && (estimate as f64) * 2.0 < capacity as f64 {
        estimate as usize
    } else {
        // Like the read itself (reader.rs), this runs with the caller's search_path, so
        // that a view's functions behave as for the caller; everything it names is
        // qualified. It reads no column, so the feature columns' grants suffice.
        Spi::get_one::<i64>(&format!(
            "SELECT pg_catalog.count(*) FROM {}",
            source.qualified
        ))
        .ok()
        .flatten()
        .unwrap_or(0) as usize
    };
    let keep: Option<Vec<usize>> =
        (total > capacity).then(|| sample::sample_indices(total, capacity, seed));
    let sampled = keep.is_some();

    let expected = keep.as_ref().map_or(total, Vec::len);
    let mut raw = RawColumns::new(&kinds);
    raw.reserve(expected);
    let mut ids = Ids::new(id_kind, expected);
    // Integer ids are checked for duplicates after the read (by sorting, which the
    // assignment writer needs anyway); text ids as they come.
    let mut seen_text: FxHashSet<String> = FxHashSet::default();
    if !sampled && id_kind == IdKind::Text {
        seen_text.reserve(expected);
    }
    let mut rows_read = 0u64;
    let mut null_ids = 0u64;
    let mut next_keep = 0usize;
    // The columns' pages are faulted in on the second core while this one scans.
    let mut spare = raw.spare_capacity();
    spare.extend(ids.spare_capacity());
    let prefault = std::thread::spawn(move || crate::alloc::prefault(&spare));
    reader::for_each_row(&query, id_kind, &kinds, |row| {
        let pos = rows_read as usize;
        rows_read += 1;
        if let Some(k) = &keep {
            if next_keep >= k.len() || k[next_keep] != pos {
                return;
            }
            next_keep += 1;
        }
        let Some(id) = row.id else {
            null_ids += 1;
            return;
        };
        let fresh = sampled
            || match id {
                Id::Int(_) => true,
                Id::Text(t) => seen_text.insert(t.to_string()),
            };
        if !fresh {
            duplicate_id(model, id_column, id, source);
        }
        for (i, v) in row.values.iter().enumerate() {
            match *v {
                Value::Null => match kinds[i] {
                    ColumnKind::Numeric => raw.push_num(i, None),
                    _ => raw.push_text(i, None),
                },
                Value::Num(x) => raw.push_num(i, Some(x)),
                Value::Bool(b) => raw.push_bool(i, Some(b)),
                Value::Text(t) => raw.push_text(i, Some(t)),
            }
        }
        ids.push(id);
        if !sampled
            && rows_read.is_multiple_of(100_000)
            && raw.heap_bytes() > budget.saturating_mul(2)
        {
            raise(
                Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "{}: the source grew past the memory budget while being read",
                    ctx(model)
                ),
                Some("Raise maintenance_work_mem, or retry.".into()),
            );
        }
    });
    // Only madvise calls: it ends on its own even when the scan raised an error above.
    let _ = prefault.join();
    let id_sorted = match &ids {
        Ids::Int(v) if !sampled => sort_int_ids(v)
            .unwrap_or_else(|dup| duplicate_id(model, id_column, Id::Int(dup), source)),
        _ => None,
    };
    Read {
        raw,
        ids,
        rows_read,
        null_ids,
        sampled,
        id_sorted,
    }
}

fn duplicate_id(model: &str, id_column: &str, id: Id<'_>, source: &Source) -> ! {
    raise_detail(
        Code::ERRCODE_UNIQUE_VIOLATION,
        format!("{}: id column \"{id_column}\" is not unique", ctx(model)),
        format!(
            "{id_column} = {id} appears more than once in {}.",
            source.qualified
        ),
        Some("Use a key column, or train on a view with one row per id.".into()),
    )
}

/// Encoded columns a spec will produce, roughly (one-hot at its top-n bound).
fn encode_width_estimate(specs: &[FeatureSpec]) -> usize {
    specs
        .iter()
        .map(|s| match &s.encoder {
            encode::Encoder::OneHot { top, .. } => top + 2,
            _ => 2,
        })
        .sum()
}

fn budget_bytes() -> usize {
    // SAFETY: reading a GUC variable of this backend.
    let kb = unsafe { pg_sys::maintenance_work_mem } as usize;
    kb.saturating_mul(1024)
}

struct Fit {
    result: kmeans::KMeansResult,
    k_selection: Option<serde_json::Value>,
}

fn fit_k(
    model: &str,
    x: ArrayView2<f64>,
    k: usize,
    seed: u64,
    n_init: usize,
    max_iter: usize,
    tol: f64,
) -> kmeans::KMeansResult {
    let params = kmeans::KMeansParams::new(k)
        .seed(seed)
        .n_init(n_init)
        .max_iter(max_iter)
        .tol(tol)
        .init_sample(INIT_SAMPLE);
    kmeans::fit(x, &params, &mut PgHooks).or_raise(&ctx(model))
}

/// Sets the flag when dropped, also while unwinding from an error.
struct CancelOnDrop<'a>(&'a AtomicBool);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
fn choose_k(
    model: &str,
    x: ArrayView2<f64>,
    k_min: usize,
    k_max: usize,
    seed: u64,
    n_init: usize,
    max_iter: usize,
    tol: f64,
) -> Fit {
    let distinct = kmeans::count_distinct_rows(x, k_max + 1);
    let hi = k_max.min(distinct);
    if hi < k_min {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{}: k_min = {k_min} exceeds the number of distinct rows ({distinct})",
                ctx(model)
            ),
            Some(format!("Choose k_min between 1 and {distinct}.")),
        );
    }
    let mut scores = Vec::new();
    let mut best: Option<(f64, kmeans::KMeansResult)> = None;
    for k in k_min..=hi {
        let r = fit_k(model, x, k, seed, n_init, max_iter, tol);
        let sil = silhouette_sample(x, &r.labels, seed, &mut interrupt).map(|s| s.2);
        scores.push(json!({"k": k, "inertia": r.inertia, "silhouette": sil}));
        let score = sil.unwrap_or(f64::NEG_INFINITY);
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, r));
        }
    }
    let (_, result) = best.expect("k range is not empty");
    Fit {
        k_selection: Some(json!({
            "criterion": "max mean silhouette (sampled as for the model)",
            "k_min": k_min, "k_max": k_max, "chosen": result.centroids.nrows(),
            "scores": scores
        })),
        result,
    }
}

/// Assign every row of the source by streaming it again (used when the fit saw a sample).
#[allow(clippy::too_many_arguments)]
fn stream_assignments(
    model: &str,
    source: &Source,
    id_column: &str,
    id_kind: IdKind,
    specs: &[FeatureSpec],
    encoder: &encode::FittedEncoder,
    centroids: ArrayView2<f64>,
    target: &mut AssignWriter,
) {
    let kinds = feature_kinds(source, specs);
    let query = feature_query(source, id_column, id_kind, specs);
    let mut out = vec![0f64; encoder.dim()];
    reader::for_each_row(&query, id_kind, &kinds, |row| {
        let Some(id) = row.id else { return };
        let keep = encoder
            .transform_row(row.values, &mut out)
            .unwrap_or_else(|e| {
                raise_detail(
                    super::error::code_of(&e),
                    format!("{}: {e}", ctx(model)),
                    format!("Row with {id_column} = {id}."),
                    e.hint(),
                )
            });
        if keep {
            let nr = kmeans::nearest(centroids, &out);
            target.push(id, nr.index, nr.dist_sq.sqrt());
        }
    });
}

fn matrix_literal(m: &Array2<f64>) -> String {
    // float8 text output round-trips exactly (extra_float_digits default 1 → shortest).
    let rows: Vec<String> = m
        .rows()
        .into_iter()
        .map(|r| {
            format!(
                "{{{}}}",
                r.iter()
                    .map(|v| format!("{v:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    format!("{{{}}}", rows.join(","))
}

/// Train a k-means segmentation model on `source` and store it as `model`.
///
/// Reads `source` (table, view or materialized view) with the caller's privileges,
/// encodes the features per `features` (NULL: every numeric column standardized, every
/// text/bool column one-hot with the top 20 categories, the id column excluded), fits
/// k-means (`k => NULL`: tries k_min..k_max and keeps the k with the highest mean
/// silhouette), stores spec, fitted encoder, centroids, metrics and lineage in the
/// catalog, and writes every row's segment to `segment.<model>_assignments`, keyed by
/// the source's own id type.
///
/// ```sql
/// SELECT * FROM segment_train('customers', 'crm.customer_features'::regclass,
///                             'customer_id', k => 5, seed => 42);
/// ```
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn segment_train(
    model: Option<&str>,
    source: Option<RegClass>,
    id_column: Option<&str>,
    features: default!(Option<RawJsonb>, "NULL"),
    k: default!(Option<i32>, "NULL"),
    k_min: default!(Option<i32>, 2),
    k_max: default!(Option<i32>, 8),
    seed: default!(Option<i64>, 0),
    n_init: default!(Option<i32>, 4),
    max_iter: default!(Option<i32>, 300),
    tol: default!(Option<f64>, 1e-4),
) -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(version, i32),
        name!(k, i32),
        name!(rows_used, i64),
        name!(rows_skipped, i64),
        name!(skipped, JsonB),
        name!(sampled, bool),
        name!(iterations, i32),
        name!(inertia, f64),
        name!(silhouette, Option<f64>),
        name!(silhouette_sample, i32),
        name!(davies_bouldin, Option<f64>),
        name!(calinski_harabasz, Option<f64>),
        name!(seconds, f64),
    ),
> {
    let started = Instant::now();
    let f = "segment_train";
    let model = require(model, f, "model");
    let source = require(source, f, "source").0;
    let id_column = require(id_column, f, "id_column");
    let (k_min, k_max) = (require(k_min, f, "k_min"), require(k_max, f, "k_max"));
    let seed = require(seed, f, "seed");
    let n_init = require(n_init, f, "n_init");
    let max_iter = require(max_iter, f, "max_iter");
    let tol = require(tol, f, "tol");
    check_model_name(model);
    check_catalog_version();
    let c = ctx(model);
    let bad = |name: &str, reason: String| -> ! {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{c}: invalid parameter \"{name}\": {reason}"),
            None,
        )
    };
    let max_k = kmeans::MAX_K as i32;
    if let Some(k) = k {
        if k < 1 {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{c}: k must be at least 1, got {k}"),
                Some("Pass k => NULL to choose k between k_min and k_max.".into()),
            );
        }
        if k > max_k {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{c}: k must be at most {max_k}, got {k}"),
                Some(
                    "Customer segments are few (3 to 20 is usual); pg_segment caps k at 1000."
                        .into(),
                ),
            );
        }
    } else if k_min < 1 || k_max < k_min || k_max > max_k {
        bad(
            "k_min",
            format!("need 1 <= k_min <= k_max <= {max_k}, got k_min = {k_min}, k_max = {k_max}"),
        );
    }
    if !(1..=kmeans::MAX_N_INIT as i32).contains(&n_init) {
        bad(
            "n_init",
            format!("must be between 1 and {}, got {n_init}", kmeans::MAX_N_INIT),
        );
    }
    if !(1..=kmeans::MAX_ITER as i32).contains(&max_iter) {
        bad(
            "max_iter",
            format!("must be between 1 and {}, got {max_iter}", kmeans::MAX_ITER),
        );
    }
    if !(tol >= 0.0 && tol.is_finite()) {
        bad("tol", format!("must be a finite number >= 0, got {tol}"));
    }
    // Concurrent trainings of one name queue here (until the first commits or aborts),
    // so the second sees the first's model and gets 42710, not a key violation.
    spi::run(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg_segment.model'), pg_catalog.hashtext($1))",
        &[model.into()],
    );
    if spi::one::<bool>(
        "SELECT segment._model_owner($1) IS NOT NULL",
        &[model.into()],
    ) == Some(true)
    {
        already_exists(model);
    }

    let src = describe_source(source);
    let id_col = src
        .columns
        .iter()
        .find(|col| col.name == id_column)
        .unwrap_or_else(|| undefined_column(id_column, &src));
    let id_type = id_col.type_oid;
    let id_col_type_name = id_col.type_name.clone();
    let id_kind = IdKind::of(id_type);
    let features_json = features.as_ref().map(|j| j.parse(f, "features"));
    let specs = resolve_spec(model, features_json.as_ref(), id_column, &src);
    let mut read_columns = vec![id_column];
    read_columns.extend(specs.iter().map(|s| s.name.as_str()));
    check_column_privileges(model, &src, &read_columns);

    let seed_u = seed as u64;
    let mut phase = Phase::new(model);
    let mut read = read_source(
        model,
        &src,
        id_column,
        id_kind,
        &specs,
        budget_bytes(),
        seed_u,
    );
    if read.ids.is_empty() {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("{c}: {} has no rows to train on", src.qualified),
            Some(if read.null_ids > 0 {
                format!("All {} rows have a NULL {id_column}.", read.null_ids)
            } else {
                "Load data into the source first.".into()
            }),
        );
    }

    phase.done("read source");
    // Encode.
    let with_id = |e: EngineError| -> ! {
        if let EngineError::Encode {
            row: Some(r),
            feature,
            reason,
        } = &e
        {
            if let Some(idv) = read.ids.get(*r) {
                // The engine's row number is internal (0-based, read order): name the id.
                let reason = reason.replace(&format!(" in row {r}"), "");
                raise_detail(
                    super::error::code_of(&e),
                    format!("{c}: feature \"{feature}\": {reason}"),
                    format!("First offending row: {id_column} = {idv}."),
                    e.hint(),
                );
            }
        }
        super::error::raise_engine(e, &c)
    };
    let encoder = encode::fit(&specs, &read.raw).unwrap_or_else(|e| with_id(e));
    let mut encoded = encoder.transform(&read.raw).unwrap_or_else(|e| with_id(e));
    let dim = encoder.dim();
    let n_used = encoded.kept_rows.len();
    if n_used == 0 {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("{c}: every row was skipped by a NULL policy \"skip\""),
            Some("Use another NULL policy, or filter the source.".into()),
        );
    }
    let x = ArrayView2::from_shape((n_used, dim), &encoded.matrix)
        .map_err(|e| EngineError::Internal(e.to_string()))
        .or_raise(&c);
    phase.done("encode");

    // Fit.
    let fit = match k {
        Some(k) => {
            let k = k as usize;
            let distinct = kmeans::count_distinct_rows(x, k);
            if distinct < k {
                raise(
                    Code::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("{c}: k = {k} exceeds the number of distinct rows ({distinct})"),
                    Some(format!(
                        "Choose k between 1 and {distinct}, or add more distinct rows."
                    )),
                );
            }
            Fit {
                result: fit_k(model, x, k, seed_u, n_init as usize, max_iter as usize, tol),
                k_selection: None,
            }
        }
        None => choose_k(
            model,
            x,
            k_min as usize,
            k_max as usize,
            seed_u,
            n_init as usize,
            max_iter as usize,
            tol,
        ),
    };
    let r = &fit.result;
    let kk = r.centroids.nrows();
    phase.done("k-means");

    // Skipped rows and why.
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    if read.null_ids > 0 {
        skipped.insert(format!("NULL {id_column}"), read.null_ids);
    }
    for (_, feature) in &encoded.skipped {
        *skipped
            .entry(format!("NULL {feature} (null policy skip)"))
            .or_default() += 1;
    }
    let rows_skipped: u64 = skipped.values().sum();
    let skipped_json = serde_json::to_value(&skipped).unwrap_or_default();
    let params = json!({
        "k": k, "k_min": k_min, "k_max": k_max, "seed": seed, "n_init": n_init,
        "max_iter": max_iter, "tol": tol, "init_sample": INIT_SAMPLE
    });
    let version = 1i32;
    let assignments = format!("{model}_assignments");

    // The model's row first: creating its assignment table needs it.
    check_fit(model, &r.centroids, r.inertia);
    // A model that would not load back is never stored: the encoder is read back from
    // the JSON the catalog will hold, as segment_assign will read it.
    let encoder_json = encoder.to_json();
    if let Err(e) = encode::FittedEncoder::from_json(&encoder_json) {
        raise(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("{c}: the fitted encoder would not load back: {e}"),
            None,
        );
    }
    let inserted = spi::one::<bool>(
        "INSERT INTO segment.models (name, source, source_oid, id_column, id_type, features, spec, params, current_version, assignments)
         VALUES ($1, $2, $3::pg_catalog.regclass, $4, $5::pg_catalog.regtype, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING RETURNING true",
        &[
            model.into(),
            src.qualified.as_str().into(),
            src.oid.into(),
            id_column.into(),
            id_type.into(),
            features_json.clone().map(JsonB).into(),
            JsonB(encode::spec_to_json(&specs)).into(),
            JsonB(params).into(),
            version.into(),
            assignments.as_str().into(),
        ],
    );
    if inserted != Some(true) {
        already_exists(model);
    }

    // Metrics (pure engine work) run on a second thread while this one, the only one
    // that may call into Postgres, materializes every row's assignment (all rows, also
    // when trained on a sample). If writing fails, the worker is told to stop.
    let names = encoder.feature_names();
    let cancel = AtomicBool::new(false);
    // Every row's segment, before the metrics worker starts (both cores); with a sample,
    // the rest of the source is streamed and assigned while writing.
    let nearest = (!read.sampled).then(|| nearest_all(x, r.centroids.view()));
    // The worker takes the encoded matrix and the raw columns, the bulk of the memory,
    // and frees them itself: this thread needs neither again.
    let matrix = std::mem::take(&mut encoded.matrix);
    let raw = std::mem::take(&mut read.raw);
    let (stats, sizes, mean_distances) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let x = ArrayView2::from_shape((n_used, dim), &matrix)
                .map_err(|e| EngineError::Internal(format!("encoded matrix: {e}")))?;
            let q = quality(
                x,
                &r.labels,
                r.centroids.view(),
                &raw,
                &names,
                &encoded.kept_rows,
                seed_u,
                &cancel,
            );
            drop(matrix);
            drop(raw);
            q
        });
        let _stop = CancelOnDrop(&cancel);
        let mut target = AssignWriter::create(
            model,
            &assignments,
            id_column,
            id_type,
            &id_col_type_name,
            version,
            kk,
            if read.sampled {
                read.rows_read as usize
            } else {
                n_used
            },
        );
        if read.sampled {
            stream_assignments(
                model,
                &src,
                id_column,
                id_kind,
                &specs,
                &encoder,
                r.centroids.view(),
                &mut target,
            );
        } else {
            // Everything is in memory. Integer ids are written in id order, so that the
            // primary key's build finds them sorted.
            let kept = &encoded.kept_rows;
            let nearest = nearest.expect("computed when not sampled");
            for i in read.id_order(kept) {
                let (segment, distance) = nearest[i];
                target.push(
                    read.ids.get(kept[i]).expect("one id per row read"),
                    segment as usize,
                    distance,
                );
            }
        }
        // Segment sizes and mean distances over the whole population (the fit may have
        // seen a sample), as counted while writing.
        let sizes: Vec<u64> = target.sizes.clone();
        let mean_distances: Vec<Option<f64>> = target
            .sizes
            .iter()
            .zip(&target.distance_sums)
            .map(|(&n, &s)| (n > 0).then(|| s / n as f64))
            .collect();
        target.finish();
        let waited = Instant::now();
        let stats = worker.join().unwrap_or_else(|_| {
            raise(
                Code::ERRCODE_INTERNAL_ERROR,
                "metrics worker panicked",
                None,
            )
        });
        debug2!(
            "segment_train(\"{model}\"): waited {:.3} s for the metrics worker",
            waited.elapsed().as_secs_f64()
        );
        (stats, sizes, mean_distances)
    });
    let Quality {
        silhouette: sil,
        davies_bouldin: db,
        calinski_harabasz: ch,
        mut facts,
        profiles,
        timings,
    } = stats.or_raise(&c);
    for (what, secs) in timings {
        debug2!("segment_train(\"{model}\"): metrics worker: {what}: {secs:.3} s");
    }
    let total: u64 = sizes.iter().sum();
    for f in &mut facts {
        f.size = sizes[f.segment];
        f.share = if total > 0 {
            sizes[f.segment] as f64 / total as f64
        } else {
            0.0
        };
        f.mean_distance = mean_distances[f.segment];
    }
    phase.done("write assignments (and metrics)");

    // Store: version, segments, profiles.
    spi::run(
        "INSERT INTO segment.versions (model, version, k, dim, feature_names, encoder, centroids,
            rows_read, rows_used, rows_skipped, skipped, sampled, sample_rows, iterations, converged,
            inertia, silhouette, silhouette_sample, davies_bouldin, calinski_harabasz, k_selection,
            seed, seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7::pg_catalog.float8[], $8, $9, $10, $11, $12, $13, $14, $15, $16,
                 $17, $18, $19, $20, $21, $22, 0)",
        &[
            model.into(),
            version.into(),
            (kk as i32).into(),
            (dim as i32).into(),
            encoder.output_names().into(),
            JsonB(encoder_json).into(),
            matrix_literal(&r.centroids).into(),
            (read.rows_read as i64).into(),
            (n_used as i64).into(),
            (rows_skipped as i64).into(),
            JsonB(skipped_json.clone()).into(),
            read.sampled.into(),
            (n_used as i64).into(),
            (r.n_iter as i32).into(),
            r.converged.into(),
            r.inertia.into(),
            sil.as_ref().map(|s| s.2).into(),
            sil.as_ref().map(|s| s.0.len() as i32).into(),
            db.into(),
            ch.into(),
            fit.k_selection.clone().map(JsonB).into(),
            seed.into(),
        ],
    );
    for f in &facts {
        let centroid: Vec<f64> = r.centroids.row(f.segment).to_vec();
        spi::run(
            "INSERT INTO segment.segments (model, version, segment, size, share, mean_distance, silhouette,
                nearest_segment, separation, centroid)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                model.into(),
                version.into(),
                (f.segment as i32 + 1).into(),
                (f.size as i64).into(),
                f.share.into(),
                f.mean_distance.into(),
                f.silhouette.into(),
                f.nearest.map(|s| s as i32 + 1).into(),
                f.separation.into(),
                centroid.into(),
            ],
        );
    }
    let p_seg: Vec<i32> = profiles.iter().map(|p| p.segment as i32 + 1).collect();
    let p_feat: Vec<String> = profiles.iter().map(|p| p.feature.clone()).collect();
    let p_cat: Vec<Option<String>> = profiles.iter().map(|p| p.category.clone()).collect();
    let p_sv: Vec<Option<f64>> = profiles.iter().map(|p| p.segment_value).collect();
    let p_ov: Vec<Option<f64>> = profiles.iter().map(|p| p.overall_value).collect();
    spi::run(
        "INSERT INTO segment.profile_data (model, version, segment, feature, category, segment_value, overall_value)
         SELECT $1, $2, u.* FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.int4[]),
                                             pg_catalog.unnest($4::pg_catalog.text[]),
                                             pg_catalog.unnest($5::pg_catalog.text[]),
                                             pg_catalog.unnest($6::pg_catalog.float8[]),
                                             pg_catalog.unnest($7::pg_catalog.float8[])) u",
        &[
            model.into(),
            version.into(),
            p_seg.into(),
            p_feat.into(),
            p_cat.into(),
            p_sv.into(),
            p_ov.into(),
        ],
    );

    phase.done("store catalog");
    let seconds = started.elapsed().as_secs_f64();
    spi::run(
        "UPDATE segment.versions v SET seconds = $3
          WHERE v.model OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2",
        &[model.into(), version.into(), seconds.into()],
    );
    invalidate_plans();

    TableIterator::once((
        model.to_string(),
        version,
        kk as i32,
        n_used as i64,
        rows_skipped as i64,
        JsonB(skipped_json),
        read.sampled,
        r.n_iter as i32,
        r.inertia,
        sil.as_ref().map(|s| s.2),
        sil.as_ref().map_or(0, |s| s.0.len() as i32),
        db,
        ch,
        seconds,
    ))
}

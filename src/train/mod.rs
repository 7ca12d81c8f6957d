//! `segment_train`: read a source through SPI with the caller's privileges, encode it per
//! the features spec, fit k-means (choosing k when asked), store the model in the
//! catalog and materialize every row's assignment. Everything happens in the caller's
//! transaction, so an error anywhere leaves nothing behind.
//!
//! [`segment_train`] is the sequence of steps: check the arguments, take the model's
//! name, describe the source and resolve the features ([`source`]), read, encode, fit
//! ([`fit`]), store the model's row, write the assignments while the metrics are
//! computed on a second thread ([`write`]), store the version.
mod distributed;
mod drift;
mod fit;
pub mod passes;
mod previous;
mod refresh;
mod source;
mod write;

use crate::catalog::{self, check_catalog_version, check_model_name, NewModel, NewVersion};
use crate::engine::encode::{self, Encoded, FeatureSpec, FittedEncoder};
use crate::engine::EngineError;
use crate::error::{raise, raise_detail, require, Code, OrRaise};
use crate::pg::args::{RawJsonb, RegClass};
use crate::pg::planner::invalidate_plans;
use crate::pg::progress;
use crate::pg::reader::IdKind;
use crate::pg::writer::TableMode;
use fit::{check_fit, fit_model, Params, INIT_SAMPLE};
use ndarray::ArrayView2;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use source::{Read, Source};
use std::collections::BTreeMap;
use std::time::Instant;

thread_local! {
    /// The SQL function running (segment_train, segment_refresh or segment_promote):
    /// messages of the shared steps name it. Set by each entry point.
    static FUNCTION: std::cell::Cell<&'static str> = const { std::cell::Cell::new("segment_train") };
}

fn ctx(model: &str) -> String {
    format!("{}(\"{model}\")", FUNCTION.get())
}

/// Phase timings, reported at DEBUG1 (`SET client_min_messages = debug1`).
struct Phase {
    model: String,
    at: Instant,
    /// The Rust heap in use when the call started (see `pg::alloc`).
    heap_base: usize,
}

impl Phase {
    fn new(model: &str) -> Self {
        Phase {
            model: model.to_string(),
            at: Instant::now(),
            heap_base: crate::pg::alloc::reset_peak(),
        }
    }

    fn done(&mut self, what: &str) {
        debug1!(
            "{}: {what}: {:.3} s; heap {:.1} MB, peak so far {:.1} MB",
            ctx(&self.model),
            self.at.elapsed().as_secs_f64(),
            crate::pg::alloc::in_use().saturating_sub(self.heap_base) as f64 / MB,
            self.peak() as f64 / MB
        );
        self.at = Instant::now();
    }

    /// The most bytes the call has had on the Rust heap so far.
    fn peak(&self) -> usize {
        crate::pg::alloc::peak_since(self.heap_base)
    }
}

const MB: f64 = (1 << 20) as f64;

fn already_exists(model: &str) -> ! {
    raise(
        Code::ERRCODE_DUPLICATE_OBJECT,
        format!("model \"{model}\" already exists"),
        Some(format!(
            "Retrain it with SELECT * FROM segment_refresh('{model}'), drop it first with SELECT segment_drop('{model}'), or choose another name."
        )),
    )
}

/// Fit the encoder on what was read (or take `keep`, an encoder fitted before) and
/// encode it. Engine errors about a row name the row's id rather than the engine's
/// internal row number.
fn encode_rows(
    model: &str,
    id_column: &str,
    specs: &[FeatureSpec],
    read: &Read,
    keep: Option<&FittedEncoder>,
) -> (FittedEncoder, Encoded) {
    let c = ctx(model);
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
                    crate::error::code_of(&e),
                    format!("{c}: feature \"{feature}\": {reason}"),
                    format!("First offending row: {id_column} = {idv}."),
                    e.hint(),
                );
            }
        }
        crate::error::raise_engine(e, &c)
    };
    let encoder = match keep {
        Some(e) => e.clone(),
        None => encode::fit(specs, &read.raw).unwrap_or_else(|e| with_id(e)),
    };
    let encoded = encoder
        .transform_into(&read.raw, read.matrix.take())
        .unwrap_or_else(|e| with_id(e));
    if encoded.kept_rows.is_empty() {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("{c}: every row was skipped by a NULL policy \"skip\""),
            Some("Use another NULL policy, or filter the source.".into()),
        );
    }
    (encoder, encoded)
}

/// Rows left out, by reason (NULL id, NULL policy "skip" per feature).
fn skipped_rows(id_column: &str, read: &Read, encoded: &Encoded) -> BTreeMap<String, u64> {
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    if read.null_ids > 0 {
        skipped.insert(format!("NULL {id_column}"), read.null_ids);
    }
    for (_, feature) in &encoded.skipped {
        *skipped
            .entry(format!("NULL {feature} (null policy skip)"))
            .or_default() += 1;
    }
    skipped
}

/// A fitted version, as both segment_train and segment_refresh store it.
struct Fitted<'a> {
    model: &'a str,
    version: i32,
    encoder: &'a FittedEncoder,
    encoder_json: serde_json::Value,
    result: &'a crate::engine::kmeans::KMeansResult,
    read: &'a Read,
    rows_used: usize,
    skipped: &'a BTreeMap<String, u64>,
    quality: &'a crate::engine::quality::Quality,
    seed: i64,
}

/// What segment_train returns (segment_refresh returns these columns first).
type TrainRow = (
    String,
    i32,
    i32,
    i64,
    i64,
    JsonB,
    bool,
    i32,
    f64,
    Option<f64>,
    i32,
    Option<f64>,
    Option<f64>,
    f64,
);

/// A stored version's figures, for the result row.
struct Stored {
    model: String,
    version: i32,
    k: i32,
    rows_used: i64,
    rows_skipped: i64,
    skipped: serde_json::Value,
    sampled: bool,
    iterations: i32,
    inertia: f64,
    silhouette: Option<f64>,
    silhouette_sample: i32,
    davies_bouldin: Option<f64>,
    calinski_harabasz: Option<f64>,
}

impl Stored {
    fn row(self, seconds: f64) -> TrainRow {
        (
            self.model,
            self.version,
            self.k,
            self.rows_used,
            self.rows_skipped,
            JsonB(self.skipped),
            self.sampled,
            self.iterations,
            self.inertia,
            self.silhouette,
            self.silhouette_sample,
            self.davies_bouldin,
            self.calinski_harabasz,
            seconds,
        )
    }
}

/// Insert a fitted version (its row, segments and profiles) into the catalog.
fn store_version(
    f: &Fitted,
    k_selection: Option<&serde_json::Value>,
    segment_ids: &[i32],
    lineage: Option<catalog::Lineage>,
) -> Stored {
    let (r, q) = (f.result, f.quality);
    let rows_skipped: u64 = f.skipped.values().sum();
    let skipped = serde_json::to_value(f.skipped).unwrap_or_default();
    let silhouette = q.silhouette.as_ref().map(|s| s.2);
    let silhouette_sample = q.silhouette.as_ref().map(|s| s.0.len());
    catalog::insert_version(&NewVersion {
        model: f.model,
        version: f.version,
        encoder: f.encoder,
        encoder_json: f.encoder_json.clone(),
        centroids: &r.centroids,
        rows_read: f.read.rows_read,
        rows_used: f.rows_used as u64,
        rows_skipped,
        skipped: &skipped,
        sampled: f.read.sampled,
        iterations: r.n_iter,
        converged: r.converged,
        inertia: r.inertia,
        silhouette,
        silhouette_sample,
        davies_bouldin: q.davies_bouldin,
        calinski_harabasz: q.calinski_harabasz,
        k_selection,
        seed: f.seed,
        facts: &q.facts,
        profiles: &q.profiles,
        segment_ids,
        lineage,
        reference: crate::engine::drift::Reference {
            features: q.reference.clone(),
            segment_shares: {
                let mut shares = vec![0.0; r.centroids.nrows()];
                for fact in &q.facts {
                    shares[fact.segment] = fact.share;
                }
                shares
            },
        }
        .to_json(),
    });
    Stored {
        model: f.model.to_string(),
        version: f.version,
        k: r.centroids.nrows() as i32,
        rows_used: f.rows_used as i64,
        rows_skipped: rows_skipped as i64,
        skipped,
        sampled: f.read.sampled,
        iterations: r.n_iter as i32,
        inertia: r.inertia,
        silhouette,
        silhouette_sample: silhouette_sample.unwrap_or(0) as i32,
        davies_bouldin: q.davies_bouldin,
        calinski_harabasz: q.calinski_harabasz,
    }
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
    FUNCTION.set(f);
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
    let params = Params::check(model, k, k_min, k_max, seed, n_init, max_iter, tol);
    let c = ctx(model);
    // Concurrent trainings of one name queue here; the second then gets 42710.
    if catalog::take_name(model) {
        already_exists(model);
    }

    // The source, the features and the caller's right to read them.
    let src = Source::describe(source);
    let id = src.id_column(id_column);
    let features_json = features.as_ref().map(|j| j.parse(f, "features"));
    let specs = source::resolve_spec(model, features_json.as_ref(), id_column, &src);
    let mut read_columns = vec![id_column];
    read_columns.extend(specs.iter().map(|s| s.name.as_str()));
    source::check_column_privileges(model, &src, &read_columns);

    let mut phase = Phase::new(model);
    progress::start(progress::Function::Train);
    let id_kind = IdKind::of(id.type_oid);
    let budget = crate::pg::maintenance_work_mem();
    // By passes (see passes.rs): only a seeded sample is read here.
    let pushed =
        passes::by_passes(model, &src).then(|| passes::sample(model, &src, id_column, seed));
    let mut read = source::read_source(
        model,
        &src,
        id_column,
        id_kind,
        &specs,
        budget,
        seed as u64,
        &params.largest(),
        pushed.as_ref(),
    );
    phase.done("read source");
    progress::phase(progress::Phase::Encode);
    let (encoder, mut encoded) = encode_rows(model, id_column, &specs, &read, None);
    let (mut n_used, dim) = (encoded.kept_rows.len(), encoder.dim());
    let x = ArrayView2::from_shape((n_used, dim), &encoded.matrix)
        .map_err(|e| EngineError::Internal(e.to_string()))
        .or_raise(&c);
    phase.done("encode");
    let mut fit = fit_model(model, x, &params);
    // How the fit ran, recorded in the model's params when by passes (with the initial
    // centroids the sample gave, so that the passes can be checked against them).
    let mut fit_record = None;
    if pushed.is_some() {
        phase.done("k-means on the sample");
        let init: Vec<Vec<f64>> = fit
            .result
            .centroids
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        fit_record = Some(json!({
            "method": "passes", "sample_rows": n_used, "initial_centroids": init
        }));
        let (result, rows) = passes::lloyd(
            model,
            &src,
            id_column,
            &encoder,
            &fit.result,
            x,
            params.kmeans.max_iter,
            params.kmeans.tol,
        );
        fit.result = result;
        n_used = rows as usize;
    }
    let r = &fit.result;
    check_fit(model, &r.centroids, r.inertia);
    progress::phase(progress::Phase::Write);
    phase.done("k-means");
    // A model that would not load back is never stored.
    let encoder_json = catalog::encoder_json(&c, &encoder);

    // The model's row first: creating its assignment table needs it.
    let version = 1i32;
    let segment_ids: Vec<i32> = (1..=r.centroids.nrows() as i32).collect();
    let assignments = format!("{model}_assignments");
    let inserted = catalog::insert_model(&NewModel {
        name: model,
        source: &src.qualified,
        source_oid: src.oid,
        id_column,
        id_type: id.type_oid,
        features: features_json,
        spec: encode::spec_to_json(&specs),
        params: {
            let mut p = json!({
                "k": k, "k_min": k_min, "k_max": k_max, "seed": seed, "n_init": n_init,
                "max_iter": max_iter, "tol": tol, "init_sample": INIT_SAMPLE
            });
            if let Some(f) = fit_record {
                p["fit"] = f;
            }
            p
        },
        version,
        assignments: &assignments,
    });
    if !inserted {
        already_exists(model);
    }
    let skipped = skipped_rows(id_column, &read, &encoded);
    let target = write::Target {
        model,
        table: &assignments,
        id_column,
        id_type: id.type_oid,
        id_type_name: &id.type_name,
        version,
        source: &src,
        id_kind,
        specs: &specs,
        segment_ids: &segment_ids,
        mode: TableMode::Create,
        previous: None,
    };
    // On a Citus distributed table, fitted by passes: written on the workers.
    let written = if pushed.is_some() && distributed::train_on_workers(&src) {
        distributed::write_train(&target, &mut read, &mut encoded, &encoder, r, seed as u64)
    } else {
        write::assignments_and_metrics(
            &target,
            &mut read,
            &mut encoded,
            &encoder,
            r,
            seed as u64,
            None,
        )
    };
    let q = written.quality;
    phase.done("write assignments (and metrics)");

    let stored = store_version(
        &Fitted {
            model,
            version,
            encoder: &encoder,
            encoder_json,
            result: r,
            read: &read,
            rows_used: n_used,
            skipped: &skipped,
            quality: &q,
            seed,
        },
        fit.k_selection.as_ref(),
        &segment_ids,
        None,
    );
    catalog::set_current(model, version, *segment_ids.last().unwrap_or(&0), None);
    phase.done("store catalog");
    let seconds = started.elapsed().as_secs_f64();
    catalog::set_seconds(model, version, seconds);
    invalidate_plans();
    progress::end();

    TableIterator::once(stored.row(seconds))
}

// Comment on segment_train: sql/train.sql.
pgrx::extension_sql_file!(
    "../../sql/train.sql",
    name = "train",
    requires = [segment_train]
);

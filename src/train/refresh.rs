//! `segment_refresh` and `segment_promote`: a model's life after its first training.
//!
//! A refresh retrains the model on its source (or another with the same columns) with
//! its stored spec, into a new version: warm-started from the current centroids
//! (carried into the new encoder's space when the encoder is refit, see
//! `FittedEncoder::carry_to`) or seeded afresh; k kept or changed. Its segments are then
//! matched with the current version's (see `engine::lineage`): a new segment whose
//! customers are mostly (Jaccard > 0.5) those of a current segment keeps that segment's
//! id and label, any other gets a fresh id. Migrations and stability are recorded; the
//! new version becomes current (and the assignment table is rewritten) unless the
//! promotion rule keeps it as a candidate. Old versions beyond the model's retention are
//! pruned.
//!
//! `segment_promote` makes any kept version current: the assignment table is rewritten
//! with that version's assignment of the source as it is now.
//!
//! Both run in the caller's transaction: an error anywhere leaves the current version
//! and its assignments as they were. Both take the model's lock (the one segment_train
//! takes for its name), so two refreshes of one model run one after the other.
use super::previous::Previous;
use super::source::{self, Source};
use super::write::{self, Target};
use super::{ctx, encode_rows, skipped_rows, store_version, Fitted, Phase, FUNCTION};
use crate::catalog::{self, check_catalog_version, check_owner, Lineage, LoadedModel, ModelRow};
use crate::engine::encode::{self, FeatureSpec};
use crate::engine::kmeans::{self, Init};
use crate::engine::lineage::{self, Transitions};
use crate::engine::quality::nearest_all;
use crate::engine::EngineError;
use crate::error::{raise, require, Code, OrRaise};
use crate::pg::args::RegClass;
use crate::pg::planner::invalidate_plans;
use crate::pg::progress;
use crate::pg::reader::IdKind;
use crate::pg::spi;
use crate::pg::writer::TableMode;
use ndarray::{Array2, ArrayView2};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;
use std::time::Instant;

/// `promote`: when the new version becomes current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Promote {
    Always,
    IfStable,
    Never,
}

impl Promote {
    fn parse(s: &str) -> Promote {
        match s {
            "always" => Promote::Always,
            "if_stable" => Promote::IfStable,
            "never" => Promote::Never,
            other => raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("segment_refresh: invalid promote \"{other}\""),
                Some("Use 'always' (the default), 'if_stable' or 'never'.".into()),
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Promote::Always => "always",
            Promote::IfStable => "if_stable",
            Promote::Never => "never",
        }
    }
}

/// `if_stable` promotes when the ARI is at least this and no segment dissolved.
const STABLE_ARI: f64 = 0.6;

/// The model's source as the refresh reads it: the relation, its id column and the
/// stored spec checked against its columns (42703 for a column that is gone, 42804 for
/// a changed type).
pub(super) struct Opened {
    pub(super) src: Source,
    pub(super) id_kind: IdKind,
    pub(super) id_type_name: String,
    pub(super) specs: Vec<FeatureSpec>,
}

pub(super) fn open_source(
    model: &str,
    row: &ModelRow,
    source: Option<pg_sys::Oid>,
    current: &LoadedModel,
) -> Opened {
    let oid = source.unwrap_or(row.source_oid);
    let exists = spi::one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1)",
        &[oid.into()],
    ) == Some(true);
    if !exists {
        raise(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!(
                "{}: its source {} no longer exists",
                ctx(model),
                row.source
            ),
            Some(format!(
                "Pass another source with the same columns: SELECT * FROM segment_refresh('{model}', source => 'schema.table');"
            )),
        );
    }
    let src = Source::describe(oid);
    let id = src.id_column(&row.id_column);
    if id.type_oid != row.id_type {
        let was = spi::one::<String>(
            "SELECT pg_catalog.format_type($1, NULL)",
            &[row.id_type.into()],
        )
        .unwrap_or_default();
        raise(
            Code::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "{}: id column \"{}\" of {} has type {}, but the model was trained on {was}",
                ctx(model),
                row.id_column,
                src.qualified,
                id.type_name
            ),
            Some("Refresh from a source (or a view) whose id column has the model's type.".into()),
        );
    }
    let (id_kind, id_type_name) = (IdKind::of(id.type_oid), id.type_name.clone());
    let specs = source::resolve_spec(model, Some(&row.spec), &row.id_column, &src);
    let kinds = source::feature_kinds(&src, &specs);
    for ((spec, kind), was) in specs
        .iter()
        .zip(&kinds)
        .zip(current.encoder.feature_kinds())
    {
        if *kind != was {
            let col = src.columns.iter().find(|c| c.name == spec.name);
            raise(
                Code::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "{}: feature \"{}\" has type {}, but it was {} when the model was trained",
                    ctx(model),
                    spec.name,
                    col.map_or("?", |c| c.type_name.as_str()),
                    kind_name(was)
                ),
                Some(
                    "Cast the column back to its type in a view, and refresh from the view.".into(),
                ),
            );
        }
    }
    let mut read_columns = vec![row.id_column.as_str()];
    read_columns.extend(specs.iter().map(|s| s.name.as_str()));
    source::check_column_privileges(model, &src, &read_columns);
    Opened {
        src,
        id_kind,
        id_type_name,
        specs,
    }
}

fn kind_name(k: encode::ColumnKind) -> &'static str {
    match k {
        encode::ColumnKind::Numeric => "numeric",
        encode::ColumnKind::Text => "text",
        encode::ColumnKind::Bool => "boolean",
    }
}

/// Take the model's lock and check that the current role may change it (42501) and
/// read it; its row.
pub(super) fn lock_model(model: &str, action: &str) -> ModelRow {
    // Concurrent refreshes and promotions of one model queue here, behind a training of
    // the name too.
    if !catalog::take_name(model) {
        catalog::no_such_model(model);
    }
    check_owner(model, action);
    catalog::model_row(model).unwrap_or_else(|| catalog::unreadable_model(model))
}

fn param<T: serde::de::DeserializeOwned>(params: &serde_json::Value, key: &str, default: T) -> T {
    serde_json::from_value(params[key].clone()).unwrap_or(default)
}

/// Retrain `model` into a new version whose segments keep their ids where they are
/// still the same customers (see the module doc and docs/reference.md).
///
/// ```sql
/// SELECT * FROM segment_refresh('customers');                        -- nightly
/// SELECT * FROM segment_refresh('customers', k => 6, promote => 'if_stable');
/// ```
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn segment_refresh(
    model: Option<&str>,
    source: default!(Option<RegClass>, "NULL"),
    k: default!(Option<i32>, "NULL"),
    warm_start: default!(Option<bool>, true),
    refit_encoder: default!(Option<bool>, true),
    promote: default!(Option<&str>, "'always'"),
    keep_versions: default!(Option<i32>, "NULL"),
    seed: default!(Option<i64>, "NULL"),
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
        name!(from_version, i32),
        name!(promoted, bool),
        name!(ari, Option<f64>),
        name!(segments_kept, i32),
        name!(segments_new, i32),
        name!(segments_retired, i32),
        name!(customers_moved, i64),
        name!(customers_new, i64),
        name!(customers_gone, i64),
        name!(note, Option<String>),
    ),
> {
    let started = Instant::now();
    let f = "segment_refresh";
    FUNCTION.set(f);
    let model = require(model, f, "model");
    let warm_start = require(warm_start, f, "warm_start");
    let refit_encoder = require(refit_encoder, f, "refit_encoder");
    let promote = Promote::parse(require(promote, f, "promote"));
    if let Some(n) = keep_versions.filter(|n| !(1..=1000).contains(n)) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("segment_refresh: keep_versions must be between 1 and 1000, got {n}"),
            None,
        );
    }
    check_catalog_version();
    let row = lock_model(model, "refresh");
    let c = ctx(model);
    let current = catalog::load(model, None);
    let sizes = catalog::segment_sizes(model, current.version);
    let opened = open_source(model, &row, source.map(|s| s.0), &current);

    let p = &row.params;
    let seed = seed.unwrap_or_else(|| param(p, "seed", 0i64));
    let k_new = k.unwrap_or(current.k as i32);
    let mut params = super::fit::Params::check(
        model,
        Some(k_new),
        2,
        8,
        seed,
        param(p, "n_init", 4i32),
        param(p, "max_iter", 300i32),
        param(p, "tol", 1e-4f64),
    );

    let mut phase = Phase::new(model);
    progress::start(progress::Function::Refresh);
    let budget = crate::pg::maintenance_work_mem();
    // By passes (see passes.rs): only a seeded sample is read here.
    let pushed = super::passes::by_passes(model, &opened.src)
        .then(|| super::passes::sample(model, &opened.src, &row.id_column, seed));
    let mut read = source::read_source(
        model,
        &opened.src,
        &row.id_column,
        opened.id_kind,
        &opened.specs,
        budget,
        seed as u64,
        &params.largest(),
        pushed.as_ref(),
    );
    phase.done("read source");
    progress::phase(progress::Phase::Encode);
    let keep = (!refit_encoder).then_some(&current.encoder);
    let (encoder, mut encoded) = encode_rows(model, &row.id_column, &opened.specs, &read, keep);
    let (mut n_used, dim) = (encoded.kept_rows.len(), encoder.dim());
    let x = ArrayView2::from_shape((n_used, dim), &encoded.matrix)
        .map_err(|e| EngineError::Internal(e.to_string()))
        .or_raise(&c);
    phase.done("encode");

    // The current centroids in the new encoded space.
    let old = ArrayView2::from_shape((current.k, current.dim), &current.centroids)
        .map_err(|e| EngineError::Internal(e.to_string()))
        .or_raise(&c);
    let carried: Array2<f64> = if refit_encoder {
        let rows: Vec<f64> = old
            .rows()
            .into_iter()
            .map(|r| current.encoder.carry_to(&encoder, &r.to_vec()).or_raise(&c))
            .collect::<Vec<_>>()
            .concat();
        Array2::from_shape_vec((current.k, dim), rows)
            .map_err(|e| EngineError::Internal(e.to_string()))
            .or_raise(&c)
    } else {
        old.to_owned()
    };
    if warm_start {
        let k = k_new as usize;
        let start = if k <= current.k {
            lineage::warm_centroids(carried.view(), &sizes, k)
        } else {
            kmeans::extend_seeds(x, carried.view(), k, super::fit::INIT_SAMPLE, seed as u64)
        };
        params.kmeans.init = Init::Given(start);
    }
    let mut fit = super::fit::fit_model(model, x, &params);
    // By passes: Lloyd over every row from the sample's (warm-started) fit.
    let mut fit_record = None;
    if pushed.is_some() {
        fit_record = Some(json!({"method": "passes", "sample_rows": n_used}));
        let (result, rows) = super::passes::lloyd(
            model,
            &opened.src,
            &row.id_column,
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
    super::fit::check_fit(model, &r.centroids, r.inertia);
    phase.done("k-means");
    let encoder_json = catalog::encoder_json(&c, &encoder);

    // Match on the rows in memory (every row, or the sample the fit saw).
    progress::phase(progress::Phase::Match);
    let nearest = nearest_all(x, r.centroids.view());
    phase.done("assign the rows in memory");
    // On Citus, with the assignment table distributed by the id: only the sample's
    // current assignments are read here (the same seeded hash of the id selects them);
    // the migrations are counted on the workers (see distributed.rs).
    let on_workers = pushed.as_ref().filter(|_| {
        super::distributed::refresh_on_workers(&opened.src, &row.assignments, &row.id_column)
    });
    let previous = Previous::read(
        model,
        &row.assignments,
        &row.id_column,
        opened.id_kind,
        &current.segment_ids,
        on_workers.map_or("", |p| p.filter.as_str()),
    );
    phase.done("read the current assignments");
    let mut seen = Transitions::new(current.k, r.centroids.nrows());
    for (&i, &(segment, _)) in encoded.kept_rows.iter().zip(&nearest) {
        let id = read.ids.get(i).expect("one id per row read");
        seen.add(previous.get(id), Some(segment as usize), 1);
    }
    let matches = lineage::match_segments(&seen, carried.view(), r.centroids.view());
    let (segment_ids, last_segment) =
        lineage::stable_ids(&matches, &current.segment_ids, row.last_segment);
    phase.done("match segments");

    // Promotion.
    let ari = seen.ari();
    let dissolved: Vec<i32> = (0..current.k)
        .filter(|&i| seen.best_jaccard(i) <= lineage::INHERIT_JACCARD)
        .map(|i| current.segment_ids[i])
        .collect();
    let note = match promote {
        Promote::Always => None,
        Promote::Never => Some("promote => 'never'".to_string()),
        Promote::IfStable => {
            let mut why = Vec::new();
            match ari {
                Some(a) if a >= STABLE_ARI => {}
                Some(a) => why.push(format!("ARI {a:.3} < {STABLE_ARI}")),
                None => why.push("no customer is in both versions".to_string()),
            }
            if !dissolved.is_empty() {
                let ids: Vec<String> = dissolved.iter().map(|d| d.to_string()).collect();
                why.push(format!(
                    "segment{} {} dissolved (best Jaccard <= 0.5)",
                    if ids.len() > 1 { "s" } else { "" },
                    ids.join(", ")
                ));
            }
            (!why.is_empty()).then(|| why.join("; "))
        }
    };
    let promoted = note.is_none();

    let version = catalog::next_version(model);
    progress::phase(progress::Phase::Write);
    let skipped = skipped_rows(&row.id_column, &read, &encoded);
    let target = Target {
        model,
        table: &row.assignments,
        id_column: &row.id_column,
        id_type: row.id_type,
        id_type_name: &opened.id_type_name,
        version,
        source: &opened.src,
        id_kind: opened.id_kind,
        specs: &opened.specs,
        segment_ids: &segment_ids,
        mode: if promoted {
            TableMode::Replace
        } else {
            TableMode::CountOnly
        },
        // With every row in memory, `seen` already counts every customer: the
        // write need not look each one up again.
        previous: read.sampled.then_some(&previous),
    };
    let written = if on_workers.is_some() {
        super::distributed::write_refresh(
            &target,
            &current.segment_ids,
            &mut read,
            &mut encoded,
            &encoder,
            r,
            seed as u64,
        )
    } else {
        write::assignments_and_metrics(
            &target,
            &mut read,
            &mut encoded,
            &encoder,
            r,
            seed as u64,
            Some(nearest),
        )
    };
    phase.done("write assignments (and metrics)");
    let q = written.quality;
    let moves = written.transitions.unwrap_or_else(|| {
        previous.count_gone(&mut seen);
        seen.clone()
    });

    // Migrations (exact, over the whole source) and stability (of the matching).
    let old_id = |i: Option<usize>| i.map(|i| current.segment_ids[i]);
    let new_id = |j: Option<usize>| j.map(|j| segment_ids[j]);
    let mut migrations = Vec::new();
    let (mut moved, mut new_customers, mut gone) = (0u64, 0u64, 0u64);
    let old_rows = (0..current.k).map(Some).chain([None]);
    for i in old_rows {
        for j in (0..segment_ids.len()).map(Some).chain([None]) {
            let n = moves.get(i, j);
            if n == 0 {
                continue;
            }
            migrations.push((old_id(i), new_id(j), n));
            match (i, j) {
                (None, _) => new_customers += n,
                (_, None) => gone += n,
                (a, b) if old_id(a) != new_id(b) => moved += n,
                _ => {}
            }
        }
    }
    let mut stability: Vec<(&str, Option<i32>, Option<i32>, f64)> = Vec::new();
    for (j, m) in matches.iter().enumerate() {
        let status = if m.inherits { "kept" } else { "new" };
        stability.push((status, old_id(m.from), Some(segment_ids[j]), m.jaccard));
    }
    let mut retired = 0;
    for i in 0..current.k {
        if matches.iter().any(|m| m.inherits && m.from == Some(i)) {
            continue;
        }
        retired += 1;
        let best = (0..segment_ids.len()).max_by(|&a, &b| {
            seen.jaccard(i, a)
                .total_cmp(&seen.jaccard(i, b))
                .then(b.cmp(&a))
        });
        stability.push((
            "retired",
            old_id(Some(i)),
            new_id(best),
            seen.best_jaccard(i),
        ));
    }
    let kept = matches.iter().filter(|m| m.inherits).count() as i32;
    let matched: Vec<(Option<i32>, f64)> = matches
        .iter()
        .map(|m| (old_id(m.from), m.jaccard))
        .collect();
    let ari_exact = moves.ari();
    let mut refresh_json = json!({
        "source": opened.src.qualified,
        "warm_start": warm_start,
        "refit_encoder": refit_encoder,
        "k_from": current.k,
        "k": segment_ids.len(),
        "seed": seed,
        "promote": promote.name(),
        "promoted": promoted,
        "reason": note,
        "matched_on_sample": read.sampled,
        "customers_moved": moved,
        "customers_new": new_customers,
        "customers_gone": gone,
    });
    if let Some(f) = fit_record {
        refresh_json["fit"] = f;
    }
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
        None,
        &segment_ids,
        Some(Lineage {
            parent_version: current.version,
            ari: ari_exact,
            refresh: refresh_json,
            matched: &matched,
        }),
    );
    catalog::insert_migrations(model, current.version, version, &migrations);
    catalog::insert_stability(model, current.version, version, &stability);
    let now_current = if promoted { version } else { current.version };
    catalog::set_current(model, now_current, last_segment, keep_versions);
    let pruned = catalog::prune_versions(model, now_current);
    if !pruned.is_empty() {
        debug1!("{c}: pruned versions {pruned:?} (keep_versions)");
    }
    phase.done("store catalog");
    let seconds = started.elapsed().as_secs_f64();
    catalog::set_seconds(model, version, seconds);
    invalidate_plans();
    progress::end();
    if let Some(why) = &note {
        pgrx::ereport!(
            PgLogLevel::NOTICE,
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            format!("{c}: version {version} is kept as a candidate; version {} stays current: {why}", current.version),
            format!("Look at SELECT * FROM segment.stability WHERE model = '{model}' AND to_version = {version}; promote it with SELECT * FROM segment_promote('{model}', {version});")
        );
    }

    let (m, v, k, used, skipped_n, skipped, sampled, iters, inertia, sil, sil_n, db, ch, secs) =
        stored.row(seconds);
    TableIterator::once((
        m,
        v,
        k,
        used,
        skipped_n,
        skipped,
        sampled,
        iters,
        inertia,
        sil,
        sil_n,
        db,
        ch,
        secs,
        current.version,
        promoted,
        ari_exact,
        kept,
        segment_ids.len() as i32 - kept,
        retired,
        moved as i64,
        new_customers as i64,
        gone as i64,
        note,
    ))
}

/// Make `version` of `model` its current version (a candidate kept by a refresh, or an
/// older version: a rollback). The assignment table is rewritten with that version's
/// segment for every row of the model's source as it is now, in this transaction.
///
/// ```sql
/// SELECT * FROM segment_promote('customers', 3);
/// ```
#[pg_extern(volatile, parallel_unsafe)]
fn segment_promote(
    model: Option<&str>,
    version: Option<i32>,
) -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(version, i32),
        name!(previous_version, i32),
        name!(rows, i64),
    ),
> {
    let f = "segment_promote";
    FUNCTION.set(f);
    let model = require(model, f, "model");
    let version = require(version, f, "version");
    check_catalog_version();
    let row = lock_model(model, "promote");
    let target = catalog::load(model, Some(version));
    let previous = row.current_version;
    if version == previous {
        notice!("{}: version {version} is already current", ctx(model));
        return TableIterator::once((model.to_string(), version, previous, 0));
    }
    let opened = open_source(model, &row, None, &target);
    progress::start(progress::Function::Promote);
    progress::phase(progress::Phase::Write);
    // On Citus, where a refresh writes on the workers: so does a promotion.
    let rows =
        if super::distributed::refresh_on_workers(&opened.src, &row.assignments, &row.id_column) {
            super::distributed::promote(
                model,
                &opened.src,
                &row.assignments,
                &row.id_column,
                &target,
            )
        } else {
            let centroids = ArrayView2::from_shape((target.k, target.dim), &target.centroids)
                .map_err(|e| EngineError::Internal(e.to_string()))
                .or_raise(&ctx(model));
            let mut writer = crate::pg::writer::AssignWriter::create(
                model,
                &row.assignments,
                &row.id_column,
                row.id_type,
                &opened.id_type_name,
                version,
                target.segment_ids.clone(),
                TableMode::Replace,
                catalog::segment_sizes(model, version).iter().sum::<u64>() as usize,
            );
            source::stream_assignments(
                model,
                &opened.src,
                &row.id_column,
                opened.id_kind,
                &opened.specs,
                &target.encoder,
                centroids,
                &mut |id, segment, distance| writer.push(id, segment, distance),
            );
            let rows: u64 = writer.sizes.iter().sum();
            writer.finish();
            rows
        };
    catalog::set_current(model, version, 0, None);
    invalidate_plans();
    progress::end();
    TableIterator::once((model.to_string(), version, previous, rows as i64))
}

// Comments on segment_refresh and segment_promote: sql/refresh.sql.
pgrx::extension_sql_file!(
    "../../sql/refresh.sql",
    name = "refresh",
    requires = [segment_refresh, segment_promote]
);

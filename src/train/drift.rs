//! `segment_drift`: how far a source (by default the model's own, as it is now) has
//! moved from the data the model's current version was trained on. One pass over the
//! source: every feature's values binned as the version's reference distributions bin
//! them (see `engine::drift`), every row assigned by the version and compared with the
//! assignment table, new and vanished ids counted. Each run is recorded in
//! `segment.drift_history` (the view `segment.drift` shows each model's latest run).
use super::previous::Previous;
use super::refresh::{lock_model, open_source};
use super::{ctx, FUNCTION};
use crate::catalog::{self, check_catalog_version};
use crate::engine::drift::{self, Bins, Reference};
use crate::engine::kmeans;
use crate::engine::EngineError;
use crate::error::{raise, require, Code, OrRaise};
use crate::pg::args::RegClass;
use crate::pg::reader;
use ndarray::ArrayView2;
use pgrx::prelude::*;

/// Report how far `source` (NULL: the model's source) has drifted from the training
/// data of `model`'s current version, feature by feature and in segment shares; record
/// the run in `segment.drift_history`.
///
/// ```sql
/// SELECT feature, psi, js_distance, band FROM segment_drift('customers');
/// ```
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn segment_drift(
    model: Option<&str>,
    source: default!(Option<RegClass>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(model, String),
        name!(version, i32),
        name!(run, i64),
        name!(feature, String),
        name!(kind, String),
        name!(psi, f64),
        name!(js_distance, f64),
        name!(band, String),
        name!(rows, i64),
        name!(would_move_share, Option<f64>),
        name!(new_ids, i64),
        name!(vanished_ids, i64),
    ),
> {
    let f = "segment_drift";
    FUNCTION.set(f);
    let model = require(model, f, "model");
    check_catalog_version();
    // Runs of one model are numbered in order: they take the model's lock.
    let row = lock_model(model, "measure the drift of");
    let c = ctx(model);
    let current = catalog::load(model, None);
    let reference = catalog::reference(model, current.version)
        .and_then(|j| Reference::from_json(&j))
        .unwrap_or_else(|| {
            raise(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "{c}: version {} has no reference distributions (it was trained before pg_segment 0.2.0)",
                    current.version
                ),
                Some(format!(
                    "Refresh the model once, then measure drift: SELECT * FROM segment_refresh('{model}');"
                )),
            )
        });
    let opened = open_source(model, &row, source.map(|s| s.0), &current);
    if reference.features.len() != opened.specs.len() {
        raise(
            Code::ERRCODE_DATA_CORRUPTED,
            format!("{c}: the stored reference does not match the model's features"),
            None,
        );
    }
    let previous = Previous::read(
        model,
        &row.assignments,
        &row.id_column,
        opened.id_kind,
        &current.segment_ids,
    );

    let centroids = ArrayView2::from_shape((current.k, current.dim), &current.centroids)
        .map_err(|e| EngineError::Internal(e.to_string()))
        .or_raise(&c);
    let mut counts: Vec<Vec<u64>> = reference
        .features
        .iter()
        .map(|r| vec![0u64; r.bins.len()])
        .collect();
    let mut segments = vec![0u64; current.k];
    let (mut rows, mut compared, mut moved, mut new_ids) = (0u64, 0u64, 0u64, 0u64);
    let mut seen = vec![0u64; current.k];
    let mut out = vec![0f64; current.dim];
    crate::pg::progress::start(crate::pg::progress::Function::Drift);
    crate::pg::progress::phase(crate::pg::progress::Phase::Read);
    let kinds = super::source::feature_kinds(&opened.src, &opened.specs);
    let query =
        super::source::feature_query(&opened.src, &row.id_column, opened.id_kind, &opened.specs);
    reader::for_each_row(&query, opened.id_kind, &kinds, |r| {
        rows += 1;
        if rows.is_multiple_of(65_536) {
            crate::pg::progress::rows(rows, 0);
        }
        for ((v, fr), cnt) in r
            .values
            .iter()
            .zip(&reference.features)
            .zip(counts.iter_mut())
        {
            cnt[fr.bins.bin_value(v)] += 1;
        }
        let Some(id) = r.id else { return };
        // A row the version cannot encode (a NULL under policy "error", a negative value
        // for log_standard) or skips is left out of the segment shares and would_move:
        // its values were binned above, which is where its drift shows.
        if !matches!(current.encoder.transform_row(r.values, &mut out), Ok(true)) {
            return;
        }
        let now = kmeans::nearest(centroids, &out).index;
        segments[now] += 1;
        match previous.get(id) {
            Some(was) => {
                compared += 1;
                seen[was] += 1;
                if was != now {
                    moved += 1;
                }
            }
            None => new_ids += 1,
        }
    });
    if rows == 0 {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("{c}: {} has no rows", opened.src.qualified),
            Some("Measure drift on a source with rows.".into()),
        );
    }
    let vanished: u64 = previous
        .totals()
        .iter()
        .zip(&seen)
        .map(|(t, s)| t.saturating_sub(*s))
        .sum();
    let would_move = (compared > 0).then(|| moved as f64 / compared as f64);

    // One row per feature, then the segment shares.
    let mut results: Vec<(String, &'static str, f64, f64)> = reference
        .features
        .iter()
        .zip(&counts)
        .map(|(fr, cnt)| {
            let actual = drift::shares(cnt);
            let kind = match fr.bins {
                Bins::Numeric(_) => "numeric",
                Bins::Categorical(_) => "categorical",
            };
            (
                fr.name.clone(),
                kind,
                drift::psi(&fr.shares, &actual),
                drift::js_distance(&fr.shares, &actual),
            )
        })
        .collect();
    let actual = drift::shares(&segments);
    results.push((
        "(segments)".to_string(),
        "segments",
        drift::psi(&reference.segment_shares, &actual),
        drift::js_distance(&reference.segment_shares, &actual),
    ));
    let run = catalog::insert_drift(&catalog::DriftRun {
        model,
        version: current.version,
        source: &opened.src.qualified,
        rows,
        would_move_share: would_move,
        new_ids,
        vanished_ids: vanished,
        features: &results
            .iter()
            .map(|(f, k, p, j)| (f.as_str(), *k, *p, *j, drift::band(*p)))
            .collect::<Vec<_>>(),
    });
    crate::pg::progress::end();
    let model_name = model.to_string();
    let version = current.version;
    TableIterator::new(results.into_iter().map(move |(feature, kind, psi, js)| {
        (
            model_name.clone(),
            version,
            run,
            feature,
            kind.to_string(),
            psi,
            js,
            drift::band(psi).to_string(),
            rows as i64,
            would_move,
            new_ids as i64,
            vanished as i64,
        )
    }))
}

// Comment on segment_drift: sql/drift.sql.
pgrx::extension_sql_file!(
    "../../sql/drift.sql",
    name = "drift",
    requires = [segment_drift]
);

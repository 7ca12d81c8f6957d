//! `segment_drift`: how far a source (by default the model's own, as it is now) has
//! moved from the data the model's current version was trained on. One pass over the
//! source: every feature's values binned as the version's reference distributions bin
//! them (see `engine::drift`), every row assigned by the version and compared with the
//! assignment table, new and vanished ids counted. Each run is recorded in
//! `segment.drift_history` (the view `segment.drift` shows each model's latest run).
//!
//! The backend reads the assignment table, then scans the source and copies its rows
//! into batches of 8192; a second thread bins, encodes, assigns and compares each batch
//! while the scan goes on (the counts are integers, so the batching changes nothing).
use super::previous::Previous;
use super::refresh::{lock_model, open_source};
use super::{ctx, FUNCTION};
use crate::catalog::{self, check_catalog_version};
use crate::engine::drift::{self, Bins, Reference};
use crate::engine::encode::{ColumnKind, FittedEncoder, RawColumn, RawColumns, Value};
use crate::engine::kmeans;
use crate::engine::EngineError;
use crate::error::{raise, require, Code, OrRaise};
use crate::pg::args::RegClass;
use crate::pg::reader::{self, Id, IdKind};
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
    // The read phase covers both reads: the assignment table, then the source.
    crate::pg::progress::start(crate::pg::progress::Function::Drift);
    crate::pg::progress::phase(crate::pg::progress::Phase::Read);
    let previous = Previous::read(
        model,
        &row.assignments,
        &row.id_column,
        opened.id_kind,
        &current.segment_ids,
        "",
    );

    let centroids = ArrayView2::from_shape((current.k, current.dim), &current.centroids)
        .map_err(|e| EngineError::Internal(e.to_string()))
        .or_raise(&c);
    let kinds = super::source::feature_kinds(&opened.src, &opened.specs);
    let query =
        super::source::feature_query(&opened.src, &row.id_column, opened.id_kind, &opened.specs);
    // This backend scans the source and copies each row into a batch; the second core
    // bins, encodes, assigns and compares the batches as they come (see `Tally::add`).
    // Should the scan raise (cancel, a bad value), the sender is dropped while
    // unwinding, the worker sees the channel close and ends, and the scope joins it.
    let (tally, rows) = std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<Batch>(4);
        let tally = Tally::new(&reference, current.k);
        let (encoder, reference) = (&current.encoder, &reference);
        let worker = scope.spawn(move || {
            let mut tally = tally;
            let mut out = vec![0f64; centroids.ncols()];
            for batch in receive {
                tally.add(&batch, reference, encoder, centroids, &previous, &mut out);
            }
            (tally, previous)
        });
        let mut rows = 0u64;
        let mut batch = Batch::new(&kinds, opened.id_kind);
        reader::for_each_row(&query, opened.id_kind, &kinds, |r| {
            rows += 1;
            batch.push(&r);
            if batch.len() == BATCH {
                crate::pg::progress::rows(rows, 0);
                let full = std::mem::replace(&mut batch, Batch::new(&kinds, opened.id_kind));
                if send.send(full).is_err() {
                    raise(
                        Code::ERRCODE_INTERNAL_ERROR,
                        format!("{c}: the drift worker stopped"),
                        None,
                    );
                }
            }
        });
        let sent = batch.len() == 0 || send.send(batch).is_ok();
        drop(send);
        match worker.join() {
            Ok(done) if sent => (done, rows),
            _ => raise(
                Code::ERRCODE_INTERNAL_ERROR,
                format!("{c}: the drift worker stopped"),
                None,
            ),
        }
    });
    let (
        Tally {
            counts,
            segments,
            compared,
            moved,
            new_ids,
            seen,
        },
        previous,
    ) = tally;
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

/// Rows per batch handed from the scan to the worker.
const BATCH: usize = 8192;

/// Rows as read, owned: the features in columns (text interned per batch) and the ids.
struct Batch {
    raw: RawColumns,
    ids: BatchIds,
}

enum BatchIds {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

impl Batch {
    fn new(kinds: &[ColumnKind], id_kind: IdKind) -> Batch {
        let mut raw = RawColumns::new(kinds);
        raw.reserve(BATCH);
        let ids = match id_kind {
            IdKind::Int => BatchIds::Int(Vec::with_capacity(BATCH)),
            IdKind::Text => BatchIds::Text(Vec::with_capacity(BATCH)),
        };
        Batch { raw, ids }
    }

    fn len(&self) -> usize {
        match &self.ids {
            BatchIds::Int(v) => v.len(),
            BatchIds::Text(v) => v.len(),
        }
    }

    /// Copy one row in. A numeric column keeps NULL as NaN, which every reader of a
    /// [`Value`] treats as NULL; booleans become the categories "true" / "false", as
    /// the encoders and the category bins see them.
    fn push(&mut self, r: &reader::Row<'_>) {
        for (i, v) in r.values.iter().enumerate() {
            match (self.raw.kinds()[i], *v) {
                (ColumnKind::Numeric, Value::Num(x)) => self.raw.push_num(i, Some(x)),
                (ColumnKind::Numeric, _) => self.raw.push_num(i, None),
                (_, Value::Text(t)) => self.raw.push_text(i, Some(t)),
                (_, Value::Bool(b)) => self.raw.push_bool(i, Some(b)),
                (_, Value::Null) => self.raw.push_text(i, None),
                // The reader gives numbers only for numeric columns.
                (_, Value::Num(_)) => unreachable!("a number read for a text column"),
            }
        }
        match (&mut self.ids, r.id) {
            (BatchIds::Int(v), Some(Id::Int(x))) => v.push(Some(x)),
            (BatchIds::Text(v), Some(Id::Text(t))) => v.push(Some(t.to_string())),
            (BatchIds::Int(v), _) => v.push(None),
            (BatchIds::Text(v), _) => v.push(None),
        }
    }

    fn id(&self, row: usize) -> Option<Id<'_>> {
        match &self.ids {
            BatchIds::Int(v) => v[row].map(Id::Int),
            BatchIds::Text(v) => v[row].as_deref().map(Id::Text),
        }
    }

    fn value(&self, col: usize, row: usize) -> Value<'_> {
        match self.raw.column(col) {
            RawColumn::Numeric(v) if v[row].is_nan() => Value::Null,
            RawColumn::Numeric(v) => Value::Num(v[row]),
            RawColumn::Text { dict, codes } => {
                codes[row].map_or(Value::Null, |c| Value::Text(&dict[c as usize]))
            }
        }
    }
}

/// What one pass counts: rows per reference bin of every feature, rows per segment of
/// the version, and the comparison with the stored assignments.
struct Tally {
    counts: Vec<Vec<u64>>,
    segments: Vec<u64>,
    compared: u64,
    moved: u64,
    new_ids: u64,
    /// Customers of each current segment seen in the source.
    seen: Vec<u64>,
}

impl Tally {
    fn new(reference: &Reference, k: usize) -> Tally {
        Tally {
            counts: reference
                .features
                .iter()
                .map(|r| vec![0u64; r.bins.len()])
                .collect(),
            segments: vec![0; k],
            compared: 0,
            moved: 0,
            new_ids: 0,
            seen: vec![0; k],
        }
    }

    /// Count one batch (pure computation: runs on the worker thread).
    fn add(
        &mut self,
        batch: &Batch,
        reference: &Reference,
        encoder: &FittedEncoder,
        centroids: ArrayView2<f64>,
        previous: &Previous,
        out: &mut [f64],
    ) {
        for (col, (fr, cnt)) in reference.features.iter().zip(&mut self.counts).enumerate() {
            match batch.raw.column(col) {
                RawColumn::Numeric(_) => {
                    for row in 0..batch.len() {
                        cnt[fr.bins.bin_value(&batch.value(col, row))] += 1;
                    }
                }
                RawColumn::Text { dict, codes } => {
                    // Each distinct value is binned once per batch.
                    let bins: Vec<usize> = dict
                        .iter()
                        .map(|t| fr.bins.bin_value(&Value::Text(t)))
                        .collect();
                    let null = fr.bins.bin_value(&Value::Null);
                    for code in codes {
                        cnt[code.map_or(null, |c| bins[c as usize])] += 1;
                    }
                }
            }
        }
        let mut values = vec![Value::Null; batch.raw.n_columns()];
        let was_of = previous.get_batch(batch.len(), |row| batch.id(row));
        for (row, &was) in was_of.iter().enumerate() {
            if batch.id(row).is_none() {
                continue;
            }
            for (col, v) in values.iter_mut().enumerate() {
                *v = batch.value(col, row);
            }
            // A customer still in the source is not vanished and one not in the table
            // is new, whether or not the version can encode its row.
            match was {
                Some(was) => self.seen[was] += 1,
                None => self.new_ids += 1,
            }
            // A row the version cannot encode (a NULL under policy "error", a negative
            // value for log_standard) or skips is left out of the segment shares and
            // would_move: its values were binned above, which is where its drift shows.
            if !matches!(encoder.transform_row(&values, out), Ok(true)) {
                continue;
            }
            let now = kmeans::nearest(centroids, out).index;
            self.segments[now] += 1;
            if let Some(was) = was {
                self.compared += 1;
                if was != now {
                    self.moved += 1;
                }
            }
        }
    }
}

// Comment on segment_drift: sql/drift.sql.
pgrx::extension_sql_file!(
    "../../sql/drift.sql",
    name = "drift",
    requires = [segment_drift]
);

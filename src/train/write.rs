//! The write step of `segment_train`: every row's assignment goes into the model's
//! assignment table on this thread (the only one that may call into PostgreSQL) while a
//! second thread computes the quality figures (pure engine work). If writing fails, the
//! worker is told to stop.
use super::previous::Previous;
use super::source::{self, Read, Source};
use crate::engine::encode::{Encoded, FeatureSpec, FittedEncoder};
use crate::engine::kmeans::KMeansResult;
use crate::engine::lineage::Transitions;
use crate::engine::quality::{nearest_all, quality, Quality};
use crate::engine::EngineError;
use crate::error::{raise, Code, OrRaise};
use crate::pg::reader::IdKind;
use crate::pg::writer::{AssignWriter, TableMode};
use ndarray::ArrayView2;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Where and what the assignments are written.
pub(super) struct Target<'a> {
    pub model: &'a str,
    pub table: &'a str,
    pub id_column: &'a str,
    pub id_type: pg_sys::Oid,
    pub id_type_name: &'a str,
    pub version: i32,
    pub source: &'a Source,
    pub id_kind: IdKind,
    pub specs: &'a [FeatureSpec],
    /// Segment id of each centroid row.
    pub segment_ids: &'a [i32],
    pub mode: TableMode,
    /// A refresh: the current version's assignments, to count where customers move.
    pub previous: Option<&'a Previous>,
}

/// What the write step found.
pub(super) struct Written {
    pub quality: Quality,
    /// A refresh: customers from each current segment to each new one, over the whole
    /// source (exact, also when the fit saw a sample).
    pub transitions: Option<Transitions>,
}

/// Sets the flag when dropped, also while unwinding from an error.
struct CancelOnDrop<'a>(&'a AtomicBool);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Write every row's segment (all rows, also when trained on a sample) and compute the
/// quality figures meanwhile; each segment's size, share and mean distance are then
/// taken over the whole population (the fit may have seen a sample). Takes the encoded
/// matrix and the raw columns, the bulk of the memory, and frees them as soon as the
/// metrics are done. `nearest`: every in-memory row's centroid row and distance, when
/// the caller has them already (computed here otherwise).
#[allow(clippy::too_many_arguments)]
pub(super) fn assignments_and_metrics(
    t: &Target,
    read: &mut Read,
    encoded: &mut Encoded,
    encoder: &FittedEncoder,
    r: &KMeansResult,
    seed: u64,
    nearest: Option<Vec<(u32, f64)>>,
) -> Written {
    let c = super::ctx(t.model);
    let (n_used, dim) = (encoded.kept_rows.len(), encoder.dim());
    let names = encoder.feature_names();
    let cancel = AtomicBool::new(false);
    // Every row's segment, before the metrics worker starts (both cores); with a sample,
    // the rest of the source is streamed and assigned while writing.
    let nearest = (!read.sampled).then(|| {
        nearest.unwrap_or_else(|| {
            let x = ArrayView2::from_shape((n_used, dim), &encoded.matrix).expect("rows x dim");
            nearest_all(x, r.centroids.view())
        })
    });
    let mut transitions = t
        .previous
        .map(|p| Transitions::new(p.k(), r.centroids.nrows()));
    // The worker takes the encoded matrix and the raw columns and frees them itself: this
    // thread needs neither again.
    let matrix = std::mem::take(&mut encoded.matrix);
    let raw = std::mem::take(&mut read.raw);
    let kept_rows = &encoded.kept_rows;
    let (stats, sizes, distance_sums) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let x = ArrayView2::from_shape((n_used, dim), &matrix)
                .map_err(|e| EngineError::Internal(format!("encoded matrix: {e}")))?;
            let q = quality(
                x,
                &r.labels,
                r.centroids.view(),
                &raw,
                &names,
                kept_rows,
                seed,
                &cancel,
            );
            drop(matrix);
            drop(raw);
            q
        });
        let _stop = CancelOnDrop(&cancel);
        let mut target = AssignWriter::create(
            t.model,
            t.table,
            t.id_column,
            t.id_type,
            t.id_type_name,
            t.version,
            t.segment_ids.to_vec(),
            t.mode,
            if read.sampled {
                read.rows_read as usize
            } else {
                n_used
            },
        );
        let mut push = |id: crate::pg::reader::Id<'_>, segment: usize, distance: f64| {
            if let (Some(p), Some(tr)) = (t.previous, transitions.as_mut()) {
                tr.add(p.get(id), Some(segment), 1);
            }
            target.push(id, segment, distance);
        };
        if read.sampled {
            source::stream_assignments(
                t.model,
                t.source,
                t.id_column,
                t.id_kind,
                t.specs,
                encoder,
                r.centroids.view(),
                &mut push,
            );
        } else {
            // Everything is in memory, in id order (see read_source), so the primary
            // key's build finds the ids sorted.
            let nearest = nearest.expect("computed when not sampled");
            for (&row, &(segment, distance)) in kept_rows.iter().zip(&nearest) {
                push(
                    read.ids.get(row).expect("one id per row read"),
                    segment as usize,
                    distance,
                );
            }
        }
        // Segment sizes and distance sums over the whole population, as counted while
        // writing.
        let sizes = target.sizes.clone();
        let distance_sums = target.distance_sums.clone();
        target.finish();
        // The primary key's build reported (and ended) its own progress.
        crate::pg::progress::resume();
        crate::pg::progress::phase(crate::pg::progress::Phase::Metrics);
        let waited = Instant::now();
        let stats = worker.join().unwrap_or_else(|_| {
            raise(
                Code::ERRCODE_INTERNAL_ERROR,
                "metrics worker panicked",
                None,
            )
        });
        debug2!(
            "segment_train(\"{}\"): waited {:.3} s for the metrics worker",
            t.model,
            waited.elapsed().as_secs_f64()
        );
        (stats, sizes, distance_sums)
    });
    let mut quality = stats.or_raise(&c);
    for (what, secs) in &quality.timings {
        debug2!(
            "segment_train(\"{}\"): metrics worker: {what}: {secs:.3} s",
            t.model
        );
    }
    set_population(&mut quality, &sizes, &distance_sums);
    if let (Some(p), Some(tr)) = (t.previous, transitions.as_mut()) {
        p.count_gone(tr);
    }
    Written {
        quality,
        transitions,
    }
}

/// Each segment's size, share and mean distance over the whole population, from its
/// row count and the sum of its rows' distances (the quality figures came from the rows
/// in memory, which may be a sample).
pub(super) fn set_population(quality: &mut Quality, sizes: &[u64], distance_sums: &[f64]) {
    let total: u64 = sizes.iter().sum();
    for f in &mut quality.facts {
        f.size = sizes[f.segment];
        f.share = if total > 0 {
            sizes[f.segment] as f64 / total as f64
        } else {
            0.0
        };
        let n = sizes[f.segment];
        f.mean_distance = (n > 0).then(|| distance_sums[f.segment] / n as f64);
    }
}

//! A fitted model's quality figures, as `segment_train` stores them: the silhouette on a
//! seeded sample, Davies–Bouldin, Calinski–Harabasz, per-segment facts and profiles, and
//! every row's nearest centroid on two threads. Pure computation: the extension runs
//! [`quality`] on a worker thread while its own thread writes the assignments.
use crate::encode::RawColumns;
use crate::{kmeans, metrics, report, sample, EngineError};
use ndarray::{ArrayView2, Axis};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Silhouette is exact up to this many training rows and sampled (seeded) above.
/// (See [`crate::defaults::TRAINING_SILHOUETTE_SAMPLE`] for why it differs from the
/// aggregate's sample.)
pub const SILHOUETTE_SAMPLE: usize = crate::defaults::TRAINING_SILHOUETTE_SAMPLE;

/// Silhouette on a seeded sample of at most [`SILHOUETTE_SAMPLE`] rows:
/// (sample row indices, per-row values, mean). None when undefined (one cluster, or
/// every sampled row its own cluster).
pub fn silhouette_sample(
    x: ArrayView2<f64>,
    labels: &[u32],
    seed: u64,
    interrupt: &mut dyn FnMut() -> Result<(), EngineError>,
) -> Option<(Vec<usize>, Vec<f64>, f64)> {
    let n = x.nrows();
    let idx = if n > SILHOUETTE_SAMPLE {
        sample::sample_indices(n, SILHOUETTE_SAMPLE, seed ^ 0x5111_0e77)
    } else {
        (0..n).collect()
    };
    let sub = x.select(Axis(0), &idx);
    let sub_labels: Vec<i64> = idx.iter().map(|&i| i64::from(labels[i])).collect();
    let distinct: HashSet<i64> = sub_labels.iter().copied().collect();
    if distinct.len() < 2 || distinct.len() >= idx.len() {
        return None;
    }
    let vals = metrics::silhouette_samples(sub.view(), &sub_labels, interrupt).ok()?;
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    Some((idx, vals, mean))
}

/// Every row's nearest centroid and its (Euclidean) distance, through the packed
/// centroid layout on two threads for large inputs (each row's result has the same bits
/// as a serial [`kmeans::nearest`]).
pub fn nearest_all(x: ArrayView2<f64>, centroids: ArrayView2<f64>) -> Vec<(u32, f64)> {
    let n = x.nrows();
    let index = kmeans::CentroidIndex::new(centroids);
    let index = &index;
    let mut out = vec![(0u32, 0.0f64); n];
    let chunk = if n >= 50_000 { n.div_ceil(2) } else { n.max(1) };
    std::thread::scope(|scope| {
        for (t, part) in out.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (j, o) in part.iter_mut().enumerate() {
                    let row = x.row(t * chunk + j);
                    let (i, dist_sq) = index.nearest(row.as_slice().expect("row-major"));
                    *o = (i as u32, dist_sq.sqrt());
                }
            });
        }
    });
    out
}

/// A fitted model's quality figures, computed off the main thread.
pub struct Quality {
    pub silhouette: Option<(Vec<usize>, Vec<f64>, f64)>,
    pub davies_bouldin: Option<f64>,
    pub calinski_harabasz: Option<f64>,
    pub facts: Vec<report::SegmentFacts>,
    pub profiles: Vec<report::ProfileRow>,
    /// Each feature's reference distribution over the rows read (for drift).
    pub reference: Vec<crate::drift::FeatureReference>,
    /// Seconds per step, for DEBUG2.
    pub timings: Vec<(&'static str, f64)>,
}

/// Silhouette (sampled), Davies–Bouldin, Calinski–Harabasz, per-segment facts,
/// profiles and the features' reference distributions. Pure engine code: it runs on a worker thread and must not call Postgres;
/// it stops early with `Canceled` once `cancel` is set.
#[allow(clippy::too_many_arguments)]
pub fn quality(
    x: ArrayView2<f64>,
    labels: &[u32],
    centroids: ArrayView2<f64>,
    raw: &RawColumns,
    names: &[&str],
    kept_rows: &[usize],
    seed: u64,
    cancel: &AtomicBool,
) -> Result<Quality, EngineError> {
    let mut stop = || {
        if cancel.load(Ordering::Relaxed) {
            Err(EngineError::Canceled)
        } else {
            Ok(())
        }
    };
    let k = centroids.nrows();
    let mut timings = Vec::new();
    let mut at = Instant::now();
    let mut lap = |what: &'static str| {
        timings.push((what, at.elapsed().as_secs_f64()));
        at = Instant::now();
    };
    let labels_i64: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    let silhouette = silhouette_sample(x, labels, seed, &mut stop);
    lap("silhouette");
    stop()?;
    let (davies_bouldin, calinski_harabasz) = if k >= 2 {
        let (db, ch) = metrics::davies_bouldin_calinski_harabasz(x, &labels_i64);
        (db.ok(), ch.ok())
    } else {
        (None, None)
    };
    lap("Davies-Bouldin, Calinski-Harabasz");
    stop()?;
    let facts = report::segment_facts(
        x,
        labels,
        centroids,
        silhouette
            .as_ref()
            .map(|(i, v, _)| (i.as_slice(), v.as_slice())),
    )?;
    lap("segment facts");
    stop()?;
    let profiles = report::profiles(raw, names, kept_rows, labels, k)?;
    lap("profiles");
    stop()?;
    let reference = crate::drift::reference_of(raw, names);
    lap("reference distributions");
    Ok(Quality {
        silhouette,
        davies_bouldin,
        calinski_harabasz,
        facts,
        profiles,
        reference,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn grid(n: usize, d: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, d), |(i, f)| {
            ((i * 7 + f * 13) % 23) as f64 + (i % 3) as f64 * 10.0
        })
    }

    #[test]
    fn nearest_all_matches_the_serial_nearest_bit_for_bit() {
        // 60k rows: the two-thread path (from 50k rows)
        let x = grid(60_000, 5);
        let c = grid(6, 5);
        let all = nearest_all(x.view(), c.view());
        for (i, &(seg, dist)) in all.iter().enumerate() {
            let nr = kmeans::nearest(c.view(), x.row(i).as_slice().unwrap());
            assert_eq!(seg as usize, nr.index, "row {i}");
            assert_eq!(dist.to_bits(), nr.dist_sq.sqrt().to_bits(), "row {i}");
        }
    }

    #[test]
    fn silhouette_sample_is_exact_below_the_sample_size() {
        let x = grid(300, 3);
        let labels: Vec<u32> = (0..300).map(|i| (i % 3) as u32).collect();
        let (idx, vals, mean) = silhouette_sample(x.view(), &labels, 1, &mut || Ok(())).unwrap();
        assert_eq!(idx, (0..300).collect::<Vec<_>>());
        assert_eq!(vals.len(), 300);
        let labels_i64: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        let exact = metrics::silhouette_score(x.view(), &labels_i64).unwrap();
        assert!(
            (mean - exact).abs() <= 1e-12 * exact.abs().max(1.0),
            "{mean} vs {exact}"
        );
    }

    #[test]
    fn silhouette_sample_is_seeded_above_the_sample_size_and_undefined_for_one_cluster() {
        let x = grid(SILHOUETTE_SAMPLE + 500, 2);
        let labels: Vec<u32> = (0..x.nrows()).map(|i| (i % 2) as u32).collect();
        let a = silhouette_sample(x.view(), &labels, 5, &mut || Ok(())).unwrap();
        let b = silhouette_sample(x.view(), &labels, 5, &mut || Ok(())).unwrap();
        assert_eq!(a.0.len(), SILHOUETTE_SAMPLE);
        assert_eq!((a.0, a.2.to_bits()), (b.0, b.2.to_bits()));
        let one = vec![0u32; 100];
        assert!(
            silhouette_sample(x.slice(ndarray::s![..100, ..]), &one, 5, &mut || Ok(())).is_none()
        );
    }
}

//! What the catalog and the BI views say about a trained model, computed from the
//! training data: per-segment facts (size, share, mean distance to the centroid, mean
//! silhouette of the sampled members, nearest other segment and its distance) and
//! feature profiles in original units (numeric means, category shares). Segments are
//! 0-based here; the SQL layer numbers them from 1.

use ndarray::ArrayView2;

use super::encode::{RawColumn, RawColumns};
use super::error::EngineError;

/// Facts about one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentFacts {
    /// 0-based segment index (row of the centroid matrix).
    pub segment: usize,
    /// Members among the rows given.
    pub size: u64,
    /// `size / n`.
    pub share: f64,
    /// Mean Euclidean distance of the members to the centroid (None when empty).
    pub mean_distance: Option<f64>,
    /// Mean silhouette of the members that are in the silhouette sample (None when none).
    pub silhouette: Option<f64>,
    /// The nearest other centroid (None when k = 1).
    pub nearest: Option<usize>,
    /// Euclidean distance to that centroid.
    pub separation: Option<f64>,
}

/// Per-segment facts. `labels[i]` is the segment of row `i` of `x`; `silhouette` is an
/// optional `(row indices, silhouette values)` sample.
pub fn segment_facts(
    x: ArrayView2<f64>,
    labels: &[u32],
    centroids: ArrayView2<f64>,
    silhouette: Option<(&[usize], &[f64])>,
) -> Result<Vec<SegmentFacts>, EngineError> {
    let (n, d) = x.dim();
    let k = centroids.nrows();
    if labels.len() != n {
        return Err(EngineError::DimensionMismatch {
            expected: n,
            got: labels.len(),
        });
    }
    if centroids.ncols() != d {
        return Err(EngineError::DimensionMismatch {
            expected: d,
            got: centroids.ncols(),
        });
    }
    let mut size = vec![0u64; k];
    let mut dist_sum = vec![0f64; k];
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        if l >= k {
            return Err(EngineError::Internal(format!(
                "label {l} out of range for {k} centroids"
            )));
        }
        size[l] += 1;
        let row = x.row(i);
        let c = centroids.row(l);
        let sq: f64 = row
            .iter()
            .zip(c.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        dist_sum[l] += sq.sqrt();
    }
    let mut sil_sum = vec![0f64; k];
    let mut sil_n = vec![0u64; k];
    if let Some((idx, vals)) = silhouette {
        if idx.len() != vals.len() {
            return Err(EngineError::DimensionMismatch {
                expected: idx.len(),
                got: vals.len(),
            });
        }
        for (&i, &v) in idx.iter().zip(vals) {
            let l = *labels.get(i).ok_or_else(|| {
                EngineError::Internal(format!("silhouette sample row {i} out of range"))
            })? as usize;
            sil_sum[l] += v;
            sil_n[l] += 1;
        }
    }
    let mut out = Vec::with_capacity(k);
    for j in 0..k {
        let mut best: Option<(usize, f64)> = None;
        for o in 0..k {
            if o == j {
                continue;
            }
            let sq: f64 = centroids
                .row(j)
                .iter()
                .zip(centroids.row(o).iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            if best.is_none_or(|(_, b)| sq < b) {
                best = Some((o, sq));
            }
        }
        out.push(SegmentFacts {
            segment: j,
            size: size[j],
            share: if n == 0 {
                0.0
            } else {
                size[j] as f64 / n as f64
            },
            mean_distance: (size[j] > 0).then(|| dist_sum[j] / size[j] as f64),
            silhouette: (sil_n[j] > 0).then(|| sil_sum[j] / sil_n[j] as f64),
            nearest: best.map(|b| b.0),
            separation: best.map(|b| b.1.sqrt()),
        });
    }
    Ok(out)
}

/// One row of a feature profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// 0-based segment.
    pub segment: usize,
    /// Input feature name.
    pub feature: String,
    /// The category for text/bool features (`"(other)"` for the rest, `"(null)"` for
    /// NULL); None for numeric features.
    pub category: Option<String>,
    /// Mean (numeric) or share (category) among the segment's rows; None when the
    /// segment has no non-NULL value of a numeric feature.
    pub segment_value: Option<f64>,
    /// The same over all rows.
    pub overall_value: Option<f64>,
}

/// How many categories of a text feature are profiled by name; the rest are pooled as
/// `(other)`.
pub const PROFILE_TOP_CATEGORIES: usize = 10;

/// Feature profiles in original units. `rows[i]` is the index into `raw` of the i-th
/// labelled row and `labels[i]` its 0-based segment; NaN/±Infinity and NULL numeric
/// values are left out of means.
pub fn profiles(
    raw: &RawColumns,
    feature_names: &[&str],
    rows: &[usize],
    labels: &[u32],
    k: usize,
) -> Result<Vec<ProfileRow>, EngineError> {
    if rows.len() != labels.len() {
        return Err(EngineError::DimensionMismatch {
            expected: rows.len(),
            got: labels.len(),
        });
    }
    if feature_names.len() != raw.n_columns() {
        return Err(EngineError::DimensionMismatch {
            expected: raw.n_columns(),
            got: feature_names.len(),
        });
    }
    let mut out = Vec::new();
    for (f, name) in feature_names.iter().enumerate() {
        match raw.column(f) {
            RawColumn::Numeric(vals) => {
                let mut sum = vec![0f64; k];
                let mut cnt = vec![0u64; k];
                for (&r, &l) in rows.iter().zip(labels) {
                    let v = vals[r];
                    if v.is_finite() {
                        sum[l as usize] += v;
                        cnt[l as usize] += 1;
                    }
                }
                let total: f64 = sum.iter().sum();
                let total_n: u64 = cnt.iter().sum();
                let overall = (total_n > 0).then(|| total / total_n as f64);
                for j in 0..k {
                    out.push(ProfileRow {
                        segment: j,
                        feature: name.to_string(),
                        category: None,
                        segment_value: (cnt[j] > 0).then(|| sum[j] / cnt[j] as f64),
                        overall_value: overall,
                    });
                }
            }
            RawColumn::Text { dict, codes } => {
                // Overall counts per code; the top categories by count (ties by text).
                let mut counts = vec![0u64; dict.len()];
                let mut nulls = 0u64;
                for &r in rows {
                    match codes[r] {
                        Some(c) => counts[c as usize] += 1,
                        None => nulls += 1,
                    }
                }
                let mut order: Vec<usize> = (0..dict.len()).filter(|&c| counts[c] > 0).collect();
                order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(dict[a].cmp(&dict[b])));
                let top: Vec<usize> = order.iter().copied().take(PROFILE_TOP_CATEGORIES).collect();
                let has_other = order.len() > top.len();
                // slot per code: 0..top.len() named, then other, then null
                let other_slot = top.len();
                let null_slot = top.len() + 1;
                let mut slot_of = vec![other_slot; dict.len()];
                for (s, &c) in top.iter().enumerate() {
                    slot_of[c] = s;
                }
                let slots = top.len() + 2;
                let mut seg_counts = vec![0u64; k * slots];
                let mut seg_n = vec![0u64; k];
                for (&r, &l) in rows.iter().zip(labels) {
                    let s = codes[r].map_or(null_slot, |c| slot_of[c as usize]);
                    seg_counts[l as usize * slots + s] += 1;
                    seg_n[l as usize] += 1;
                }
                let n = rows.len() as f64;
                let mut names: Vec<(usize, String)> = top
                    .iter()
                    .enumerate()
                    .map(|(s, &c)| (s, dict[c].clone()))
                    .collect();
                if has_other {
                    names.push((other_slot, "(other)".to_string()));
                }
                if nulls > 0 {
                    names.push((null_slot, "(null)".to_string()));
                }
                for (s, cat) in &names {
                    let overall_count: u64 = (0..k).map(|j| seg_counts[j * slots + s]).sum();
                    for j in 0..k {
                        out.push(ProfileRow {
                            segment: j,
                            feature: name.to_string(),
                            category: Some(cat.clone()),
                            segment_value: (seg_n[j] > 0)
                                .then(|| seg_counts[j * slots + s] as f64 / seg_n[j] as f64),
                            overall_value: (n > 0.0).then(|| overall_count as f64 / n),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::encode::ColumnKind;
    use super::*;
    use ndarray::array;

    #[test]
    fn facts_sizes_distances_and_nearest() {
        let x = array![
            [0.0, 0.0],
            [0.0, 2.0],
            [10.0, 0.0],
            [10.0, 0.0],
            [30.0, 0.0]
        ];
        let c = array![[0.0, 1.0], [10.0, 0.0], [30.0, 0.0]];
        let labels = [0, 0, 1, 1, 2];
        let f = segment_facts(
            x.view(),
            &labels,
            c.view(),
            Some((&[0, 2, 4], &[0.5, 0.25, -1.0])),
        )
        .unwrap();
        assert_eq!(f[0].size, 2);
        assert!((f[0].share - 0.4).abs() < 1e-15);
        assert_eq!(f[0].mean_distance, Some(1.0));
        assert_eq!(f[1].mean_distance, Some(0.0));
        assert_eq!(f[0].silhouette, Some(0.5));
        assert_eq!(f[2].silhouette, Some(-1.0));
        assert_eq!(f[0].nearest, Some(1));
        assert!((f[0].separation.unwrap() - 101f64.sqrt()).abs() < 1e-12);
        assert_eq!(f[2].nearest, Some(1));
        assert_eq!(f[2].separation, Some(20.0));
    }

    #[test]
    fn facts_k1_has_no_nearest_and_empty_segment_has_no_distance() {
        let x = array![[1.0], [3.0]];
        let f = segment_facts(x.view(), &[0, 0], array![[2.0]].view(), None).unwrap();
        assert_eq!(f[0].nearest, None);
        assert_eq!(f[0].mean_distance, Some(1.0));
        let f = segment_facts(x.view(), &[0, 0], array![[2.0], [9.0]].view(), None).unwrap();
        assert_eq!(f[1].size, 0);
        assert_eq!(f[1].mean_distance, None);
    }

    #[test]
    fn facts_reject_mismatched_labels() {
        let x = array![[1.0], [3.0]];
        let e = segment_facts(x.view(), &[0], array![[2.0]].view(), None).unwrap_err();
        assert_eq!(
            e,
            EngineError::DimensionMismatch {
                expected: 2,
                got: 1
            }
        );
    }

    #[test]
    fn profiles_numeric_means_and_category_shares() {
        let mut raw = RawColumns::new(&[ColumnKind::Numeric, ColumnKind::Text]);
        let data = [
            (Some(1.0), Some("a")),
            (Some(3.0), Some("b")),
            (None, Some("a")),
            (Some(f64::NAN), None),
            (Some(10.0), Some("a")),
        ];
        for (v, t) in data {
            raw.push_num(0, v);
            raw.push_text(1, t);
        }
        // rows 0..4 labelled; row 3 skipped by the caller
        let rows = [0, 1, 2, 4];
        let labels = [0, 0, 1, 1];
        let p = profiles(&raw, &["spend", "region"], &rows, &labels, 2).unwrap();
        let get = |seg: usize, feat: &str, cat: Option<&str>| {
            p.iter()
                .find(|r| r.segment == seg && r.feature == feat && r.category.as_deref() == cat)
                .unwrap()
                .clone()
        };
        assert_eq!(get(0, "spend", None).segment_value, Some(2.0));
        assert_eq!(get(1, "spend", None).segment_value, Some(10.0));
        assert_eq!(get(1, "spend", None).overall_value, Some(14.0 / 3.0));
        assert_eq!(get(0, "region", Some("a")).segment_value, Some(0.5));
        assert_eq!(get(1, "region", Some("a")).segment_value, Some(1.0));
        assert_eq!(get(1, "region", Some("a")).overall_value, Some(0.75));
        assert!(!p.iter().any(|r| r.category.as_deref() == Some("(null)")));
    }

    #[test]
    fn profiles_pool_rare_categories_and_nulls() {
        let mut raw = RawColumns::new(&[ColumnKind::Text]);
        let mut rows = Vec::new();
        for i in 0..(PROFILE_TOP_CATEGORIES + 3) {
            raw.push_text(0, Some(&format!("c{i:02}")));
            rows.push(i);
        }
        raw.push_text(0, None);
        rows.push(PROFILE_TOP_CATEGORIES + 3);
        let labels = vec![0u32; rows.len()];
        let p = profiles(&raw, &["city"], &rows, &labels, 1).unwrap();
        let cats: Vec<_> = p.iter().map(|r| r.category.clone().unwrap()).collect();
        assert_eq!(cats.len(), PROFILE_TOP_CATEGORIES + 2);
        assert!(cats.contains(&"(other)".to_string()));
        assert!(cats.contains(&"(null)".to_string()));
        let other = p
            .iter()
            .find(|r| r.category.as_deref() == Some("(other)"))
            .unwrap();
        assert_eq!(other.segment_value, Some(3.0 / rows.len() as f64));
    }
}

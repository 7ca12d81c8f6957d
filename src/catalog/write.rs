//! Writing a new model and its versions: the model's row, a version with its segments
//! and profiles (and, for a refresh, its lineage), its training time.
use crate::engine::encode::FittedEncoder;
use crate::engine::report::{ProfileRow, SegmentFacts};
use crate::error::{raise, Code};
use crate::pg::spi;
use ndarray::Array2;
use pgrx::prelude::*;
use pgrx::JsonB;
/// A trained model's row in `segment.models`.
pub struct NewModel<'a> {
    pub name: &'a str,
    /// The source as `schema.relation`, quoted where needed.
    pub source: &'a str,
    pub source_oid: pg_sys::Oid,
    pub id_column: &'a str,
    pub id_type: pg_sys::Oid,
    /// The features argument as given (NULL for the default spec).
    pub features: Option<serde_json::Value>,
    /// The resolved spec.
    pub spec: serde_json::Value,
    pub params: serde_json::Value,
    pub version: i32,
    pub assignments: &'a str,
}

/// Insert the model's row (first: creating its assignment table needs it). False when
/// the name is taken.
pub fn insert_model(m: &NewModel) -> bool {
    spi::one::<bool>(
        "INSERT INTO segment.models (name, source, source_oid, id_column, id_type, features, spec, params, current_version, assignments)
         VALUES ($1, $2, $3::pg_catalog.regclass, $4, $5::pg_catalog.regtype, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING RETURNING true",
        &[
            m.name.into(),
            m.source.into(),
            m.source_oid.into(),
            m.id_column.into(),
            m.id_type.into(),
            m.features.clone().map(JsonB).into(),
            JsonB(m.spec.clone()).into(),
            JsonB(m.params.clone()).into(),
            m.version.into(),
            m.assignments.into(),
        ],
    ) == Some(true)
}

/// The fitted encoder as the catalog stores it, read back first as `segment_assign`
/// will read it: a model that would not load back is never stored (XX000).
pub fn encoder_json(context: &str, encoder: &FittedEncoder) -> serde_json::Value {
    let json = encoder.to_json();
    if let Err(e) = FittedEncoder::from_json(&json) {
        raise(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("{context}: the fitted encoder would not load back: {e}"),
            None,
        );
    }
    json
}

/// One version of a model with its segments and profiles.
pub struct NewVersion<'a> {
    pub model: &'a str,
    pub version: i32,
    pub encoder: &'a FittedEncoder,
    pub encoder_json: serde_json::Value,
    pub centroids: &'a Array2<f64>,
    pub rows_read: u64,
    pub rows_used: u64,
    pub rows_skipped: u64,
    pub skipped: &'a serde_json::Value,
    pub sampled: bool,
    pub iterations: usize,
    pub converged: bool,
    pub inertia: f64,
    pub silhouette: Option<f64>,
    pub silhouette_sample: Option<usize>,
    pub davies_bouldin: Option<f64>,
    pub calinski_harabasz: Option<f64>,
    pub k_selection: Option<&'a serde_json::Value>,
    pub seed: i64,
    pub facts: &'a [SegmentFacts],
    pub profiles: &'a [ProfileRow],
    /// Segment id of each centroid row.
    pub segment_ids: &'a [i32],
    /// A refresh: what it started from and did (None for a trained version).
    pub lineage: Option<Lineage<'a>>,
    /// The reference distributions (engine `drift::Reference` JSON).
    pub reference: serde_json::Value,
}

/// How a refreshed version descends from its parent.
pub struct Lineage<'a> {
    pub parent_version: i32,
    pub ari: Option<f64>,
    pub refresh: serde_json::Value,
    /// Per centroid row: the parent's segment id it was matched with, and their Jaccard.
    pub matched: &'a [(Option<i32>, f64)],
}

/// Insert a version's rows: `segment.versions`, one `segment.segments` row per segment
/// and its `segment.profile_data` (its `seconds` are set last, by [`set_seconds`]).
pub fn insert_version(v: &NewVersion) {
    let (model, version) = (v.model, v.version);
    spi::run(
        "INSERT INTO segment.versions (model, version, k, dim, feature_names, encoder, centroids,
            rows_read, rows_used, rows_skipped, skipped, sampled, sample_rows, iterations, converged,
            inertia, silhouette, silhouette_sample, davies_bouldin, calinski_harabasz, k_selection,
            seed, seconds, segment_ids, parent_version, ari, refresh, reference)
         VALUES ($1, $2, $3, $4, $5, $6, $7::pg_catalog.float8[], $8, $9, $10, $11, $12, $13, $14, $15, $16,
                 $17, $18, $19, $20, $21, $22, 0, $23, $24, $25, $26, $27)",
        &[
            model.into(),
            version.into(),
            (v.centroids.nrows() as i32).into(),
            (v.encoder.dim() as i32).into(),
            v.encoder.output_names().into(),
            JsonB(v.encoder_json.clone()).into(),
            matrix_literal(v.centroids).into(),
            (v.rows_read as i64).into(),
            (v.rows_used as i64).into(),
            (v.rows_skipped as i64).into(),
            JsonB(v.skipped.clone()).into(),
            v.sampled.into(),
            (v.rows_used as i64).into(),
            (v.iterations as i32).into(),
            v.converged.into(),
            v.inertia.into(),
            v.silhouette.into(),
            v.silhouette_sample.map(|n| n as i32).into(),
            v.davies_bouldin.into(),
            v.calinski_harabasz.into(),
            v.k_selection.cloned().map(JsonB).into(),
            v.seed.into(),
            v.segment_ids.to_vec().into(),
            v.lineage.as_ref().map(|l| l.parent_version).into(),
            v.lineage.as_ref().and_then(|l| l.ari).into(),
            v.lineage.as_ref().map(|l| JsonB(l.refresh.clone())).into(),
            JsonB(v.reference.clone()).into(),
        ],
    );
    let id = |index: usize| v.segment_ids[index];
    for f in v.facts {
        let centroid: Vec<f64> = v.centroids.row(f.segment).to_vec();
        let matched = v.lineage.as_ref().map(|l| l.matched[f.segment]);
        // A new segment's label is its parent's when it inherited the id.
        spi::run(
            "INSERT INTO segment.segments (model, version, segment, size, share, mean_distance, silhouette,
                nearest_segment, separation, centroid, matched_from, jaccard, label)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                     (SELECT p.label FROM segment.segments p
                       WHERE p.model OPERATOR(pg_catalog.=) $1
                         AND p.version OPERATOR(pg_catalog.=) $13
                         AND p.segment OPERATOR(pg_catalog.=) $3
                         AND p.segment OPERATOR(pg_catalog.=) $11))",
            &[
                model.into(),
                version.into(),
                id(f.segment).into(),
                (f.size as i64).into(),
                f.share.into(),
                f.mean_distance.into(),
                f.silhouette.into(),
                f.nearest.map(id).into(),
                f.separation.into(),
                centroid.into(),
                matched.and_then(|m| m.0).into(),
                matched.map(|m| m.1).into(),
                v.lineage.as_ref().map(|l| l.parent_version).into(),
            ],
        );
    }
    let profiles = v.profiles;
    let p_seg: Vec<i32> = profiles.iter().map(|p| id(p.segment)).collect();
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
}

/// Record how long the training of a version took.
pub fn set_seconds(model: &str, version: i32, seconds: f64) {
    spi::run(
        "UPDATE segment.versions v SET seconds = $3
          WHERE v.model OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2",
        &[model.into(), version.into(), seconds.into()],
    );
}

/// A float8[][] literal of a matrix. float8 text output round-trips exactly
/// (extra_float_digits default 1 gives the shortest exact form), and so does this.
fn matrix_literal(m: &Array2<f64>) -> String {
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

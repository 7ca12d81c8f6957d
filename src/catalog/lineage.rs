//! What `segment_refresh`, `segment_promote` and `segment_drift` read and record: the
//! model's row, segment sizes, version numbers, migrations, stability, the current
//! version and retention, reference distributions and drift runs.
use crate::pg::spi;
use pgrx::prelude::*;

/// A model's row as `segment_refresh` and `segment_promote` need it.
pub struct ModelRow {
    pub source_oid: pg_sys::Oid,
    pub source: String,
    pub id_column: String,
    pub id_type: pg_sys::Oid,
    pub spec: serde_json::Value,
    pub params: serde_json::Value,
    pub current_version: i32,
    pub last_segment: i32,
    pub keep_versions: i32,
    pub assignments: String,
}

/// The row of `model` as the current role may read it (None when it may not, or there
/// is no such model).
pub fn model_row(model: &str) -> Option<ModelRow> {
    spi::connect(|client| {
        let t = client
            .select(
                "SELECT m.source_oid::pg_catalog.oid, m.source, m.id_column, m.id_type::pg_catalog.oid,
                        m.spec::pg_catalog.text, m.params::pg_catalog.text, m.current_version,
                        m.last_segment, m.keep_versions, m.assignments
                   FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
                None,
                &[model.into()],
            )?
            .first();
        if t.is_empty() {
            return Ok(None);
        }
        let json = |s: Option<String>| {
            s.and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        Ok(Some(ModelRow {
            source_oid: t.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
            source: t.get::<String>(2)?.unwrap_or_default(),
            id_column: t.get::<String>(3)?.unwrap_or_default(),
            id_type: t.get::<pg_sys::Oid>(4)?.unwrap_or(pg_sys::Oid::INVALID),
            spec: json(t.get::<String>(5)?),
            params: json(t.get::<String>(6)?),
            current_version: t.get::<i32>(7)?.unwrap_or(0),
            last_segment: t.get::<i32>(8)?.unwrap_or(0),
            keep_versions: t.get::<i32>(9)?.unwrap_or(10),
            assignments: t.get::<String>(10)?.unwrap_or_default(),
        }))
    })
}

/// Segment sizes of `model`'s `version`, in centroid order.
pub fn segment_sizes(model: &str, version: i32) -> Vec<u64> {
    spi::one::<Vec<Option<i64>>>(
        "SELECT pg_catalog.array_agg(s.size ORDER BY o.n)
           FROM segment.versions v
           CROSS JOIN LATERAL pg_catalog.unnest(v.segment_ids) WITH ORDINALITY o(id, n)
           LEFT JOIN segment.segments s
             ON s.model OPERATOR(pg_catalog.=) v.model AND s.version OPERATOR(pg_catalog.=) v.version
            AND s.segment OPERATOR(pg_catalog.=) o.id
          WHERE v.model OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2",
        &[model.into(), version.into()],
    )
    .unwrap_or_default()
    .into_iter()
    .map(|s| s.unwrap_or(0).max(0) as u64)
    .collect()
}

/// The next version number of `model` (above every version it ever had that is kept).
pub fn next_version(model: &str) -> i32 {
    spi::one::<i32>(
        "SELECT COALESCE(pg_catalog.max(v.version), 0) + 1 FROM segment.versions v
          WHERE v.model OPERATOR(pg_catalog.=) $1",
        &[model.into()],
    )
    .unwrap_or(1)
}

/// Record a refresh's migrations: (from segment id, to segment id, customers).
pub fn insert_migrations(
    model: &str,
    from_version: i32,
    to_version: i32,
    rows: &[(Option<i32>, Option<i32>, u64)],
) {
    let from: Vec<Option<i32>> = rows.iter().map(|r| r.0).collect();
    let to: Vec<Option<i32>> = rows.iter().map(|r| r.1).collect();
    let n: Vec<i64> = rows.iter().map(|r| r.2 as i64).collect();
    spi::run(
        "INSERT INTO segment.migration_data (model, from_version, to_version, from_segment, to_segment, customers)
         SELECT $1, $2, $3, u.* FROM ROWS FROM (pg_catalog.unnest($4::pg_catalog.int4[]),
                                                 pg_catalog.unnest($5::pg_catalog.int4[]),
                                                 pg_catalog.unnest($6::pg_catalog.int8[])) u",
        &[
            model.into(),
            from_version.into(),
            to_version.into(),
            from.into(),
            to.into(),
            n.into(),
        ],
    );
}

/// Record a refresh's per-segment stability: (status, from id, to id, jaccard).
pub fn insert_stability(
    model: &str,
    from_version: i32,
    to_version: i32,
    rows: &[(&str, Option<i32>, Option<i32>, f64)],
) {
    let status: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
    let from: Vec<Option<i32>> = rows.iter().map(|r| r.1).collect();
    let to: Vec<Option<i32>> = rows.iter().map(|r| r.2).collect();
    let j: Vec<f64> = rows.iter().map(|r| r.3).collect();
    spi::run(
        "INSERT INTO segment.stability_data (model, from_version, to_version, status, from_segment, to_segment, jaccard)
         SELECT $1, $2, $3, u.* FROM ROWS FROM (pg_catalog.unnest($4::pg_catalog.text[]),
                                                 pg_catalog.unnest($5::pg_catalog.int4[]),
                                                 pg_catalog.unnest($6::pg_catalog.int4[]),
                                                 pg_catalog.unnest($7::pg_catalog.float8[])) u",
        &[
            model.into(),
            from_version.into(),
            to_version.into(),
            status.into(),
            from.into(),
            to.into(),
            j.into(),
        ],
    );
}

/// Set the model's current version, its highest segment id and (when given) its
/// retention.
pub fn set_current(model: &str, current: i32, last_segment: i32, keep_versions: Option<i32>) {
    spi::run(
        "UPDATE segment.models m
            SET current_version = $2,
                last_segment = GREATEST(m.last_segment, $3),
                keep_versions = COALESCE($4, m.keep_versions)
          WHERE m.name OPERATOR(pg_catalog.=) $1",
        &[
            model.into(),
            current.into(),
            last_segment.into(),
            keep_versions.into(),
        ],
    );
}

/// Delete the oldest versions of `model` beyond its `keep_versions` newest, never
/// `current` (their segments, profiles, migrations and stability go with them).
/// Returns the versions deleted.
pub fn prune_versions(model: &str, current: i32) -> Vec<i32> {
    spi::one::<Vec<i32>>(
        "WITH doomed AS (
            DELETE FROM segment.versions v
             WHERE v.model OPERATOR(pg_catalog.=) $1
               AND v.version OPERATOR(pg_catalog.<>) $2
               AND v.version OPERATOR(pg_catalog.<) (
                   SELECT pg_catalog.min(n.version) FROM (
                       SELECT w.version FROM segment.versions w
                        WHERE w.model OPERATOR(pg_catalog.=) $1
                        ORDER BY w.version DESC
                        LIMIT (SELECT m.keep_versions FROM segment.models m
                                WHERE m.name OPERATOR(pg_catalog.=) $1)) n)
            RETURNING v.version)
         SELECT pg_catalog.array_agg(d.version ORDER BY d.version) FROM doomed d",
        &[model.into(), current.into()],
    )
    .unwrap_or_default()
}

/// The reference distributions stored with `model`'s `version` (None when it has none:
/// trained before 0.2.0).
pub fn reference(model: &str, version: i32) -> Option<serde_json::Value> {
    spi::one::<String>(
        "SELECT v.reference::pg_catalog.text FROM segment.versions v
          WHERE v.model OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2",
        &[model.into(), version.into()],
    )
    .and_then(|s| serde_json::from_str(&s).ok())
}

/// One run of `segment_drift`.
pub struct DriftRun<'a> {
    pub model: &'a str,
    pub version: i32,
    pub source: &'a str,
    pub rows: u64,
    pub would_move_share: Option<f64>,
    pub new_ids: u64,
    pub vanished_ids: u64,
    /// (feature, kind, psi, js_distance, band)
    pub features: &'a [(&'a str, &'a str, f64, f64, &'a str)],
}

/// Record a drift run in `segment.drift_history`; returns its run number (per model).
pub fn insert_drift(d: &DriftRun) -> i64 {
    let feature: Vec<String> = d.features.iter().map(|f| f.0.to_string()).collect();
    let kind: Vec<String> = d.features.iter().map(|f| f.1.to_string()).collect();
    let psi: Vec<f64> = d.features.iter().map(|f| f.2).collect();
    let js: Vec<f64> = d.features.iter().map(|f| f.3).collect();
    let band: Vec<String> = d.features.iter().map(|f| f.4.to_string()).collect();
    spi::one::<i64>(
        "WITH r AS (SELECT COALESCE(pg_catalog.max(h.run), 0) + 1 AS run FROM segment.drift_history h
                     WHERE h.model OPERATOR(pg_catalog.=) $1),
              ins AS (
         INSERT INTO segment.drift_history (model, run, version, source, rows, would_move_share,
             new_ids, vanished_ids, feature, kind, psi, js_distance, band)
         SELECT $1, r.run, $2, $3, $4, $5, $6, $7, u.* FROM r,
                ROWS FROM (pg_catalog.unnest($8::pg_catalog.text[]), pg_catalog.unnest($9::pg_catalog.text[]),
                           pg_catalog.unnest($10::pg_catalog.float8[]), pg_catalog.unnest($11::pg_catalog.float8[]),
                           pg_catalog.unnest($12::pg_catalog.text[])) u
         RETURNING run)
         SELECT pg_catalog.max(ins.run) FROM ins",
        &[
            d.model.into(),
            d.version.into(),
            d.source.into(),
            (d.rows as i64).into(),
            d.would_move_share.into(),
            (d.new_ids as i64).into(),
            (d.vanished_ids as i64).into(),
            feature.into(),
            kind.into(),
            psi.into(),
            js.into(),
            band.into(),
        ],
    )
    .unwrap_or(0)
}

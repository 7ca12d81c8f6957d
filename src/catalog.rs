//! The catalog (schema `segment`, see sql/catalog.sql) as the Rust side reads and
//! writes it, all of it here: loading a trained model version (as the current role may
//! see it), model names and the training lock, ownership, a new model and its versions,
//! labels, drops, grants (with the assignment table's privileges), and the catalog's
//! version check.
use crate::engine::encode::{FittedEncoder, MAX_ENCODED};
use crate::engine::report::{ProfileRow, SegmentFacts};
use crate::error::{raise, Code};
use crate::pg::spi;
use ndarray::Array2;
use pgrx::prelude::*;
use pgrx::JsonB;

/// A model version as the assignment functions need it.
pub struct LoadedModel {
    pub name: String,
    pub version: i32,
    pub encoder: FittedEncoder,
    /// Row-major k x dim.
    pub centroids: Vec<f64>,
    pub k: usize,
    pub dim: usize,
    /// Segment id of each centroid row.
    pub segment_ids: Vec<i32>,
    /// Label of each centroid row's segment.
    pub labels: Vec<Option<String>>,
}

/// Model names: an identifier of at most 48 characters (it names the assignment table).
pub fn check_model_name(model: &str) {
    let ok = !model.is_empty()
        && model.len() <= 48
        && model
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && model.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid model name \"{model}\""),
            Some("A model name is 1 to 48 letters, digits or underscores, starting with a letter or underscore.".into()),
        );
    }
}

/// Raise 42704 for a model that does not exist.
pub fn no_such_model(model: &str) -> ! {
    raise(
        Code::ERRCODE_UNDEFINED_OBJECT,
        format!("model \"{model}\" does not exist"),
        Some(
            "List models with SELECT name FROM segment.models; train one with segment_train(...)."
                .into(),
        ),
    )
}

/// Raise 42501 for a model that exists but that the current role may not read, else
/// 42704.
pub fn unreadable_model(model: &str) -> ! {
    match spi::one::<String>(
        "SELECT pg_catalog.pg_get_userbyid(segment._model_owner($1))::pg_catalog.text",
        &[model.into()],
    ) {
        Some(owner) => raise(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for model \"{model}\""),
            Some(format!(
                "Models are private to their owner. A member of role {} can share it: SELECT segment_grant('{model}', '<role>');",
                spi::ident(&owner)
            )),
        ),
        None => no_such_model(model),
    }
}

/// The catalog row of a model version, as stored.
struct Stored {
    version: i32,
    encoder: serde_json::Value,
    centroids: Vec<Option<f64>>,
    k: i32,
    dim: i32,
    segment_ids: Vec<Option<i32>>,
    labels: Vec<Option<String>>,
}

/// What the catalog holds for `model` at `version` (None = current), as the current
/// role may see it: Err(true) when the model is not visible, Err(false) when it has no
/// such version.
fn fetch(model: &str, version: Option<i32>) -> Result<Stored, bool> {
    spi::connect(|client| {
        let t = client
            .select(
                "SELECT v.version, v.encoder::pg_catalog.text, v.centroids, v.k, v.dim,
                        (SELECT pg_catalog.array_agg(s.label ORDER BY o.n)
                           FROM pg_catalog.unnest(v.segment_ids) WITH ORDINALITY o(id, n)
                           LEFT JOIN segment.segments s
                             ON s.model OPERATOR(pg_catalog.=) v.model
                            AND s.version OPERATOR(pg_catalog.=) v.version
                            AND s.segment OPERATOR(pg_catalog.=) o.id),
                        v.segment_ids
                   FROM segment.models m JOIN segment.versions v ON v.model OPERATOR(pg_catalog.=) m.name
                  WHERE m.name OPERATOR(pg_catalog.=) $1
                    AND v.version OPERATOR(pg_catalog.=) COALESCE($2, m.current_version)",
                None,
                &[model.into(), version.into()],
            )?
            .first();
        if t.is_empty() {
            // No row: either the model is not visible, or it has no such version.
            let invisible = client
                .select(
                    "SELECT true FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
                    None,
                    &[model.into()],
                )?
                .is_empty();
            return Ok(Err(invisible));
        }
        let encoder: String = t.get::<String>(2)?.unwrap_or_default();
        Ok(Ok(Stored {
            version: t.get::<i32>(1)?.unwrap_or(0),
            // A jsonb column always holds valid JSON; anything unreadable (nesting past
            // serde_json's limit) decodes as null, which the encoder refuses.
            encoder: serde_json::from_str(&encoder).unwrap_or(serde_json::Value::Null),
            centroids: t.get::<Vec<Option<f64>>>(3)?.unwrap_or_default(),
            k: t.get::<i32>(4)?.unwrap_or(0),
            dim: t.get::<i32>(5)?.unwrap_or(0),
            labels: t.get::<Vec<Option<String>>>(6)?.unwrap_or_default(),
            segment_ids: t.get::<Vec<Option<i32>>>(7)?.unwrap_or_default(),
        }))
    })
}

/// `model` at `version` when it exists and the current role may read it, else None
/// (the planner then leaves the call alone, so that the plain function raises the
/// error when it runs).
pub fn load_if_readable(model: &str, version: Option<i32>) -> Option<LoadedModel> {
    let row = fetch(model, version).ok()?;
    Some(decode(model, row).unwrap_or_else(|reason| unusable(model, &reason)))
}

fn unusable(model: &str, reason: &str) -> ! {
    raise(
        Code::ERRCODE_DATA_CORRUPTED,
        format!("model \"{model}\": stored model is unusable: {reason}"),
        Some(
            "The catalog row was not written by segment_train. Drop the model and train it again."
                .into(),
        ),
    )
}

/// Load `model` at `version` (None = its current version). A stored row that does not
/// decode into a usable model (forged or damaged: non-finite or mis-shaped centroids, an
/// unreadable encoder) is refused with XX001 rather than used.
pub fn load(model: &str, version: Option<i32>) -> LoadedModel {
    let row = match fetch(model, version) {
        Ok(r) => r,
        Err(true) => unreadable_model(model),
        Err(false) => raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("model \"{model}\" has no version {}", version.unwrap_or(0)),
            Some(format!(
                "See SELECT version FROM segment.versions WHERE model = '{model}';"
            )),
        ),
    };
    decode(model, row).unwrap_or_else(|reason| unusable(model, &reason))
}

fn decode(model: &str, row: Stored) -> Result<LoadedModel, String> {
    let version = row.version;
    let encoder =
        FittedEncoder::from_json(&row.encoder).map_err(|e| format!("version {version}: {e}"))?;
    let (k, dim) = (row.k, row.dim);
    if k < 1 || dim < 1 || encoder.dim() != dim as usize {
        return Err(format!(
            "version {version}: k = {k} and dim = {dim} do not fit its encoder ({} columns)",
            encoder.dim()
        ));
    }
    let (k, dim) = (k as usize, dim as usize);
    if row.centroids.len() != k * dim {
        return Err(format!(
            "version {version}: {} centroid values for k = {k}, dim = {dim}",
            row.centroids.len()
        ));
    }
    let centroids: Vec<f64> = row
        .centroids
        .iter()
        .map(|v| v.filter(|x| x.is_finite() && x.abs() <= MAX_ENCODED))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            format!("version {version}: a centroid value is NULL, not finite or out of range")
        })?;
    if row.labels.len() > k {
        return Err(format!(
            "version {version}: {} segment labels for k = {k}",
            row.labels.len()
        ));
    }
    let segment_ids: Vec<i32> = row
        .segment_ids
        .iter()
        .map(|v| v.filter(|&id| id >= 1))
        .collect::<Option<_>>()
        .filter(|ids: &Vec<i32>| {
            ids.len() == k && ids.iter().collect::<std::collections::HashSet<_>>().len() == k
        })
        .ok_or_else(|| {
            format!("version {version}: its segment ids are not {k} distinct positive ids")
        })?;
    Ok(LoadedModel {
        name: model.to_string(),
        version,
        encoder,
        centroids,
        k,
        dim,
        segment_ids,
        labels: row.labels,
    })
}

impl LoadedModel {
    /// The segment id of centroid row `index`.
    #[inline]
    pub fn segment_id(&self, index: usize) -> i32 {
        self.segment_ids[index]
    }

    /// The model as a self-contained text value, for plans that must use exactly the
    /// model they were planned with (see planner.rs). Floats round-trip exactly.
    pub fn to_plan_text(&self) -> String {
        serde_json::json!({
            "version": self.version,
            "k": self.k,
            "dim": self.dim,
            "encoder": self.encoder.to_json(),
            "centroids": self.centroids,
            "segment_ids": self.segment_ids,
            "labels": self.labels,
        })
        .to_string()
    }

    /// Read what [`LoadedModel::to_plan_text`] wrote, with the checks of [`load`].
    pub fn from_plan_text(model: &str, text: &str) -> LoadedModel {
        let parsed = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| e.to_string())
            .and_then(|mut v| {
                let centroids = v["centroids"]
                    .as_array()
                    .ok_or("no centroids")?
                    .iter()
                    .map(serde_json::Value::as_f64)
                    .collect();
                let labels = v["labels"]
                    .as_array()
                    .ok_or("no labels")?
                    .iter()
                    .map(|l| l.as_str().map(str::to_string))
                    .collect();
                let segment_ids = v["segment_ids"]
                    .as_array()
                    .ok_or("no segment ids")?
                    .iter()
                    .map(|l| l.as_i64().and_then(|i| i32::try_from(i).ok()))
                    .collect();
                Ok(Stored {
                    version: v["version"].as_i64().unwrap_or(0) as i32,
                    encoder: v["encoder"].take(),
                    centroids,
                    k: v["k"].as_i64().unwrap_or(0) as i32,
                    dim: v["dim"].as_i64().unwrap_or(0) as i32,
                    segment_ids,
                    labels,
                })
            })
            .and_then(|row| decode(model, row));
        parsed.unwrap_or_else(|reason| {
            raise(
                Code::ERRCODE_DATA_CORRUPTED,
                format!("model \"{model}\": the model in this plan is unusable: {reason}"),
                None,
            )
        })
    }
}

/// Raise 55000 when the installed SQL objects are older than this library (the package
/// was upgraded but `ALTER EXTENSION pg_segment UPDATE` has not run yet): writing the
/// catalog through an older layout could store what this library cannot read back.
pub fn check_catalog_version() {
    let installed = spi::one::<String>(
        "SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_segment'",
        &[],
    )
    .unwrap_or_default();
    let library = env!("CARGO_PKG_VERSION");
    if installed != library {
        raise(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("pg_segment's library is version {library}, but its SQL objects in this database are version {installed}"),
            Some("Run ALTER EXTENSION pg_segment UPDATE;".into()),
        );
    }
}

/// Raise 42501 unless the current role is a member of the model's owner (42704 when
/// there is no such model).
pub fn check_owner(model: &str, action: &str) {
    let (owner, owns) = ownership(model).unwrap_or_else(|| no_such_model(model));
    if !owns {
        raise(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("must be a member of role \"{owner}\" to {action} model \"{model}\""),
            Some("Only the role that trained a model (or its members) may change it.".into()),
        )
    }
}

/// The owner of `model` and whether the current role is a member of it; None when
/// there is no such model (readable or not).
pub fn ownership(model: &str) -> Option<(String, bool)> {
    let (owner, owns) = spi::two::<String, bool>(
        "SELECT pg_catalog.pg_get_userbyid(o)::pg_catalog.text, pg_catalog.pg_has_role(o, 'MEMBER')
           FROM segment._model_owner($1) o WHERE o IS NOT NULL",
        &[model.into()],
    )?;
    Some((owner?, owns.unwrap_or(false)))
}

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

/// Label segment `segment` of the current version of `model` (NULL removes the label);
/// Err(the version's segment ids, ascending) when it has no such segment. 42704 when
/// there is no such model.
pub fn set_label(model: &str, segment: i32, label: Option<&str>) -> Result<(), Vec<i32>> {
    let version = spi::one::<i32>(
        "SELECT m.current_version FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
        &[model.into()],
    )
    .unwrap_or_else(|| no_such_model(model));
    let updated = spi::one::<i32>(
        "UPDATE segment.segments s SET label = $4
          WHERE s.model OPERATOR(pg_catalog.=) $1 AND s.version OPERATOR(pg_catalog.=) $2
            AND s.segment OPERATOR(pg_catalog.=) $3
         RETURNING s.segment",
        &[model.into(), version.into(), segment.into(), label.into()],
    );
    if updated.is_some() {
        return Ok(());
    }
    Err(spi::one::<Vec<i32>>(
        "SELECT pg_catalog.array_agg(s.segment ORDER BY s.segment) FROM segment.segments s
          WHERE s.model OPERATOR(pg_catalog.=) $1 AND s.version OPERATOR(pg_catalog.=) $2",
        &[model.into(), version.into()],
    )
    .unwrap_or_default())
}

/// Delete a model's row; its versions, segments, profiles and grants go with it
/// (foreign keys), and the trigger on segment.models drops its assignment table.
pub fn delete_model(model: &str) {
    spi::run(
        "DELETE FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
        &[model.into()],
    );
}

/// Take `model`'s name for this transaction: concurrent trainings of one name queue
/// here (until the first commits or aborts), so the second sees the first's model.
/// True when a model of that name exists (readable or not).
pub fn take_name(model: &str) -> bool {
    spi::run(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pg_segment.model'), pg_catalog.hashtext($1))",
        &[model.into()],
    );
    spi::one::<bool>(
        "SELECT segment._model_owner($1) IS NOT NULL",
        &[model.into()],
    ) == Some(true)
}

/// The name of role `role`, None when there is no such role.
pub fn role_name(role: pg_sys::Oid) -> Option<String> {
    spi::one::<String>(
        "SELECT pg_catalog.pg_get_userbyid($1)::pg_catalog.text",
        &[role.into()],
    )
    .filter(|n| !n.starts_with("unknown (OID="))
}

/// Record (grant) or remove (revoke) `role`'s right to read `model` in segment.grants;
/// true when that changed something.
pub fn record_grant(model: &str, role: pg_sys::Oid, grant: bool) -> bool {
    if grant {
        spi::one::<bool>(
            "INSERT INTO segment.grants (model, grantee) VALUES ($1, $2::pg_catalog.regrole)
             ON CONFLICT DO NOTHING RETURNING true",
            &[model.into(), role.into()],
        )
    } else {
        spi::one::<bool>(
            "DELETE FROM segment.grants g
              WHERE g.model OPERATOR(pg_catalog.=) $1 AND g.grantee OPERATOR(pg_catalog.=) $2::pg_catalog.regrole
             RETURNING true",
            &[model.into(), role.into()],
        )
    }
    .is_some()
}

/// GRANT (or REVOKE) SELECT on `model`'s assignment table to `role_name`. The table
/// belongs to the extension's owner (see catalog.sql), so this runs as that owner; the
/// caller must have checked that the current role owns the model.
pub fn grant_assignments(model: &str, role_name: &str, grant: bool) {
    let table = spi::one::<String>(
        "SELECT m.assignments FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
        &[model.into()],
    )
    .unwrap_or_else(|| no_such_model(model));
    let (table, role) = (spi::ident(&table), spi::ident(role_name));
    let sql = if grant {
        format!("GRANT SELECT ON segment.{table} TO {role}")
    } else {
        format!("REVOKE SELECT ON segment.{table} FROM {role}")
    };
    spi::as_extension_owner(&[], || spi::run(&sql, &[]));
}

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

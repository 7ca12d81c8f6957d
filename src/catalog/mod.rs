//! The catalog (schema `segment`, see sql/catalog.sql) as the Rust side reads and
//! writes it, all of it in this module: here, loading a trained model version (as the
//! current role may see it), model names and the training lock, ownership, labels,
//! drops, grants (with the assignment table's privileges), and the catalog's version
//! check; in `write.rs`, a new model and its versions; in `lineage.rs`, what
//! `segment_refresh`, `segment_promote` and `segment_drift` read and record (the
//! model's row, sizes, migrations, stability, the current version, retention, drift).
mod lineage;
mod write;

pub use lineage::*;
pub use write::*;

use crate::engine::encode::{FittedEncoder, MAX_ENCODED};
use crate::error::{raise, Code};
use crate::pg::spi;
use pgrx::prelude::*;

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

/// Raise 42704 for a model that does not exist. On a Citus worker, whose catalog is
/// empty (it lives on the coordinator), the error says so and shows the by-value form.
pub fn no_such_model(model: &str) -> ! {
    if on_citus_worker() {
        crate::error::raise_detail(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("model \"{model}\" does not exist on this Citus worker"),
            "pg_segment's catalog lives on the coordinator: a query Citus runs on the workers cannot read it.".into(),
            Some(format!(
                "Pass the model by value, read on the coordinator: WITH m AS (SELECT segment_model('{model}') AS model) SELECT segment_assign(m.model, t) FROM <table> t, m;"
            )),
        )
    }
    raise(
        Code::ERRCODE_UNDEFINED_OBJECT,
        format!("model \"{model}\" does not exist"),
        Some(
            "List models with SELECT name FROM segment.models; train one with segment_train(...)."
                .into(),
        ),
    )
}

/// Whether this database is a Citus worker: Citus is installed and this node is not the
/// coordinator.
fn on_citus_worker() -> bool {
    let has = |sql: &str| spi::one::<bool>(sql, &[]).unwrap_or(false);
    has("SELECT pg_catalog.to_regprocedure('pg_catalog.citus_is_coordinator()') IS NOT NULL
            AND EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus')")
        && has("SELECT NOT pg_catalog.citus_is_coordinator()")
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
    /// A model just fitted (not read from the catalog): `encoder` and `centroids` (k x
    /// dim), whose rows are segments `segment_ids`; no labels yet.
    pub fn fitted(
        name: &str,
        version: i32,
        encoder: &FittedEncoder,
        centroids: ndarray::ArrayView2<f64>,
        segment_ids: &[i32],
    ) -> LoadedModel {
        let (k, dim) = centroids.dim();
        LoadedModel {
            name: name.to_string(),
            version,
            encoder: encoder.clone(),
            centroids: centroids.iter().copied().collect(),
            k,
            dim,
            segment_ids: segment_ids.to_vec(),
            labels: vec![None; k],
        }
    }

    /// The segment id of centroid row `index`.
    #[inline]
    pub fn segment_id(&self, index: usize) -> i32 {
        self.segment_ids[index]
    }

    /// The model as a self-contained text value, for plans that must use exactly the
    /// model they were planned with (see planner.rs). Floats round-trip exactly.
    pub fn to_plan_text(&self) -> String {
        self.to_plan_json().to_string()
    }

    /// [`LoadedModel::to_plan_text`] as a JSON value.
    pub fn to_plan_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "k": self.k,
            "dim": self.dim,
            "encoder": self.encoder.to_json(),
            "centroids": self.centroids,
            "segment_ids": self.segment_ids,
            "labels": self.labels,
        })
    }

    /// Read what [`LoadedModel::to_plan_text`] wrote, with the checks of [`load`].
    pub fn from_plan_text(model: &str, text: &str) -> LoadedModel {
        Self::parse_plan_text(model, text).unwrap_or_else(|reason| {
            raise(
                Code::ERRCODE_DATA_CORRUPTED,
                format!("model \"{model}\": the model in this plan is unusable: {reason}"),
                None,
            )
        })
    }

    /// [`LoadedModel::from_plan_text`], or why the text is not a usable model.
    pub fn parse_plan_text(model: &str, text: &str) -> Result<LoadedModel, String> {
        let v = serde_json::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())?;
        Self::from_plan_json(model, v)
    }

    /// A model from the JSON value of [`LoadedModel::to_plan_text`].
    pub fn from_plan_json(model: &str, mut v: serde_json::Value) -> Result<LoadedModel, String> {
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
        let int = |key: &str| -> Result<i32, String> {
            v[key]
                .as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| format!("no {key}"))
        };
        let row = Stored {
            version: int("version")?,
            k: int("k")?,
            dim: int("dim")?,
            encoder: v["encoder"].take(),
            centroids,
            segment_ids,
            labels,
        };
        decode(model, row)
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

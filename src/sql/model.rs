//! Loading a trained model version from the catalog (as the current role may see it),
//! and the model-lifecycle functions `segment_label`, `segment_drop`, `segment_grant`
//! and `segment_revoke`.
use super::error::{raise, Code};
use super::spi;
use crate::engine::encode::{FittedEncoder, MAX_ENCODED};
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
                        (SELECT pg_catalog.array_agg(s.label ORDER BY s.segment) FROM segment.segments s
                          WHERE s.model OPERATOR(pg_catalog.=) v.model
                            AND s.version OPERATOR(pg_catalog.=) v.version)
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
    Ok(LoadedModel {
        name: model.to_string(),
        version,
        encoder,
        centroids,
        k,
        dim,
        labels: row.labels,
    })
}

impl LoadedModel {
    /// The model as a self-contained text value, for plans that must use exactly the
    /// model they were planned with (see planner.rs). Floats round-trip exactly.
    pub fn to_plan_text(&self) -> String {
        serde_json::json!({
            "version": self.version,
            "k": self.k,
            "dim": self.dim,
            "encoder": self.encoder.to_json(),
            "centroids": self.centroids,
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
                Ok(Stored {
                    version: v["version"].as_i64().unwrap_or(0) as i32,
                    encoder: v["encoder"].take(),
                    centroids,
                    k: v["k"].as_i64().unwrap_or(0) as i32,
                    dim: v["dim"].as_i64().unwrap_or(0) as i32,
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

/// Raise 22004 for a NULL argument that needs a value.
#[track_caller]
pub fn require<T>(value: Option<T>, function: &str, argument: &str) -> T {
    value.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{function}: argument \"{argument}\" must not be NULL"),
            None,
        )
    })
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

/// Name segment `segment` (1-based) of the current version of `model`. The label is
/// kept by later versions that inherit the segment. Only members of the model's owner
/// role may relabel it. Returns the label; a NULL label removes it.
///
/// ```sql
/// SELECT segment_label('customers', 3, 'loyal big spenders');
/// ```
#[pg_extern(volatile)]
fn segment_label(model: Option<&str>, segment: Option<i32>, label: Option<&str>) -> Option<String> {
    let model = require(model, "segment_label", "model");
    let segment = require(segment, "segment_label", "segment");
    check_catalog_version();
    check_owner(model, "relabel");
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
    if updated.is_none() {
        let k = spi::one::<i32>(
            "SELECT v.k FROM segment.versions v
              WHERE v.model OPERATOR(pg_catalog.=) $1 AND v.version OPERATOR(pg_catalog.=) $2",
            &[model.into(), version.into()],
        )
        .unwrap_or(0);
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model \"{model}\" has no segment {segment}"),
            Some(format!("Segments are numbered 1 to {k}.")),
        )
    }
    label.map(str::to_string)
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
fn ownership(model: &str) -> Option<(String, bool)> {
    let (owner, owns) = spi::two::<String, bool>(
        "SELECT pg_catalog.pg_get_userbyid(o)::pg_catalog.text, pg_catalog.pg_has_role(o, 'MEMBER')
           FROM segment._model_owner($1) o WHERE o IS NOT NULL",
        &[model.into()],
    )?;
    Some((owner?, owns.unwrap_or(false)))
}

/// Drop `model`: its catalog rows (every version, segment, profile and grant) and its
/// assignment table. Only members of the owner role may. Returns true when dropped;
/// with `if_exists => true` a missing model returns false instead of an error.
///
/// ```sql
/// SELECT segment_drop('customers');
/// ```
#[pg_extern(volatile)]
fn segment_drop(model: Option<&str>, if_exists: default!(Option<bool>, false)) -> bool {
    let model = require(model, "segment_drop", "model");
    let if_exists = require(if_exists, "segment_drop", "if_exists");
    check_catalog_version();
    if if_exists && ownership(model).is_none() {
        return false;
    }
    check_owner(model, "drop");
    // The trigger on segment.models drops the assignment table with the row.
    spi::run(
        "DELETE FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
        &[model.into()],
    );
    invalidate_plans();
    true
}

#[pg_schema]
mod segment {
    use super::*;

    /// `segment_grant` (grant = true) and `segment_revoke`: let `role` (and its members)
    /// read `model` (its catalog rows, its assignment table, and assigning with it), or no
    /// longer. Only members of the model's owner role may. Returns true when something
    /// changed.
    #[pg_extern(volatile)]
    fn _grant(model: Option<&str>, role: Option<pg_sys::Oid>, grant: Option<bool>) -> bool {
        let grant = require(grant, "segment._grant", "grant");
        let function = if grant {
            "segment_grant"
        } else {
            "segment_revoke"
        };
        let model = require(model, function, "model");
        let role = require(role, function, "role");
        check_catalog_version();
        check_owner(model, if grant { "grant" } else { "revoke" });
        let role_name = spi::one::<String>(
            "SELECT pg_catalog.pg_get_userbyid($1)::pg_catalog.text",
            &[role.into()],
        )
        .filter(|n| !n.starts_with("unknown (OID="))
        .unwrap_or_else(|| {
            raise(
                Code::ERRCODE_UNDEFINED_OBJECT,
                format!("{function}: role with OID {} does not exist", role.to_u32()),
                None,
            )
        });
        let table = spi::one::<String>(
            "SELECT m.assignments FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
            &[model.into()],
        )
        .unwrap_or_else(|| no_such_model(model));
        let changed = if grant {
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
        .is_some();
        let sql = if grant {
            format!(
                "GRANT SELECT ON segment.{} TO {}",
                spi::ident(&table),
                spi::ident(&role_name)
            )
        } else {
            format!(
                "REVOKE SELECT ON segment.{} FROM {}",
                spi::ident(&table),
                spi::ident(&role_name)
            )
        };
        // The assignment table belongs to the extension's owner (see catalog.sql); the caller
        // was checked to own the model above.
        spi::as_extension_owner(&[], || spi::run(&sql, &[]));
        invalidate_plans();
        changed
    }
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION segment_grant(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT segment._grant(model, role::oid, true) $$;
COMMENT ON FUNCTION segment_grant(text, regrole) IS
    'Let a role (and its members) read a model: catalog rows, assignment table, segment_assign. Owner only.';
CREATE FUNCTION segment_revoke(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT segment._grant(model, role::oid, false) $$;
COMMENT ON FUNCTION segment_revoke(text, regrole) IS
    'Take back segment_grant: the role no longer reads the model. Owner only.';
COMMENT ON FUNCTION segment._grant(text, oid, boolean) IS
    'internal: segment_grant (true) and segment_revoke (false)';
"#,
    name = "grant_wrappers",
    requires = [segment::_grant],
);

/// Make every cached plan that may have read a model be planned again: plans that
/// rewrote `segment_assign` record segment.models among their relations (planner.rs),
/// so a relcache invalidation of that table, sent when this transaction commits,
/// reaches every session.
pub fn invalidate_plans() {
    if let Some(oid) = spi::one::<pg_sys::Oid>(
        "SELECT 'segment.models'::pg_catalog.regclass::pg_catalog.oid",
        &[],
    ) {
        // SAFETY: registers an invalidation message for an existing relation.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
}

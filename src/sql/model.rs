//! Loading a trained model version from the catalog, and the model-lifecycle functions
//! `segment_label` and `segment_drop`.
use super::error::{raise, Code};
use crate::engine::encode::FittedEncoder;
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

/// Load `model` at `version` (None = its current version).
pub fn load(model: &str, version: Option<i32>) -> LoadedModel {
    let row = Spi::connect(|client| {
        let exists = client
            .select(
                "SELECT current_version FROM segment.models WHERE name = $1",
                None,
                &[model.into()],
            )?
            .first()
            .get_one::<i32>();
        match exists {
            Ok(_) => {}
            Err(pgrx::spi::SpiError::InvalidPosition) => return Ok(None),
            Err(e) => return Err(e),
        }
        let t = client
            .select(
                "SELECT v.version, v.encoder::text, v.centroids, v.k, v.dim,
                        (SELECT array_agg(s.label ORDER BY s.segment) FROM segment.segments s
                          WHERE s.model = v.model AND s.version = v.version)
                   FROM segment.models m JOIN segment.versions v ON v.model = m.name
                  WHERE m.name = $1 AND v.version = coalesce($2, m.current_version)",
                None,
                &[model.into(), version.into()],
            )?
            .first();
        if t.is_empty() {
            return Ok(Some(None));
        }
        Ok::<_, pgrx::spi::SpiError>(Some(Some((
            t.get::<i32>(1)?.unwrap_or(0),
            t.get::<String>(2)?.unwrap_or_default(),
            t.get::<Vec<f64>>(3)?.unwrap_or_default(),
            t.get::<i32>(4)?.unwrap_or(0),
            t.get::<i32>(5)?.unwrap_or(0),
            t.get::<Vec<Option<String>>>(6)?.unwrap_or_default(),
        ))))
    })
    .unwrap_or_else(|e| {
        raise(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("reading model \"{model}\": {e}"),
            None,
        )
    });
    let Some(row) = row else { no_such_model(model) };
    let Some((version, enc, centroids, k, dim, labels)) = row else {
        raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("model \"{model}\" has no version {}", version.unwrap_or(0)),
            Some(format!(
                "See SELECT version FROM segment.versions WHERE model = '{model}';"
            )),
        )
    };
    let json: serde_json::Value = serde_json::from_str(&enc).unwrap_or(serde_json::Value::Null);
    let encoder = FittedEncoder::from_json(&json).unwrap_or_else(|e| {
        raise(
            Code::ERRCODE_DATA_CORRUPTED,
            format!("model \"{model}\" version {version}: stored encoder is unreadable: {e}"),
            None,
        )
    });
    let (k, dim) = (k as usize, dim as usize);
    if centroids.len() != k * dim || encoder.dim() != dim {
        raise(
            Code::ERRCODE_DATA_CORRUPTED,
            format!(
                "model \"{model}\" version {version}: centroids do not match k = {k}, dim = {dim}"
            ),
            None,
        );
    }
    LoadedModel {
        name: model.to_string(),
        version,
        encoder,
        centroids,
        k,
        dim,
        labels,
    }
}

/// Name segment `segment` (1-based) of the current version of `model`. The label is
/// kept by later versions that inherit the segment. Only members of the model's owner
/// role may relabel it. Returns the label.
///
/// ```sql
/// SELECT segment_label('customers', 3, 'loyal big spenders');
/// ```
#[pg_extern(volatile)]
fn segment_label(model: &str, segment: i32, label: Option<&str>) -> Option<String> {
    let current = Spi::get_one_with_args::<i32>(
        "SELECT current_version FROM segment.models WHERE name = $1",
        &[model.into()],
    );
    let version = match current {
        Ok(Some(v)) => v,
        _ => no_such_model(model),
    };
    check_owner(model, "relabel");
    let updated = Spi::get_one_with_args::<i32>(
        "UPDATE segment.segments SET label = $4 WHERE model = $1 AND version = $2 AND segment = $3 RETURNING segment",
        &[model.into(), version.into(), segment.into(), label.into()],
    );
    match updated {
        Ok(Some(_)) => label.map(str::to_string),
        _ => {
            let k = Spi::get_one_with_args::<i32>(
                "SELECT k FROM segment.versions WHERE model = $1 AND version = $2",
                &[model.into(), version.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(0);
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("model \"{model}\" has no segment {segment}"),
                Some(format!("Segments are numbered 1 to {k}.")),
            )
        }
    }
}

/// Raise 42501 unless the current role is a member of the model's owner.
pub fn check_owner(model: &str, action: &str) {
    let owns = Spi::get_one_with_args::<bool>(
        "SELECT pg_has_role(owner, 'MEMBER') FROM segment.models WHERE name = $1",
        &[model.into()],
    );
    match owns {
        Ok(Some(true)) => {}
        Ok(Some(false)) => {
            let owner = Spi::get_one_with_args::<String>(
                "SELECT owner::text FROM segment.models WHERE name = $1",
                &[model.into()],
            )
            .ok()
            .flatten()
            .unwrap_or_default();
            raise(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("must be a member of role \"{owner}\" to {action} model \"{model}\""),
                Some("Only the role that trained a model (or its members) may change it.".into()),
            )
        }
        _ => no_such_model(model),
    }
}

/// Drop `model`: its catalog rows (every version, segment and profile) and its
/// assignment table. Only members of the owner role may. Returns true when dropped;
/// with `if_exists => true` a missing model returns false instead of an error.
///
/// ```sql
/// SELECT segment_drop('customers');
/// ```
#[pg_extern(volatile)]
fn segment_drop(model: &str, if_exists: default!(bool, false)) -> bool {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT true FROM segment.models WHERE name = $1",
        &[model.into()],
    );
    if !matches!(exists, Ok(Some(true))) {
        if if_exists {
            return false;
        }
        no_such_model(model);
    }
    check_owner(model, "drop");
    Spi::run_with_args("SELECT segment._drop_assignments($1)", &[model.into()])
        .unwrap_or_else(|e| raise(Code::ERRCODE_INTERNAL_ERROR, e.to_string(), None));
    Spi::run_with_args(
        "DELETE FROM segment.models WHERE name = $1",
        &[model.into()],
    )
    .unwrap_or_else(|e| raise(Code::ERRCODE_INTERNAL_ERROR, e.to_string(), None));
    true
}

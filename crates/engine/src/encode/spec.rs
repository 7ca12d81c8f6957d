//! The `features` spec: public spec types (the grammar parser is in `parse.rs`), the
//! canonical writer ([`spec_to_json`]), the default spec and the checks against the
//! source's column kinds. The grammar is documented on the parent module.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::super::error::EngineError;
use super::stored::num_to_json;
use super::{bad, validate_spec, DEFAULT_ONE_HOT_TOP};

// ------------------------------------------------------------------------------------
// Public spec types
// ------------------------------------------------------------------------------------

/// What SQL type the source column has. `Bool` is treated as the text categories
/// `"true"` / `"false"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Any numeric SQL type (int2/4/8, float4/8, numeric), read as f64.
    Numeric,
    /// text, varchar, char, enum types, ...
    Text,
    /// boolean.
    Bool,
}

impl ColumnKind {
    /// Lower-case name used in messages and in the stored JSON.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Text => "text",
            ColumnKind::Bool => "bool",
        }
    }
}

/// How one feature is encoded. See the module doc for the exact formulas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoder {
    /// z-score with the population standard deviation.
    Standard,
    /// Scale to [0, 1] by the fitted min and max.
    MinMax,
    /// (x - median) / IQR.
    Robust,
    /// log1p, then z-score.
    LogStandard,
    /// Top-n categories by frequency + `(other)` + optional `(null)` column.
    OneHot {
        /// How many categories get their own column.
        top: usize,
        /// Whether NULL gets its own column (instead of the NULL policy).
        null_category: bool,
    },
    /// Rank in the given order, then z-score.
    Ordinal {
        /// The categories from lowest to highest.
        order: Vec<String>,
    },
    /// Bin index by fitted quantiles, then z-score.
    QuantileBins {
        /// Number of bins requested (merged bins can make it fewer).
        bins: usize,
    },
    /// The value as is.
    Passthrough,
}

impl Encoder {
    /// The encoder's name in the spec grammar.
    pub fn name(&self) -> &'static str {
        match self {
            Encoder::Standard => "standard",
            Encoder::MinMax => "min_max",
            Encoder::Robust => "robust",
            Encoder::LogStandard => "log_standard",
            Encoder::OneHot { .. } => "one_hot",
            Encoder::Ordinal { .. } => "ordinal",
            Encoder::QuantileBins { .. } => "quantile_bins",
            Encoder::Passthrough => "passthrough",
        }
    }

    /// True for encoders whose input is a category (one_hot, ordinal).
    pub fn is_categorical(&self) -> bool {
        matches!(self, Encoder::OneHot { .. } | Encoder::Ordinal { .. })
    }
}

/// What to do with NULL / NaN / ±Infinity in a feature. See the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    /// Raise an `Encode` error naming the feature and row (the default).
    Error,
    /// Impute the fitted mean.
    Mean,
    /// Impute the fitted median.
    Median,
    /// Impute the most frequent value or category.
    Mode,
    /// Impute a constant: a number for numeric encoders, a category (text; numbers and
    /// booleans are stringified) for one_hot and ordinal.
    Constant(Json),
    /// Impute the mean and add a 0/1 "is null" column.
    Indicator,
    /// Leave the row out.
    Skip,
}

impl NullPolicy {
    /// The policy's name in the spec grammar.
    pub fn name(&self) -> &'static str {
        match self {
            NullPolicy::Error => "error",
            NullPolicy::Mean => "mean",
            NullPolicy::Median => "median",
            NullPolicy::Mode => "mode",
            NullPolicy::Constant(_) => "constant",
            NullPolicy::Indicator => "indicator",
            NullPolicy::Skip => "skip",
        }
    }
}

/// One feature of a spec: source column name, encoder, NULL policy and weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Source column name (exact, case-sensitive).
    pub name: String,
    /// How the column is encoded.
    pub encoder: Encoder,
    /// What NULL / NaN / ±Infinity become.
    pub null_policy: NullPolicy,
    /// Weight (> 0): the encoded columns are multiplied by `sqrt(weight)`.
    pub weight: f64,
}

impl FeatureSpec {
    /// A spec with the default NULL policy (`error`) and weight 1.
    pub fn new(name: impl Into<String>, encoder: Encoder) -> Self {
        FeatureSpec {
            name: name.into(),
            encoder,
            null_policy: NullPolicy::Error,
            weight: 1.0,
        }
    }
}

/// The canonical spec JSON (the grammar above, every option spelled out) for `specs`.
/// [`parse_spec`] of the result gives `specs` back (sorted by name).
pub fn spec_to_json(specs: &[FeatureSpec]) -> Json {
    let mut m = Map::new();
    for s in specs {
        let mut f = Map::new();
        let (k, v) = encoder_to_json(&s.encoder);
        f.insert(k, v);
        f.insert("null".into(), null_policy_to_json(&s.null_policy));
        f.insert("weight".into(), num_to_json(s.weight));
        m.insert(s.name.clone(), Json::Object(f));
    }
    Json::Object(m)
}

pub(super) fn encoder_to_json(e: &Encoder) -> (String, Json) {
    let opts = match e {
        Encoder::OneHot { top, null_category } => {
            serde_json::json!({"top": top, "null_category": null_category})
        }
        Encoder::Ordinal { order } => serde_json::json!({ "order": order }),
        Encoder::QuantileBins { bins } => serde_json::json!({ "bins": bins }),
        _ => Json::Object(Map::new()),
    };
    (e.name().to_string(), opts)
}

pub(super) fn null_policy_to_json(p: &NullPolicy) -> Json {
    match p {
        NullPolicy::Constant(c) => serde_json::json!({ "constant": c }),
        other => Json::String(other.name().to_string()),
    }
}

/// The spec used when the user gives none: every numeric column `standard`, every
/// text / bool column `one_hot` (top 20 + other), NULL policy `error`, weight 1, the
/// `exclude` column (the id) left out. Sorted by name.
pub fn default_spec(columns: &[(String, ColumnKind)], exclude: &str) -> Vec<FeatureSpec> {
    let mut out: Vec<FeatureSpec> = columns
        .iter()
        .filter(|(name, _)| name != exclude)
        .map(|(name, kind)| {
            let encoder = match kind {
                ColumnKind::Numeric => Encoder::Standard,
                ColumnKind::Text | ColumnKind::Bool => Encoder::OneHot {
                    top: DEFAULT_ONE_HOT_TOP,
                    null_category: false,
                },
            };
            FeatureSpec::new(name.clone(), encoder)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Check every feature against the source's columns: a missing column, or a numeric
/// encoder on a text / bool column, is an `InvalidParameter` naming the feature.
/// (one_hot and ordinal accept every kind; numbers are stringified.) Also re-runs the
/// data-independent spec checks, so hand-built specs are validated too.
pub fn check_kinds(
    specs: &[FeatureSpec],
    columns: &[(String, ColumnKind)],
) -> Result<(), EngineError> {
    for s in specs {
        validate_spec(s)?;
        let Some((_, kind)) = columns.iter().find(|(n, _)| *n == s.name) else {
            let mut names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let more = names.len() > 12;
            names.truncate(12);
            return Err(bad(
                &s.name,
                format!(
                    "the source has no column \"{}\" (columns: {}{})",
                    s.name,
                    names.join(", "),
                    if more { ", ..." } else { "" }
                ),
            ));
        };
        check_kind(s, *kind)?;
    }
    Ok(())
}

pub(super) fn check_kind(s: &FeatureSpec, kind: ColumnKind) -> Result<(), EngineError> {
    if !s.encoder.is_categorical() && kind != ColumnKind::Numeric {
        return Err(bad(
            &s.name,
            format!(
                "encoder \"{}\" needs a numeric column, but \"{}\" is {}; use one_hot or ordinal for categories",
                s.encoder.name(),
                s.name,
                kind.name()
            ),
        ));
    }
    Ok(())
}

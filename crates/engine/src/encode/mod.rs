//! Feature encoding: the `features` spec grammar, column storage while rows are read,
//! fitting of scalers / one-hot / ordinal / quantile bins with per-feature NULL policies
//! and weights, batch and per-row transform, the inverse map to original units, and the
//! versioned JSON form of a fitted encoder that the catalog stores.
//!
//! Layout (one job per file): `columns.rs` raw column storage while rows are read and
//! the per-row [`Value`]; `model.rs` the fitted per-feature models and the column views
//! fit and transform share; `fit.rs` fitting ([`fit`]); `transform.rs` batch and per-row
//! transform and the inverse map ([`FittedEncoder`]); `spec.rs` the spec types, the
//! canonical writer, the default spec and the kind checks; `parse.rs` the grammar parser
//! and spec validation; `stats.rs` the scikit-learn / numpy compatible statistics;
//! `stored.rs` the catalog JSON. Tests live in `tests/` (one file per topic) and
//! compare against `crates/engine/fixtures/encode/*.json` (written by
//! `crates/engine/fixtures/make_encode_fixtures.py`).
//!
//! Threads: from [`PARALLEL_MIN_ROWS`] rows, [`fit`] fits the features on two threads
//! and [`FittedEncoder::transform`] encodes two halves of the rows on two threads
//! (`std::thread::scope`). The threads only read the columns and write their own part of
//! the output; they never call into Postgres. Results and errors are exactly the serial
//! ones.
//!
//! # The spec grammar
//!
//! A spec is a JSON object whose keys are source column names:
//!
//! ```text
//! spec     := { "<feature>": feature, ... }                  at least one feature
//! feature  := "<encoder>"                                    encoder with default options
//!           | { "<encoder>": options, "null": policy, "weight": w }   null, weight optional
//! encoder  := standard | min_max | robust | log_standard | one_hot | ordinal
//!           | quantile_bins | passthrough
//! options  := {} or null       standard, min_max, robust, log_standard, passthrough
//!           | {"top": n, "null_category": bool}      one_hot: n in 1..=1000 (default 20),
//!                                                    null_category default false
//!           | {"order": ["a", "b", ...]}             ordinal: required, non-empty, distinct
//!           | {"bins": n}                            quantile_bins: n in 2..=1000 (default 5)
//! policy   := "error" (default) | "mean" | "median" | "mode" | "indicator" | "skip"
//!           | {"constant": v}
//! w        := finite number > 0 (default 1)
//! ```
//!
//! Example: `{"age": "standard", "income": {"log_standard": {}, "null": "indicator"},
//! "region": {"one_hot": {"top": 5, "null_category": true}}, "tier": {"ordinal":
//! {"order": ["bronze", "silver", "gold"]}}, "score": {"standard": {}, "null": "mean",
//! "weight": 2.0}}`. The string form `"ordinal"` is rejected (it needs an order). Unknown
//! keys, unknown encoders and out-of-range options are `InvalidParameter` errors naming
//! the feature (and listing the valid encoders).
//!
//! **Feature order.** [`parse_spec`] and [`default_spec`] return features sorted by
//! name (byte order), so the encoded columns are laid out by feature name, whatever the
//! key order in the user's JSON.
//!
//! # Encoders (what one feature becomes)
//!
//! | encoder | columns | value |
//! |---|---|---|
//! | `standard` | 1 | `(x - mean) / std`, population std (sklearn `StandardScaler`); a (near-)constant column gets std 1 by sklearn's rule |
//! | `min_max` | 1 | `(x - min) / (max - min)` in sklearn `MinMaxScaler` form; range < 10·eps → 1 |
//! | `robust` | 1 | `(x - median) / IQR`, quartiles by numpy's linear percentile (sklearn `RobustScaler`); IQR < 10·eps → 1 |
//! | `log_standard` | 1 | `log1p(x)` then `standard`; a negative `x` is an `Encode` error |
//! | `quantile_bins` | 1 | bin index `0..b-1` by fitted quantile edges (sklearn `KBinsDiscretizer(strategy="quantile", quantile_method="linear", encode="ordinal")`: edges closer than 1e-8 are merged, a value equal to an inner edge goes to the upper bin, values outside the fitted range go to the first / last bin), then `standard` on the bin index |
//! | `ordinal` | 1 | position in `order` (`0..m-1`) then `standard` on that rank (sklearn `OrdinalEncoder` + `StandardScaler`); a value outside the order is an `Encode` error |
//! | `one_hot` | top + 1 (+1) | one 0/1 column per top-n category (sorted by text), then `(other)`, then `(null)` if `null_category` |
//! | `passthrough` | 1 | `x` unchanged |
//!
//! Ordinal and quantile bins are standardized so that, like `standard` features, they
//! have unit variance on the training rows and no feature dominates k-means by its units.
//! One-hot columns stay 0/1.
//!
//! **Top-n.** Categories are ranked by frequency on the training rows, ties broken by
//! category text ascending; the chosen top-n become columns in text order (stable when
//! frequencies reshuffle). `(other)` is always present and absorbs every category outside
//! the top-n, including categories never seen at fit time. This differs from sklearn's
//! `max_categories` only in tie-breaking at the boundary (sklearn keeps the later text).
//!
//! **Weight.** The encoded columns of a feature are multiplied by `sqrt(weight)`, so the
//! feature's contribution to squared Euclidean distance (and to k-means inertia) is
//! multiplied by `weight`: weight 2 counts the feature like two copies of it.
//!
//! **Column kinds.** Numeric encoders (`standard`, `min_max`, `robust`, `log_standard`,
//! `quantile_bins`, `passthrough`) need a numeric column. `one_hot` and `ordinal` accept
//! text, bool and numeric columns: booleans are the categories `"true"` / `"false"` and
//! numbers are stringified canonically (integral values below 2^53 without a fraction,
//! `3.0` → `"3"`; others in Rust's shortest round-trip form, `2.5` → `"2.5"`, `1e20` →
//! `"1e20"`), so `{"ordinal": {"order": ["1", "2", "3"]}}` works on an integer column.
//! At transform time a text or boolean value for a numeric encoder is an `Encode` error;
//! a number for a categorical encoder is stringified the same way.
//!
//! # NULL policies
//!
//! SQL NULL, NaN and ±Infinity are all "null" for a numeric column; SQL NULL is null for
//! text and bool columns (and NaN / ±Infinity for a numeric column under a categorical
//! encoder). Fitted statistics (mean, std, min, max, quantiles, category counts) ignore
//! nulls. Imputed values are computed in the feature's input units, before `log1p` or
//! binning (for `ordinal`, on the rank scale).
//!
//! | policy | numeric encoders, ordinal | one_hot |
//! |---|---|---|
//! | `error` | `Encode` error naming the feature and 0-based row | same; with `null_category` NULLs go to `(null)` instead |
//! | `mean` / `median` | impute the fitted mean / median | not allowed |
//! | `mode` | impute the most frequent value (ties: smallest) | the most frequent category (ties: text ascending) |
//! | `{"constant": v}` | impute `v` (a number; for ordinal a category of the order) | category `v` (unseen → `(other)`) |
//! | `indicator` | impute the mean and add a 0/1 column `name(is_null)` (present even when no NULL was seen) | not allowed |
//! | `skip` | the row is left out: not used to fit, not in the output; [`Encoded::skipped`] says which rows and why; [`FittedEncoder::transform_row`] returns `false` | same |
//!
//! `null_category: true` replaces the policy: combining it with anything but the
//! default `error` is rejected. A row skipped by a `skip` feature raises no error from
//! other features.
//!
//! # Output names
//!
//! `age`, `income(is_null)`, `region=north`, `region=(other)`, `region=(null)`.
//! (A category literally named `(other)` is not renamed.)
//!
//! # Stored form
//!
//! [`FittedEncoder::to_json`] writes `{"version": 1, "dim": d, "features": [...]}`;
//! each feature holds `name`, `kind`, `encoder` and `null` in the spec grammar above,
//! `weight`, and its fitted state: `center` / `scale` / `fill` (and `edges` for bins) for
//! single-column encoders, `categories` / `fill` for one-hot. A fitted float is written as
//! a JSON number when serde_json's default parser reads the number back bit-exactly,
//! otherwise as a string holding its shortest round-trip decimal (`"0.30000000000000004"`)
//! so a catalog round trip never changes a bit; readers accept either (`(j->>'center')::
//! float8` works for both). The derived `Serialize` / `Deserialize` use the same form.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

use crate::error::EngineError;
use crate::hash::FxHashMap;

/// Default number of one-hot categories kept (plus `(other)`).
pub const DEFAULT_ONE_HOT_TOP: usize = 20;
/// Default number of quantile bins (quintiles, as in RFM scoring).
pub const DEFAULT_QUANTILE_BINS: usize = 5;
/// Upper bound for `top` and `bins`, a guard against accidental huge encodings.
pub const MAX_CATEGORIES: usize = 1000;
/// Version of the JSON written by [`FittedEncoder::to_json`].
pub const ENCODER_JSON_VERSION: u64 = 1;
/// The largest magnitude an encoded value may have. Squared distances summed over
/// billions of rows and hundreds of columns stay far inside float8 below it, so k-means,
/// inertia and the metrics can never overflow to Infinity; a fitted encoder that would
/// produce larger values on its own training data is refused, naming the feature.
pub const MAX_ENCODED: f64 = 1e100;
/// The largest feature weight (its columns are multiplied by its square root).
pub const MAX_WEIGHT: f64 = 1e6;

/// The valid encoder names, as listed in error messages.
pub const VALID_ENCODERS: &str =
    "standard, min_max, robust, log_standard, one_hot, ordinal, quantile_bins, passthrough";

/// Row count from which [`fit`] and [`FittedEncoder::transform`] use two threads
/// (below it, thread start-up costs more than it saves).
pub const PARALLEL_MIN_ROWS: usize = 50_000;

/// Category index meaning "not among the fitted categories".
const NOT_FOUND: u32 = u32::MAX;

mod carry;
mod columns;
mod fit;
mod model;
mod parse;
mod spec;
pub(crate) mod stats;
mod stored;
#[cfg(test)]
mod tests;
mod transform;

pub(crate) use columns::NumText;
pub use columns::{spare_range, Encoded, RawColumn, RawColumns, Value, ZeroedMatrix};
pub use fit::fit;
pub use model::FittedEncoder;
pub use parse::parse_spec;
pub use spec::{
    check_kinds, default_spec, spec_to_json, ColumnKind, Encoder, FeatureSpec, NullPolicy,
};

#[allow(unused_imports)]
use {columns::*, fit::*, model::*, parse::*, spec::*, stats::*, stored::*};

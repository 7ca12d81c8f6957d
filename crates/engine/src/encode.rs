//! Feature encoding: the `features` spec grammar, column storage while rows are read,
//! fitting of scalers / one-hot / ordinal / quantile bins with per-feature NULL policies
//! and weights, batch and per-row transform, the inverse map to original units, and the
//! versioned JSON form of a fitted encoder that the catalog stores.
//!
//! Layout: this file holds raw column storage, fit, transform and the inverse map;
//! `encode/spec.rs` the spec types and grammar, `encode/stats.rs` the scikit-learn /
//! numpy compatible statistics, `encode/stored.rs` the catalog JSON. Tests live here and
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

use super::error::EngineError;
use super::hash::FxHashMap;

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

#[path = "encode/spec.rs"]
mod spec;
#[path = "encode/stats.rs"]
mod stats;
#[path = "encode/stored.rs"]
mod stored;

use spec::{bad, check_kind, constant_number, constant_text, validate_spec};
pub use spec::{
    check_kinds, default_spec, parse_spec, spec_to_json, ColumnKind, Encoder, FeatureSpec,
    NullPolicy,
};
use stats::{
    median_sorted, mode_sorted, nonzero_scale, percentile_sorted, quantile_edges, standard_stats,
    sum,
};

// ------------------------------------------------------------------------------------
// Raw column storage
// ------------------------------------------------------------------------------------

/// Raw column storage while reading rows: numeric as f64 (NULL stored as NaN: a numeric
/// column treats NULL, NaN and ±Infinity alike), text interned (`dict` holds each
/// distinct value once, `codes` index it).
#[derive(Debug, Clone, PartialEq)]
pub enum RawColumn {
    /// A numeric column; NULL is stored as NaN, and NaN / ±Infinity (as read) are
    /// treated as NULL later. 8 bytes a row.
    Numeric(Vec<f64>),
    /// A text or bool column.
    Text {
        /// Distinct values in first-seen order.
        dict: Vec<String>,
        /// One entry per row: index into `dict`, `None` = NULL.
        codes: Vec<Option<u32>>,
    },
}

impl RawColumn {
    fn len(&self) -> usize {
        match self {
            RawColumn::Numeric(v) => v.len(),
            RawColumn::Text { codes, .. } => codes.len(),
        }
    }
}

/// The reserved, unfilled part of `v`'s buffer as (address, bytes). Nothing is read or
/// written.
pub fn spare_range<T>(v: &mut Vec<T>) -> (usize, usize) {
    let s = v.spare_capacity_mut();
    (s.as_mut_ptr() as usize, std::mem::size_of_val(s))
}

/// Dictionaries up to this size are searched by a scan in [`RawColumns::push_text`].
const SCAN_DICT: usize = 8;

/// `s`'s code in `dict` when the dictionary is small enough to scan, else `None` (also
/// when not found: the caller then consults the hash map, which has every value).
#[inline]
fn small_dict_find(dict: &[String], s: &str) -> Option<u32> {
    if dict.len() > SCAN_DICT {
        return None;
    }
    dict.iter()
        .position(|d| d.len() == s.len() && d.as_bytes() == s.as_bytes())
        .map(|i| i as u32)
}

/// The source rows, column by column, one column per spec feature in spec order.
#[derive(Debug, Clone, Default)]
pub struct RawColumns {
    kinds: Vec<ColumnKind>,
    cols: Vec<RawColumn>,
    interners: Vec<FxHashMap<String, u32>>,
}

impl RawColumns {
    /// Empty storage with one column per kind (numeric kinds store f64, text and bool
    /// store interned text).
    pub fn new(kinds: &[ColumnKind]) -> Self {
        RawColumns {
            kinds: kinds.to_vec(),
            cols: kinds
                .iter()
                .map(|k| match k {
                    ColumnKind::Numeric => RawColumn::Numeric(Vec::new()),
                    _ => RawColumn::Text {
                        dict: Vec::new(),
                        codes: Vec::new(),
                    },
                })
                .collect(),
            interners: kinds.iter().map(|_| FxHashMap::default()).collect(),
        }
    }

    /// Reserve room for `additional` more rows in every column.
    pub fn reserve(&mut self, additional: usize) {
        for c in &mut self.cols {
            match c {
                RawColumn::Numeric(v) => v.reserve(additional),
                RawColumn::Text { codes, .. } => codes.reserve(additional),
            }
        }
    }

    /// Append a number (`None` = NULL) to numeric column `col`.
    ///
    /// # Panics
    /// If `col` is out of range or not a numeric column (a caller bug).
    pub fn push_num(&mut self, col: usize, v: Option<f64>) {
        match &mut self.cols[col] {
            RawColumn::Numeric(vals) => vals.push(v.unwrap_or(f64::NAN)),
            RawColumn::Text { .. } => panic!("push_num on text column {col}"),
        }
    }

    /// Append a text value (`None` = NULL) to text or bool column `col`, interning it.
    ///
    /// # Panics
    /// If `col` is out of range or a numeric column (a caller bug).
    pub fn push_text(&mut self, col: usize, v: Option<&str>) {
        let interner = &mut self.interners[col];
        let RawColumn::Text { dict, codes } = &mut self.cols[col] else {
            panic!("push_text on numeric column {col}");
        };
        // Small dictionaries (most categorical columns) are scanned: cheaper than
        // hashing the value. Either way a value's code is its first-seen position.
        let code = v.map(
            |s| match small_dict_find(dict, s).or_else(|| interner.get(s).copied()) {
                Some(c) => c,
                None => {
                    let c = u32::try_from(dict.len()).expect("more than 2^32 distinct values");
                    interner.insert(s.to_string(), c);
                    dict.push(s.to_string());
                    c
                }
            },
        );
        codes.push(code);
    }

    /// Append a boolean (`None` = NULL) as the text `"true"` / `"false"`.
    ///
    /// # Panics
    /// As [`RawColumns::push_text`].
    pub fn push_bool(&mut self, col: usize, v: Option<bool>) {
        self.push_text(col, v.map(bool_text));
    }

    /// Number of rows (of the first column; all columns have the same length when the
    /// caller pushes one value per column per row).
    pub fn n_rows(&self) -> usize {
        self.cols.first().map_or(0, RawColumn::len)
    }

    /// Number of columns.
    pub fn n_columns(&self) -> usize {
        self.cols.len()
    }

    /// Column `i`.
    pub fn column(&self, i: usize) -> &RawColumn {
        &self.cols[i]
    }

    /// The kinds given to [`RawColumns::new`].
    pub fn kinds(&self) -> &[ColumnKind] {
        &self.kinds
    }

    /// The reserved but not yet filled part of every column's buffer, as (address,
    /// bytes): for a caller that wants those pages faulted in ahead of the pushes (see
    /// `alloc::prefault`). Nothing is read or written here.
    pub fn spare_capacity(&mut self) -> Vec<(usize, usize)> {
        self.cols
            .iter_mut()
            .map(|c| match c {
                RawColumn::Numeric(v) => spare_range(v),
                RawColumn::Text { codes, .. } => spare_range(codes),
            })
            .collect()
    }

    /// Approximate heap bytes in use (for memory-budget checks while reading).
    pub fn heap_bytes(&self) -> usize {
        self.cols
            .iter()
            .map(|c| match c {
                RawColumn::Numeric(v) => v.capacity() * std::mem::size_of::<f64>(),
                RawColumn::Text { dict, codes } => {
                    codes.capacity() * std::mem::size_of::<Option<u32>>()
                        + dict.iter().map(|s| 2 * s.capacity() + 64).sum::<usize>()
                }
            })
            .sum()
    }
}

// ------------------------------------------------------------------------------------
// Values for the per-row path
// ------------------------------------------------------------------------------------

/// One input value for [`FittedEncoder::transform_row`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// A number (NaN / ±Infinity count as NULL).
    Num(f64),
    /// Text.
    Text(&'a str),
    /// A boolean (the category "true" / "false").
    Bool(bool),
}

/// Output of [`FittedEncoder::transform`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encoded {
    /// Row-major `kept_rows.len() × dim` matrix.
    pub matrix: Vec<f64>,
    /// Input row indices (0-based) of the matrix rows, ascending.
    pub kept_rows: Vec<usize>,
    /// Rows left out by a `skip` policy: (row, the first feature in feature order that
    /// was NULL).
    pub skipped: Vec<(usize, String)>,
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Canonical text of a number for categorical encoders, formatted on the stack.
struct NumText {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for NumText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let b = s.as_bytes();
        let end = self.len + b.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

impl NumText {
    fn new() -> Self {
        NumText {
            buf: [0; 40],
            len: 0,
        }
    }

    /// `3.0` → "3", `-0.0` → "0", `2.5` → "2.5", `1e20` → "1e20". `v` must be finite.
    fn format(&mut self, v: f64) -> &str {
        self.len = 0;
        let r = if v == v.trunc() && v.abs() < 9_007_199_254_740_992.0 {
            write!(self, "{}", v as i64)
        } else {
            write!(self, "{v:?}")
        };
        debug_assert!(r.is_ok());
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

// ------------------------------------------------------------------------------------
// Fitted state
// ------------------------------------------------------------------------------------

/// A list of categories with a lookup from text to position.
#[derive(Debug, Clone, PartialEq)]
struct CatIndex {
    values: Vec<String>,
    lookup: FxHashMap<String, u32>,
}

/// Most categories looked up by a scan rather than the hash map (measured faster for a
/// handful of short values, the usual case).
const SCAN_CATS: usize = 8;

impl CatIndex {
    fn new(values: Vec<String>) -> Self {
        let lookup = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
        CatIndex { values, lookup }
    }

    #[inline]
    fn get(&self, s: &str) -> u32 {
        // Values are unique, so the scan finds what the map would.
        if self.values.len() <= SCAN_CATS {
            return self
                .values
                .iter()
                .position(|v| {
                    // The first byte rules most candidates out without a memcmp call.
                    let (v, s) = (v.as_bytes(), s.as_bytes());
                    v.len() == s.len() && v.first() == s.first() && v == s
                })
                .map_or(NOT_FOUND, |i| i as u32);
        }
        self.lookup.get(s).copied().unwrap_or(NOT_FOUND)
    }
}

/// What happens to the input before the affine map.
#[derive(Debug, Clone, PartialEq)]
enum Pre {
    Identity,
    Log1p,
    /// Quantile bin edges (ascending, at least two).
    Bins(Vec<f64>),
    /// Ordinal: the input is a category, mapped to its rank.
    Rank(CatIndex),
}

/// A single-column feature: `out = (pre(x) - center) / scale * sqrt(w)`
/// (min_max in sklearn's `x * (1/scale) - center * (1/scale)` form).
#[derive(Debug, Clone, PartialEq)]
struct NumModel {
    pre: Pre,
    center: f64,
    scale: f64,
    /// Imputed value in input units (rank for ordinal).
    fill: Option<f64>,
    indicator: bool,
    // derived
    min_max: bool,
    inv_scale: f64,
    fill_out: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct OneHotModel {
    /// Top-n categories in text order.
    cats: CatIndex,
    fill: Option<String>,
    null_category: bool,
    // derived: column (relative to the feature) that an imputed NULL goes to
    fill_col: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Model {
    Num(NumModel),
    OneHot(OneHotModel),
}

#[derive(Debug, Clone, PartialEq)]
struct Fitted {
    spec: FeatureSpec,
    kind: ColumnKind,
    model: Model,
    // derived
    sw: f64,
    offset: usize,
    width: usize,
}

/// A fitted encoder: the per-feature statistics needed to encode rows the way the
/// training rows were encoded. Store it with [`FittedEncoder::to_json`].
#[derive(Debug, Clone, PartialEq)]
pub struct FittedEncoder {
    features: Vec<Fitted>,
    dim: usize,
    skip_features: Vec<usize>,
}

/// A reason one value could not be encoded (turned into an `EngineError` by the caller,
/// which knows the row and the value's text).
#[derive(Debug, Clone, Copy)]
enum Fail {
    Null,
    Negative(f64),
    Unknown,
}

/// One value after type dispatch.
#[derive(Debug, Clone, Copy)]
enum In {
    Null,
    Num(f64),
    /// Category index in the fitted categories, or NOT_FOUND.
    Cat(u32),
}

impl NumModel {
    fn finish(&mut self, sw: f64, min_max: bool) {
        self.min_max = min_max;
        self.inv_scale = 1.0 / self.scale;
        self.fill_out = match self.fill {
            Some(x) => self.encode_value(x) * sw,
            None => 0.0,
        };
    }

    #[inline]
    fn pre(&self, x: f64) -> f64 {
        match &self.pre {
            Pre::Identity | Pre::Rank(_) => x,
            Pre::Log1p => x.ln_1p(),
            Pre::Bins(edges) => bin_index(edges, x) as f64,
        }
    }

    #[inline]
    fn encode_value(&self, x: f64) -> f64 {
        let t = self.pre(x);
        if self.min_max {
            t * self.inv_scale + (0.0 - self.center * self.inv_scale)
        } else {
            (t - self.center) / self.scale
        }
    }
}

/// sklearn's `searchsorted(edges[1:-1], x, side="right")`.
#[inline]
fn bin_index(edges: &[f64], x: f64) -> usize {
    let inner = &edges[1..edges.len() - 1];
    inner.partition_point(|e| *e <= x)
}

impl Fitted {
    #[inline(always)]
    fn encode(&self, inp: In, out: &mut [f64]) -> Result<(), Fail> {
        let o = &mut out[self.offset..self.offset + self.width];
        match &self.model {
            Model::Num(m) => {
                let x = match inp {
                    In::Num(v) => v,
                    In::Cat(c) if c != NOT_FOUND => c as f64,
                    In::Cat(_) => return Err(Fail::Unknown),
                    In::Null => {
                        if m.fill.is_none() {
                            return Err(Fail::Null);
                        }
                        o[0] = m.fill_out;
                        if m.indicator {
                            o[1] = self.sw;
                        }
                        return Ok(());
                    }
                };
                if matches!(m.pre, Pre::Log1p) && x < 0.0 {
                    return Err(Fail::Negative(x));
                }
                o[0] = m.encode_value(x) * self.sw;
                if m.indicator {
                    o[1] = 0.0;
                }
                Ok(())
            }
            Model::OneHot(m) => {
                let n = m.cats.values.len();
                let col = match inp {
                    In::Cat(c) if c != NOT_FOUND => c as usize,
                    In::Cat(_) => n,
                    In::Num(_) => n, // not produced: numbers are looked up as text
                    In::Null => {
                        if m.null_category {
                            n + 1
                        } else {
                            m.fill_col.ok_or(Fail::Null)?
                        }
                    }
                };
                o.fill(0.0);
                o[col] = self.sw;
                Ok(())
            }
        }
    }

    /// The categories a categorical feature looks values up in.
    fn cat_index(&self) -> Option<&CatIndex> {
        match &self.model {
            Model::OneHot(m) => Some(&m.cats),
            Model::Num(NumModel {
                pre: Pre::Rank(idx),
                ..
            }) => Some(idx),
            _ => None,
        }
    }

    fn error(&self, row: Option<usize>, fail: Fail, text: Option<&str>) -> EngineError {
        let reason = match fail {
            Fail::Null => format!(
                "NULL (or NaN / Infinity) value{} and the NULL policy is \"error\"",
                row.map(|r| format!(" in row {r}")).unwrap_or_default()
            ),
            Fail::Negative(v) => format!(
                "log_standard needs values >= 0, got {v}{}",
                row.map(|r| format!(" in row {r}")).unwrap_or_default()
            ),
            Fail::Unknown => {
                let order = match &self.spec.encoder {
                    Encoder::Ordinal { order } => order.join(", "),
                    _ => String::new(),
                };
                format!(
                    "value \"{}\"{} is not in the ordinal order [{order}]",
                    text.unwrap_or("?"),
                    row.map(|r| format!(" in row {r}")).unwrap_or_default()
                )
            }
        };
        EngineError::Encode {
            feature: self.spec.name.clone(),
            row,
            reason,
        }
    }

    fn output_names(&self, out: &mut Vec<String>) {
        let name = &self.spec.name;
        match &self.model {
            Model::Num(m) => {
                out.push(name.clone());
                if m.indicator {
                    out.push(format!("{name}(is_null)"));
                }
            }
            Model::OneHot(m) => {
                for c in &m.cats.values {
                    out.push(format!("{name}={c}"));
                }
                out.push(format!("{name}=(other)"));
                if m.null_category {
                    out.push(format!("{name}=(null)"));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// Column views shared by fit and transform
// ------------------------------------------------------------------------------------

/// A column seen as categories: numbers are stringified, NaN / ±Infinity are NULL.
struct CatView<'a> {
    dict: Cow<'a, [String]>,
    codes: Cow<'a, [Option<u32>]>,
}

fn cat_view(col: &RawColumn) -> CatView<'_> {
    match col {
        RawColumn::Text { dict, codes } => CatView {
            dict: Cow::Borrowed(dict),
            codes: Cow::Borrowed(codes),
        },
        RawColumn::Numeric(vals) => {
            let mut ids: HashMap<u64, u32> = HashMap::new();
            let mut dict = Vec::new();
            let mut buf = NumText::new();
            let codes = vals
                .iter()
                .map(|&x| match x {
                    x if x.is_finite() => {
                        let x = if x == 0.0 { 0.0 } else { x };
                        Some(*ids.entry(x.to_bits()).or_insert_with(|| {
                            dict.push(buf.format(x).to_string());
                            (dict.len() - 1) as u32
                        }))
                    }
                    _ => None,
                })
                .collect();
            CatView {
                dict: Cow::Owned(dict),
                codes: Cow::Owned(codes),
            }
        }
    }
}

/// A column prepared for one fitted feature.
enum Src<'a> {
    Num(&'a [f64]),
    Cat {
        codes: Cow<'a, [Option<u32>]>,
        dict: Cow<'a, [String]>,
        /// Fitted category index per dict code.
        slot: Vec<u32>,
    },
}

impl Src<'_> {
    #[inline]
    fn get(&self, r: usize) -> In {
        match self {
            Src::Num(v) => match v[r] {
                x if x.is_finite() => In::Num(x),
                _ => In::Null,
            },
            Src::Cat { codes, slot, .. } => match codes[r] {
                Some(c) => In::Cat(slot[c as usize]),
                None => In::Null,
            },
        }
    }

    fn text(&self, r: usize) -> Option<&str> {
        match self {
            Src::Cat { codes, dict, .. } => codes[r].map(|c| dict[c as usize].as_str()),
            Src::Num(_) => None,
        }
    }
}

fn is_null_in(i: In) -> bool {
    matches!(i, In::Null)
}

// ------------------------------------------------------------------------------------
// Fit
// ------------------------------------------------------------------------------------

/// Fit the encoder on the training rows. `data` has one column per spec, in spec
/// order. Rows with a NULL in a `skip` feature are left out of every statistic.
///
/// With at least [`PARALLEL_MIN_ROWS`] training rows the features are fitted on two
/// threads; the fitted parameters (and any error) are exactly those of a serial fit.
pub fn fit(specs: &[FeatureSpec], data: &RawColumns) -> Result<FittedEncoder, EngineError> {
    fit_impl(specs, data, PARALLEL_MIN_ROWS)
}

/// [`fit`], on two threads from `parallel_min_rows` kept rows (same result either way).
fn fit_impl(
    specs: &[FeatureSpec],
    data: &RawColumns,
    parallel_min_rows: usize,
) -> Result<FittedEncoder, EngineError> {
    if specs.is_empty() {
        return Err(EngineError::NoFeatures);
    }
    if data.n_columns() != specs.len() {
        return Err(EngineError::Internal(format!(
            "encode::fit: {} specs but {} data columns",
            specs.len(),
            data.n_columns()
        )));
    }
    let n = data.n_rows();
    if let Some(i) = (0..data.n_columns()).find(|&i| data.column(i).len() != n) {
        return Err(EngineError::Internal(format!(
            "encode::fit: column {i} has {} rows, column 0 has {n}",
            data.column(i).len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (s, kind) in specs.iter().zip(data.kinds()) {
        validate_spec(s)?;
        check_kind(s, *kind)?;
        if !seen.insert(s.name.as_str()) {
            return Err(bad(&s.name, "the feature is listed twice"));
        }
    }
    if n == 0 {
        return Err(EngineError::NoRows);
    }

    // Rows left out by skip policies.
    let mut skipped = vec![false; n];
    for (i, s) in specs.iter().enumerate() {
        if s.null_policy == NullPolicy::Skip {
            let col = data.column(i);
            for (r, sk) in skipped.iter_mut().enumerate() {
                *sk |= match col {
                    RawColumn::Numeric(v) => !v[r].is_finite(),
                    RawColumn::Text { codes, .. } => codes[r].is_none(),
                };
            }
        }
    }
    let kept: Vec<usize> = (0..n).filter(|&r| !skipped[r]).collect();
    if kept.is_empty() {
        return Err(EngineError::NoRows);
    }

    let fit_one = |i: usize| {
        let s = &specs[i];
        let col = data.column(i);
        match &s.encoder {
            Encoder::OneHot { top, null_category } => {
                fit_one_hot(s, *top, *null_category, col, &kept).map(Model::OneHot)
            }
            _ => fit_numeric(s, col, &kept).map(Model::Num),
        }
    };
    let models = if specs.len() > 1 && kept.len() >= parallel_min_rows {
        // Features are independent and each fit is deterministic, so fitting them on
        // two threads and then taking the first error in feature order gives exactly
        // the serial result.
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                if i >= specs.len() {
                    return done;
                }
                done.push((i, fit_one(i)));
            }
        };
        let mut slots: Vec<Option<Result<Model, EngineError>>> = vec![None; specs.len()];
        let (mine, theirs) = std::thread::scope(|sc| {
            let h = sc.spawn(work);
            (work(), h.join())
        });
        let theirs = theirs.unwrap_or_else(|p| std::panic::resume_unwind(p));
        for (i, r) in mine.into_iter().chain(theirs) {
            slots[i] = Some(r);
        }
        slots
            .into_iter()
            .map(|r| r.expect("every feature fitted"))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        (0..specs.len())
            .map(fit_one)
            .collect::<Result<Vec<_>, _>>()?
    };
    let features = specs
        .iter()
        .zip(models)
        .enumerate()
        .map(|(i, (s, model))| Fitted {
            spec: s.clone(),
            kind: data.kinds()[i],
            model,
            sw: 1.0,
            offset: 0,
            width: 0,
        })
        .collect();
    Ok(FittedEncoder::assemble(features))
}

fn fit_numeric(s: &FeatureSpec, col: &RawColumn, kept: &[usize]) -> Result<NumModel, EngineError> {
    let name = s.name.as_str();
    let null_err = |r: usize| EngineError::Encode {
        feature: name.to_string(),
        row: Some(r),
        reason: format!(
            "NULL (or NaN / Infinity) value in row {r} and the NULL policy is \"error\""
        ),
    };
    // Collect the non-null input values (ranks for ordinal).
    let mut vals = Vec::with_capacity(kept.len());
    let mut rank_index = None;
    match (&s.encoder, col) {
        (Encoder::Ordinal { order }, _) => {
            let idx = CatIndex::new(order.clone());
            let view = cat_view(col);
            let ranks: Vec<u32> = view.dict.iter().map(|t| idx.get(t)).collect();
            for &r in kept {
                match view.codes[r] {
                    None if s.null_policy == NullPolicy::Error => return Err(null_err(r)),
                    None => {}
                    Some(c) => {
                        let rank = ranks[c as usize];
                        if rank == NOT_FOUND {
                            return Err(EngineError::Encode {
                                feature: name.to_string(),
                                row: Some(r),
                                reason: format!(
                                    "value \"{}\" in row {r} is not in the ordinal order [{}]",
                                    view.dict[c as usize],
                                    order.join(", ")
                                ),
                            });
                        }
                        vals.push(rank as f64);
                    }
                }
            }
            rank_index = Some(idx);
        }
        (_, RawColumn::Numeric(col)) => {
            let log = s.encoder == Encoder::LogStandard;
            for &r in kept {
                match col[r] {
                    x if x.is_finite() => {
                        if log && x < 0.0 {
                            return Err(EngineError::Encode {
                                feature: name.to_string(),
                                row: Some(r),
                                reason: format!(
                                    "log_standard needs values >= 0, got {x} in row {r}"
                                ),
                            });
                        }
                        vals.push(x);
                    }
                    _ if s.null_policy == NullPolicy::Error => return Err(null_err(r)),
                    _ => {}
                }
            }
        }
        (_, RawColumn::Text { .. }) => {
            return Err(EngineError::Internal(format!(
                "encode::fit: numeric encoder on text column \"{name}\""
            )))
        }
    }
    let no_values = |what: &str| EngineError::Encode {
        feature: name.to_string(),
        row: None,
        reason: format!("every training value is NULL; cannot compute the {what}"),
    };
    // order statistics only where needed (median / mode fill, robust, bins)
    let needs_order = matches!(s.null_policy, NullPolicy::Median | NullPolicy::Mode)
        || matches!(s.encoder, Encoder::Robust | Encoder::QuantileBins { .. });
    let mut sorted = if needs_order {
        vals.clone()
    } else {
        Vec::new()
    };
    sorted.sort_unstable_by(f64::total_cmp);

    let fill = match &s.null_policy {
        NullPolicy::Error | NullPolicy::Skip => None,
        NullPolicy::Mean | NullPolicy::Indicator => {
            if vals.is_empty() {
                return Err(no_values("mean"));
            }
            Some(sum(&vals) / vals.len() as f64)
        }
        NullPolicy::Median => {
            if vals.is_empty() {
                return Err(no_values("median"));
            }
            Some(median_sorted(&sorted))
        }
        NullPolicy::Mode => {
            if vals.is_empty() {
                return Err(no_values("mode"));
            }
            Some(mode_sorted(&sorted))
        }
        NullPolicy::Constant(c) => match &rank_index {
            Some(idx) => Some(idx.get(&constant_text(name, c)?) as f64),
            None => constant_number(s)?,
        },
    };

    if vals.is_empty() && s.encoder != Encoder::Passthrough {
        return Err(no_values("scaling statistics"));
    }
    let pre = match &s.encoder {
        Encoder::LogStandard => Pre::Log1p,
        Encoder::QuantileBins { bins } => Pre::Bins(quantile_edges(&sorted, *bins)),
        Encoder::Ordinal { .. } => Pre::Rank(rank_index.take().expect("ordinal index")),
        _ => Pre::Identity,
    };
    let (center, scale) = match &s.encoder {
        Encoder::Passthrough => (0.0, 1.0),
        Encoder::MinMax => {
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, nonzero_scale(hi - lo))
        }
        Encoder::Robust => {
            let q25 = percentile_sorted(&sorted, 25.0);
            let q75 = percentile_sorted(&sorted, 75.0);
            (median_sorted(&sorted), nonzero_scale(q75 - q25))
        }
        Encoder::LogStandard => standard_stats(&vals.iter().map(|x| x.ln_1p()).collect::<Vec<_>>()),
        Encoder::QuantileBins { .. } => {
            let Pre::Bins(edges) = &pre else {
                unreachable!()
            };
            standard_stats(
                &vals
                    .iter()
                    .map(|x| bin_index(edges, *x) as f64)
                    .collect::<Vec<_>>(),
            )
        }
        _ => standard_stats(&vals),
    };
    let model = NumModel {
        pre,
        center,
        scale,
        fill,
        indicator: s.null_policy == NullPolicy::Indicator,
        min_max: false,
        inv_scale: 1.0,
        fill_out: 0.0,
    };
    check_encoded_range(s, &model, &vals)?;
    Ok(model)
}

/// Refuse a fitted numeric feature whose parameters are not finite, or whose encoded
/// training values (the extremes, as every encoder is monotone) or imputed value would
/// exceed [`MAX_ENCODED`]: e.g. `min_max` over 1e308 and -1e308, whose range overflows,
/// or `passthrough` of values near float8's limit.
fn check_encoded_range(s: &FeatureSpec, model: &NumModel, vals: &[f64]) -> Result<(), EngineError> {
    let mut m = model.clone();
    let sw = s.weight.sqrt();
    m.finish(sw, s.encoder == Encoder::MinMax);
    let fail = |what: String| EngineError::Encode {
        feature: s.name.clone(),
        row: None,
        reason: what,
    };
    if !(m.center.is_finite() && m.scale.is_finite() && m.scale > 0.0 && m.inv_scale.is_finite()) {
        return Err(fail(format!(
            "the {} encoder's statistics overflow float8 (center {:e}, scale {:e}): the values span too wide a range",
            s.encoder.name(),
            m.center,
            m.scale
        )));
    }
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut extremes = vec![m.fill_out];
    if lo <= hi {
        extremes.push(m.encode_value(lo) * sw);
        extremes.push(m.encode_value(hi) * sw);
    }
    if let Some(v) = extremes
        .into_iter()
        .find(|v| !(v.is_finite() && v.abs() <= MAX_ENCODED))
    {
        return Err(fail(format!(
            "encoded values reach {v:e}, beyond the {MAX_ENCODED:e} pg_segment allows (encoder {}, weight {})",
            s.encoder.name(),
            s.weight
        )));
    }
    Ok(())
}

fn fit_one_hot(
    s: &FeatureSpec,
    top: usize,
    null_category: bool,
    col: &RawColumn,
    kept: &[usize],
) -> Result<OneHotModel, EngineError> {
    let view = cat_view(col);
    let mut counts = vec![0u64; view.dict.len()];
    for &r in kept {
        match view.codes[r] {
            Some(c) => counts[c as usize] += 1,
            None if null_category => {}
            None if s.null_policy == NullPolicy::Error => {
                return Err(EngineError::Encode {
                    feature: s.name.clone(),
                    row: Some(r),
                    reason: format!(
                        "NULL value in row {r} and the NULL policy is \"error\" (set \"null_category\": true or a NULL policy)"
                    ),
                })
            }
            None => {}
        }
    }
    let mut ranked: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
    ranked.sort_unstable_by(|&a, &b| {
        counts[b]
            .cmp(&counts[a])
            .then_with(|| view.dict[a].cmp(&view.dict[b]))
    });
    let fill = match &s.null_policy {
        NullPolicy::Mode => match ranked.first() {
            Some(&c) => Some(view.dict[c].clone()),
            None => {
                return Err(EngineError::Encode {
                    feature: s.name.clone(),
                    row: None,
                    reason: "every training value is NULL; cannot compute the mode".into(),
                })
            }
        },
        NullPolicy::Constant(c) => Some(constant_text(&s.name, c)?),
        _ => None,
    };
    let mut cats: Vec<String> = ranked
        .iter()
        .take(top)
        .map(|&c| view.dict[c].clone())
        .collect();
    cats.sort_unstable();
    Ok(OneHotModel {
        cats: CatIndex::new(cats),
        fill,
        null_category,
        fill_col: None,
    })
}

// ------------------------------------------------------------------------------------
// FittedEncoder
// ------------------------------------------------------------------------------------

impl FittedEncoder {
    /// Compute the derived fields (layout, sqrt weights, encoded fills).
    fn assemble(mut features: Vec<Fitted>) -> Self {
        let mut offset = 0;
        let mut skip_features = Vec::new();
        for (i, f) in features.iter_mut().enumerate() {
            f.sw = f.spec.weight.sqrt();
            f.offset = offset;
            match &mut f.model {
                Model::Num(m) => {
                    m.finish(f.sw, f.spec.encoder == Encoder::MinMax);
                    f.width = 1 + usize::from(m.indicator);
                }
                Model::OneHot(m) => {
                    let n = m.cats.values.len();
                    m.fill_col = m.fill.as_deref().map(|t| match m.cats.get(t) {
                        NOT_FOUND => n,
                        c => c as usize,
                    });
                    f.width = n + 1 + usize::from(m.null_category);
                }
            }
            offset += f.width;
            if f.spec.null_policy == NullPolicy::Skip {
                skip_features.push(i);
            }
        }
        FittedEncoder {
            features,
            dim: offset,
            skip_features,
        }
    }

    /// Number of encoded columns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Input feature (source column) names, in feature order.
    pub fn feature_names(&self) -> Vec<&str> {
        self.features.iter().map(|f| f.spec.name.as_str()).collect()
    }

    /// The source column kind of each feature, as seen at fit time.
    pub fn feature_kinds(&self) -> Vec<ColumnKind> {
        self.features.iter().map(|f| f.kind).collect()
    }

    /// The spec of each feature, in feature order.
    pub fn specs(&self) -> Vec<FeatureSpec> {
        self.features.iter().map(|f| f.spec.clone()).collect()
    }

    /// Encoded column names: `age`, `income(is_null)`, `region=north`,
    /// `region=(other)`, `region=(null)`.
    pub fn output_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.dim);
        for f in &self.features {
            f.output_names(&mut out);
        }
        out
    }

    /// `(first encoded column, number of columns)` of input feature `feature`.
    pub fn output_range(&self, feature: usize) -> Option<(usize, usize)> {
        self.features.get(feature).map(|f| (f.offset, f.width))
    }

    /// Encode every row of `data` (one column per feature, in feature order). Rows with
    /// a NULL in a `skip` feature are left out and listed in [`Encoded::skipped`]. The
    /// first failing value (feature by feature within a row, rows in order) is
    /// returned as an `Encode` error with its 0-based row.
    ///
    /// With at least [`PARALLEL_MIN_ROWS`] kept rows the rows are encoded on two
    /// threads (two contiguous halves); the result, error included, is exactly the
    /// serial one.
    pub fn transform(&self, data: &RawColumns) -> Result<Encoded, EngineError> {
        self.transform_impl(data, PARALLEL_MIN_ROWS)
    }

    /// Encode rows `rows` into `out` (`rows.len() × dim`, row-major), returning the
    /// error of the first failing value. With `stop`, gives up (returning `Ok`) once
    /// `stop` is set, checked every few thousand rows.
    fn encode_rows(
        &self,
        srcs: &[Src<'_>],
        rows: &[usize],
        out: &mut [f64],
        stop: Option<&AtomicBool>,
    ) -> Result<(), EngineError> {
        const CHECK_EVERY: usize = 4096;
        let dim = self.dim;
        for (block, rows) in out
            .chunks_mut(CHECK_EVERY * dim)
            .zip(rows.chunks(CHECK_EVERY))
        {
            if stop.is_some_and(|s| s.load(AtomicOrdering::Relaxed)) {
                return Ok(());
            }
            for (o, &r) in block.chunks_exact_mut(dim).zip(rows) {
                for (f, src) in self.features.iter().zip(srcs) {
                    if let Err(fail) = f.encode(src.get(r), o) {
                        return Err(f.error(Some(r), fail, src.text(r)));
                    }
                }
            }
        }
        Ok(())
    }

    /// [`FittedEncoder::transform`], on two threads from `parallel_min_rows` kept rows.
    fn transform_impl(
        &self,
        data: &RawColumns,
        parallel_min_rows: usize,
    ) -> Result<Encoded, EngineError> {
        if data.n_columns() != self.features.len() {
            return Err(EngineError::DimensionMismatch {
                expected: self.features.len(),
                got: data.n_columns(),
            });
        }
        let n = data.n_rows();
        let mut srcs = Vec::with_capacity(self.features.len());
        for (i, f) in self.features.iter().enumerate() {
            let col = data.column(i);
            if col.len() != n {
                return Err(EngineError::Internal(format!(
                    "encode::transform: column {i} has {} rows, column 0 has {n}",
                    col.len()
                )));
            }
            srcs.push(match (f.cat_index(), col) {
                (None, RawColumn::Numeric(v)) => Src::Num(v),
                (None, RawColumn::Text { .. }) => {
                    return Err(EngineError::Encode {
                        feature: f.spec.name.clone(),
                        row: None,
                        reason: format!(
                            "encoder \"{}\" needs a numeric column, got {}",
                            f.spec.encoder.name(),
                            data.kinds()[i].name()
                        ),
                    })
                }
                (Some(idx), col) => {
                    let v = cat_view(col);
                    let slot = v.dict.iter().map(|t| idx.get(t)).collect();
                    Src::Cat {
                        codes: v.codes,
                        dict: v.dict,
                        slot,
                    }
                }
            });
        }

        let mut skip_by: Vec<Option<u32>> = Vec::new();
        if !self.skip_features.is_empty() {
            skip_by = vec![None; n];
            for &i in &self.skip_features {
                let src = &srcs[i];
                for (r, s) in skip_by.iter_mut().enumerate() {
                    if s.is_none() && is_null_in(src.get(r)) {
                        *s = Some(i as u32);
                    }
                }
            }
        }
        let mut kept_rows = Vec::with_capacity(n);
        let mut skipped = Vec::new();
        if skip_by.is_empty() {
            kept_rows.extend(0..n);
        } else {
            for (r, s) in skip_by.iter().enumerate() {
                match s {
                    None => kept_rows.push(r),
                    Some(i) => skipped.push((r, self.features[*i as usize].spec.name.clone())),
                }
            }
        }

        let dim = self.dim;
        let m = kept_rows.len();
        let mut matrix = vec![0.0; m * dim];
        if dim > 0 && m >= parallel_min_rows.max(2) {
            // Two contiguous halves, one per thread. The lower half runs on this thread:
            // its first error (if any) is the lowest failing row overall, which is the
            // serial answer; the upper half only matters when the lower one succeeds,
            // so it gives up as soon as the lower half has failed.
            let half = m / 2;
            let (lo, hi) = matrix.split_at_mut(half * dim);
            let (lo_rows, hi_rows) = kept_rows.split_at(half);
            let lo_failed = AtomicBool::new(false);
            let srcs = &srcs;
            let (r_lo, r_hi) = std::thread::scope(|sc| {
                let h = sc.spawn(|| self.encode_rows(srcs, hi_rows, hi, Some(&lo_failed)));
                let r_lo = self.encode_rows(srcs, lo_rows, lo, None);
                if r_lo.is_err() {
                    lo_failed.store(true, AtomicOrdering::Relaxed);
                }
                (r_lo, h.join())
            });
            r_lo?;
            r_hi.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        } else if dim > 0 {
            self.encode_rows(&srcs, &kept_rows, &mut matrix, None)?;
        }
        Ok(Encoded {
            matrix,
            kept_rows,
            skipped,
        })
    }

    /// Encode feature `i`'s number `x` into its columns of `out` (length `dim`), bit for
    /// bit as [`FittedEncoder::transform_row`] does for a row holding `Value::Num(x)`
    /// there. `false` (nothing decided, `out` possibly partly written) when that is not
    /// the plain case: `x` not finite, a negative value under `log_standard`, or a
    /// feature that looks numbers up as categories. The caller then encodes the whole
    /// row with `transform_row`, which makes the decision (NULL policy, error).
    ///
    /// A row every feature of which is put this way is encoded completely: the features'
    /// columns partition `out`. This is `segment_assign`'s per-row fast path.
    ///
    /// Panics if `i` or `out` is out of range.
    #[inline(always)]
    pub fn put_num(&self, i: usize, x: f64, out: &mut [f64]) -> bool {
        let f = &self.features[i];
        x.is_finite() && f.cat_index().is_none() && f.encode(In::Num(x), out).is_ok()
    }

    /// [`FittedEncoder::put_num`] for a text value: `false` for a feature that is not
    /// categorical, or a value an ordinal order does not know.
    ///
    /// Panics if `i` or `out` is out of range.
    #[inline(always)]
    pub fn put_text(&self, i: usize, s: &str, out: &mut [f64]) -> bool {
        let f = &self.features[i];
        match f.cat_index() {
            Some(idx) => f.encode(In::Cat(idx.get(s)), out).is_ok(),
            None => false,
        }
    }

    /// Encode one row (`row[i]` is feature `i`'s value) into `out` (length `dim`).
    /// Returns `Ok(false)` when a `skip` feature is NULL: the row is to be left out and
    /// `out` is untouched. On error `out` may be partly written. Allocation-free except
    /// for building an error; text values cost one lookup.
    #[inline]
    pub fn transform_row(&self, row: &[Value<'_>], out: &mut [f64]) -> Result<bool, EngineError> {
        if row.len() != self.features.len() {
            return Err(EngineError::DimensionMismatch {
                expected: self.features.len(),
                got: row.len(),
            });
        }
        if out.len() != self.dim {
            return Err(EngineError::DimensionMismatch {
                expected: self.dim,
                got: out.len(),
            });
        }
        for &i in &self.skip_features {
            let null = match row[i] {
                Value::Null => true,
                Value::Num(x) => !x.is_finite(),
                _ => false,
            };
            if null {
                return Ok(false);
            }
        }
        let mut buf = NumText::new();
        for (f, v) in self.features.iter().zip(row) {
            let inp = match f.cat_index() {
                None => match *v {
                    Value::Null => In::Null,
                    Value::Num(x) if x.is_finite() => In::Num(x),
                    Value::Num(_) => In::Null,
                    Value::Text(t) => {
                        return Err(EngineError::Encode {
                            feature: f.spec.name.clone(),
                            row: None,
                            reason: format!(
                                "encoder \"{}\" expects a number, got text \"{t}\"",
                                f.spec.encoder.name()
                            ),
                        })
                    }
                    Value::Bool(b) => {
                        return Err(EngineError::Encode {
                            feature: f.spec.name.clone(),
                            row: None,
                            reason: format!(
                                "encoder \"{}\" expects a number, got boolean {b}",
                                f.spec.encoder.name()
                            ),
                        })
                    }
                },
                Some(idx) => match *v {
                    Value::Null => In::Null,
                    Value::Num(x) if x.is_finite() => In::Cat(idx.get(buf.format(x))),
                    Value::Num(_) => In::Null,
                    Value::Text(t) => In::Cat(idx.get(t)),
                    Value::Bool(b) => In::Cat(idx.get(bool_text(b))),
                },
            };
            if let Err(fail) = f.encode(inp, out) {
                let text = match *v {
                    Value::Text(t) => Some(t),
                    Value::Bool(b) => Some(bool_text(b)),
                    Value::Num(x) if x.is_finite() => Some(buf.format(x)),
                    _ => None,
                };
                return Err(f.error(None, fail, text));
            }
        }
        Ok(true)
    }

    /// Map an encoded value of feature `feature`'s first column (as it appears in the
    /// encoded matrix or a centroid, weight included) back to the feature's original
    /// units: standard, min_max, robust, passthrough invert exactly, log_standard via
    /// `expm1`, quantile_bins by piecewise-linear interpolation between bin midpoints
    /// (a fractional bin index lands between two midpoints). `None` for one_hot and
    /// ordinal (categorical), a bad index or a non-finite value.
    pub fn inverse_numeric(&self, feature: usize, encoded_value: f64) -> Option<f64> {
        let f = self.features.get(feature)?;
        let Model::Num(m) = &f.model else {
            return None;
        };
        if !encoded_value.is_finite() {
            return None;
        }
        let t = encoded_value / f.sw * m.scale + m.center;
        let x = match &m.pre {
            Pre::Identity => t,
            Pre::Log1p => t.exp_m1(),
            Pre::Rank(_) => return None,
            Pre::Bins(edges) => {
                let mids: Vec<f64> = edges.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
                let b = t.clamp(0.0, (mids.len() - 1) as f64);
                let i = (b.floor() as usize).min(mids.len() - 1);
                if i + 1 < mids.len() {
                    mids[i] + (b - i as f64) * (mids[i + 1] - mids[i])
                } else {
                    mids[i]
                }
            }
        };
        Some(x)
    }
}

#[cfg(test)]
mod tests {
    use super::stored::{num_from_json, num_to_json};
    use super::*;
    use serde_json::{json, Map, Value as Json};

    #[test]
    fn category_scan_finds_what_the_map_finds() {
        let values: Vec<String> = ["", "a", "ab", "ab\0", "north", "south", "é", "x y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(values.len() <= SCAN_CATS);
        let small = CatIndex::new(values.clone());
        let mut big_values = values.clone();
        big_values.extend((0..SCAN_CATS).map(|i| format!("filler{i}")));
        let big = CatIndex::new(big_values);
        let probes = [
            "", "a", "ab", "ab\0", "ab\0\0", "north", "nort", "northe", "south", "é", "e", "x y",
            "X Y", "missing",
        ];
        for p in probes {
            let want = values
                .iter()
                .position(|v| v == p)
                .map_or(NOT_FOUND, |i| i as u32);
            assert_eq!(small.get(p), want, "{p:?}");
            assert_eq!(big.get(p), want, "{p:?}");
        }
    }

    // ---------------------------------------------------------------- helpers

    /// |a - b| <= 1e-9 * max(1, |b|): 1e-9 relative for values of magnitude >= 1 and
    /// 1e-9 absolute below (standardized values sit around 1; a centred constant column
    /// is rounding noise around 0).
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    fn assert_rows(got: &[f64], dim: usize, want: &Json, what: &str) {
        let want = want.as_array().expect("rows");
        assert_eq!(got.len(), want.len() * dim, "{what}: matrix size");
        for (r, wr) in want.iter().enumerate() {
            let wr = wr.as_array().expect("row");
            assert_eq!(wr.len(), dim, "{what}: row {r} width");
            for (j, w) in wr.iter().enumerate() {
                let (g, w) = (got[r * dim + j], w.as_f64().unwrap());
                assert!(close(g, w), "{what}: row {r} col {j}: got {g}, want {w}");
            }
        }
    }

    /// Build RawColumns for `specs` from a fixture "columns" object.
    fn raw_from(specs: &[FeatureSpec], cols: &Json) -> RawColumns {
        let kinds: Vec<ColumnKind> = specs
            .iter()
            .map(|s| match cols[&s.name]["kind"].as_str().unwrap() {
                "numeric" => ColumnKind::Numeric,
                "text" => ColumnKind::Text,
                _ => ColumnKind::Bool,
            })
            .collect();
        let mut raw = RawColumns::new(&kinds);
        for (i, s) in specs.iter().enumerate() {
            for v in cols[&s.name]["values"].as_array().unwrap() {
                match kinds[i] {
                    ColumnKind::Numeric => raw.push_num(i, v.as_f64()),
                    _ => raw.push_text(i, v.as_str()),
                }
            }
        }
        raw
    }

    fn run_fixture_case(case: &Json, label: &str) -> FittedEncoder {
        let specs = parse_spec(&case["spec"]).unwrap();
        let raw = raw_from(&specs, &case["columns"]);
        let enc = fit(&specs, &raw).unwrap_or_else(|e| panic!("{label}: fit: {e}"));
        let names: Vec<String> = serde_json::from_value(case["output_names"].clone()).unwrap();
        assert_eq!(enc.output_names(), names, "{label}");
        let out = enc.transform(&raw).unwrap();
        assert_rows(&out.matrix, enc.dim(), &case["expected_fit"], label);
        if let Some(apply) = case.get("apply") {
            let raw = raw_from(&specs, apply);
            let out = enc.transform(&raw).unwrap();
            assert_rows(&out.matrix, enc.dim(), &case["expected_apply"], label);
        }
        // the per-row path agrees with the batch path, bit for bit
        let batch = enc.transform(&raw).unwrap();
        let mut row_out = vec![0.0; enc.dim()];
        for (k, &r) in batch.kept_rows.iter().enumerate() {
            let vals: Vec<Value> = (0..specs.len()).map(|i| value_at(&raw, i, r)).collect();
            assert!(enc.transform_row(&vals, &mut row_out).unwrap());
            assert_eq!(
                &row_out[..],
                &batch.matrix[k * enc.dim()..(k + 1) * enc.dim()]
            );
            // and so does the put_num / put_text fast path, where it applies
            let mut fast = vec![f64::NAN; enc.dim()];
            let all = vals.iter().enumerate().all(|(i, v)| match *v {
                Value::Num(x) => enc.put_num(i, x, &mut fast),
                Value::Text(t) => enc.put_text(i, t, &mut fast),
                _ => false,
            });
            if all {
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&row_out), "{label}: fast path, row {r}");
                FAST_ROWS.with(|n| n.set(n.get() + 1));
            }
        }
        enc
    }

    thread_local! {
        /// Rows the fast-path comparison in `run_fixture_case` covered.
        static FAST_ROWS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn put_num_and_put_text_decline_what_transform_row_must_decide() {
        let specs = parse_spec(&serde_json::json!({
            "n": "standard", "l": "log_standard", "c": "one_hot",
            "o": {"ordinal": {"order": ["lo", "hi"]}}
        }))
        .unwrap();
        // Columns in spec order (which need not be the order written above).
        let kinds: Vec<ColumnKind> = specs
            .iter()
            .map(|s| match s.name.as_str() {
                "n" | "l" => ColumnKind::Numeric,
                _ => ColumnKind::Text,
            })
            .collect();
        let mut raw = RawColumns::new(&kinds);
        for (n, l, c, o) in [(1.0, 1.0, "a", "lo"), (3.0, 5.0, "b", "hi")] {
            for (i, s) in specs.iter().enumerate() {
                match s.name.as_str() {
                    "n" => raw.push_num(i, Some(n)),
                    "l" => raw.push_num(i, Some(l)),
                    "c" => raw.push_text(i, Some(c)),
                    _ => raw.push_text(i, Some(o)),
                }
            }
        }
        let enc = fit(&specs, &raw).unwrap();
        let idx = |name: &str| specs.iter().position(|s| s.name == name).unwrap();
        let mut out = vec![0.0; enc.dim()];
        assert!(enc.put_num(idx("n"), 2.0, &mut out));
        assert!(!enc.put_num(idx("n"), f64::NAN, &mut out));
        assert!(!enc.put_num(idx("n"), f64::INFINITY, &mut out));
        assert!(!enc.put_num(idx("l"), -1.0, &mut out));
        assert!(!enc.put_num(idx("c"), 1.0, &mut out));
        assert!(!enc.put_text(idx("n"), "1", &mut out));
        assert!(enc.put_text(idx("c"), "never seen", &mut out));
        assert!(enc.put_text(idx("o"), "hi", &mut out));
        assert!(!enc.put_text(idx("o"), "never seen", &mut out));
    }

    fn value_at(raw: &RawColumns, col: usize, r: usize) -> Value<'_> {
        match raw.column(col) {
            // NULL is stored as NaN (either is null to the encoder).
            RawColumn::Numeric(v) if v[r].is_nan() => Value::Null,
            RawColumn::Numeric(v) => Value::Num(v[r]),
            RawColumn::Text { dict, codes } => {
                codes[r].map_or(Value::Null, |c| Value::Text(&dict[c as usize]))
            }
        }
    }

    // ---- values at float8's limits: refused naming the feature, never stored -----

    fn extremes() -> RawColumns {
        num_col(&[
            Some(1e308),
            Some(-1e308),
            Some(5e-324),
            Some(0.0),
            Some(1.0),
        ])
    }

    #[test]
    fn min_max_whose_range_overflows_is_refused() {
        let specs = spec1("x", json!("min_max"));
        expect_encode(
            fit(&specs, &extremes()),
            "x",
            None,
            "statistics overflow float8",
        );
    }

    #[test]
    fn standard_whose_variance_overflows_is_refused() {
        // The variance overflows, so the scale falls back to 1 and the encoded values
        // stay near ±1e308: out of range.
        let specs = spec1("x", json!("standard"));
        expect_encode(fit(&specs, &extremes()), "x", None, "beyond the 1e100");
    }

    #[test]
    fn passthrough_beyond_max_encoded_is_refused() {
        let specs = spec1("x", json!("passthrough"));
        expect_encode(fit(&specs, &extremes()), "x", None, "beyond the 1e100");
        // just inside the bound is fine
        let raw = num_col(&[Some(MAX_ENCODED), Some(-MAX_ENCODED), Some(0.0)]);
        assert!(fit(&specs, &raw).is_ok());
    }

    #[test]
    fn robust_with_a_tiny_spread_and_huge_outliers_is_refused() {
        let raw = num_col(&[Some(0.0), Some(0.0), Some(1e-300), Some(0.0), Some(1e200)]);
        let specs = spec1("x", json!("robust"));
        expect_encode(fit(&specs, &raw), "x", None, "beyond the 1e100");
    }

    #[test]
    fn imputed_value_beyond_max_encoded_is_refused() {
        let raw = num_col(&[Some(0.0), Some(1.0), None]);
        let specs = spec1("x", json!({"passthrough": {}, "null": {"constant": 1e200}}));
        expect_encode(fit(&specs, &raw), "x", None, "beyond the 1e100");
    }

    #[test]
    fn log_standard_and_bins_handle_values_near_the_limit() {
        let raw = num_col(&[Some(1e308), Some(5e-324), Some(0.0), Some(1.0)]);
        assert!(fit(&spec1("x", json!("log_standard")), &raw).is_ok());
        assert!(fit(
            &spec1("x", json!({"quantile_bins": {"bins": 2}})),
            &extremes()
        )
        .is_ok());
    }

    #[test]
    fn weight_above_max_weight_is_refused() {
        let mut m = Map::new();
        m.insert("x".into(), json!({"standard": {}, "weight": 1e7}));
        expect_invalid(parse_spec(&Json::Object(m)), "x", "<= 1e6");
        let ok = spec1("x", json!({"standard": {}, "weight": MAX_WEIGHT}));
        assert_eq!(ok[0].weight, MAX_WEIGHT);
    }

    fn fixture(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    fn num_col(vals: &[Option<f64>]) -> RawColumns {
        let mut raw = RawColumns::new(&[ColumnKind::Numeric]);
        for v in vals {
            raw.push_num(0, *v);
        }
        raw
    }

    fn text_col(vals: &[Option<&str>]) -> RawColumns {
        let mut raw = RawColumns::new(&[ColumnKind::Text]);
        for v in vals {
            raw.push_text(0, *v);
        }
        raw
    }

    fn spec1(name: &str, v: Json) -> Vec<FeatureSpec> {
        let mut m = Map::new();
        m.insert(name.to_string(), v);
        parse_spec(&Json::Object(m)).unwrap()
    }

    fn encode1(spec: Json, raw: &RawColumns) -> (FittedEncoder, Encoded) {
        let specs = spec1("x", spec);
        let enc = fit(&specs, raw).unwrap();
        let out = enc.transform(raw).unwrap();
        (enc, out)
    }

    fn expect_invalid(r: Result<impl std::fmt::Debug, EngineError>, name: &str, needle: &str) {
        match r {
            Err(EngineError::InvalidParameter { name: n, reason }) => {
                assert_eq!(n, name, "reason: {reason}");
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            }
            other => panic!("expected InvalidParameter({name}), got {other:?}"),
        }
    }

    fn expect_encode(
        r: Result<impl std::fmt::Debug, EngineError>,
        feature: &str,
        row: Option<usize>,
        needle: &str,
    ) {
        match r {
            Err(EngineError::Encode {
                feature: f,
                row: rr,
                reason,
            }) => {
                assert_eq!(f, feature);
                assert_eq!(rr, row, "{reason}");
                assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            }
            other => panic!("expected Encode({feature}), got {other:?}"),
        }
    }

    // ---------------------------------------------------------------- fixtures

    #[test]
    fn fixture_scalers_and_imputers_match_sklearn() {
        let f = fixture(include_str!("../fixtures/encode/scalers.json"));
        let cases = f["cases"].as_array().unwrap();
        assert!(cases.len() > 50);
        for (i, c) in cases.iter().enumerate() {
            run_fixture_case(c, &format!("scalers case {i} {}", c["spec"]));
        }
        assert!(
            FAST_ROWS.with(|n| n.get()) > 0,
            "the fast path was exercised"
        );
    }

    #[test]
    fn fixture_one_hot_matches_pandas_and_sklearn() {
        let f = fixture(include_str!("../fixtures/encode/onehot.json"));
        for (i, c) in f["cases"].as_array().unwrap().iter().enumerate() {
            run_fixture_case(c, &format!("onehot case {i} {}", c["spec"]));
        }
        assert!(
            FAST_ROWS.with(|n| n.get()) > 0,
            "the fast path was exercised"
        );
    }

    #[test]
    fn fixture_ordinal_matches_sklearn() {
        let f = fixture(include_str!("../fixtures/encode/ordinal.json"));
        for (i, c) in f["cases"].as_array().unwrap().iter().enumerate() {
            run_fixture_case(c, &format!("ordinal case {i} {}", c["spec"]));
        }
        assert!(
            FAST_ROWS.with(|n| n.get()) > 0,
            "the fast path was exercised"
        );
    }

    #[test]
    fn fixture_quantile_bins_match_kbinsdiscretizer() {
        let f = fixture(include_str!("../fixtures/encode/bins.json"));
        for (i, c) in f["cases"].as_array().unwrap().iter().enumerate() {
            let label = format!("bins case {i} {}", c["spec"]);
            let enc = run_fixture_case(c, &label);
            let j = enc.to_json();
            let edges: Vec<f64> = j["features"][0]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| num_from_json(e).unwrap())
                .collect();
            let want: Vec<f64> = serde_json::from_value(c["expected_edges"].clone()).unwrap();
            assert_eq!(edges.len(), want.len(), "{label}");
            for (a, b) in edges.iter().zip(&want) {
                assert!(close(*a, *b), "{label}: edge {a} vs {b}");
            }
        }
    }

    #[test]
    fn fixture_combined_spec_end_to_end() {
        let c = fixture(include_str!("../fixtures/encode/combined.json"));
        let specs = parse_spec(&c["spec"]).unwrap();
        let raw = raw_from(&specs, &c["columns"]);
        let enc = fit(&specs, &raw).unwrap();
        let names: Vec<String> = serde_json::from_value(c["output_names"].clone()).unwrap();
        assert_eq!(enc.output_names(), names);
        let out = enc.transform(&raw).unwrap();
        let kept: Vec<usize> = serde_json::from_value(c["kept_rows"].clone()).unwrap();
        assert_eq!(out.kept_rows, kept);
        let skipped: Vec<(usize, String)> = serde_json::from_value(c["skipped"].clone()).unwrap();
        assert_eq!(out.skipped, skipped);
        assert_rows(&out.matrix, enc.dim(), &c["expected_fit"], "combined");
        // and after a catalog round trip through text
        let text = serde_json::to_string(&enc.to_json()).unwrap();
        let back = FittedEncoder::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.transform(&raw).unwrap(), out);
    }

    // ---------------------------------------------------------------- scalers

    #[test]
    fn standard_uses_population_std() {
        let raw = num_col(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0)]);
        let (_, out) = encode1(json!("standard"), &raw);
        let sd = 1.25f64.sqrt();
        let want = [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd];
        for (g, w) in out.matrix.iter().zip(want) {
            assert!(close(*g, w));
        }
    }

    #[test]
    fn standard_constant_column_gets_scale_one() {
        let raw = num_col(&[Some(5.0); 10]);
        let (enc, out) = encode1(json!("standard"), &raw);
        assert!(out.matrix.iter().all(|v| *v == 0.0));
        assert_eq!(enc.to_json()["features"][0]["scale"], json!(1.0));
    }

    #[test]
    fn min_max_constant_column_gets_scale_one() {
        let raw = num_col(&[Some(-2.0); 4]);
        let (enc, out) = encode1(json!("min_max"), &raw);
        assert!(out.matrix.iter().all(|v| *v == 0.0));
        let mut row = [0.0];
        enc.transform_row(&[Value::Num(1.0)], &mut row).unwrap();
        assert_eq!(row[0], 3.0);
    }

    #[test]
    fn robust_zero_iqr_gets_scale_one() {
        let raw = num_col(&[
            Some(1.0),
            Some(2.0),
            Some(2.0),
            Some(2.0),
            Some(2.0),
            Some(9.0),
        ]);
        let (_, out) = encode1(json!("robust"), &raw);
        assert_eq!(out.matrix, vec![-1.0, 0.0, 0.0, 0.0, 0.0, 7.0]);
    }

    #[test]
    fn log_standard_negative_is_error_naming_feature_and_row() {
        let raw = num_col(&[Some(1.0), Some(0.0), Some(-0.5), Some(3.0)]);
        let specs = spec1("income", json!("log_standard"));
        expect_encode(
            fit(&specs, &raw),
            "income",
            Some(2),
            "log_standard needs values >= 0",
        );
        let ok = num_col(&[Some(1.0), Some(0.0), Some(3.0)]);
        let enc = fit(&specs, &ok).unwrap();
        expect_encode(enc.transform(&raw), "income", Some(2), "got -0.5");
        let mut out = [0.0];
        expect_encode(
            enc.transform_row(&[Value::Num(-1.0)], &mut out),
            "income",
            None,
            "log_standard",
        );
    }

    #[test]
    fn passthrough_keeps_values() {
        let raw = num_col(&[Some(1.5), Some(-7.0)]);
        let (_, out) = encode1(json!("passthrough"), &raw);
        assert_eq!(out.matrix, vec![1.5, -7.0]);
    }

    // ---------------------------------------------------------------- NULL policies

    #[test]
    fn null_policy_error_names_feature_and_row() {
        let raw = num_col(&[Some(1.0), Some(2.0), None, Some(3.0)]);
        let specs = spec1("age", json!("standard"));
        expect_encode(fit(&specs, &raw), "age", Some(2), "NULL");
        let enc = fit(&specs, &num_col(&[Some(1.0), Some(2.0)])).unwrap();
        expect_encode(enc.transform(&raw), "age", Some(2), "policy is \"error\"");
        let mut out = [0.0];
        expect_encode(
            enc.transform_row(&[Value::Null], &mut out),
            "age",
            None,
            "NULL",
        );
        let e = enc.transform(&raw).unwrap_err();
        assert_eq!(e.kind(), super::super::error::ErrorKind::DataException);
    }

    #[test]
    fn nan_and_infinity_are_null() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let raw = num_col(&[Some(1.0), Some(bad), Some(3.0)]);
            expect_encode(
                fit(&spec1("x", json!("standard")), &raw),
                "x",
                Some(1),
                "NULL",
            );
            let (_, out) = encode1(json!({"standard": {}, "null": "mean"}), &raw);
            assert_eq!(out.matrix[1], 0.0, "imputed mean standardizes to 0");
            assert!(
                close(out.matrix[0], -1.0) && close(out.matrix[2], 1.0),
                "stats ignore {bad}"
            );
        }
    }

    #[test]
    fn null_policy_mean_imputes_fitted_mean() {
        let raw = num_col(&[Some(1.0), None, Some(5.0)]);
        let (enc, out) = encode1(json!({"passthrough": {}, "null": "mean"}), &raw);
        assert_eq!(out.matrix, vec![1.0, 3.0, 5.0]);
        assert_eq!(enc.to_json()["features"][0]["fill"], json!(3.0));
    }

    #[test]
    fn null_policy_median_imputes_fitted_median() {
        let raw = num_col(&[Some(1.0), None, Some(2.0), Some(10.0), Some(4.0)]);
        let (_, out) = encode1(json!({"passthrough": {}, "null": "median"}), &raw);
        assert_eq!(out.matrix[1], 3.0);
    }

    #[test]
    fn null_policy_mode_numeric_ties_take_smallest() {
        let raw = num_col(&[Some(4.0), Some(2.0), None, Some(4.0), Some(2.0), Some(9.0)]);
        let (_, out) = encode1(json!({"passthrough": {}, "null": "mode"}), &raw);
        assert_eq!(out.matrix[2], 2.0);
    }

    #[test]
    fn null_policy_mode_text_ties_take_text_ascending() {
        let raw = text_col(&[Some("b"), Some("a"), None, Some("b"), Some("a"), Some("c")]);
        let (enc, out) = encode1(json!({"one_hot": {"top": 1}, "null": "mode"}), &raw);
        assert_eq!(enc.output_names(), vec!["x=a", "x=(other)"]);
        assert_eq!(&out.matrix[4..6], &[1.0, 0.0]);
    }

    #[test]
    fn null_policy_constant_imputes_in_input_units() {
        let raw = num_col(&[Some(0.0), None, Some(3.0)]);
        let (_, out) = encode1(json!({"log_standard": {}, "null": {"constant": 3}}), &raw);
        assert!(
            close(out.matrix[1], out.matrix[2]),
            "constant 3 encodes like the value 3"
        );
        let raw = text_col(&[Some("a"), None, Some("b")]);
        let (_, out) = encode1(json!({"one_hot": {}, "null": {"constant": "zzz"}}), &raw);
        assert_eq!(
            &out.matrix[3..6],
            &[0.0, 0.0, 1.0],
            "unseen constant goes to (other)"
        );
    }

    #[test]
    fn null_policy_indicator_adds_column() {
        let raw = num_col(&[Some(2.0), None, Some(4.0)]);
        let (enc, out) = encode1(
            json!({"passthrough": {}, "null": "indicator", "weight": 4}),
            &raw,
        );
        assert_eq!(enc.output_names(), vec!["x", "x(is_null)"]);
        assert_eq!(out.matrix, vec![4.0, 0.0, 6.0, 2.0, 8.0, 0.0]);
    }

    #[test]
    fn null_policy_skip_excludes_rows_and_reports_them() {
        let mut raw = RawColumns::new(&[ColumnKind::Numeric, ColumnKind::Numeric]);
        for (a, b) in [
            (Some(1.0), Some(10.0)),
            (None, None),
            (Some(3.0), Some(30.0)),
            (Some(f64::NAN), Some(1e9)),
        ] {
            raw.push_num(0, a);
            raw.push_num(1, b);
        }
        let specs =
            parse_spec(&json!({"a": {"passthrough": {}, "null": "skip"}, "b": "min_max"})).unwrap();
        let enc = fit(&specs, &raw).unwrap();
        let out = enc.transform(&raw).unwrap();
        assert_eq!(out.kept_rows, vec![0, 2]);
        assert_eq!(
            out.skipped,
            vec![(1, "a".to_string()), (3, "a".to_string())]
        );
        // b's NULL in row 1 raised nothing; b's min/max ignore the skipped rows (1e9)
        assert_eq!(out.matrix, vec![1.0, 0.0, 3.0, 1.0]);
        let mut row = [7.0, 7.0];
        assert!(!enc
            .transform_row(&[Value::Null, Value::Num(5.0)], &mut row)
            .unwrap());
        assert_eq!(row, [7.0, 7.0], "out untouched on skip");
        assert!(!enc
            .transform_row(&[Value::Num(f64::NAN), Value::Null], &mut row)
            .unwrap());
        assert!(enc
            .transform_row(&[Value::Num(2.0), Value::Num(20.0)], &mut row)
            .unwrap());
        assert_eq!(row, [2.0, 0.5]);
    }

    #[test]
    fn all_rows_skipped_is_no_rows() {
        let raw = num_col(&[None, None]);
        let r = fit(&spec1("x", json!({"standard": {}, "null": "skip"})), &raw);
        assert_eq!(r.unwrap_err(), EngineError::NoRows);
        assert_eq!(
            fit(&spec1("x", json!("standard")), &num_col(&[])).unwrap_err(),
            EngineError::NoRows
        );
    }

    #[test]
    fn all_null_column_cannot_be_fitted() {
        let raw = num_col(&[None, None]);
        expect_encode(
            fit(&spec1("x", json!({"standard": {}, "null": "mean"})), &raw),
            "x",
            None,
            "every training value is NULL",
        );
        expect_encode(
            fit(
                &spec1("x", json!({"standard": {}, "null": {"constant": 1}})),
                &raw,
            ),
            "x",
            None,
            "NULL",
        );
        // passthrough + constant needs no statistics
        let (_, out) = encode1(json!({"passthrough": {}, "null": {"constant": 1.5}}), &raw);
        assert_eq!(out.matrix, vec![1.5, 1.5]);
    }

    // ---------------------------------------------------------------- one-hot

    #[test]
    fn one_hot_unseen_category_goes_to_other() {
        let raw = text_col(&[Some("a"), Some("b"), Some("a")]);
        let (enc, _) = encode1(json!("one_hot"), &raw);
        assert_eq!(enc.output_names(), vec!["x=a", "x=b", "x=(other)"]);
        let out = enc
            .transform(&text_col(&[Some("zebra"), Some("b")]))
            .unwrap();
        assert_eq!(out.matrix, vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        let mut row = [9.0; 3];
        enc.transform_row(&[Value::Text("never seen")], &mut row)
            .unwrap();
        assert_eq!(row, [0.0, 0.0, 1.0]);
    }

    #[test]
    fn one_hot_top_n_ties_broken_by_text() {
        let raw = text_col(&[
            Some("d"),
            Some("c"),
            Some("b"),
            Some("c"),
            Some("b"),
            Some("a"),
            Some("a"),
        ]);
        let (enc, out) = encode1(json!({"one_hot": {"top": 2}}), &raw);
        assert_eq!(enc.output_names(), vec!["x=a", "x=b", "x=(other)"]);
        assert_eq!(
            &out.matrix[3..6],
            &[0.0, 0.0, 1.0],
            "c (tied, later text) is other"
        );
    }

    #[test]
    fn one_hot_null_category_column() {
        let raw = text_col(&[Some("a"), None, Some("b")]);
        let (enc, out) = encode1(json!({"one_hot": {"null_category": true}}), &raw);
        assert_eq!(
            enc.output_names(),
            vec!["x=a", "x=b", "x=(other)", "x=(null)"]
        );
        assert_eq!(&out.matrix[4..8], &[0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn one_hot_null_without_null_category_is_error() {
        let raw = text_col(&[Some("a"), None]);
        expect_encode(
            fit(&spec1("region", json!("one_hot")), &raw),
            "region",
            Some(1),
            "null_category",
        );
    }

    #[test]
    fn one_hot_numbers_and_bools_are_stringified() {
        let mut raw = RawColumns::new(&[ColumnKind::Numeric]);
        for v in [3.0, 2.5, 3.0, -0.0] {
            raw.push_num(0, Some(v));
        }
        let (enc, out) = encode1(json!("one_hot"), &raw);
        assert_eq!(enc.output_names(), vec!["x=0", "x=2.5", "x=3", "x=(other)"]);
        assert_eq!(&out.matrix[0..4], &[0.0, 0.0, 1.0, 0.0]);
        let mut row = [0.0; 4];
        enc.transform_row(&[Value::Text("2.5")], &mut row).unwrap();
        assert_eq!(row, [0.0, 1.0, 0.0, 0.0]);
        enc.transform_row(&[Value::Num(0.0)], &mut row).unwrap();
        assert_eq!(row, [1.0, 0.0, 0.0, 0.0]);
        // a text column fed numbers at assignment time
        let (enc, _) = encode1(json!("one_hot"), &text_col(&[Some("7"), Some("8")]));
        enc.transform_row(&[Value::Num(8.0)], &mut row[..3])
            .unwrap();
        assert_eq!(&row[..3], &[0.0, 1.0, 0.0]);
        // bool columns are the categories "false" / "true"
        let mut raw = RawColumns::new(&[ColumnKind::Bool]);
        for b in [Some(true), Some(false), Some(true)] {
            raw.push_bool(0, b);
        }
        let (enc, out) = encode1(json!("one_hot"), &raw);
        assert_eq!(enc.output_names(), vec!["x=false", "x=true", "x=(other)"]);
        assert_eq!(&out.matrix[0..3], &[0.0, 1.0, 0.0]);
        enc.transform_row(&[Value::Bool(false)], &mut row[..3])
            .unwrap();
        assert_eq!(&row[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(enc.feature_kinds(), vec![ColumnKind::Bool]);
    }

    #[test]
    fn canonical_number_text() {
        let mut b = NumText::new();
        assert_eq!(b.format(3.0), "3");
        assert_eq!(b.format(-0.0), "0");
        assert_eq!(b.format(-12.0), "-12");
        assert_eq!(b.format(2.5), "2.5");
        assert_eq!(b.format(0.1), "0.1");
        assert_eq!(b.format(1e20), "1e20");
        assert_eq!(b.format(1e15), "1000000000000000");
        assert_eq!(
            b.format(-1.2345678901234568e-300),
            "-1.2345678901234568e-300"
        );
        assert_eq!(b.format(0.30000000000000004), "0.30000000000000004");
    }

    // ---------------------------------------------------------------- ordinal, bins

    #[test]
    fn ordinal_value_outside_order_is_error() {
        let spec = json!({"ordinal": {"order": ["low", "mid", "high"]}});
        let raw = text_col(&[Some("low"), Some("huge"), Some("high")]);
        expect_encode(
            fit(&spec1("tier", spec.clone()), &raw),
            "tier",
            Some(1),
            "\"huge\"",
        );
        let ok = text_col(&[Some("low"), Some("high")]);
        let enc = fit(&spec1("tier", spec), &ok).unwrap();
        expect_encode(
            enc.transform(&raw),
            "tier",
            Some(1),
            "not in the ordinal order [low, mid, high]",
        );
        let mut out = [0.0];
        expect_encode(
            enc.transform_row(&[Value::Text("huge")], &mut out),
            "tier",
            None,
            "huge",
        );
        assert_eq!(enc.inverse_numeric(0, 0.0), None, "ordinal is categorical");
    }

    #[test]
    fn ordinal_ranks_are_standardized_and_accept_numbers() {
        let mut raw = RawColumns::new(&[ColumnKind::Numeric]);
        for v in [1.0, 2.0, 3.0] {
            raw.push_num(0, Some(v));
        }
        let (enc, out) = encode1(json!({"ordinal": {"order": ["3", "2", "1"]}}), &raw);
        let s = (2.0f64 / 3.0).sqrt();
        assert!(
            close(out.matrix[0], 1.0 / s)
                && close(out.matrix[1], 0.0)
                && close(out.matrix[2], -1.0 / s)
        );
        let mut row = [0.0];
        enc.transform_row(&[Value::Text("3")], &mut row).unwrap();
        assert!(close(row[0], -1.0 / s));
    }

    #[test]
    fn quantile_bins_value_on_inner_edge_goes_up() {
        // quartile edges of 0..=8 are 0, 2, 4, 6, 8
        let raw = num_col(&(0..=8).map(|v| Some(v as f64)).collect::<Vec<_>>());
        let (enc, _) = encode1(json!({"quantile_bins": {"bins": 4}}), &raw);
        let edges = &enc.to_json()["features"][0]["edges"];
        assert_eq!(edges, &json!([0.0, 2.0, 4.0, 6.0, 8.0]));
        let bin = |x: f64| {
            let mut out = [0.0];
            enc.transform_row(&[Value::Num(x)], &mut out).unwrap();
            enc.inverse_numeric(0, out[0]).unwrap()
        };
        // inverse maps a whole bin index to the bin's midpoint
        assert!(close(bin(1.9), 1.0));
        assert!(close(bin(2.0), 3.0));
        assert!(close(bin(-100.0), 1.0));
        assert!(close(bin(100.0), 7.0));
    }

    // ---------------------------------------------------------------- weight

    #[test]
    fn weight_scales_squared_distance_by_w() {
        let raw = num_col(&[Some(1.0), Some(2.0), Some(4.0), Some(8.0)]);
        let (_, plain) = encode1(json!("standard"), &raw);
        let (enc, heavy) = encode1(json!({"standard": {}, "weight": 3.0}), &raw);
        let d = |m: &[f64]| (m[0] - m[3]).powi(2);
        assert!(close(d(&heavy.matrix), 3.0 * d(&plain.matrix)));
        // inverse takes the weighted coordinate
        assert!(close(enc.inverse_numeric(0, heavy.matrix[2]).unwrap(), 4.0));
        let raw = text_col(&[Some("a"), Some("b")]);
        let (_, out) = encode1(json!({"one_hot": {}, "weight": 0.25}), &raw);
        assert_eq!(out.matrix, vec![0.5, 0.0, 0.0, 0.0, 0.5, 0.0]);
    }

    // ---------------------------------------------------------------- inverse

    #[test]
    fn inverse_numeric_returns_original_units() {
        let vals: Vec<Option<f64>> = [3.0, 10.0, 0.0, 250.0, 41.5]
            .iter()
            .map(|v| Some(*v))
            .collect();
        let raw = num_col(&vals);
        for enc_name in [
            "standard",
            "min_max",
            "robust",
            "log_standard",
            "passthrough",
        ] {
            let (enc, out) = encode1(json!(enc_name), &raw);
            for (k, v) in vals.iter().enumerate() {
                let back = enc.inverse_numeric(0, out.matrix[k]).unwrap();
                assert!(
                    (back - v.unwrap()).abs() <= 1e-9 * v.unwrap().abs().max(1.0),
                    "{enc_name}: {back} vs {v:?}"
                );
            }
            assert_eq!(enc.inverse_numeric(1, 0.0), None);
            assert_eq!(enc.inverse_numeric(0, f64::NAN), None);
        }
        let (enc, _) = encode1(json!("one_hot"), &text_col(&[Some("a")]));
        assert_eq!(enc.inverse_numeric(0, 1.0), None);
    }

    // ---------------------------------------------------------------- transform_row

    #[test]
    fn transform_row_type_errors_name_the_feature() {
        let raw = num_col(&[Some(1.0), Some(2.0)]);
        let (enc, _) = encode1(json!("standard"), &raw);
        let mut out = [0.0];
        expect_encode(
            enc.transform_row(&[Value::Text("12")], &mut out),
            "x",
            None,
            "expects a number, got text \"12\"",
        );
        expect_encode(
            enc.transform_row(&[Value::Bool(true)], &mut out),
            "x",
            None,
            "got boolean",
        );
        // a text column handed to a numeric encoder in batch
        expect_encode(
            enc.transform(&text_col(&[Some("a")])),
            "x",
            None,
            "needs a numeric column",
        );
    }

    #[test]
    fn transform_row_checks_lengths() {
        let raw = num_col(&[Some(1.0), Some(2.0)]);
        let (enc, _) = encode1(json!({"standard": {}, "null": "indicator"}), &raw);
        let mut out = [0.0; 2];
        assert_eq!(
            enc.transform_row(&[], &mut out).unwrap_err(),
            EngineError::DimensionMismatch {
                expected: 1,
                got: 0
            }
        );
        assert_eq!(
            enc.transform_row(&[Value::Num(1.0)], &mut out[..1])
                .unwrap_err(),
            EngineError::DimensionMismatch {
                expected: 2,
                got: 1
            }
        );
        assert_eq!(
            enc.transform(&RawColumns::new(&[])).unwrap_err(),
            EngineError::DimensionMismatch {
                expected: 1,
                got: 0
            }
        );
    }

    // ---------------------------------------------------------------- JSON

    fn sample_encoder() -> FittedEncoder {
        let c = fixture(include_str!("../fixtures/encode/combined.json"));
        let mut spec = c["spec"].clone();
        spec["tier"]["null"] = json!({"constant": "gold"});
        spec["region"]["null"] = json!("mode");
        let specs = parse_spec(&spec).unwrap();
        fit(&specs, &raw_from(&specs, &c["columns"])).unwrap()
    }

    #[test]
    fn json_round_trip_is_exact_and_stable() {
        let enc = sample_encoder();
        let j = enc.to_json();
        assert_eq!(j["version"], json!(1));
        assert_eq!(j["dim"], json!(enc.dim()));
        let back = FittedEncoder::from_json(&j).unwrap();
        assert_eq!(back, enc);
        assert_eq!(back.to_json(), j);
        // through text, as the catalog stores it (jsonb): bit-exact
        let text = serde_json::to_string(&j).unwrap();
        let back = FittedEncoder::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, enc);
        assert_eq!(serde_json::to_string(&back.to_json()).unwrap(), text);
        // the serde impls use the same form
        assert_eq!(serde_json::to_value(&enc).unwrap(), j);
        let de: FittedEncoder = serde_json::from_str(&text).unwrap();
        assert_eq!(de, enc);
    }

    #[test]
    fn json_floats_that_would_not_reparse_are_strings() {
        for x in [0.1, 1.0 / 3.0, 123456.789, 2.0f64.sqrt(), 1e-300, -7.25] {
            let j = num_to_json(x);
            let text = serde_json::to_string(&j).unwrap();
            let back = num_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x} via {text}");
        }
        assert_eq!(num_to_json(0.5), json!(0.5));
    }

    #[test]
    fn json_rejects_bad_input() {
        let j = sample_encoder().to_json();
        let mut v2 = j.clone();
        v2["version"] = json!(2);
        expect_invalid(
            FittedEncoder::from_json(&v2),
            "encoder",
            "unsupported encoder version 2",
        );
        let mut dim = j.clone();
        dim["dim"] = json!(1);
        expect_invalid(FittedEncoder::from_json(&dim), "encoder", "\"dim\"");
        let mut scale = j.clone();
        scale["features"][0]["scale"] = json!(0.0);
        expect_invalid(FittedEncoder::from_json(&scale), "encoder", "scale");
        let mut cats = j.clone();
        cats["features"][4]["categories"] = json!(["b", "a"]);
        expect_invalid(FittedEncoder::from_json(&cats), "encoder", "sorted");
        expect_invalid(FittedEncoder::from_json(&json!([])), "encoder", "object");
        expect_invalid(
            FittedEncoder::from_json(&json!({"version": 1, "features": []})),
            "encoder",
            "non-empty",
        );
    }

    // ---------------------------------------------------------------- spec parsing

    #[test]
    fn parse_spec_forms_defaults_and_order() {
        let specs = parse_spec(&json!({
            "z": "standard",
            "channel": {"one_hot": {"top": 5, "null_category": true}},
            "tier": {"ordinal": {"order": ["bronze", "silver", "gold"]}},
            "age2": {"quantile_bins": {"bins": 4}},
            "score": {"standard": {}, "null": "mean", "weight": 2.0},
            "x": {"min_max": {}, "null": {"constant": 0}},
            "y": {"passthrough": {}, "null": "indicator"},
            "region": "one_hot",
            "q": "quantile_bins",
            "r": {"robust": null, "null": "skip"}
        }))
        .unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["age2", "channel", "q", "r", "region", "score", "tier", "x", "y", "z"]
        );
        assert_eq!(
            specs[1].encoder,
            Encoder::OneHot {
                top: 5,
                null_category: true
            }
        );
        assert_eq!(
            specs[2].encoder,
            Encoder::QuantileBins {
                bins: DEFAULT_QUANTILE_BINS
            }
        );
        assert_eq!(specs[3].null_policy, NullPolicy::Skip);
        assert_eq!(
            specs[4].encoder,
            Encoder::OneHot {
                top: 20,
                null_category: false
            }
        );
        assert_eq!(
            (specs[5].null_policy.clone(), specs[5].weight),
            (NullPolicy::Mean, 2.0)
        );
        assert_eq!(specs[7].null_policy, NullPolicy::Constant(json!(0)));
        assert_eq!(specs[9], FeatureSpec::new("z", Encoder::Standard));
        // the canonical form parses back to the same specs
        assert_eq!(parse_spec(&spec_to_json(&specs)).unwrap(), specs);
        // serde derive uses the grammar's names
        assert_eq!(
            serde_json::to_value(&specs[1].encoder).unwrap(),
            json!({"one_hot": {"top": 5, "null_category": true}})
        );
    }

    #[test]
    fn parse_spec_unknown_encoder_lists_valid_ones() {
        expect_invalid(parse_spec(&json!({"age": "zscore"})), "age", VALID_ENCODERS);
        expect_invalid(
            parse_spec(&json!({"age": {"zscore": {}}})),
            "age",
            VALID_ENCODERS,
        );
        expect_invalid(
            parse_spec(&json!({"age": {"null": "mean"}})),
            "age",
            "names no encoder",
        );
        expect_invalid(parse_spec(&json!({"age": 3})), "age", VALID_ENCODERS);
    }

    #[test]
    fn parse_spec_rejects_malformed_top_level() {
        expect_invalid(parse_spec(&json!(["age"])), "features", "JSON object");
        expect_invalid(parse_spec(&json!({})), "features", "no feature");
        expect_invalid(parse_spec(&json!({"": "standard"})), "features", "empty");
    }

    #[test]
    fn parse_spec_rejects_bad_options() {
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "min_max": {}}})),
            "a",
            "two encoders",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {"top": 3}}})),
            "a",
            "takes no options",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"standard": 1}})),
            "a",
            "must be an object",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"one_hot": {"top": 0}}})),
            "a",
            "between 1 and 1000",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"one_hot": {"top": 2.5}}})),
            "a",
            "integer",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"one_hot": {"null_category": "yes"}}})),
            "a",
            "true or false",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"quantile_bins": {"bins": 1}}})),
            "a",
            "between 2 and 1000",
        );
        expect_invalid(parse_spec(&json!({"a": "ordinal"})), "a", "needs an order");
        expect_invalid(
            parse_spec(&json!({"a": {"ordinal": {"order": []}}})),
            "a",
            "must not be empty",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"ordinal": {"order": ["x", "x"]}}})),
            "a",
            "twice",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"ordinal": {"order": [1, 2]}}})),
            "a",
            "text values",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "colour": 1}})),
            "a",
            "unknown key \"colour\"",
        );
    }

    #[test]
    fn parse_spec_rejects_bad_weight() {
        for w in [json!(0), json!(-1.0), json!("heavy"), json!(null)] {
            expect_invalid(
                parse_spec(&json!({"a": {"standard": {}, "weight": w}})),
                "a",
                "weight",
            );
        }
    }

    #[test]
    fn parse_spec_rejects_bad_null_policies() {
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "null": "drop"}})),
            "a",
            "unknown NULL policy \"drop\"",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "null": "constant"}})),
            "a",
            "needs a value",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "null": {"constant": "x"}}})),
            "a",
            "finite number",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"standard": {}, "null": {"constant": [1]}}})),
            "a",
            "number, text or boolean",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"log_standard": {}, "null": {"constant": -1}}})),
            "a",
            "negative",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"one_hot": {}, "null": "mean"}})),
            "a",
            "does not apply to one_hot",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"one_hot": {}, "null": "indicator"}})),
            "a",
            "does not apply",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"one_hot": {"null_category": true}, "null": "mode"}})),
            "a",
            "null_category",
        );
        expect_invalid(
            parse_spec(&json!({"a": {"ordinal": {"order": ["x"]}, "null": {"constant": "y"}}})),
            "a",
            "not in the ordinal order",
        );
    }

    #[test]
    fn default_spec_standardizes_numbers_and_one_hots_text() {
        let cols = vec![
            ("id".to_string(), ColumnKind::Numeric),
            ("region".to_string(), ColumnKind::Text),
            ("age".to_string(), ColumnKind::Numeric),
            ("vip".to_string(), ColumnKind::Bool),
        ];
        let specs = default_spec(&cols, "id");
        let oh = Encoder::OneHot {
            top: 20,
            null_category: false,
        };
        assert_eq!(
            specs,
            vec![
                FeatureSpec::new("age", Encoder::Standard),
                FeatureSpec::new("region", oh.clone()),
                FeatureSpec::new("vip", oh),
            ]
        );
        check_kinds(&specs, &cols).unwrap();
    }

    #[test]
    fn check_kinds_missing_column_names_it() {
        let cols = vec![("age".to_string(), ColumnKind::Numeric)];
        let specs = parse_spec(&json!({"income": "standard"})).unwrap();
        expect_invalid(
            check_kinds(&specs, &cols),
            "income",
            "no column \"income\" (columns: age)",
        );
    }

    #[test]
    fn check_kinds_numeric_encoder_on_text_is_rejected() {
        let cols = vec![
            ("region".to_string(), ColumnKind::Text),
            ("vip".to_string(), ColumnKind::Bool),
        ];
        let specs = parse_spec(&json!({"region": "robust"})).unwrap();
        expect_invalid(
            check_kinds(&specs, &cols),
            "region",
            "encoder \"robust\" needs a numeric column, but \"region\" is text",
        );
        let specs = parse_spec(&json!({"vip": "standard"})).unwrap();
        expect_invalid(check_kinds(&specs, &cols), "vip", "is bool");
        // fit applies the same rule to hand-built input
        let raw = text_col(&[Some("a")]);
        expect_invalid(
            fit(&spec1("x", json!("standard")), &raw),
            "x",
            "needs a numeric column",
        );
    }

    #[test]
    fn check_kinds_allows_categorical_encoders_on_any_kind() {
        let cols = vec![
            ("store".to_string(), ColumnKind::Numeric),
            ("vip".to_string(), ColumnKind::Bool),
        ];
        let specs = parse_spec(&json!({
            "store": {"one_hot": {"top": 5}},
            "vip": {"ordinal": {"order": ["false", "true"]}}
        }))
        .unwrap();
        check_kinds(&specs, &cols).unwrap();
    }

    #[test]
    fn fit_rejects_duplicate_features_and_bad_shapes() {
        let mut raw = RawColumns::new(&[ColumnKind::Numeric, ColumnKind::Numeric]);
        raw.push_num(0, Some(1.0));
        raw.push_num(1, Some(1.0));
        let s = FeatureSpec::new("a", Encoder::Standard);
        expect_invalid(fit(&[s.clone(), s.clone()], &raw), "a", "twice");
        assert!(matches!(fit(&[s], &raw), Err(EngineError::Internal(_))));
        assert_eq!(fit(&[], &raw).unwrap_err(), EngineError::NoFeatures);
    }

    #[test]
    fn raw_columns_intern_text() {
        let mut raw = RawColumns::new(&[ColumnKind::Text, ColumnKind::Numeric]);
        for (t, n) in [
            (Some("a"), Some(1.0)),
            (Some("b"), None),
            (Some("a"), Some(2.0)),
            (None, Some(3.0)),
        ] {
            raw.push_text(0, t);
            raw.push_num(1, n);
        }
        assert_eq!(raw.n_rows(), 4);
        assert_eq!(
            raw.column(0),
            &RawColumn::Text {
                dict: vec!["a".into(), "b".into()],
                codes: vec![Some(0), Some(1), Some(0), None]
            }
        );
        // NULL is stored as NaN (compared bit for bit: NaN != NaN).
        let RawColumn::Numeric(nums) = raw.column(1) else {
            panic!("column 1 is numeric")
        };
        let bits: Vec<u64> = nums.iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, [1.0, f64::NAN, 2.0, 3.0].map(f64::to_bits).to_vec());
        assert!(raw.heap_bytes() > 0);
    }

    #[test]
    fn raw_text_codes_are_first_seen_positions_past_the_scanned_size() {
        // Values that share lengths and prefixes, and more distinct values than the
        // scanned dictionary size, revisited in another order.
        let vals: Vec<String> = (0..3 * SCAN_DICT)
            .map(|i| format!("v{:02}", i * 7 % 23))
            .collect();
        let mut raw = RawColumns::new(&[ColumnKind::Text]);
        let mut want_dict: Vec<String> = Vec::new();
        let mut want_codes = Vec::new();
        for v in vals
            .iter()
            .chain(vals.iter().rev())
            .chain(vals.iter().step_by(3))
        {
            raw.push_text(0, Some(v));
            let code = match want_dict.iter().position(|d| d == v) {
                Some(c) => c,
                None => {
                    want_dict.push(v.clone());
                    want_dict.len() - 1
                }
            };
            want_codes.push(Some(code as u32));
        }
        assert!(want_dict.len() > SCAN_DICT);
        assert_eq!(
            raw.column(0),
            &RawColumn::Text {
                dict: want_dict,
                codes: want_codes
            }
        );
    }

    #[test]
    fn numpy_percentile_and_median() {
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile_sorted(&s, 25.0), 2.0);
        assert_eq!(percentile_sorted(&s, 75.0), 4.0);
        assert_eq!(percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 25.0), 1.75);
        assert_eq!(percentile_sorted(&[5.0], 75.0), 5.0);
        assert_eq!(median_sorted(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }

    // ---------------------------------------------------------------- threads

    /// One cell of the mixed test table.
    #[derive(Clone)]
    enum Cell {
        N(Option<f64>),
        T(Option<&'static str>),
    }

    const MIXED_SPEC: &str = r#"{
        "a": "standard", "b": "log_standard", "c": "robust", "d": "min_max",
        "e": {"standard": {}, "null": "mean"}, "f": {"quantile_bins": {"bins": 5}},
        "g": {"passthrough": {}, "null": "indicator"}, "h": {"standard": {}, "null": "skip"},
        "i": {"standard": {}, "null": "median", "weight": 2.5},
        "r": {"one_hot": {"top": 4}}, "s": {"one_hot": {"top": 3, "null_category": true}},
        "t": {"ordinal": {"order": ["lo", "mid", "hi"]}}, "u": {"one_hot": {"top": 3}, "null": "mode"}
    }"#;

    /// A seeded table for [`MIXED_SPEC`], one `Vec<Cell>` per feature (spec order), with
    /// NULLs only where the feature's policy accepts them.
    fn mixed_table(n: usize, seed: u64) -> (Vec<FeatureSpec>, Vec<Vec<Cell>>) {
        use rand::{Rng, SeedableRng};
        let specs = parse_spec(&serde_json::from_str(MIXED_SPEC).unwrap()).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        const CATS: [&str; 7] = ["north", "south", "east", "west", "up", "down", "mid"];
        const ORD: [&str; 3] = ["lo", "mid", "hi"];
        let cols = specs
            .iter()
            .map(|s| {
                (0..n)
                    .map(|_| {
                        let null = rng.gen::<f64>() < 0.05;
                        let v = rng.gen::<f64>();
                        match s.name.as_str() {
                            "e" | "g" | "h" | "i" if null => Cell::N(None),
                            "e" if v < 0.01 => Cell::N(Some(f64::NAN)),
                            "b" => Cell::N(Some((v * 9.0).exp())),
                            "f" => Cell::N(Some((v * 20.0).floor())),
                            "r" => Cell::T(Some(CATS[(v * v * 7.0) as usize])),
                            "s" | "u" if null => Cell::T(None),
                            "s" | "u" => Cell::T(Some(CATS[(v * 5.0) as usize])),
                            "t" => Cell::T(Some(ORD[(v * 3.0) as usize])),
                            _ => Cell::N(Some(v * 1000.0 - 300.0)),
                        }
                    })
                    .collect()
            })
            .collect();
        (specs, cols)
    }

    fn raw_of(cols: &[Vec<Cell>]) -> RawColumns {
        let kinds: Vec<ColumnKind> = cols
            .iter()
            .map(|c| match c[0] {
                Cell::N(_) => ColumnKind::Numeric,
                Cell::T(_) => ColumnKind::Text,
            })
            .collect();
        let mut raw = RawColumns::new(&kinds);
        for (i, col) in cols.iter().enumerate() {
            for cell in col {
                match cell {
                    Cell::N(v) => raw.push_num(i, *v),
                    Cell::T(v) => raw.push_text(i, *v),
                }
            }
        }
        raw
    }

    fn col_of(specs: &[FeatureSpec], name: &str) -> usize {
        specs.iter().position(|s| s.name == name).unwrap()
    }

    fn assert_same_encoded(a: &Encoded, b: &Encoded) {
        assert_eq!(a.kept_rows, b.kept_rows);
        assert_eq!(a.skipped, b.skipped);
        assert_eq!(a.matrix.len(), b.matrix.len());
        assert!(a
            .matrix
            .iter()
            .zip(&b.matrix)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn parallel_transform_is_bit_identical_to_serial() {
        for (n, seed) in [(2, 1), (3, 2), (101, 3), (4099, 4)] {
            let (specs, cols) = mixed_table(n, seed);
            let raw = raw_of(&cols);
            let enc = fit_impl(&specs, &raw, usize::MAX).unwrap();
            let serial = enc.transform_impl(&raw, usize::MAX).unwrap();
            let parallel = enc.transform_impl(&raw, 0).unwrap();
            assert_same_encoded(&serial, &parallel);
            assert!(n < 100 || !serial.skipped.is_empty());
            // the per-row path agrees too
            let mut out = vec![0.0; enc.dim()];
            for (i, &r) in serial.kept_rows.iter().enumerate() {
                let row: Vec<Value> = (0..specs.len()).map(|c| value_at(&raw, c, r)).collect();
                assert!(enc.transform_row(&row, &mut out).unwrap());
                let want = &serial.matrix[i * enc.dim()..(i + 1) * enc.dim()];
                assert!(out
                    .iter()
                    .zip(want)
                    .all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
    }

    #[test]
    fn public_fit_and_transform_use_threads_and_match_serial() {
        let n = PARALLEL_MIN_ROWS + 1001;
        let (specs, cols) = mixed_table(n, 7);
        let raw = raw_of(&cols);
        let enc = fit(&specs, &raw).unwrap();
        let serial_enc = fit_impl(&specs, &raw, usize::MAX).unwrap();
        assert_eq!(enc, serial_enc);
        assert_eq!(enc.to_json(), serial_enc.to_json());
        let serial = enc.transform_impl(&raw, usize::MAX).unwrap();
        assert_same_encoded(&enc.transform(&raw).unwrap(), &serial);
    }

    #[test]
    fn parallel_transform_returns_the_serial_error() {
        let n = 4000;
        let (specs, clean) = mixed_table(n, 11);
        let enc = fit_impl(&specs, &raw_of(&clean), usize::MAX).unwrap();
        let (a, b, t, h) = (
            col_of(&specs, "a"),
            col_of(&specs, "b"),
            col_of(&specs, "t"),
            col_of(&specs, "h"),
        );
        // (feature, row, cell) edits
        let cases: Vec<Vec<(usize, usize, Cell)>> = vec![
            vec![(a, 3200, Cell::N(None))],
            vec![(a, 3200, Cell::N(None)), (t, 1200, Cell::T(Some("zzz")))],
            vec![(b, 2800, Cell::N(Some(-1.0))), (a, 2800, Cell::N(None))],
            vec![(b, 2000, Cell::N(Some(-2.0))), (a, 1999, Cell::N(None))],
            vec![(t, 0, Cell::T(Some("zzz"))), (a, n - 1, Cell::N(None))],
            vec![(a, n - 1, Cell::N(None))],
            // a skipped row raises nothing; the next error does
            vec![
                (h, 1500, Cell::N(None)),
                (a, 1500, Cell::N(None)),
                (b, 3900, Cell::N(Some(-3.0))),
            ],
        ];
        let mut rows = Vec::new();
        for edits in cases {
            let mut cols = clean.clone();
            for &(_, r, _) in &edits {
                cols[h][r] = Cell::N(Some(1.0)); // not skipped unless an edit says so
            }
            for (c, r, cell) in edits {
                cols[c][r] = cell;
            }
            let raw = raw_of(&cols);
            let serial = enc.transform_impl(&raw, usize::MAX);
            let parallel = enc.transform_impl(&raw, 0);
            let Err(EngineError::Encode { row, .. }) = &serial else {
                panic!("expected an Encode error, got {serial:?}");
            };
            rows.push(row.unwrap());
            assert_eq!(parallel, serial);
        }
        assert_eq!(rows, [3200, 1200, 2800, 1999, 0, n - 1, 3900]);
    }

    #[test]
    fn parallel_fit_returns_the_serial_error_and_parameters() {
        let n = 3000;
        let (specs, clean) = mixed_table(n, 12);
        let raw = raw_of(&clean);
        assert_eq!(
            fit_impl(&specs, &raw, 0).unwrap(),
            fit_impl(&specs, &raw, usize::MAX).unwrap()
        );
        let (a, b, t, h) = (
            col_of(&specs, "a"),
            col_of(&specs, "b"),
            col_of(&specs, "t"),
            col_of(&specs, "h"),
        );
        let cases: Vec<Vec<(usize, usize, Cell)>> = vec![
            vec![(t, 10, Cell::T(Some("zzz")))],
            vec![
                (t, 10, Cell::T(Some("zzz"))),
                (b, 2500, Cell::N(Some(-1.0))),
            ],
            vec![(b, 5, Cell::N(Some(-1.0))), (a, 2999, Cell::N(None))],
        ];
        for edits in cases {
            let mut cols = clean.clone();
            for &(_, r, _) in &edits {
                cols[h][r] = Cell::N(Some(1.0));
            }
            for (c, r, cell) in edits {
                cols[c][r] = cell;
            }
            let raw = raw_of(&cols);
            let serial = fit_impl(&specs, &raw, usize::MAX);
            assert!(serial.is_err());
            assert_eq!(fit_impl(&specs, &raw, 0), serial);
        }
    }

    #[test]
    fn fused_standard_stats_are_bit_identical_to_materialized_sums() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for len in (1..300).chain([1000, 4097, 100_003]) {
            // near-constant around a large offset, and plain spread-out values
            let v: Vec<f64> = (0..len)
                .map(|_| match len % 2 {
                    0 => 1e6 + rng.gen::<f64>() * 1e-3 * rng.gen::<f64>(),
                    _ => rng.gen::<f64>() * 1000.0 - 300.0,
                })
                .collect();
            // the former implementation: materialize deviations and their squares
            let n = len as f64;
            let mean = sum(&v) / n;
            let d: Vec<f64> = v.iter().map(|x| x - mean).collect();
            let d2: Vec<f64> = d.iter().map(|t| t * t).collect();
            let (corr, sq) = stats::sum_deviations(&v, mean);
            assert_eq!(corr.to_bits(), sum(&d).to_bits(), "len {len}");
            assert_eq!(sq.to_bits(), sum(&d2).to_bits(), "len {len}");
            let var = (sum(&d2) - sum(&d) * sum(&d) / n) / n;
            let (m, scale) = standard_stats(&v);
            assert_eq!(m.to_bits(), mean.to_bits());
            let eps = f64::EPSILON;
            let bound = n * eps * var + (n * mean * eps) * (n * mean * eps);
            let want = if var <= bound { 1.0 } else { var.sqrt() };
            assert_eq!(scale.to_bits(), want.to_bits(), "len {len}");
        }
    }
}

//! Drift of data against a model version's training data: reference distributions
//! (stored with every version), the population stability index and the Jensen-Shannon
//! distance between a reference and a current distribution, and their bands.
//!
//! **Reference distributions.** A numeric feature: the training values' deciles
//! (`numpy.quantile` at 0.1, ..., 0.9, linear method, duplicates removed) as the inner
//! edges of right-closed bins `(-inf, e1], (e1, e2], ..., (ek, +inf)`, plus a bin of its
//! own for NULL (and NaN / ±Infinity); the share of training rows in each. A categorical
//! feature: its training categories (every distinct value, most frequent first, at most
//! [`MAX_CATEGORIES`]), an "unseen" bin for any other value and a NULL bin. And the
//! segment shares.
//!
//! **PSI** `= Σ (a - e) · ln(a / e)` over the bins, each share first floored at
//! [`PSI_FLOOR`] (1e-4) so that an empty bin counts but is not infinite. **Jensen-Shannon
//! distance** in base 2 (so in [0, 1]): the square root of the divergence, as
//! `scipy.spatial.distance.jensenshannon(p, q, base=2)`. Bands of the PSI (a convention
//! from credit scoring, not a test): below 0.10 stable, 0.10 to 0.25 moderate, above 0.25
//! significant. Checked against numpy/scipy fixtures
//! (`fixtures/make_drift_fixtures.py`).
use crate::encode::stats::quantile_sorted;
use std::collections::HashMap;

/// Shares below this count as this in the PSI.
pub const PSI_FLOOR: f64 = 1e-4;
/// Categories a reference keeps (the rest of the training values count as unseen).
pub const MAX_CATEGORIES: usize = 1000;

/// A numeric feature's reference bins.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericBins {
    /// Inner edges, ascending and distinct (at most 9).
    pub edges: Vec<f64>,
}

impl NumericBins {
    /// Decile edges of `values` (NaN = NULL, skipped). No edge for no values.
    pub fn fit(values: &[f64]) -> NumericBins {
        let mut s: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return NumericBins { edges: Vec::new() };
        }
        s.sort_unstable_by(f64::total_cmp);
        let step = (0.9 - 0.1) / 8.0;
        let mut edges: Vec<f64> = (0..9)
            .map(|i| {
                let q = if i == 8 { 0.9 } else { 0.1 + i as f64 * step };
                quantile_sorted(&s, q)
            })
            .collect();
        edges.dedup();
        NumericBins { edges }
    }

    /// Bins: `edges.len() + 1` value bins, then the NULL bin.
    pub fn bins(&self) -> usize {
        self.edges.len() + 2
    }

    /// The bin of `x` (NaN / ±Infinity / NULL: the last).
    #[inline]
    pub fn bin(&self, x: Option<f64>) -> usize {
        match x {
            Some(v) if v.is_finite() => self.edges.partition_point(|e| *e < v),
            _ => self.edges.len() + 1,
        }
    }
}

/// A categorical feature's reference bins.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryBins {
    pub categories: Vec<String>,
    lookup: HashMap<String, usize>,
}

impl CategoryBins {
    /// The categories of `values` (None = NULL), most frequent first (ties by text).
    pub fn fit<'a>(values: impl Iterator<Item = Option<&'a str>>) -> CategoryBins {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for v in values.flatten() {
            *counts.entry(v).or_default() += 1;
        }
        let mut cats: Vec<(&str, u64)> = counts.into_iter().collect();
        cats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        cats.truncate(MAX_CATEGORIES);
        CategoryBins::new(cats.into_iter().map(|(c, _)| c.to_string()).collect())
    }

    pub fn new(categories: Vec<String>) -> CategoryBins {
        let lookup = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        CategoryBins { categories, lookup }
    }

    /// Bins: the categories, "unseen", then NULL.
    pub fn bins(&self) -> usize {
        self.categories.len() + 2
    }

    #[inline]
    pub fn bin(&self, x: Option<&str>) -> usize {
        match x {
            Some(s) => self.lookup.get(s).copied().unwrap_or(self.categories.len()),
            None => self.categories.len() + 1,
        }
    }
}

/// One feature's bins.
#[derive(Debug, Clone, PartialEq)]
pub enum Bins {
    Numeric(NumericBins),
    Categorical(CategoryBins),
}

impl Bins {
    pub fn len(&self) -> usize {
        match self {
            Bins::Numeric(b) => b.bins(),
            Bins::Categorical(b) => b.bins(),
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bin of one value as a row carries it: numbers are binned as numbers by
    /// numeric bins and as their canonical text (as the encoders see them) by category
    /// bins; booleans are the categories "true" / "false"; NULL, NaN and ±Infinity are
    /// NULL.
    pub fn bin_value(&self, v: &crate::encode::Value<'_>) -> usize {
        use crate::encode::Value;
        match (self, v) {
            (Bins::Numeric(b), Value::Num(x)) => b.bin(Some(*x)),
            (Bins::Numeric(b), _) => b.bin(None),
            (Bins::Categorical(b), Value::Text(t)) => b.bin(Some(t)),
            (Bins::Categorical(b), Value::Bool(x)) => {
                b.bin(Some(if *x { "true" } else { "false" }))
            }
            (Bins::Categorical(b), Value::Num(x)) if x.is_finite() => {
                b.bin(Some(crate::encode::NumText::new().format(*x)))
            }
            (Bins::Categorical(b), _) => b.bin(None),
        }
    }

    /// The bins' names, for reports: `(-inf, e1]`, ..., `(ek, +inf)`, `NULL`; or the
    /// categories, `(unseen)`, `NULL`.
    pub fn names(&self) -> Vec<String> {
        match self {
            Bins::Numeric(b) => {
                let mut lo = "-inf".to_string();
                let mut out = Vec::new();
                for e in &b.edges {
                    out.push(format!("({lo}, {e}]"));
                    lo = format!("{e}");
                }
                out.push(format!("({lo}, +inf)"));
                out.push("NULL".into());
                out
            }
            Bins::Categorical(b) => {
                let mut out = b.categories.clone();
                out.push("(unseen)".into());
                out.push("NULL".into());
                out
            }
        }
    }
}

/// A feature's reference: its bins and the training rows' shares in them.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureReference {
    pub name: String,
    pub bins: Bins,
    pub shares: Vec<f64>,
}

/// A model version's reference distributions.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub features: Vec<FeatureReference>,
    /// Share of the training rows in each segment (centroid order).
    pub segment_shares: Vec<f64>,
}

impl Reference {
    /// The catalog's JSON form (`segment.versions.reference`).
    pub fn to_json(&self) -> serde_json::Value {
        let features: Vec<serde_json::Value> = self
            .features
            .iter()
            .map(|f| match &f.bins {
                Bins::Numeric(b) => serde_json::json!({
                    "feature": f.name, "kind": "numeric", "edges": b.edges, "shares": f.shares
                }),
                Bins::Categorical(b) => serde_json::json!({
                    "feature": f.name, "kind": "categorical", "categories": b.categories,
                    "shares": f.shares
                }),
            })
            .collect();
        serde_json::json!({
            "version": 1,
            "features": features,
            "segment_shares": self.segment_shares,
        })
    }

    /// Read [`Reference::to_json`]'s form back (None if it is not that form).
    pub fn from_json(v: &serde_json::Value) -> Option<Reference> {
        let nums = |v: &serde_json::Value| -> Option<Vec<f64>> {
            v.as_array()?
                .iter()
                .map(serde_json::Value::as_f64)
                .collect()
        };
        let mut features = Vec::new();
        for f in v["features"].as_array()? {
            let name = f["feature"].as_str()?.to_string();
            let bins = match f["kind"].as_str()? {
                "numeric" => Bins::Numeric(NumericBins {
                    edges: nums(&f["edges"])?,
                }),
                "categorical" => Bins::Categorical(CategoryBins::new(
                    f["categories"]
                        .as_array()?
                        .iter()
                        .map(|c| c.as_str().map(str::to_string))
                        .collect::<Option<_>>()?,
                )),
                _ => return None,
            };
            let shares = nums(&f["shares"])?;
            if shares.len() != bins.len() {
                return None;
            }
            features.push(FeatureReference { name, bins, shares });
        }
        Some(Reference {
            features,
            segment_shares: nums(&v["segment_shares"])?,
        })
    }
}

/// Decile edges come from at most this many values of a column (every n-th, in row
/// order, which is id order), the shares from every row.
pub const EDGE_SAMPLE: usize = 100_000;

/// The reference of each column of `raw` (named `names`, in order): numeric columns get
/// decile bins, text and boolean columns category bins; with the training rows' shares.
pub fn reference_of(raw: &crate::encode::RawColumns, names: &[&str]) -> Vec<FeatureReference> {
    use crate::encode::RawColumn;
    names
        .iter()
        .enumerate()
        .map(|(i, name)| match raw.column(i) {
            RawColumn::Numeric(vals) => {
                let stride = vals.len().div_ceil(EDGE_SAMPLE).max(1);
                let sample: Vec<f64> = vals.iter().step_by(stride).copied().collect();
                let bins = NumericBins::fit(&sample);
                let mut counts = vec![0u64; bins.bins()];
                for &v in vals {
                    counts[bins.bin(Some(v))] += 1;
                }
                FeatureReference {
                    name: name.to_string(),
                    shares: shares(&counts),
                    bins: Bins::Numeric(bins),
                }
            }
            RawColumn::Text { dict, codes } => {
                let bins =
                    CategoryBins::fit(codes.iter().map(|c| c.map(|c| dict[c as usize].as_str())));
                // One lookup per distinct value, then per row by code.
                let by_code: Vec<usize> = dict.iter().map(|d| bins.bin(Some(d))).collect();
                let mut counts = vec![0u64; bins.bins()];
                for c in codes {
                    counts[c.map_or(bins.bins() - 1, |c| by_code[c as usize])] += 1;
                }
                FeatureReference {
                    name: name.to_string(),
                    shares: shares(&counts),
                    bins: Bins::Categorical(bins),
                }
            }
        })
        .collect()
}

/// Counts turned into shares (all 0 for no rows).
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 })
        .collect()
}

/// Population stability index of `actual` against `expected` (shares of the same bins).
///
/// Panics if the lengths differ.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    assert_eq!(expected.len(), actual.len(), "psi: bins differ");
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Jensen-Shannon distance, base 2, of two distributions over the same bins (each
/// normalized to sum 1 first); 0 when both are all zeros, 1 (nothing in common) when
/// only one is.
///
/// Panics if the lengths differ.
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    assert_eq!(p.len(), q.len(), "js_distance: bins differ");
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    match (sp > 0.0, sq > 0.0) {
        (false, false) => return 0.0,
        (true, false) | (false, true) => return 1.0,
        _ => {}
    }
    // scipy: m = (p + q) / 2; js = (rel_entr(p, m).sum() + rel_entr(q, m).sum()) / 2, in
    // nats, then / ln 2 for base 2, then sqrt.
    let rel = |x: f64, m: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    let mut left = 0.0;
    let mut right = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel(a, m);
        right += rel(b, m);
    }
    let js = (left + right) / 2.0 / std::f64::consts::LN_2;
    js.max(0.0).sqrt()
}

/// The conventional band of a PSI.
pub fn band(psi: f64) -> &'static str {
    if psi < 0.10 {
        "stable"
    } else if psi <= 0.25 {
        "moderate"
    } else {
        "significant"
    }
}

#[cfg(test)]
mod tests;

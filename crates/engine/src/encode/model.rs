//! The fitted state: per-feature models (scalers, one-hot, ordinal, bins), their
//! encoding of one value, error reporting, and the column views fit and transform share.

use super::*;

// ------------------------------------------------------------------------------------
// Fitted state
// ------------------------------------------------------------------------------------

/// A list of categories with a lookup from text to position.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CatIndex {
    pub(super) values: Vec<String>,
    pub(super) lookup: FxHashMap<String, u32>,
}

/// Most categories looked up by a scan rather than the hash map (measured faster for a
/// handful of short values, the usual case).
pub(super) const SCAN_CATS: usize = 8;

impl CatIndex {
    pub(super) fn new(values: Vec<String>) -> Self {
        let lookup = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32))
            .collect();
        CatIndex { values, lookup }
    }

    #[inline]
    pub(super) fn get(&self, s: &str) -> u32 {
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
pub(super) enum Pre {
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
pub(super) struct NumModel {
    pub(super) pre: Pre,
    pub(super) center: f64,
    pub(super) scale: f64,
    /// Imputed value in input units (rank for ordinal).
    pub(super) fill: Option<f64>,
    pub(super) indicator: bool,
    // derived
    pub(super) min_max: bool,
    pub(super) inv_scale: f64,
    pub(super) fill_out: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct OneHotModel {
    /// Top-n categories in text order.
    pub(super) cats: CatIndex,
    pub(super) fill: Option<String>,
    pub(super) null_category: bool,
    // derived: column (relative to the feature) that an imputed NULL goes to
    pub(super) fill_col: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Model {
    Num(NumModel),
    OneHot(OneHotModel),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fitted {
    pub(super) spec: FeatureSpec,
    pub(super) kind: ColumnKind,
    pub(super) model: Model,
    // derived
    pub(super) sw: f64,
    pub(super) offset: usize,
    pub(super) width: usize,
}

/// A fitted encoder: the per-feature statistics needed to encode rows the way the
/// training rows were encoded. Store it with [`FittedEncoder::to_json`].
#[derive(Debug, Clone, PartialEq)]
pub struct FittedEncoder {
    pub(super) features: Vec<Fitted>,
    pub(super) dim: usize,
    pub(super) skip_features: Vec<usize>,
}

/// A reason one value could not be encoded (turned into an `EngineError` by the caller,
/// which knows the row and the value's text).
#[derive(Debug, Clone, Copy)]
pub(super) enum Fail {
    Null,
    Negative(f64),
    Unknown,
}

/// One value after type dispatch.
#[derive(Debug, Clone, Copy)]
pub(super) enum In {
    Null,
    Num(f64),
    /// Category index in the fitted categories, or NOT_FOUND.
    Cat(u32),
}

impl NumModel {
    pub(super) fn finish(&mut self, sw: f64, min_max: bool) {
        self.min_max = min_max;
        self.inv_scale = 1.0 / self.scale;
        self.fill_out = match self.fill {
            Some(x) => self.encode_value(x) * sw,
            None => 0.0,
        };
    }

    #[inline]
    pub(super) fn pre(&self, x: f64) -> f64 {
        match &self.pre {
            Pre::Identity | Pre::Rank(_) => x,
            Pre::Log1p => x.ln_1p(),
            Pre::Bins(edges) => bin_index(edges, x) as f64,
        }
    }

    #[inline]
    pub(super) fn encode_value(&self, x: f64) -> f64 {
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
pub(super) fn bin_index(edges: &[f64], x: f64) -> usize {
    let inner = &edges[1..edges.len() - 1];
    inner.partition_point(|e| *e <= x)
}

impl Fitted {
    #[inline(always)]
    pub(super) fn encode(&self, inp: In, out: &mut [f64]) -> Result<(), Fail> {
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
    pub(super) fn cat_index(&self) -> Option<&CatIndex> {
        match &self.model {
            Model::OneHot(m) => Some(&m.cats),
            Model::Num(NumModel {
                pre: Pre::Rank(idx),
                ..
            }) => Some(idx),
            _ => None,
        }
    }

    pub(super) fn error(&self, row: Option<usize>, fail: Fail, text: Option<&str>) -> EngineError {
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

    pub(super) fn output_names(&self, out: &mut Vec<String>) {
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
pub(super) struct CatView<'a> {
    pub(super) dict: Cow<'a, [String]>,
    pub(super) codes: Cow<'a, [Option<u32>]>,
}

pub(super) fn cat_view(col: &RawColumn) -> CatView<'_> {
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
pub(super) enum Src<'a> {
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
    pub(super) fn get(&self, r: usize) -> In {
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

    pub(super) fn text(&self, r: usize) -> Option<&str> {
        match self {
            Src::Cat { codes, dict, .. } => codes[r].map(|c| dict[c as usize].as_str()),
            Src::Num(_) => None,
        }
    }
}

pub(super) fn is_null_in(i: In) -> bool {
    matches!(i, In::Null)
}

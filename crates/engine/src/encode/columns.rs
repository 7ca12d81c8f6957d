//! Raw column storage while rows are read ([`RawColumns`]), and the values of the
//! per-row path ([`Value`], [`Encoded`], canonical number text).

use super::*;

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
    pub(super) fn len(&self) -> usize {
        match self {
            RawColumn::Numeric(v) => v.len(),
            RawColumn::Text { codes, .. } => codes.len(),
        }
    }
}

/// A buffer of zeros for an encoded matrix, allocated before the rows are read so that
/// its pages can be faulted in on an idle core while the backend scans (see
/// [`ZeroedMatrix::range`]); [`FittedEncoder::transform_into`](super::FittedEncoder::transform_into)
/// then encodes into it. Only [`ZeroedMatrix::new`] makes one, so it always holds zeros
/// (faulting pages in changes no value).
#[derive(Debug, Default)]
pub struct ZeroedMatrix(pub(super) Vec<f64>);

impl ZeroedMatrix {
    /// `len` zeros (a fresh allocation: for large sizes, pages not yet touched).
    pub fn new(len: usize) -> Self {
        ZeroedMatrix(vec![0.0; len])
    }

    /// Values it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its memory as (address, bytes), for prefaulting. Nothing is read or written.
    pub fn range(&mut self) -> (usize, usize) {
        (self.0.as_mut_ptr() as usize, self.0.len() * 8)
    }
}

/// The reserved, unfilled part of `v`'s buffer as (address, bytes). Nothing is read or
/// written.
pub fn spare_range<T>(v: &mut Vec<T>) -> (usize, usize) {
    let s = v.spare_capacity_mut();
    (s.as_mut_ptr() as usize, std::mem::size_of_val(s))
}

/// Dictionaries up to this size are searched by a scan in [`RawColumns::push_text`].
pub(super) const SCAN_DICT: usize = 8;

/// `s`'s code in `dict` when the dictionary is small enough to scan, else `None` (also
/// when not found: the caller then consults the hash map, which has every value).
#[inline]
pub(super) fn small_dict_find(dict: &[String], s: &str) -> Option<u32> {
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
    pub(super) kinds: Vec<ColumnKind>,
    pub(super) cols: Vec<RawColumn>,
    pub(super) interners: Vec<FxHashMap<String, u32>>,
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

    /// Put the rows in the order `order` (a permutation of the row positions), as if
    /// they had been read in that order: text dictionaries are renumbered by first
    /// appearance in the new order. Training reorders its rows by id, so that what it
    /// fits does not depend on the source's physical row order.
    ///
    /// # Panics
    /// If `order` is not a permutation of `0..n_rows()` (a caller bug).
    pub fn reorder(&mut self, order: &[u32]) {
        self.reorder_impl(order, super::PARALLEL_MIN_ROWS)
    }

    /// [`RawColumns::reorder`], the columns shared between two threads from
    /// `parallel_min_rows` rows (each column is gathered independently, so the result is
    /// the same). A random gather from a column larger than the caches costs a cache
    /// miss per row, and the new columns are fresh memory: both are paid on two cores.
    pub(crate) fn reorder_impl(&mut self, order: &[u32], parallel_min_rows: usize) {
        let n = self.n_rows();
        assert_eq!(order.len(), n, "reorder: one position per row");
        // Alternate columns, so that numeric and text columns spread over both threads.
        let (mut work, mut other) = (Vec::new(), Vec::new());
        for (j, c) in self.cols.iter_mut().zip(&mut self.interners).enumerate() {
            if j % 2 == 0 {
                work.push(c);
            } else {
                other.push(c);
            }
        }
        if n < parallel_min_rows.max(2) || other.is_empty() {
            for (col, interner) in work.into_iter().chain(other) {
                reorder_column(col, interner, order, n);
            }
            return;
        }
        std::thread::scope(|sc| {
            let h = sc.spawn(move || {
                for (col, interner) in other {
                    reorder_column(col, interner, order, n);
                }
            });
            for (col, interner) in work {
                reorder_column(col, interner, order, n);
            }
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        });
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

    /// Reserve room for exactly `additional` more rows in every column (no doubling).
    pub fn reserve_exact(&mut self, additional: usize) {
        for c in &mut self.cols {
            match c {
                RawColumn::Numeric(v) => v.reserve_exact(additional),
                RawColumn::Text { codes, .. } => codes.reserve_exact(additional),
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

pub(super) fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Canonical text of a number for categorical encoders, formatted on the stack.
pub(crate) struct NumText {
    pub(super) buf: [u8; 40],
    pub(super) len: usize,
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
    pub(crate) fn new() -> Self {
        NumText {
            buf: [0; 40],
            len: 0,
        }
    }

    /// `3.0` → "3", `-0.0` → "0", `2.5` → "2.5", `1e20` → "1e20". `v` must be finite.
    pub(crate) fn format(&mut self, v: f64) -> &str {
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

/// One column of [`RawColumns::reorder`].
fn reorder_column(
    col: &mut RawColumn,
    interner: &mut FxHashMap<String, u32>,
    order: &[u32],
    n: usize,
) {
    match col {
        RawColumn::Numeric(v) => {
            let old = std::mem::take(v);
            v.extend(order.iter().map(|&i| old[i as usize]));
        }
        RawColumn::Text { dict, codes } => {
            let old_codes = std::mem::take(codes);
            let mut old_dict: Vec<Option<String>> =
                std::mem::take(dict).into_iter().map(Some).collect();
            let mut renumber = vec![u32::MAX; old_dict.len()];
            codes.reserve_exact(n);
            for &i in order {
                codes.push(old_codes[i as usize].map(|c| {
                    let c = c as usize;
                    if renumber[c] == u32::MAX {
                        renumber[c] = dict.len() as u32;
                        dict.push(old_dict[c].take().expect("each code renumbered once"));
                    }
                    renumber[c]
                }));
            }
            interner.clear();
            for (code, value) in dict.iter().enumerate() {
                interner.insert(value.clone(), code as u32);
            }
        }
    }
}

//! [`FittedEncoder`] at work: assembling the layout, batch transform (two threads on
//! large inputs), per-row transform, output names and the inverse map.

use super::*;

// ------------------------------------------------------------------------------------
// FittedEncoder
// ------------------------------------------------------------------------------------

impl FittedEncoder {
    /// Compute the derived fields (layout, sqrt weights, encoded fills).
    pub(super) fn assemble(mut features: Vec<Fitted>) -> Self {
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

    /// Encode every row of `data` (one column per feature, in feature order). Rows with
    /// a NULL in a `skip` feature are left out and listed in [`Encoded::skipped`]. The
    /// first failing value (feature by feature within a row, rows in order) is
    /// returned as an `Encode` error with its 0-based row.
    ///
    /// With at least [`PARALLEL_MIN_ROWS`] kept rows the rows are encoded on two
    /// threads (two contiguous halves); the result, error included, is exactly the
    /// serial one.
    pub fn transform(&self, data: &RawColumns) -> Result<Encoded, EngineError> {
        self.transform_impl(data, PARALLEL_MIN_ROWS, None)
    }

    /// [`FittedEncoder::transform`] into `buf` when it holds at least the rows x `dim`
    /// values the result needs (it is cut to that size, the rest given back); otherwise
    /// into a fresh allocation (`buf` is freed first). The result is the same either way.
    pub fn transform_into(
        &self,
        data: &RawColumns,
        buf: ZeroedMatrix,
    ) -> Result<Encoded, EngineError> {
        self.transform_impl(data, PARALLEL_MIN_ROWS, Some(buf))
    }

    /// Encode rows `rows` into `out` (`rows.len() × dim`, row-major), returning the
    /// error of the first failing value. With `stop`, gives up (returning `Ok`) once
    /// `stop` is set, checked every few thousand rows.
    pub(super) fn encode_rows(
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
    pub(super) fn transform_impl(
        &self,
        data: &RawColumns,
        parallel_min_rows: usize,
        buf: Option<ZeroedMatrix>,
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
        let need = m * dim;
        let mut matrix = match buf {
            Some(ZeroedMatrix(mut b)) if b.len() >= need => {
                // Zeros throughout (ZeroedMatrix's invariant); the unneeded tail goes
                // back (a shrinking realloc of a large block moves nothing).
                b.truncate(need);
                b.shrink_to_fit();
                b
            }
            other => {
                drop(other);
                vec![0.0; need]
            }
        };
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

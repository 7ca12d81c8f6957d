//! Fitting an encoder: [`fit`] (features on two threads from
//! [`PARALLEL_MIN_ROWS`](super::PARALLEL_MIN_ROWS) rows), numeric and one-hot models,
//! and the range check of encoded values.

use super::*;

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
pub(super) fn fit_impl(
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

pub(super) fn fit_numeric(
    s: &FeatureSpec,
    col: &RawColumn,
    kept: &[usize],
) -> Result<NumModel, EngineError> {
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
pub(super) fn check_encoded_range(
    s: &FeatureSpec,
    model: &NumModel,
    vals: &[f64],
) -> Result<(), EngineError> {
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

pub(super) fn fit_one_hot(
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

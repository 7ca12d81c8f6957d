//! Carrying a point (a centroid) from one fitted encoder's space into another's, for the
//! warm start of `segment_refresh` when the encoder is refit on new data: each feature's
//! columns are decoded to the feature's original units with the old encoder and encoded
//! again with the new one.
//!
//! - Numeric features (standard, min_max, robust, log_standard, passthrough): the value
//!   is decoded exactly (`inverse_numeric`) and encoded with the new scaler. A
//!   log_standard value below 0 after decoding (impossible for a centroid of valid rows,
//!   but not for an arbitrary point) is taken as 0.
//! - quantile_bins: the centroid's fractional bin index is decoded by piecewise-linear
//!   interpolation between the old bins' midpoints, and encoded as the fractional
//!   position between the new bins' midpoints (the same interpolation, inverted).
//! - ordinal: the order is part of the spec, so ranks mean the same in both encoders:
//!   the (fractional) rank is carried as it is.
//! - A missing-value indicator column carries its share (0..1) of NULLs.
//! - one_hot: each category's share is carried by category name; a category the new
//!   encoder does not keep adds its share to the new "(other)" column; a category new to
//!   the new encoder starts at 0. The "(other)" and "(null)" shares carry over.
//!
//! Weights are applied anew (a share or a value times the new encoder's sqrt weight).
use super::*;

impl FittedEncoder {
    /// `point` (a row of this encoder's space, length `self.dim()`) in `to`'s space.
    /// Both encoders must have the same features in the same order (same spec).
    pub fn carry_to(&self, to: &FittedEncoder, point: &[f64]) -> Result<Vec<f64>, EngineError> {
        if point.len() != self.dim {
            return Err(EngineError::DimensionMismatch {
                expected: self.dim,
                got: point.len(),
            });
        }
        let names = |e: &FittedEncoder| -> Vec<String> {
            e.features.iter().map(|f| f.spec.name.clone()).collect()
        };
        if names(self) != names(to) {
            return Err(EngineError::InvalidParameter {
                name: "encoder".into(),
                reason: format!(
                    "cannot carry a point between encoders of different features ({} vs {})",
                    names(self).join(", "),
                    names(to).join(", ")
                ),
            });
        }
        let mut out = vec![0.0; to.dim];
        for (i, (f, g)) in self.features.iter().zip(&to.features).enumerate() {
            let src = &point[f.offset..f.offset + f.width];
            let dst = &mut out[g.offset..g.offset + g.width];
            match (&f.model, &g.model) {
                (Model::Num(a), Model::Num(b)) => {
                    dst[0] = carry_num(self, i, a, f.sw, b, g.sw, src[0]);
                    if b.indicator {
                        dst[1] = if a.indicator {
                            src[1] / f.sw * g.sw
                        } else {
                            0.0
                        };
                    }
                }
                (Model::OneHot(a), Model::OneHot(b)) => {
                    let (na, nb) = (a.cats.values.len(), b.cats.values.len());
                    for (c, name) in a.cats.values.iter().enumerate() {
                        let share = src[c] / f.sw;
                        let col = match b.cats.get(name) {
                            NOT_FOUND => nb,
                            j => j as usize,
                        };
                        dst[col] += share * g.sw;
                    }
                    dst[nb] += src[na] / f.sw * g.sw;
                    if a.null_category && b.null_category {
                        dst[nb + 1] = src[na + 1] / f.sw * g.sw;
                    }
                }
                _ => {
                    return Err(EngineError::InvalidParameter {
                        name: f.spec.name.clone(),
                        reason: "encoded differently by the two encoders".into(),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// One numeric feature's value, old encoded -> new encoded.
fn carry_num(
    old: &FittedEncoder,
    feature: usize,
    a: &NumModel,
    sw_a: f64,
    b: &NumModel,
    sw_b: f64,
    v: f64,
) -> f64 {
    // The pre-transformed value t (rank, bin position, log1p or x) of the old encoder.
    let t_old = v / sw_a * a.scale + a.center;
    let t_new = match (&a.pre, &b.pre) {
        (Pre::Rank(_), Pre::Rank(_)) => t_old,
        (_, Pre::Bins(edges)) => {
            let x = old.inverse_numeric(feature, v).unwrap_or(0.0);
            bin_position(edges, x)
        }
        _ => {
            let x = old.inverse_numeric(feature, v).unwrap_or(0.0);
            match b.pre {
                Pre::Log1p => x.max(0.0).ln_1p(),
                _ => x,
            }
        }
    };
    (t_new - b.center) / b.scale * sw_b
}

/// The fractional bin index of `x` between the bins' midpoints (the inverse of
/// `inverse_numeric`'s interpolation), clamped to the first and last bin.
fn bin_position(edges: &[f64], x: f64) -> f64 {
    let mids: Vec<f64> = edges.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    let last = mids.len() - 1;
    if x.is_nan() || x <= mids[0] {
        return 0.0;
    }
    if x >= mids[last] {
        return last as f64;
    }
    let i = mids.partition_point(|m| *m <= x) - 1;
    let span = mids[i + 1] - mids[i];
    if span > 0.0 {
        i as f64 + (x - mids[i]) / span
    } else {
        i as f64
    }
}

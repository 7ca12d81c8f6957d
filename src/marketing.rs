//! The marketer's layer: `segment.health` (each segment rated substantial, stable,
//! homogeneous and distinct, sql/health.sql), `segment_rfm` (RFM scores and named
//! segments from a transactions table, sql/rfm.sql) and the uplift aggregates of
//! controlled tests per segment.

// segment.health, its thresholds and segment_health_settings: sql/health.sql (catalog
// tables only, so anywhere after the bootstrap).
pgrx::extension_sql_file!("../sql/health.sql", name = "health");

// segment.rfm_maps, the shipped map and segment_rfm (PL/pgSQL): sql/rfm.sql (after the
// bootstrap, which creates schema segment).
pgrx::extension_sql_file!("../sql/rfm.sql", name = "rfm");

// ---------------------------------------------------------------------------------------
// Uplift of controlled tests: segment_uplift_rate, segment_uplift_mean, segment_p_adjust
// ---------------------------------------------------------------------------------------
//
// The aggregates keep their state in `segment.agg_state` (see pg/expanded.rs): the
// confidence level and the counts (rate) or each arm's count, mean and M2 (mean), whose
// bytes are exact. The state combines exactly (counts add; moments merge by Chan et
// al.), so the aggregates are PARALLEL SAFE and Citus pushes them down; their text form
// does not depend on extra_float_digits.

use crate::engine::uplift::{self, Adjust, MeanAgg, MeanState, RateAgg, RateState};
use crate::error::{raise, raise_engine, Code};
use crate::pg::expanded::{self, FlatState};
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal};

/// The default confidence level of the two-argument aggregates.
const DEFAULT_CONFIDENCE: f64 = 0.95;

/// `confidence`, checked by the engine's rule (in (0, 1)); NULL or out of range raises.
fn check_confidence(confidence: Option<f64>, what: &str) -> f64 {
    match confidence {
        Some(c) if uplift::check_confidence(c).is_ok() => c,
        _ => raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{what}: confidence must be between 0 and 1 (exclusive), got {}",
                confidence.map_or("NULL".to_string(), |c| c.to_string())
            ),
            Some("Pass a level such as 0.95, the same on every row.".into()),
        ),
    }
}

/// The confidence of a state, checked against the one a row asks for.
fn same_confidence(state_conf: f64, asked: f64, what: &str) {
    if state_conf != asked {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{what}: confidence differs between rows ({state_conf} and {asked})"),
            Some("Pass one confidence level for the whole group, e.g. a constant.".into()),
        );
    }
}

crate::impl_agg_state!(RateAgg, "segment_uplift_rate", |a, b| a.merge(b));

impl FlatState for RateAgg {
    const NAME: &'static str = "uplift_rate";
    const MAGIC: &'static [u8; 4] = crate::engine::UPLIFT_RATE_MAGIC;
}

crate::impl_agg_state!(MeanAgg, "segment_uplift_mean", |a, b| a.merge(b));

impl FlatState for MeanAgg {
    const NAME: &'static str = "uplift_mean";
    const MAGIC: &'static [u8; 4] = crate::engine::UPLIFT_MEAN_MAGIC;
}

fn rate_trans(
    state: Internal,
    treated: Option<bool>,
    converted: Option<bool>,
    confidence: Option<f64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let what = "segment_uplift_rate";
    let conf = check_confidence(confidence, what);
    let (state, st) = expanded::state_update(state, fcinfo, || RateAgg {
        confidence: conf,
        state: RateState::default(),
    });
    same_confidence(st.confidence, conf, what);
    // A row without its arm or its outcome is not part of the experiment.
    if let (Some(t), Some(x)) = (treated, converted) {
        st.state.add(t, x);
    }
    state
}

fn mean_trans(
    state: Internal,
    treated: Option<bool>,
    value: Option<f64>,
    confidence: Option<f64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let what = "segment_uplift_mean";
    let conf = check_confidence(confidence, what);
    let (state, st) = expanded::state_update(state, fcinfo, || MeanAgg {
        confidence: conf,
        state: MeanState::default(),
    });
    same_confidence(st.confidence, conf, what);
    // NULL, NaN and ±Infinity values are skipped (not counted).
    if let (Some(t), Some(v)) = (treated, value) {
        st.state.add(t, v);
    }
    state
}

#[pg_schema]
mod segment {
    use super::*;

    /// Transition of `segment_uplift_rate(treated, converted, confidence)`.
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_rate_trans(
        state: Internal,
        treated: Option<bool>,
        converted: Option<bool>,
        confidence: Option<f64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        rate_trans(state, treated, converted, confidence, fcinfo)
    }

    /// Transition of `segment_uplift_rate(treated, converted)` (confidence 0.95).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_rate_trans_default(
        state: Internal,
        treated: Option<bool>,
        converted: Option<bool>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        rate_trans(state, treated, converted, Some(DEFAULT_CONFIDENCE), fcinfo)
    }

    /// Combine two partial states of `segment_uplift_rate` (counts add: exact).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_rate_combine(
        a: Internal,
        b: Internal,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        expanded::combine::<RateAgg>(a, b, fcinfo)
    }

    /// The figures of a `segment_uplift_rate` state (NULL: no row), as one row.
    #[allow(clippy::type_complexity)]
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_rate_figures(
        state: Internal,
    ) -> TableIterator<
        'static,
        (
            name!(treated_n, i64),
            name!(treated_conversions, i64),
            name!(treated_rate, Option<f64>),
            name!(control_n, i64),
            name!(control_conversions, i64),
            name!(control_rate, Option<f64>),
            name!(diff, Option<f64>),
            name!(ci_low, Option<f64>),
            name!(ci_high, Option<f64>),
            name!(relative_lift, Option<f64>),
            name!(p_value, Option<f64>),
            name!(confidence, Option<f64>),
            name!(note, Option<String>),
        ),
    > {
        let what = "segment_uplift_rate";
        let st = expanded::state_view::<RateAgg>(state);
        let conf = st.as_ref().map(|s| s.confidence);
        let s = st.map(|s| s.state).unwrap_or_default();
        let r = uplift::rate_result(&s, conf.unwrap_or(DEFAULT_CONFIDENCE))
            .unwrap_or_else(|e| raise_engine(e, what));
        TableIterator::once((
            r.treated_n as i64,
            r.treated_x as i64,
            r.treated_rate,
            r.control_n as i64,
            r.control_x as i64,
            r.control_rate,
            r.diff,
            r.ci_low,
            r.ci_high,
            r.relative_lift,
            r.p_value,
            conf,
            r.note,
        ))
    }

    /// Transition of `segment_uplift_mean(treated, value, confidence)`.
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_mean_trans(
        state: Internal,
        treated: Option<bool>,
        value: Option<f64>,
        confidence: Option<f64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        mean_trans(state, treated, value, confidence, fcinfo)
    }

    /// Transition of `segment_uplift_mean(treated, value)` (confidence 0.95).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_mean_trans_default(
        state: Internal,
        treated: Option<bool>,
        value: Option<f64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        mean_trans(state, treated, value, Some(DEFAULT_CONFIDENCE), fcinfo)
    }

    /// Combine two partial states of `segment_uplift_mean` (Chan et al.'s merge).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_mean_combine(
        a: Internal,
        b: Internal,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        expanded::combine::<MeanAgg>(a, b, fcinfo)
    }

    /// The figures of a `segment_uplift_mean` state (NULL: no row), as one row.
    #[allow(clippy::type_complexity)]
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _uplift_mean_figures(
        state: Internal,
    ) -> TableIterator<
        'static,
        (
            name!(treated_n, i64),
            name!(treated_mean, Option<f64>),
            name!(control_n, i64),
            name!(control_mean, Option<f64>),
            name!(diff, Option<f64>),
            name!(ci_low, Option<f64>),
            name!(ci_high, Option<f64>),
            name!(df, Option<f64>),
            name!(p_value, Option<f64>),
            name!(confidence, Option<f64>),
            name!(note, Option<String>),
        ),
    > {
        let what = "segment_uplift_mean";
        let st = expanded::state_view::<MeanAgg>(state);
        let conf = st.as_ref().map(|s| s.confidence);
        let s = st.map(|s| s.state).unwrap_or_default();
        let r = uplift::mean_result(&s, conf.unwrap_or(DEFAULT_CONFIDENCE))
            .unwrap_or_else(|e| raise_engine(e, what));
        TableIterator::once((
            r.treated_n as i64,
            r.treated_mean,
            r.control_n as i64,
            r.control_mean,
            r.diff,
            r.ci_low,
            r.ci_high,
            r.df,
            r.p_value,
            conf,
            r.note,
        ))
    }

    /// `segment_p_adjust(p float8, method text) OVER (...)`: the window form (see
    /// sql/marketing.sql, which creates it as a WINDOW function over this symbol).
    #[pg_extern(immutable, parallel_safe)]
    fn _p_adjust_window(
        _p: Option<f64>,
        _method: Option<&str>,
        fcinfo: pgrx::pg_sys::FunctionCallInfo,
    ) -> Option<f64> {
        crate::pg::window::per_partition(fcinfo, "segment_p_adjust", |ps, method| {
            adjusted(ps, method.as_deref())
        })
    }
}

fn adjusted(p: &[Option<f64>], method: Option<&str>) -> Vec<Option<f64>> {
    let Some(method) = method else {
        raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "segment_p_adjust: argument \"method\" must not be NULL",
            Some("Use 'holm' or 'bh' (Benjamini-Hochberg).".into()),
        )
    };
    let Ok(m) = Adjust::parse(method) else {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("segment_p_adjust: unknown method \"{method}\""),
            Some("Use 'holm' (Holm's step-down, family-wise error) or 'bh' (Benjamini-Hochberg, false discovery rate).".into()),
        )
    };
    if let Some(bad) = p.iter().flatten().find(|v| !(0.0..=1.0).contains(*v)) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("segment_p_adjust: p-value {bad} is outside [0, 1]"),
            Some("Pass p-values; NULLs are skipped.".into()),
        );
    }
    uplift::adjust(p, m)
}

/// Adjusted p-values of an array (NULLs skipped and kept), by Holm's step-down method
/// (`'holm'`, family-wise error) or Benjamini-Hochberg's step-up (`'bh'`, false discovery
/// rate), as statsmodels `multipletests`.
///
/// ```sql
/// SELECT segment_p_adjust(ARRAY[0.01, 0.04, 0.03], 'bh');
/// ```
#[pg_extern(immutable, parallel_safe)]
fn segment_p_adjust(
    p: Option<Array<'_, f64>>,
    method: default!(Option<&str>, "'holm'"),
) -> Option<Vec<Option<f64>>> {
    let p: Vec<Option<f64>> = p?.iter().map(|v| v.filter(|x| !x.is_nan())).collect();
    Some(adjusted(&p, method))
}

// The composite types, the uplift aggregates' support functions (hand-written: pgrx sees
// their state as `internal`), the aggregates and the window form of segment_p_adjust:
// sql/marketing.sql, after the type segment.agg_state (sql/agg_state.sql).
pgrx::extension_sql_file!(
    "../sql/marketing.sql",
    name = "marketing",
    requires = ["agg_state", segment::_p_adjust_window, segment_p_adjust]
);

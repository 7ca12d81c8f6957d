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
// The aggregates keep a plain float8[] state (not `internal`): the state crosses process
// boundaries as it is, and combines exactly (counts add; moments merge by Chan et al.),
// so the aggregates are PARALLEL SAFE with a combine function and no (de)serialization.
// Rate state: [confidence, treated rows, treated conversions, control rows, control
// conversions]. Mean state: [confidence, treated n, mean, M2, control n, mean, M2].

use crate::engine::uplift::{self, Adjust, MeanState, Moments, RateState};
use crate::error::{raise, raise_engine, Code};
use pgrx::prelude::*;

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

fn bad_state(what: &str) -> ! {
    raise(
        Code::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("{what}: the state is not one of this aggregate's"),
        Some("Use the aggregate as the extension created it.".into()),
    )
}

/// The confidence of a state, checked against the one a row (or another state) asks for.
fn same_confidence(state_conf: f64, asked: f64, what: &str) {
    if state_conf != asked {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{what}: confidence differs between rows ({state_conf} and {asked})"),
            Some("Pass one confidence level for the whole group, e.g. a constant.".into()),
        );
    }
}

fn count(x: f64, what: &str) -> u64 {
    if x >= 0.0 && x.fract() == 0.0 && x < 9.007_199_254_740_992e15 {
        x as u64
    } else {
        bad_state(what)
    }
}

fn rate_state(a: &[f64], what: &str) -> (f64, RateState) {
    let [conf, tn, tx, cn, cx] = a else {
        bad_state(what)
    };
    let s = RateState {
        treated_n: count(*tn, what),
        treated_x: count(*tx, what),
        control_n: count(*cn, what),
        control_x: count(*cx, what),
    };
    if s.treated_x > s.treated_n || s.control_x > s.control_n {
        bad_state(what)
    }
    (check_confidence(Some(*conf), what), s)
}

fn rate_array(conf: f64, s: &RateState) -> Vec<f64> {
    vec![
        conf,
        s.treated_n as f64,
        s.treated_x as f64,
        s.control_n as f64,
        s.control_x as f64,
    ]
}

fn mean_state(a: &[f64], what: &str) -> (f64, MeanState) {
    let [conf, tn, tm, t2, cn, cm, c2] = a else {
        bad_state(what)
    };
    let arm = |n: f64, mean: f64, m2: f64| Moments {
        n: count(n, what),
        mean,
        m2,
    };
    let s = MeanState {
        treated: arm(*tn, *tm, *t2),
        control: arm(*cn, *cm, *c2),
    };
    (check_confidence(Some(*conf), what), s)
}

fn mean_array(conf: f64, s: &MeanState) -> Vec<f64> {
    let (t, c) = (&s.treated, &s.control);
    vec![conf, t.n as f64, t.mean, t.m2, c.n as f64, c.mean, c.m2]
}

fn values(a: &Array<'_, f64>, what: &str) -> Vec<f64> {
    a.iter()
        .map(|v| v.unwrap_or_else(|| bad_state(what)))
        .collect()
}

fn rate_trans(
    state: Option<Array<'_, f64>>,
    treated: Option<bool>,
    converted: Option<bool>,
    confidence: Option<f64>,
) -> Option<Vec<f64>> {
    let what = "segment_uplift_rate";
    let conf = check_confidence(confidence, what);
    let (c, mut s) = match &state {
        Some(a) => rate_state(&values(a, what), what),
        None => (conf, RateState::default()),
    };
    same_confidence(c, conf, what);
    // A row without its arm or its outcome is not part of the experiment.
    if let (Some(t), Some(x)) = (treated, converted) {
        s.add(t, x);
    }
    Some(rate_array(c, &s))
}

fn mean_trans(
    state: Option<Array<'_, f64>>,
    treated: Option<bool>,
    value: Option<f64>,
    confidence: Option<f64>,
) -> Option<Vec<f64>> {
    let what = "segment_uplift_mean";
    let conf = check_confidence(confidence, what);
    let (c, mut s) = match &state {
        Some(a) => mean_state(&values(a, what), what),
        None => (conf, MeanState::default()),
    };
    same_confidence(c, conf, what);
    // NULL, NaN and ±Infinity values are skipped (not counted).
    if let (Some(t), Some(v)) = (treated, value) {
        s.add(t, v);
    }
    Some(mean_array(c, &s))
}

#[pg_schema]
mod segment {
    use super::*;

    /// Transition of `segment_uplift_rate(treated, converted, confidence)`.
    #[pg_extern(immutable, parallel_safe)]
    fn _uplift_rate_trans(
        state: Option<Array<'_, f64>>,
        treated: Option<bool>,
        converted: Option<bool>,
        confidence: Option<f64>,
    ) -> Option<Vec<f64>> {
        rate_trans(state, treated, converted, confidence)
    }

    /// Transition of `segment_uplift_rate(treated, converted)` (confidence 0.95).
    #[pg_extern(immutable, parallel_safe, name = "_uplift_rate_trans")]
    fn _uplift_rate_trans_default(
        state: Option<Array<'_, f64>>,
        treated: Option<bool>,
        converted: Option<bool>,
    ) -> Option<Vec<f64>> {
        rate_trans(state, treated, converted, Some(DEFAULT_CONFIDENCE))
    }

    /// Combine two partial states of `segment_uplift_rate` (counts add: exact).
    #[pg_extern(immutable, parallel_safe, strict)]
    fn _uplift_rate_combine(a: Array<'_, f64>, b: Array<'_, f64>) -> Vec<f64> {
        let what = "segment_uplift_rate";
        let (ca, mut sa) = rate_state(&values(&a, what), what);
        let (cb, sb) = rate_state(&values(&b, what), what);
        same_confidence(ca, cb, what);
        sa.merge(&sb);
        rate_array(ca, &sa)
    }

    /// The figures of a `segment_uplift_rate` state (NULL: no row), as one row.
    #[allow(clippy::type_complexity)]
    #[pg_extern(immutable, parallel_safe)]
    fn _uplift_rate_figures(
        state: Option<Array<'_, f64>>,
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
        let (conf, s) = match &state {
            Some(a) => {
                let (c, s) = rate_state(&values(a, what), what);
                (Some(c), s)
            }
            None => (None, RateState::default()),
        };
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
    #[pg_extern(immutable, parallel_safe)]
    fn _uplift_mean_trans(
        state: Option<Array<'_, f64>>,
        treated: Option<bool>,
        value: Option<f64>,
        confidence: Option<f64>,
    ) -> Option<Vec<f64>> {
        mean_trans(state, treated, value, confidence)
    }

    /// Transition of `segment_uplift_mean(treated, value)` (confidence 0.95).
    #[pg_extern(immutable, parallel_safe, name = "_uplift_mean_trans")]
    fn _uplift_mean_trans_default(
        state: Option<Array<'_, f64>>,
        treated: Option<bool>,
        value: Option<f64>,
    ) -> Option<Vec<f64>> {
        mean_trans(state, treated, value, Some(DEFAULT_CONFIDENCE))
    }

    /// Combine two partial states of `segment_uplift_mean` (Chan et al.'s merge).
    #[pg_extern(immutable, parallel_safe, strict)]
    fn _uplift_mean_combine(a: Array<'_, f64>, b: Array<'_, f64>) -> Vec<f64> {
        let what = "segment_uplift_mean";
        let (ca, mut sa) = mean_state(&values(&a, what), what);
        let (cb, sb) = mean_state(&values(&b, what), what);
        same_confidence(ca, cb, what);
        sa.merge(&sb);
        mean_array(ca, &sa)
    }

    /// The figures of a `segment_uplift_mean` state (NULL: no row), as one row.
    #[allow(clippy::type_complexity)]
    #[pg_extern(immutable, parallel_safe)]
    fn _uplift_mean_figures(
        state: Option<Array<'_, f64>>,
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
        let (conf, s) = match &state {
            Some(a) => {
                let (c, s) = mean_state(&values(a, what), what);
                (Some(c), s)
            }
            None => (None, MeanState::default()),
        };
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

// The composite types, the SQL final functions, the aggregates and the window form of
// segment_p_adjust: sql/marketing.sql, after the functions they name.
pgrx::extension_sql_file!(
    "../sql/marketing.sql",
    name = "marketing",
    requires = [
        segment::_uplift_rate_trans,
        segment::_uplift_rate_trans_default,
        segment::_uplift_rate_combine,
        segment::_uplift_rate_figures,
        segment::_uplift_mean_trans,
        segment::_uplift_mean_trans_default,
        segment::_uplift_mean_combine,
        segment::_uplift_mean_figures,
        segment::_p_adjust_window,
        segment_p_adjust
    ]
);

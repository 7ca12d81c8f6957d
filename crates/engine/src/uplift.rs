//! Uplift of an experiment: the difference between a treated and a control arm, for a
//! conversion rate (two proportions) or a mean (e.g. revenue per user), with its
//! confidence interval and two-sided p-value, plus Holm / Benjamini-Hochberg adjustment of
//! many p-values (one per segment).
//!
//! **Conventions.** Arm 1 is the treated arm, arm 2 the control arm, and every difference
//! is `treated − control`. Every p-value is two-sided. The confidence level `c` must lie
//! in (0, 1) (`alpha = 1 − c`); anything else, NaN included, is an
//! [`EngineError::InvalidParameter`] named `"confidence"`.
//!
//! **Rates** ([`rate_result`]): the interval is Newcombe's hybrid score interval (Newcombe
//! 1998, method 10) built from the two Wilson score intervals; the p-value is the pooled
//! two-proportion z-test. They equal statsmodels'
//! `confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", compare="diff")` and
//! `proportions_ztest([x_t, x_c], [n_t, n_c])`.
//!
//! **Means** ([`mean_result`]): Welch's unequal-variance t-test with the Welch–Satterthwaite
//! degrees of freedom, as `scipy.stats.ttest_ind(t, c, equal_var=False)` and its
//! `.confidence_interval()`.
//!
//! **Adjustment** ([`adjust`]): Holm's step-down and Benjamini–Hochberg's step-up adjusted
//! p-values, as statsmodels `multipletests(p, method="holm" | "fdr_bh")`.
//!
//! The per-experiment states ([`RateState`], [`MeanState`]) are mergeable, so the SQL
//! aggregates can run in parallel. Results never fail and never panic for any counts: a
//! figure that cannot be computed is `None` and `note` says why in plain words. Checked
//! against numpy / scipy / statsmodels fixtures (`fixtures/make_uplift_fixtures.py`) to
//! 1e-9. The special functions are in [`special`].
use crate::codec::{ByteReader, ByteWriter, UPLIFT_MEAN_MAGIC, UPLIFT_RATE_MAGIC};
use crate::error::EngineError;
use serde::{Deserialize, Serialize};

/// Counts of one rate experiment: rows (`n`) and conversions (`x`) per arm.
///
/// Merging adds the counts, so it is exact and order-free. Counts saturate at `u64::MAX`
/// instead of overflowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateState {
    pub treated_n: u64,
    pub treated_x: u64,
    pub control_n: u64,
    pub control_x: u64,
}

impl RateState {
    /// Count one row: in the treated arm when `treated` (else control), a conversion when
    /// `converted`.
    pub fn add(&mut self, treated: bool, converted: bool) {
        let (n, x) = if treated {
            (&mut self.treated_n, &mut self.treated_x)
        } else {
            (&mut self.control_n, &mut self.control_x)
        };
        *n = n.saturating_add(1);
        *x = x.saturating_add(u64::from(converted));
    }

    /// Add another state's counts (the combine step of a parallel aggregate).
    pub fn merge(&mut self, other: &RateState) {
        self.treated_n = self.treated_n.saturating_add(other.treated_n);
        self.treated_x = self.treated_x.saturating_add(other.treated_x);
        self.control_n = self.control_n.saturating_add(other.control_n);
        self.control_x = self.control_x.saturating_add(other.control_x);
    }
}

/// Count, mean and sum of squared deviations from the mean (`m2`) of one arm's values:
/// the sample variance is `m2 / (n − 1)`.
///
/// Values are added with Welford's update (`δ = x − mean`, `mean += δ / n`,
/// `m2 += δ · (x − mean)`) and states are combined with Chan et al.'s pairwise formula
/// (`δ = mean_b − mean_a`, `mean = mean_a + δ · n_b / n`,
/// `m2 = m2_a + m2_b + δ² · n_a · n_b / n`), both numerically stable.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    /// Add one value (Welford). NaN and ±Infinity are skipped, like NULL: they are not
    /// counted.
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.n = self.n.saturating_add(1);
        let delta = value - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// Combine with another arm's moments (Chan et al.).
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = self.n.saturating_add(other.n);
        let nf = n as f64;
        let delta = other.mean - self.mean;
        self.mean += delta * (nb / nf);
        self.m2 += other.m2 + delta * delta * (na * nb / nf);
        self.n = n;
    }

    /// The sample variance `m2 / (n − 1)` (ddof = 1); `None` below 2 values.
    pub fn variance(&self) -> Option<f64> {
        (self.n >= 2).then(|| self.m2.max(0.0) / (self.n - 1) as f64)
    }
}

/// Moments of both arms of one mean experiment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MeanState {
    pub treated: Moments,
    pub control: Moments,
}

impl MeanState {
    /// Add one value to the treated arm when `treated` (else control). NaN and ±Infinity
    /// are skipped (see [`Moments::add`]).
    pub fn add(&mut self, treated: bool, value: f64) {
        if treated {
            self.treated.add(value);
        } else {
            self.control.add(value);
        }
    }

    /// Combine with another state, arm by arm (see [`Moments::merge`]).
    pub fn merge(&mut self, other: &MeanState) {
        self.treated.merge(&other.treated);
        self.control.merge(&other.control);
    }
}

/// The aggregate state of `segment_uplift_rate`: the confidence level its rows ask for,
/// and the counts. Bytes: the engine's codec (magic `PSUR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateAgg {
    pub confidence: f64,
    pub state: RateState,
}

/// The aggregate state of `segment_uplift_mean` (magic `PSUM`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanAgg {
    pub confidence: f64,
    pub state: MeanState,
}

fn same_confidence(a: f64, b: f64) -> Result<(), EngineError> {
    if a == b {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "confidence",
            format!("differs between rows ({a} and {b})"),
        ))
    }
}

impl RateAgg {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(UPLIFT_RATE_MAGIC, 40);
        w.put(self.confidence);
        let s = &self.state;
        for v in [s.treated_n, s.treated_x, s.control_n, s.control_x] {
            w.put(v);
        }
        w.finish()
    }

    /// Parses [`RateAgg::to_bytes`] output, rejecting anything malformed (a confidence
    /// outside (0, 1), more conversions than rows).
    pub fn from_bytes(bytes: &[u8]) -> Result<RateAgg, EngineError> {
        let mut r = ByteReader::open(bytes, "uplift rate state", UPLIFT_RATE_MAGIC)?;
        let confidence = r.finite()?;
        if check_confidence(confidence).is_err() {
            return Err(r.bad("confidence outside (0, 1)"));
        }
        let state = RateState {
            treated_n: r.u64()?,
            treated_x: r.u64()?,
            control_n: r.u64()?,
            control_x: r.u64()?,
        };
        if state.treated_x > state.treated_n || state.control_x > state.control_n {
            return Err(r.bad("more conversions than rows"));
        }
        r.finish()?;
        Ok(RateAgg { confidence, state })
    }

    /// Merge another partial state (the same confidence level, else an error).
    pub fn merge(&mut self, other: &RateAgg) -> Result<(), EngineError> {
        same_confidence(self.confidence, other.confidence)?;
        self.state.merge(&other.state);
        Ok(())
    }
}

impl MeanAgg {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(UPLIFT_MEAN_MAGIC, 56);
        w.put(self.confidence);
        for m in [&self.state.treated, &self.state.control] {
            w.put(m.n);
            w.put(m.mean);
            w.put(m.m2);
        }
        w.finish()
    }

    /// Parses [`MeanAgg::to_bytes`] output, rejecting anything malformed (a confidence
    /// outside (0, 1), non-finite moments, a negative sum of squares).
    pub fn from_bytes(bytes: &[u8]) -> Result<MeanAgg, EngineError> {
        let mut r = ByteReader::open(bytes, "uplift mean state", UPLIFT_MEAN_MAGIC)?;
        let confidence = r.finite()?;
        if check_confidence(confidence).is_err() {
            return Err(r.bad("confidence outside (0, 1)"));
        }
        let arm = |r: &mut ByteReader<'_>| -> Result<Moments, EngineError> {
            let m = Moments {
                n: r.u64()?,
                mean: r.finite()?,
                m2: r.finite()?,
            };
            if m.m2 < 0.0 {
                return Err(r.bad("negative sum of squares"));
            }
            Ok(m)
        };
        let treated = arm(&mut r)?;
        let control = arm(&mut r)?;
        r.finish()?;
        Ok(MeanAgg {
            confidence,
            state: MeanState { treated, control },
        })
    }

    /// Merge another partial state (the same confidence level, else an error).
    pub fn merge(&mut self, other: &MeanAgg) -> Result<(), EngineError> {
        same_confidence(self.confidence, other.confidence)?;
        self.state.merge(&other.state);
        Ok(())
    }
}

/// The uplift of a conversion rate (see [`rate_result`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateResult {
    pub treated_n: u64,
    pub treated_x: u64,
    pub control_n: u64,
    pub control_x: u64,
    /// `treated_x / treated_n`; `None` when the treated arm is empty.
    pub treated_rate: Option<f64>,
    /// `control_x / control_n`; `None` when the control arm is empty.
    pub control_rate: Option<f64>,
    /// `treated_rate − control_rate`; `None` when an arm is empty.
    pub diff: Option<f64>,
    /// Newcombe's hybrid score interval for `diff` (method 10); `None` when an arm has
    /// fewer than 2 rows.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// `diff / control_rate`; `None` when the control rate is 0 (or undefined).
    pub relative_lift: Option<f64>,
    /// Two-sided pooled z-test; 1.0 when the pooled rate is 0 or 1; `None` when an arm has
    /// fewer than 2 rows.
    pub p_value: Option<f64>,
    /// Why a figure is missing or conventional, in plain words.
    pub note: Option<String>,
}

/// The uplift of a mean (see [`mean_result`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanResult {
    pub treated_n: u64,
    pub control_n: u64,
    /// `None` when the treated arm is empty.
    pub treated_mean: Option<f64>,
    /// `None` when the control arm is empty.
    pub control_mean: Option<f64>,
    /// `treated_mean − control_mean`; `None` when an arm is empty.
    pub diff: Option<f64>,
    /// Welch interval `diff ± t(1 − alpha/2, df) · se`; `None` when an arm has fewer than
    /// 2 values; `[diff, diff]` when both arms have zero variance.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Welch's two-sided t-test; `None` when an arm has fewer than 2 values or both have
    /// zero variance.
    pub p_value: Option<f64>,
    /// Welch–Satterthwaite degrees of freedom; `None` exactly when `p_value` is.
    pub df: Option<f64>,
    /// Why a figure is missing or conventional, in plain words.
    pub note: Option<String>,
}

/// Check a confidence level: it must lie in the open interval (0, 1).
pub fn check_confidence(confidence: f64) -> Result<(), EngineError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "confidence",
            format!("must be between 0 and 1 (exclusive), got {confidence}"),
        ))
    }
}

/// "control has 1 row" / "treated has 0 rows and control has 1 row; at least 2 per arm
/// are needed", or `None` when both arms have at least 2.
fn too_few_note(treated_n: u64, control_n: u64, unit: &str) -> Option<String> {
    let arm =
        |name: &str, n: u64| format!("{name} has {n} {unit}{}", if n == 1 { "" } else { "s" });
    let short: Vec<String> = [("treated", treated_n), ("control", control_n)]
        .into_iter()
        .filter(|&(_, n)| n < 2)
        .map(|(name, n)| arm(name, n))
        .collect();
    (!short.is_empty()).then(|| {
        format!(
            "{}; at least 2 {unit}s per arm are needed for an interval and a p-value",
            short.join(" and ")
        )
    })
}

/// The Wilson score interval of `x` successes in `n` trials for the critical value
/// `crit`, clipped to [0, 1] (as statsmodels `proportion_confint(method="wilson")`):
/// `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`.
fn wilson(x: f64, n: f64, crit: f64) -> (f64, f64) {
    let q = x / n;
    let crit2 = crit * crit;
    let denom = 1.0 + crit2 / n;
    let center = (q + crit2 / (2.0 * n)) / denom;
    let dist = crit * (q * (1.0 - q) / n + crit2 / (4.0 * (n * n))).sqrt() / denom;
    (
        (center - dist).clamp(0.0, 1.0),
        (center + dist).clamp(0.0, 1.0),
    )
}

/// The uplift of a conversion rate at confidence level `confidence` ∈ (0, 1).
///
/// With `p_t = x_t / n_t`, `p_c = x_c / n_c`, `diff = p_t − p_c` and `z = Φ⁻¹(1 − alpha/2)`:
/// - **interval** (Newcombe 1998, method 10, the hybrid score interval): with the Wilson
///   intervals `[l_t, u_t]`, `[l_c, u_c]` of each arm at the same `z`,
///   `ci_low = diff − √((p_t − l_t)² + (u_c − p_c)²)` and
///   `ci_high = diff + √((u_t − p_t)² + (p_c − l_c)²)` (clamped to [−1, 1], which only
///   removes rounding);
/// - **p-value**: the pooled two-proportion z-test, `p̄ = (x_t + x_c) / (n_t + n_c)`,
///   `z = diff / √(p̄(1 − p̄)(1/n_t + 1/n_c))`, `p = 2(1 − Φ(|z|))`. When `p̄` is 0 or 1
///   (no row converted, or every row did) the test has no variance: the p-value is then
///   **1.0** by convention, and `note` says so;
/// - `relative_lift = diff / p_c`, `None` when `p_c = 0`.
///
/// An arm with fewer than 2 rows gives the counts, the rates of non-empty arms and the
/// difference when both are non-empty, but `None` for the interval and the p-value, with
/// a note. A state with more conversions than rows in an arm (impossible through
/// [`RateState::add`]) gives only the counts and a note. Errors only for a confidence
/// outside (0, 1) or NaN.
pub fn rate_result(state: &RateState, confidence: f64) -> Result<RateResult, EngineError> {
    check_confidence(confidence)?;
    let s = *state;
    let mut r = RateResult {
        treated_n: s.treated_n,
        treated_x: s.treated_x,
        control_n: s.control_n,
        control_x: s.control_x,
        treated_rate: None,
        control_rate: None,
        diff: None,
        ci_low: None,
        ci_high: None,
        relative_lift: None,
        p_value: None,
        note: None,
    };
    let bad: Vec<&str> = [
        ("treated", s.treated_x > s.treated_n),
        ("control", s.control_x > s.control_n),
    ]
    .into_iter()
    .filter_map(|(name, bad)| bad.then_some(name))
    .collect();
    if !bad.is_empty() {
        r.note = Some(format!(
            "{} has more conversions than rows; the counts are inconsistent",
            bad.join(" and ")
        ));
        return Ok(r);
    }
    let (nt, xt, nc, xc) = (
        s.treated_n as f64,
        s.treated_x as f64,
        s.control_n as f64,
        s.control_x as f64,
    );
    r.treated_rate = (s.treated_n > 0).then(|| xt / nt);
    r.control_rate = (s.control_n > 0).then(|| xc / nc);
    if let (Some(pt), Some(pc)) = (r.treated_rate, r.control_rate) {
        let diff = pt - pc;
        r.diff = Some(diff);
        r.relative_lift = (pc != 0.0).then(|| diff / pc);
    }
    if let Some(note) = too_few_note(s.treated_n, s.control_n, "row") {
        r.note = Some(note);
        return Ok(r);
    }
    let (pt, pc) = (xt / nt, xc / nc);
    let diff = pt - pc;

    let crit = -special::normal_quantile((1.0 - confidence) / 2.0);
    let (lt, ut) = wilson(xt, nt, crit);
    let (lc, uc) = wilson(xc, nc, crit);
    let d_low = ((pt - lt).powi(2) + (uc - pc).powi(2)).sqrt();
    let d_high = ((pc - lc).powi(2) + (ut - pt).powi(2)).sqrt();
    // Within [−1, 1] mathematically; the clamp only removes rounding.
    r.ci_low = Some((diff - d_low).max(-1.0));
    r.ci_high = Some((diff + d_high).min(1.0));

    let pooled =
        (s.treated_x as f64 + s.control_x as f64) / (s.treated_n as f64 + s.control_n as f64);
    if pooled <= 0.0 || pooled >= 1.0 {
        r.p_value = Some(1.0);
        r.note = Some(
            if pooled <= 0.0 {
                "no row converted in either arm, so the z-test has no variance; p_value is 1 by convention"
            } else {
                "every row converted in both arms, so the z-test has no variance; p_value is 1 by convention"
            }
            .to_string(),
        );
    } else {
        let var = pooled * (1.0 - pooled) * (1.0 / nt + 1.0 / nc);
        let z = diff / var.sqrt();
        r.p_value = Some(special::erfc(z.abs() * std::f64::consts::FRAC_1_SQRT_2));
    }
    Ok(r)
}

const TOO_LARGE: &str =
    "the values are too large for the t-test in double precision; no interval or p-value";

/// The uplift of a mean at confidence level `confidence` ∈ (0, 1): Welch's
/// unequal-variance t-test.
///
/// With sample variances `v = m2 / (n − 1)` (ddof = 1), `a = v_t / n_t`, `b = v_c / n_c`:
/// `diff = mean_t − mean_c`, `se = √(a + b)`, `t = diff / se`, Welch–Satterthwaite
/// `df = (a + b)² / (a² / (n_t − 1) + b² / (n_c − 1))`, two-sided
/// `p = 2 · P(T_df > |t|)`, interval `diff ± t_df(1 − alpha/2) · se`.
///
/// An arm with fewer than 2 values gives the counts, the means of non-empty arms and the
/// difference when both are non-empty, but `None` for the interval, p-value and df, with
/// a note. When **both arms have zero variance** (every value within each arm is the
/// same) the t-test is undefined: the interval collapses to `[diff, diff]`, and `p_value`
/// and `df` are `None`, with a note. If the values are so large (beyond about 1e154 in
/// magnitude) that the difference, a variance, `se` or `t` is not finite, the interval,
/// p-value and df (and a non-finite difference) are `None` with a note. Errors only for a
/// confidence outside (0, 1) or NaN.
pub fn mean_result(state: &MeanState, confidence: f64) -> Result<MeanResult, EngineError> {
    check_confidence(confidence)?;
    let (t, c) = (state.treated, state.control);
    let mut r = MeanResult {
        treated_n: t.n,
        control_n: c.n,
        treated_mean: (t.n > 0).then_some(t.mean),
        control_mean: (c.n > 0).then_some(c.mean),
        diff: None,
        ci_low: None,
        ci_high: None,
        p_value: None,
        df: None,
        note: None,
    };
    if t.n > 0 && c.n > 0 {
        r.diff = Some(t.mean - c.mean);
    }
    if let Some(note) = too_few_note(t.n, c.n, "value") {
        r.note = Some(note);
        return Ok(r);
    }
    let diff = t.mean - c.mean;
    let (nt, nc) = (t.n as f64, c.n as f64);
    let a = t.m2.max(0.0) / (nt - 1.0) / nt;
    let b = c.m2.max(0.0) / (nc - 1.0) / nc;
    if !(diff.is_finite() && a.is_finite() && b.is_finite()) {
        r.diff = r.diff.filter(|d| d.is_finite());
        r.note = Some(TOO_LARGE.to_string());
        return Ok(r);
    }
    if a == 0.0 && b == 0.0 {
        r.ci_low = Some(diff);
        r.ci_high = Some(diff);
        r.note = Some(
            "both arms have zero variance (every value within each arm is the same), so the \
             t-test is undefined; the interval is the difference itself"
                .to_string(),
        );
        return Ok(r);
    }
    let se = (a + b).sqrt();
    let tstat = diff / se;
    // Scaled so that tiny variances do not underflow when squared.
    let scale = a.max(b);
    let (ra, rb) = (a / scale, b / scale);
    let df = (ra + rb).powi(2) / (ra * ra / (nt - 1.0) + rb * rb / (nc - 1.0));
    if !(se.is_finite() && tstat.is_finite() && df.is_finite()) {
        r.note = Some(TOO_LARGE.to_string());
        return Ok(r);
    }
    let crit = special::student_t_upper((1.0 - confidence) / 2.0, confidence / 2.0, df);
    r.ci_low = Some(diff - crit * se);
    r.ci_high = Some(diff + crit * se);
    r.p_value = Some(special::student_t_two_sided(tstat, df));
    r.df = Some(df);
    Ok(r)
}

/// A multiple-testing adjustment of p-values (see [`adjust`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adjust {
    /// Holm's step-down (family-wise error rate): sorted ascending,
    /// `p̃_(i) = min(1, max_{j ≤ i} (m − j + 1) · p_(j))`, i = 1..m.
    Holm,
    /// Benjamini–Hochberg's step-up (false discovery rate): sorted ascending,
    /// `p̃_(i) = min(1, min_{j ≥ i} p_(j) · m / j)`, i = 1..m.
    BenjaminiHochberg,
}

impl Adjust {
    /// `"holm"`, or `"bh"` / `"fdr_bh"` / `"benjamini-hochberg"` for Benjamini–Hochberg;
    /// case-insensitive, surrounding spaces ignored. Anything else is an
    /// [`EngineError::InvalidParameter`] named `"method"`.
    pub fn parse(method: &str) -> Result<Adjust, EngineError> {
        match method.trim().to_ascii_lowercase().as_str() {
            "holm" => Ok(Adjust::Holm),
            "bh" | "fdr_bh" | "benjamini-hochberg" => Ok(Adjust::BenjaminiHochberg),
            _ => Err(EngineError::invalid(
                "method",
                format!("unknown p-value adjustment \"{method}\"; use holm or bh"),
            )),
        }
    }
}

/// Adjusted p-values, in the order given, as statsmodels
/// `multipletests(p, method="holm" | "fdr_bh")` (see [`Adjust`] for the formulas).
///
/// `None` (NULL) and NaN p-values are skipped: they do not count in `m` and stay `None`.
/// The others are taken as given (expected in [0, 1]). Ties get the same adjusted value
/// whatever their order; results are capped at 1 and monotone in the raw p-values. An
/// empty or all-`None` input gives all `None`.
pub fn adjust(p: &[Option<f64>], method: Adjust) -> Vec<Option<f64>> {
    let mut present: Vec<(usize, f64)> = p
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|x| !x.is_nan()).map(|x| (i, x)))
        .collect();
    present.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = present.len();
    let mf = m as f64;
    let mut out = vec![None; p.len()];
    match method {
        Adjust::Holm => {
            let mut run = f64::NEG_INFINITY;
            for (k, &(i, v)) in present.iter().enumerate() {
                run = run.max(v * (m - k) as f64);
                out[i] = Some(run.min(1.0));
            }
        }
        Adjust::BenjaminiHochberg => {
            let mut run = f64::INFINITY;
            for (k, &(i, v)) in present.iter().enumerate().rev() {
                run = run.min(v / ((k + 1) as f64 / mf));
                out[i] = Some(run.min(1.0));
            }
        }
    }
    out
}

pub mod special;

#[cfg(test)]
mod tests;

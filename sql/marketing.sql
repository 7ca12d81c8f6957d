-- Uplift of controlled tests per segment (src/marketing.rs): the result types, the
-- aggregates over the support functions in schema segment, and the window form of
-- segment_p_adjust.

CREATE TYPE segment.uplift_rate AS (
    treated_n            bigint,
    treated_conversions  bigint,
    treated_rate         float8,
    control_n            bigint,
    control_conversions  bigint,
    control_rate         float8,
    diff                 float8,    -- treated rate minus control rate
    ci_low               float8,    -- Newcombe's hybrid score interval of diff
    ci_high              float8,
    relative_lift        float8,    -- diff / control rate
    p_value              float8,    -- two-sided pooled two-proportion z-test
    confidence           float8,
    note                 text       -- why a figure is NULL or conventional
);
COMMENT ON TYPE segment.uplift_rate IS 'Result of segment_uplift_rate: conversions per arm, the difference treated minus control with its Newcombe-Wilson interval, the relative lift and a p-value';

CREATE TYPE segment.uplift_mean AS (
    treated_n     bigint,
    treated_mean  float8,
    control_n     bigint,
    control_mean  float8,
    diff          float8,    -- treated mean minus control mean
    ci_low        float8,    -- Welch interval of diff
    ci_high       float8,
    df            float8,    -- Welch-Satterthwaite degrees of freedom
    p_value       float8,    -- Welch's two-sided t-test
    confidence    float8,
    note          text
);
COMMENT ON TYPE segment.uplift_mean IS 'Result of segment_uplift_mean: means per arm, the difference treated minus control with its Welch interval and a p-value';

CREATE FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean, float8) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_trans_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean, float8) IS
    'internal: transition of segment_uplift_rate(treated, converted, confidence)';
CREATE FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_trans_default_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean) IS
    'internal: transition of segment_uplift_rate(treated, converted)';
CREATE FUNCTION segment._uplift_rate_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_combine_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_uplift_rate';
CREATE FUNCTION segment._uplift_rate_figures(state segment.agg_state) RETURNS TABLE (
    treated_n bigint, treated_conversions bigint, treated_rate float8, control_n bigint,
    control_conversions bigint, control_rate float8, diff float8, ci_low float8,
    ci_high float8, relative_lift float8, p_value float8, confidence float8, note text)
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_figures_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_figures(segment.agg_state) IS
    'internal: the figures of a segment_uplift_rate state';
CREATE FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8, float8) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_trans_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8, float8) IS
    'internal: transition of segment_uplift_mean(treated, value, confidence)';
CREATE FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_trans_default_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8) IS
    'internal: transition of segment_uplift_mean(treated, value)';
CREATE FUNCTION segment._uplift_mean_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_combine_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_uplift_mean';
CREATE FUNCTION segment._uplift_mean_figures(state segment.agg_state) RETURNS TABLE (
    treated_n bigint, treated_mean float8, control_n bigint, control_mean float8,
    diff float8, ci_low float8, ci_high float8, df float8, p_value float8,
    confidence float8, note text)
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_figures_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_figures(segment.agg_state) IS
    'internal: the figures of a segment_uplift_mean state';

CREATE FUNCTION segment._uplift_rate_final(state segment.agg_state) RETURNS segment.uplift_rate
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(f.*)::segment.uplift_rate FROM segment._uplift_rate_figures($1) f $$;
COMMENT ON FUNCTION segment._uplift_rate_final(segment.agg_state) IS 'internal: final function of segment_uplift_rate';

CREATE FUNCTION segment._uplift_mean_final(state segment.agg_state) RETURNS segment.uplift_mean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(f.*)::segment.uplift_mean FROM segment._uplift_mean_figures($1) f $$;
COMMENT ON FUNCTION segment._uplift_mean_final(segment.agg_state) IS 'internal: final function of segment_uplift_mean';

CREATE AGGREGATE segment_uplift_rate(treated boolean, converted boolean, confidence float8) (
    SFUNC = segment._uplift_rate_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_rate_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_rate_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_rate(boolean, boolean, float8) IS
    'Uplift of a conversion rate in a controlled test (use with GROUP BY segment): counts and rates per arm, treated minus control with Newcombe''s hybrid score (Wilson) interval at the given confidence, relative lift, two-sided pooled z-test p-value; an arm with fewer than 2 rows gives NULL figures and a note';

CREATE AGGREGATE segment_uplift_rate(treated boolean, converted boolean) (
    SFUNC = segment._uplift_rate_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_rate_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_rate_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_rate(boolean, boolean) IS
    'segment_uplift_rate at confidence 0.95';

CREATE AGGREGATE segment_uplift_mean(treated boolean, value float8, confidence float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_mean_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_mean_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_mean(boolean, float8, float8) IS
    'Uplift of a mean (e.g. revenue) in a controlled test (use with GROUP BY segment): means per arm, treated minus control with a Welch interval at the given confidence, Welch-Satterthwaite df, two-sided Welch t-test p-value; an arm with fewer than 2 values gives NULL figures and a note';

CREATE AGGREGATE segment_uplift_mean(treated boolean, value float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_mean_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_mean_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_mean(boolean, float8) IS
    'segment_uplift_mean at confidence 0.95';

CREATE FUNCTION segment_p_adjust(p float8, method text DEFAULT 'holm') RETURNS float8
WINDOW IMMUTABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_p_adjust_window_wrapper';
COMMENT ON FUNCTION segment_p_adjust(float8, text) IS
    'Window function: each row''s p-value adjusted over its window partition (the frame is ignored) by Holm (''holm'') or Benjamini-Hochberg (''bh''), as statsmodels multipletests; NULLs are skipped and stay NULL';
COMMENT ON FUNCTION segment_p_adjust(float8[], text) IS
    'Adjusted p-values of an array by Holm (''holm'') or Benjamini-Hochberg (''bh''), as statsmodels multipletests; NULLs are skipped and stay NULL';

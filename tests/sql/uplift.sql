-- Uplift of controlled tests per segment: segment_uplift_rate (Newcombe-Wilson interval,
-- pooled z-test), segment_uplift_mean (Welch), segment_p_adjust (Holm,
-- Benjamini-Hochberg) as a window function and over an array; figures equal to
-- statsmodels / scipy (crates/engine/fixtures/make_uplift_fixtures.py), parallel plans
-- equal to serial ones, small arms, NULLs, errors.
CREATE EXTENSION pg_segment;
CREATE TABLE trial AS
SELECT i AS customer_id, 1 + i % 3 AS segment, hashint4(i) & 1 = 1 AS treated,
       (hashint4(i * 7) & 15) < 3 + (i % 3) + CASE WHEN i % 3 = 2 THEN hashint4(i) & 1 ELSE 0 END AS converted,
       ((hashint4(i * 3) & 1023) / 10.0 + 20 * (hashint4(i) & 1) * (i % 3))::float8 AS revenue
FROM generate_series(1, 30000) i;
ANALYZE trial;

-- 1. per segment (the treatment works in segment 3 only): rates, the difference treated minus control, interval, lift, p-value
SELECT segment, u.treated_n, u.treated_conversions, u.control_n, u.control_conversions,
       round(u.diff::numeric, 6) AS diff, round(u.ci_low::numeric, 6) AS ci_low,
       round(u.ci_high::numeric, 6) AS ci_high, round(u.relative_lift::numeric, 6) AS lift,
       round(u.p_value::numeric, 8) AS p_value, u.confidence, u.note
FROM (SELECT segment, segment_uplift_rate(treated, converted) AS u FROM trial GROUP BY segment) s,
     LATERAL (SELECT (s.u).*) u ORDER BY segment;
SELECT segment, u.treated_n, u.control_n, round(u.treated_mean::numeric, 6) AS treated_mean,
       round(u.control_mean::numeric, 6) AS control_mean, round(u.diff::numeric, 6) AS diff,
       round(u.ci_low::numeric, 6) AS ci_low, round(u.ci_high::numeric, 6) AS ci_high,
       round(u.df::numeric, 4) AS df, round(u.p_value::numeric, 8) AS p_value, u.confidence
FROM (SELECT segment, segment_uplift_mean(treated, revenue, 0.9) AS u FROM trial GROUP BY segment) s,
     LATERAL (SELECT (s.u).*) u ORDER BY segment;

-- 2. against statsmodels (confint_proportions_2indep method 'newcomb', proportions_ztest)
--    and scipy (ttest_ind equal_var=False): cases of the engine's fixture
WITH rows AS (
  SELECT true AS treated, i <= 20 AS converted FROM generate_series(1, 20) i
  UNION ALL SELECT false, i <= 15 FROM generate_series(1, 20) i),
u AS (SELECT (segment_uplift_rate(treated, converted, 0.99)).* FROM rows)
SELECT abs(diff - 0.25) < 1e-12 AS diff, abs(ci_low - (-0.047496217029973475)) < 1e-9 AS ci_low,
       abs(ci_high - 0.5371887921483027) < 1e-9 AS ci_high,
       abs(relative_lift - 0.3333333333333333) < 1e-12 AS lift,
       abs(p_value - 0.01682740948275685) < 1e-9 AS p_value FROM u;
WITH rows AS (
  SELECT true AS treated, 19.99::float8 AS v FROM generate_series(1, 5)
  UNION ALL SELECT false, unnest('{17.08, 19.02, 11.97, 19.06, 25.62, 25.9, 17.28, 19.85, 10.32, 25.44, 23.04, 18.06, 17.08, 19.0, 16.21, 22.33, 18.48, 7.13, 12.43, 11.72, 5.31, 12.55, 11.29, 24.68, 15.7, 13.53, 18.96, 13.68, 15.48, 21.88}'::float8[])),
u AS (SELECT (segment_uplift_mean(treated, v, 0.99)).* FROM rows)
SELECT abs(diff - 2.987333333333332) < 1e-9 AS diff, abs(ci_low - 0.2902255450013884) < 1e-9 AS ci_low,
       abs(ci_high - 5.684441121665276) < 1e-9 AS ci_high, abs(df - 29.0) < 1e-9 AS df,
       abs(p_value - 0.004815974284125123) < 1e-9 AS p_value FROM u;
SELECT segment_p_adjust(ARRAY[0.03, 0.05, 1.0, 0.067, 0.01], 'holm') AS holm,
       segment_p_adjust(ARRAY[0.03, 0.05, 1.0, 0.067, 0.01], 'bh') AS bh;
--    statsmodels: holm [0.12, 0.15, 1.0, 0.15, 0.05], fdr_bh [0.075, 0.08333, 1.0, 0.08375, 0.05]

-- 3. parallel plans (partial aggregates combined) give the serial results
CREATE TEMP TABLE serial AS
SELECT segment, segment_uplift_rate(treated, converted) AS r, segment_uplift_mean(treated, revenue) AS m
FROM trial GROUP BY segment;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT segment, segment_uplift_rate(treated, converted) FROM trial GROUP BY segment;
SELECT s.segment, (p.r).diff = (s.r).diff AND (p.r).p_value = (s.r).p_value AS rate_equal,
       abs((p.m).diff - (s.m).diff) <= 1e-12 * abs((s.m).diff)
         AND abs((p.m).p_value - (s.m).p_value) <= 1e-9 AS mean_equal
FROM (SELECT segment, segment_uplift_rate(treated, converted) AS r,
             segment_uplift_mean(treated, revenue) AS m FROM trial GROUP BY segment) p
JOIN serial s USING (segment) ORDER BY segment;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;

-- 4. small arms and NULLs: NULL figures and a note, never an error mid-report
SELECT segment, (u).treated_n, (u).control_n, (u).diff, (u).p_value, (u).note
FROM (SELECT segment, segment_uplift_rate(treated, converted) AS u
      FROM trial WHERE customer_id <= 7 GROUP BY segment) s ORDER BY segment;
SELECT (u).treated_n, (u).control_n, (u).treated_mean, (u).diff, (u).p_value, (u).note
FROM (SELECT segment_uplift_mean(treated, revenue) AS u FROM trial WHERE customer_id <= 2) s;
-- rows without an arm or an outcome are not in the test; NaN values are not counted
SELECT (segment_uplift_rate(t, c)).* FROM (VALUES (true, true), (true, NULL), (NULL, false),
       (true, false), (false, true), (false, false), (false, false)) v (t, c);
SELECT (segment_uplift_mean(t, x)).treated_n, (segment_uplift_mean(t, x)).control_n
FROM (VALUES (true, 1.0::float8), (true, 'NaN'), (true, 3), (false, NULL), (false, 2), (false, 5)) v (t, x);
-- nobody converted: the z-test has no variance (p-value 1 by convention, said in the note)
SELECT (u).diff, (u).ci_low, (u).ci_high, (u).p_value, (u).note
FROM (SELECT segment_uplift_rate(i % 2 = 0, false) AS u FROM generate_series(1, 10) i) s;
-- no rows at all
SELECT (segment_uplift_rate(treated, converted)).* FROM trial WHERE false;

-- 5. segment_p_adjust over each segment's p-value: window form equals array form
WITH u AS (SELECT segment, (segment_uplift_rate(treated, converted)).p_value AS p
           FROM trial GROUP BY segment),
w AS (SELECT segment, p, segment_p_adjust(p, 'holm') OVER () AS holm,
             segment_p_adjust(p, 'bh') OVER () AS bh FROM u)
SELECT segment, round(p::numeric, 8) AS p, round(holm::numeric, 8) AS holm,
       round(bh::numeric, 8) AS bh,
       holm = (SELECT segment_p_adjust(array_agg(p ORDER BY segment), 'holm') FROM u)[segment]
         AS holm_as_array
FROM w ORDER BY segment;
-- per partition, with NULLs skipped, the default method (holm)
SELECT g, p, segment_p_adjust(p) OVER (PARTITION BY g) AS holm
FROM (VALUES (1, 0.01::float8), (1, 0.04), (1, NULL), (2, 0.2), (2, 0.03)) v (g, p) ORDER BY g, p;
SELECT segment_p_adjust(ARRAY[]::float8[]) AS empty, segment_p_adjust(ARRAY[NULL]::float8[]) AS all_null,
       segment_p_adjust(NULL::float8[]) AS null_array;

-- 6. errors
SELECT segment_uplift_rate(treated, converted, 1.5) FROM trial;
SELECT segment_uplift_rate(treated, converted, NULL) FROM trial;
SELECT segment_uplift_mean(treated, revenue, 0) FROM trial;
SELECT segment_uplift_rate(treated, converted, CASE WHEN customer_id < 10 THEN 0.9 ELSE 0.95 END) FROM trial;
SELECT segment_p_adjust(ARRAY[0.1, 0.2], 'bonferroni');
SELECT segment_p_adjust(ARRAY[0.1, 0.2], NULL);
SELECT segment_p_adjust(ARRAY[0.1, 1.2]);
SELECT segment_p_adjust(p) OVER () FROM (VALUES (0.1::float8), (-0.1)) v (p);
SELECT segment._p_adjust_window(0.1, 'holm');
-- the states (segment.agg_state): what a partial aggregate hands over, in text and back
CREATE AGGREGATE rate_state(boolean, boolean) (
    SFUNC = segment._uplift_rate_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._uplift_rate_combine);
CREATE AGGREGATE mean_state(boolean, float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._uplift_mean_combine);
SELECT split_part(rate_state(treated, converted)::text, ':', 1) AS rate_kind,
       split_part(mean_state(treated, revenue)::text, ':', 1) AS mean_kind FROM trial;
SELECT segment._uplift_rate_final(rate_state(treated, converted)::text::segment.agg_state)
         IS NOT DISTINCT FROM segment_uplift_rate(treated, converted) AS rate_round_trip,
       segment._uplift_mean_final(mean_state(treated, revenue)::text::segment.agg_state)
         IS NOT DISTINCT FROM segment_uplift_mean(treated, revenue) AS mean_round_trip
FROM trial;
SELECT (segment._uplift_rate_figures('uplift_rate:5053555201666666666666ee3f0a0000000000000002000000000000000c000000000000000100000000000000')).treated_conversions;
SELECT segment._uplift_rate_figures('uplift_rate:5053555201666666666666ee3f0100000000000000020000000000000003000000000000000100000000000000');
SELECT segment._uplift_rate_figures('uplift_rate:5053555201666666666666ee3f0a000000000000');
SELECT segment._uplift_mean_figures(rate_state(treated, converted)) FROM trial;
SELECT segment._uplift_rate_combine(rate_state(treated, converted), rate_state(treated, converted)) FROM trial;

-- pg_segment demo: behavioral segmentation of real CDNOW customers.
-- Run by scripts/demo.sh from the examples/ directory.
\set QUIET on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION pg_segment;

\echo
\echo '== 1. Load the CDNOW transactions (Fader & Hardie, 1997-01 .. 1998-06)'
CREATE SCHEMA crm;
CREATE TABLE crm.cdnow_raw (line text);
\copy crm.cdnow_raw FROM 'data/CDNOW_master.txt'
CREATE TABLE crm.transactions AS
SELECT f[1]::int AS customer_id, to_date(f[2], 'YYYYMMDD') AS purchased_on,
       f[3]::int AS cds, f[4]::numeric(10,2) AS dollars
FROM (SELECT regexp_split_to_array(btrim(line), '\s+') AS f FROM crm.cdnow_raw
      WHERE btrim(line) ~ '^[0-9]') s;
DROP TABLE crm.cdnow_raw;
SELECT count(*) AS transactions, count(DISTINCT customer_id) AS customers,
       min(purchased_on) AS first_day, max(purchased_on) AS last_day,
       sum(dollars) AS revenue
FROM crm.transactions;

\echo
\echo '== 2. RFM features per customer as of 1997-12-31 (purchases up to that day)'
CREATE TABLE crm.customer_rfm AS
SELECT customer_id,
       date '1998-01-01' - max(purchased_on) AS recency_days,
       count(*) AS frequency,
       sum(dollars)::float8 AS monetary
FROM crm.transactions WHERE purchased_on <= date '1997-12-31' GROUP BY customer_id;
ALTER TABLE crm.customer_rfm ADD PRIMARY KEY (customer_id);
SELECT q AS quartile,
       percentile_disc(q / 4.0) WITHIN GROUP (ORDER BY recency_days) AS recency_days,
       percentile_disc(q / 4.0) WITHIN GROUP (ORDER BY frequency) AS frequency,
       round(percentile_disc(q / 4.0) WITHIN GROUP (ORDER BY monetary)::numeric, 2) AS monetary
FROM crm.customer_rfm, generate_series(1, 4) AS q GROUP BY q ORDER BY q;

\echo
\echo '== 3. Train: RFM features, k chosen automatically between 3 and 6 (max silhouette)'
SELECT model, version, k, rows_used, round(silhouette::numeric, 3) AS silhouette,
       silhouette_sample, round(davies_bouldin::numeric, 3) AS davies_bouldin,
       round(calinski_harabasz::numeric, 0) AS calinski_harabasz, iterations,
       round(seconds::numeric, 2) AS seconds
FROM segment_train(
  model     => 'cdnow_rfm',
  source    => 'crm.customer_rfm'::regclass,
  id_column => 'customer_id',
  features  => '{"recency_days": "standard",
                 "frequency":    "log_standard",
                 "monetary":     "log_standard"}',
  k => NULL, k_min => 3, k_max => 6, seed => 42);

SELECT (s->>'k')::int AS k, round((s->>'silhouette')::numeric, 3) AS silhouette,
       round((s->>'inertia')::numeric, 0) AS inertia
FROM segment.versions, jsonb_array_elements(k_selection->'scores') s
WHERE model = 'cdnow_rfm' ORDER BY 1;

\echo
\echo '== 4. Name the segments from their profiles (index = 100 x segment mean / overall mean)'
WITH p AS (
  SELECT segment,
         max(index) FILTER (WHERE feature = 'recency_days') AS r,
         max(index) FILTER (WHERE feature = 'frequency') AS f,
         max(index) FILTER (WHERE feature = 'monetary') AS m
  FROM segment.profiles WHERE model = 'cdnow_rfm' GROUP BY segment),
named AS (
  SELECT segment, CASE
           WHEN r < 80 AND f >= 150 THEN 'champions'
           WHEN r < 80 THEN 'recent buyers'
           WHEN f >= 150 THEN 'loyal, lapsing'
           WHEN r >= 120 AND m < 80 THEN 'lost one-timers'
           ELSE 'occasional' END AS name
  FROM p)
SELECT segment_label('cdnow_rfm', segment,
         name || CASE WHEN count(*) OVER (PARTITION BY name) > 1
                      THEN ' ' || row_number() OVER (PARTITION BY name ORDER BY segment) ELSE '' END) AS label
FROM named ORDER BY segment;

\echo
\echo '== 5. segment.summary: one row per segment'
SELECT segment, label, size, round(share::numeric, 3) AS share,
       round(mean_distance::numeric, 3) AS mean_distance, round(silhouette::numeric, 3) AS silhouette,
       nearest_segment
FROM segment.summary WHERE model = 'cdnow_rfm' ORDER BY segment;

\echo
\echo '== 6. segment.profiles: means in original units vs overall, and the index'
SELECT label, feature, round(segment_value::numeric, 1) AS segment_mean,
       round(overall_value::numeric, 1) AS overall_mean, index
FROM segment.profiles WHERE model = 'cdnow_rfm' ORDER BY segment, feature;

\echo
\echo '== 7. segment.quality: the model''s metrics'
SELECT model, version, k, rows_used, round(inertia::numeric, 1) AS inertia,
       round(silhouette::numeric, 3) AS silhouette, round(davies_bouldin::numeric, 3) AS davies_bouldin,
       round(calinski_harabasz::numeric, 0) AS calinski_harabasz
FROM segment.quality WHERE model = 'cdnow_rfm';

\echo
\echo '== 8. segment_assign in an ordinary query: what each 1997 segment bought in 1998'
SELECT d.label, count(DISTINCT t.customer_id) AS buyers_1998, sum(t.dollars) AS revenue_1998
FROM crm.transactions t
JOIN crm.customer_rfm c USING (customer_id)
CROSS JOIN LATERAL segment_assign_detail('cdnow_rfm', c) d
WHERE t.purchased_on >= date '1998-01-01'
GROUP BY d.label ORDER BY revenue_1998 DESC;

\echo
\echo '== 9. Scoring a new customer given as jsonb, and the materialized assignments'
SELECT segment_assign('cdnow_rfm', '{"recency_days": 12, "frequency": 9, "monetary": 480}'::jsonb) AS new_customer_segment;
SELECT a.segment, count(*) FROM segment.cdnow_rfm_assignments a GROUP BY 1 ORDER BY 1;

\echo
\echo '== 10. A controlled test per segment (simulated honestly): on 1998-04-01 a seeded random half'
\echo '   of the customers gets a "campaign" that in truth does nothing (a coin flip by id); the'
\echo '   outcome is any purchase in 1998-Q2. Per segment: conversion rates, treated minus control'
\echo '   with its Newcombe-Wilson 95% interval, and p-values adjusted across segments (Holm).'
\echo '   Every interval should cover 0 (about 1 in 20 would not, by chance alone).'
CREATE TABLE crm.campaign AS
SELECT c.customer_id, a.segment, (hashint8(c.customer_id::bigint # 20261202) & 1) = 1 AS treated,
       EXISTS (SELECT 1 FROM crm.transactions t WHERE t.customer_id = c.customer_id
               AND t.purchased_on BETWEEN date '1998-04-01' AND date '1998-06-30') AS bought_q2
FROM crm.customer_rfm c JOIN segment.cdnow_rfm_assignments a USING (customer_id);
WITH u AS (
  SELECT segment, segment_uplift_rate(treated, bought_q2) AS r FROM crm.campaign GROUP BY segment)
SELECT s.label, (u.r).treated_n, round((u.r).treated_rate::numeric, 3) AS treated_rate,
       (u.r).control_n, round((u.r).control_rate::numeric, 3) AS control_rate,
       round((u.r).diff::numeric, 3) AS diff, round((u.r).ci_low::numeric, 3) AS ci_low,
       round((u.r).ci_high::numeric, 3) AS ci_high,
       (u.r).ci_low <= 0 AND 0 <= (u.r).ci_high AS covers_zero,
       round((u.r).p_value::numeric, 3) AS p_value,
       round(segment_p_adjust((u.r).p_value, 'holm') OVER ()::numeric, 3) AS p_holm
FROM u JOIN segment.summary s ON s.model = 'cdnow_rfm' AND s.segment = u.segment
ORDER BY u.segment;

\echo
\echo '== 11. Six months later: the RFM table recomputed as of 1998-06-30, and the model refreshed'
\echo '(segment_refresh: warm start from the current centroids, the encoder refit on the new data;'
\echo ' a new segment keeps an id and its label when Jaccard > 0.5 with that segment''s customers)'
BEGIN;
TRUNCATE crm.customer_rfm;
INSERT INTO crm.customer_rfm
SELECT customer_id, date '1998-07-01' - max(purchased_on), count(*), sum(dollars)::float8
FROM crm.transactions GROUP BY customer_id;
COMMIT;
\echo 'Drift first: how far the new period moved from the 1997 training data (PSI bands:'
\echo '< 0.10 stable, 0.10-0.25 moderate, > 0.25 significant; a convention, not a test):'
SELECT feature, round(psi::numeric, 3) AS psi, round(js_distance::numeric, 3) AS js_distance,
       band, round(would_move_share::numeric, 3) AS would_move_share
FROM segment_drift('cdnow_rfm') ORDER BY psi DESC;
SELECT version, from_version, k, promoted, round(ari::numeric, 3) AS ari, segments_kept,
       segments_new, segments_retired, customers_moved, iterations
FROM segment_refresh('cdnow_rfm');

\echo
\echo 'The labels survive where the segments are still the same customers:'
SELECT segment, label, size, round(share::numeric, 3) AS share
FROM segment.summary WHERE model = 'cdnow_rfm' ORDER BY segment;

\echo
\echo 'segment.stability: each segment kept / retired / new, its Jaccard and Hennig''s band:'
SELECT status, from_segment, from_label, to_segment, to_label,
       round(jaccard::numeric, 3) AS jaccard, band
FROM segment.stability WHERE model = 'cdnow_rfm' ORDER BY from_segment NULLS LAST, to_segment;

\echo
\echo 'segment.migrations: where customers moved between the two periods (largest moves):'
SELECT from_label, to_label, customers, round(share_of_from::numeric, 3) AS share_of_from
FROM segment.migrations
WHERE model = 'cdnow_rfm' AND from_segment IS DISTINCT FROM to_segment
ORDER BY customers DESC LIMIT 8;

\echo
\echo '== 12. What a DBA schedules with pg_cron (docs/operations.md): check drift nightly,'
\echo '   refresh only when it is significant, promote only if the segments held'
SELECT $cron$SELECT cron.schedule('refresh cdnow_rfm', '0 3 * * *', $job$
  SELECT version, promoted, note FROM segment_refresh('cdnow_rfm', promote => 'if_stable')
  WHERE EXISTS (SELECT 1 FROM segment_drift('cdnow_rfm') WHERE band = 'significant')$job$);$cron$
  AS "the pg_cron line";
\echo 'segment.drift keeps the latest check for dashboards:'
SELECT model, run, feature, band FROM segment.drift WHERE model = 'cdnow_rfm' ORDER BY feature;

\echo
\echo '== 13. The marketer''s view: segment.health rates each segment substantial (share, size),'
\echo '   stable (Jaccard with its predecessor), homogeneous (spread vs the average) and distinct'
\echo '   (separation vs both spreads), with a verdict and the reason'
SELECT segment, label, round(share::numeric, 3) AS share, round(jaccard::numeric, 3) AS jaccard,
       round(dispersion::numeric, 2) AS dispersion, round(distinctness::numeric, 2) AS distinctness,
       verdict, reason
FROM segment.health WHERE model = 'cdnow_rfm' ORDER BY segment;

\echo
\echo 'Classic RFM next to the k-means segments: segment_rfm builds a view with quintile scores'
\echo '(ties share a score) and the standard named segments, as of 1998-07-01; the cross-tab'
\echo 'shows where the customers of each named RFM segment sit among the k-means segments:'
SELECT segment_rfm('crm.transactions', 'customer_id', 'purchased_on', 'dollars',
                   as_of => date '1998-07-01') AS rfm_view;
SELECT r.segment AS rfm_segment, sum(n) AS customers,
       string_agg(k.label || ' ' || n, ', ' ORDER BY n DESC) AS "in k-means segments"
FROM (SELECT r.segment, a.segment AS k_segment, count(*) AS n
      FROM crm.transactions_rfm r JOIN segment.cdnow_rfm_assignments a USING (customer_id)
      GROUP BY 1, 2) r
JOIN segment.summary k ON k.model = 'cdnow_rfm' AND k.segment = r.k_segment
GROUP BY r.segment ORDER BY customers DESC;

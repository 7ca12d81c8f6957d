-- Ad-hoc metric aggregates agree with scikit-learn (expected values computed with
-- sklearn 1.x on the same data: see the comments) to 1e-9 relative, serially and under
-- forced parallel plans.
CREATE EXTENSION pg_segment;
CREATE TABLE pts AS
SELECT i, ARRAY[(i % 7) + (i % 3) * 10.0, (i * 37 % 11)]::float8[] AS v,
       (i % 3)::bigint AS seg,
       (CASE WHEN i % 10 = 0 THEN (i + 1) % 3 ELSE i % 3 END + 5 * (i % 2))::bigint AS seg2
FROM generate_series(1, 3000) i;
ANALYZE pts;
CREATE FUNCTION rel_ok(got float8, want float8) RETURNS boolean LANGUAGE sql AS
$$ SELECT abs(got - want) <= 1e-9 * greatest(abs(want), 1e-300) $$;

CREATE VIEW metric_check AS
SELECT rel_ok(segment_inertia(v, seg), 41986.94499999999) AS inertia,                -- sum over clusters of squared distances to means
       rel_ok(segment_calinski_harabasz(v, seg), 7133.6518513552255) AS calinski_harabasz,
       rel_ok(segment_davies_bouldin(v, seg), 0.6952688429104978) AS davies_bouldin,
       rel_ok(segment_silhouette(v, seg), 0.5350297579861422) AS silhouette,
       rel_ok(segment_ari(seg, seg2), 0.4337462451723645) AS ari,
       rel_ok(segment_nmi(seg, seg2), 0.587060176312098) AS nmi
FROM pts;

-- serial
SET max_parallel_workers_per_gather = 0;
SELECT * FROM metric_check;
-- parallel: force a parallel plan and check that it really is one
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
CREATE FUNCTION plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS
$$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q; END $$;
SELECT * FROM plan_of($q$
  SELECT segment_inertia(v, seg), segment_calinski_harabasz(v, seg), segment_davies_bouldin(v, seg),
         segment_silhouette(v, seg), segment_ari(seg, seg2), segment_nmi(seg, seg2),
         segment_kmeans_step(v, ARRAY[[0,0],[10,5],[20,5]]::float8[]), segment_kmeans(v, 3, 1)
  FROM pts $q$);
SELECT * FROM metric_check;
-- exact-combining aggregates give the serial result under parallelism
CREATE TEMP TABLE par AS
SELECT segment_ari(seg, seg2) AS ari, segment_nmi(seg, seg2) AS nmi,
       segment_kmeans_step(v, ARRAY[[0,0],[10,5],[20,5]]::float8[]) AS step FROM pts;
RESET max_parallel_workers_per_gather;
SET max_parallel_workers_per_gather = 0;
SELECT p.ari = s.ari AS same_ari, p.nmi = s.nmi AS same_nmi,
       (SELECT bool_and(abs(a - b) < 1e-12) FROM unnest(p.step, s.step) u(a, b)) AS same_step
FROM par p, (SELECT segment_ari(seg, seg2) AS ari, segment_nmi(seg, seg2) AS nmi,
                    segment_kmeans_step(v, ARRAY[[0,0],[10,5],[20,5]]::float8[]) AS step FROM pts) s;

-- segment_kmeans: centroids float8[][] and segment_nearest with them
SELECT array_dims(segment_kmeans(v, 3, 42)) AS dims FROM pts;
SELECT segment_kmeans(v, 2, 1) AS centroids
FROM (VALUES (ARRAY[0, 0]::float8[]), (ARRAY[0, 1]), (ARRAY[10, 10]), (ARRAY[10, 11])) t(v);
WITH c AS (SELECT segment_kmeans(v, 3, 42) AS centroids FROM pts)
SELECT segment_ari(seg, segment_nearest(v, centroids)) = 1 AS recovers_segments
FROM pts, c;
-- one Lloyd step by hand equals the step aggregate
SELECT segment_kmeans_step(v, ARRAY[[0, 0], [10, 10]]::float8[]) AS step
FROM (VALUES (ARRAY[0, 0]::float8[]), (ARRAY[0, 2]), (ARRAY[10, 10]), (ARRAY[12, 10])) t(v);

-- sampled silhouette says so
SELECT round(segment_silhouette(v, seg, 500, 7)::numeric, 2) AS sampled FROM pts;

-- NULLs are skipped; no rows gives NULL
SELECT segment_inertia(v, seg) IS NULL AS empty_is_null FROM pts WHERE false;
SELECT rel_ok(segment_inertia(v, seg), 41986.94499999999) AS nulls_skipped
FROM (SELECT v, seg FROM pts UNION ALL SELECT NULL, 1 UNION ALL SELECT ARRAY[1, 1]::float8[], NULL) t;

-- errors
SELECT segment_inertia(v, seg) FROM (VALUES (ARRAY[1, 2]::float8[], 1), (ARRAY[1, 2, 3], 1)) t(v, seg);
SELECT segment_davies_bouldin(v, seg) FROM (VALUES (ARRAY[1, 2]::float8[], 1), (ARRAY[1], 2)) t(v, seg);
SELECT segment_inertia(v, seg) FROM (VALUES (ARRAY[1, NULL]::float8[], 1)) t(v, seg);
SELECT segment_calinski_harabasz(v, 1) FROM pts;
SELECT segment_silhouette(v, 1) FROM pts;
SELECT segment_silhouette(v, seg, 1, 0) FROM pts;
SELECT segment_kmeans(v, 0, 1) FROM pts;
SELECT segment_kmeans(v, 5, 1) FROM (VALUES (ARRAY[1, 2]::float8[]), (ARRAY[1, 2])) t(v);
SELECT segment_kmeans_step(v, ARRAY[[0, 0, 0]]::float8[]) FROM pts;
SET maintenance_work_mem = '1MB';
SELECT segment_kmeans(ARRAY[i, i, i, i]::float8[], 2, 1) FROM generate_series(1, 100000) i;
RESET maintenance_work_mem;
SELECT segment._inertia_final(NULL::internal);

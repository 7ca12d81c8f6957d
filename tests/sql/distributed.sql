-- What pg_segment on Citus relies on, checked on one server (scripts/citus_test.sh runs
-- it on a Citus cluster where Citus is installed): the exact-combining aggregates keep
-- their state in the real type segment.agg_state, whose text and binary forms
-- round-trip exactly; a model passes by value as a segment_model, whose functions read
-- no catalog.
CREATE EXTENSION pg_segment;
SET client_min_messages = notice;
CREATE TABLE pts AS
SELECT i AS id, ARRAY[(i % 7)::float8 + (i % 13) / 13.0, (i % 3)::float8 / 3] AS v,
       (i % 4)::bigint AS seg, (i % 5)::bigint AS b
FROM generate_series(1, 20000) i;
ANALYZE pts;
SET max_parallel_workers_per_gather = 0;

-- 1. A partial state is what an aggregate of the support functions without a final
--    function returns (what Citus's workers send). Its text form names its kind.
CREATE AGGREGATE cluster_state(float8[], bigint) (
    SFUNC = segment._cluster_stats_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._cluster_stats_combine, PARALLEL = SAFE);
CREATE AGGREGATE pair_state(bigint, bigint) (
    SFUNC = segment._contingency_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._contingency_combine, PARALLEL = SAFE);
CREATE AGGREGATE step_state(float8[], float8[]) (
    SFUNC = segment._kmeans_step_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._kmeans_step_combine, PARALLEL = SAFE);
CREATE TABLE states AS
SELECT 'cluster' AS kind, cluster_state(v, seg) AS s FROM pts
UNION ALL SELECT 'pair', pair_state(seg, b) FROM pts
UNION ALL SELECT 'step', step_state(v, '{{0,0},{3,0.5},{6,1}}') FROM pts;
SELECT kind, split_part(s::text, ':', 1) AS text_kind, length(s::text) AS text_length FROM states ORDER BY kind;

-- 2. Text round trip: the same bytes, the same results to the bit.
SELECT kind, s::text::segment.agg_state::text = s::text AS text_round_trip FROM states ORDER BY kind;
SELECT segment._inertia_final(s::text::segment.agg_state) = (SELECT segment_inertia(v, seg) FROM pts) AS inertia,
       segment._calinski_harabasz_final(s::text::segment.agg_state) = (SELECT segment_calinski_harabasz(v, seg) FROM pts) AS ch
FROM states WHERE kind = 'cluster';
SELECT segment._ari_final(s::text::segment.agg_state) = (SELECT segment_ari(seg, b) FROM pts) AS ari,
       segment._nmi_final(s::text::segment.agg_state) = (SELECT segment_nmi(seg, b) FROM pts) AS nmi
FROM states WHERE kind = 'pair';
SELECT segment._kmeans_step_final(s::text::segment.agg_state)
     = (SELECT segment_kmeans_step(v, '{{0,0},{3,0.5},{6,1}}') FROM pts) AS step
FROM states WHERE kind = 'step';

-- The text form does not depend on extra_float_digits (a float8[] state printed at 0
-- would lose digits).
CREATE TABLE states_efd AS SELECT kind, s::text AS t3 FROM states;
SET extra_float_digits = 0;
SELECT kind, s::text = t3 AS same_text_at_extra_float_digits_0 FROM states JOIN states_efd USING (kind) ORDER BY kind;
RESET extra_float_digits;

-- 3. Binary round trip (COPY BINARY uses the type's send and receive functions).
COPY states TO '/tmp/pg_segment_regress_states.bin' WITH (FORMAT binary);
CREATE TABLE states_back (kind text, s segment.agg_state);
COPY states_back FROM '/tmp/pg_segment_regress_states.bin' WITH (FORMAT binary);
SELECT a.kind, a.s::text = b.s::text AS binary_round_trip
FROM states a JOIN states_back b USING (kind) ORDER BY kind;

-- 4. Parallel query combines partial states: the same results to 1e-9.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT segment_inertia(v, seg) FROM pts;
CREATE TABLE par AS
SELECT segment_inertia(v, seg) AS inertia, segment_calinski_harabasz(v, seg) AS ch,
       segment_ari(seg, b) AS ari, segment_nmi(seg, b) AS nmi FROM pts;
RESET max_parallel_workers_per_gather;
SET max_parallel_workers_per_gather = 0;
SELECT abs(p.inertia - s.inertia) <= 1e-9 * s.inertia AS inertia, abs(p.ch - s.ch) <= 1e-9 * s.ch AS ch,
       p.ari = s.ari AS ari, p.nmi = s.nmi AS nmi
FROM par p, (SELECT segment_inertia(v, seg) AS inertia, segment_calinski_harabasz(v, seg) AS ch,
                    segment_ari(seg, b) AS ari, segment_nmi(seg, b) AS nmi FROM pts) s;

-- 5. Bad states: each refused with its SQLSTATE.
SELECT 'nonsense'::segment.agg_state;
SELECT 'histogram:00'::segment.agg_state;
SELECT 'cluster_stats:0g'::segment.agg_state;
SELECT 'cluster_stats:505343'::segment.agg_state;
SELECT 'contingency:5053435301'::segment.agg_state;
SELECT ('cluster_stats:' || substr(split_part(s::text, ':', 2), 1, 40))::segment.agg_state FROM states WHERE kind = 'cluster';
SELECT segment._ari_final(s) FROM states WHERE kind = 'cluster';
SELECT segment._cluster_stats_combine(s, s) FROM states WHERE kind = 'cluster';
SELECT segment._contingency_trans(NULL, 1, 2);

-- 6. The model by value: segment_model(name [, version]) holds one version; assignment
--    with it reads no catalog and equals assignment by name for every row.
CREATE TABLE cust AS
SELECT i AS id, 20 + (i * 7919) % 50 AS age, ((i * 104729) % 1000) / 7.0 + (i % 3) * 40 AS spend,
       (ARRAY['north', 'south', 'east', 'west'])[1 + (i * 31) % 4] AS region
FROM generate_series(1, 3000) i;
SELECT k FROM segment_train('cm', 'cust', 'id', k => 4, seed => 1);
SELECT count(*) AS rows,
       count(*) FILTER (WHERE segment_assign(m, c) IS DISTINCT FROM segment_assign('cm', c)) AS assign_differs,
       count(*) FILTER (WHERE segment_assign_detail(m, c) IS DISTINCT FROM segment_assign_detail('cm', c)) AS detail_differs,
       count(*) FILTER (WHERE segment_encode(m, c) IS DISTINCT FROM segment_encode('cm', c)) AS encode_differs
FROM cust c, (SELECT segment_model('cm') AS m) s;
SELECT pg_typeof(segment_model('cm')), segment_model('cm', 1)::text = segment_model('cm')::text AS version_1_is_current;
SELECT segment_model(NULL) IS NULL AS null_name, segment_assign(segment_model('cm'), NULL::cust) IS NULL AS null_row;
-- The text form is JSON that round-trips exactly; a literal of it works as a value, and
-- so does a model's name (read when the statement is parsed, as a regclass literal is).
SELECT segment_model('cm')::text::segment_model::text = segment_model('cm')::text AS text_round_trip,
       (segment_model('cm')::text::jsonb) ->> 'model' AS model, (segment_model('cm')::text::jsonb) ->> 'k' AS k,
       'cm'::segment_model::text = segment_model('cm')::text AS name_literal;
-- A row type of its own (as a Citus shard's): columns are found by name.
CREATE TABLE cust_shard (region text, extra int, spend float8, id int, age int);
INSERT INTO cust_shard SELECT region, 0, spend, id, age FROM cust;
SELECT count(*) FILTER (WHERE segment_assign(m, s) IS DISTINCT FROM segment_assign('cm', c)) AS differs
FROM cust_shard s JOIN cust c USING (id), (SELECT segment_model('cm') AS m) x;
-- An anonymous ROW(...) of exactly the model's features (age, region, spend: the order
-- of its features) is read by position, by value and by name: how the fit by passes
-- hands rows over (Citus sends a view's whole row as such a ROW). A subquery's row
-- keeps its column names: it is read by name, never by position.
SELECT count(*) FILTER (WHERE segment_assign(m, ROW(c.age, c.region, c.spend)) IS DISTINCT FROM segment_assign('cm', c)) AS by_value_differs,
       count(*) FILTER (WHERE segment_assign('cm', ROW(c.age, c.region, c.spend)) IS DISTINCT FROM segment_assign('cm', c)) AS by_name_differs,
       count(*) FILTER (WHERE segment_encode(m, ROW(c.age, c.region, c.spend)) IS DISTINCT FROM segment_encode('cm', c)) AS encode_differs
FROM cust c, (SELECT segment_model('cm') AS m) s;
SELECT segment_assign('cm', t) FROM (SELECT 30 AS years, 'north' AS region, 12.5 AS spend) t;
-- A bound parameter.
PREPARE by_value(segment_model) AS SELECT count(*) FROM cust c WHERE segment_assign($1, c) = 1;
EXECUTE by_value(segment_model('cm'));
SELECT count(*) FROM cust c WHERE segment_assign('cm', c) = 1;
-- A refresh does not change a value already taken.
CREATE TABLE old_model AS SELECT segment_model('cm') AS m;
SELECT version FROM segment_refresh('cm');
SELECT (m::text::jsonb) ->> 'version' AS kept_version, (segment_model('cm')::text::jsonb) ->> 'version' AS current_version FROM old_model;

-- 7. Errors of the by-value forms.
SELECT segment_model('nope');
SELECT segment_model('nope', NULL);
SELECT segment_model('cm', 9);
SELECT segment_model('bad name', NULL);
SELECT '{"model": "cm"}'::segment_model;
SELECT 'not json {'::segment_model;
SELECT replace(segment_model('cm')::text, '"k":4', '"k":5')::segment_model;
SELECT replace(segment_model('cm')::text, '"segment_ids":[1,2,3,4]', '"segment_ids":[1,1,3,4]')::segment_model;
SELECT segment_assign(segment_model('cm'), ROW(1, 2));
-- The detail's row type is the function's own result type, whatever the search_path
-- (a Citus worker's session, or a caller's path without pg_segment's schema).
SET search_path = pg_catalog;
SELECT (public.segment_assign_detail('cm', c)).segment IS NOT NULL AS by_name,
       (public.segment_assign_detail(public.segment_model('cm', NULL), c)).segment IS NOT NULL AS by_value
FROM public.cust c WHERE c.id = 1;
RESET search_path;
-- Private models stay private: another role cannot take one by value.
CREATE ROLE dist_outsider;
GRANT SELECT ON cust TO dist_outsider;
SET ROLE dist_outsider;
SELECT segment_model('cm', NULL);
RESET ROLE;
REVOKE SELECT ON cust FROM dist_outsider;
DROP ROLE dist_outsider;

-- 8. The pass-based fit (what runs on a Citus distributed table), chosen on a plain
--    table: the encoder and the initial centroids from a sample (here every row: the
--    table is smaller than the sample), then Lloyd passes over every row with
--    segment._kmeans_pass. It reaches the in-memory model.
SET pg_segment.fit_method = 'passes';
SELECT k, rows_used, sampled FROM segment_train('cp', 'cust', 'id', k => 4, seed => 1);
SELECT params->'fit'->>'method' AS method, params->'fit'->>'sample_rows' AS sample_rows,
       jsonb_array_length(params->'fit'->'initial_centroids') AS initial_centroids
FROM segment.models WHERE name = 'cp';
SELECT count(*) FILTER (WHERE segment_assign('cp', c) IS DISTINCT FROM segment_assign(m, c)) AS differs
FROM cust c, (SELECT segment_model('cm', 1) AS m) x;
SELECT abs(p.inertia - m.inertia) <= 1e-9 * m.inertia AS same_inertia
FROM segment.versions p, segment.versions m WHERE p.model = 'cp' AND m.model = 'cm' AND m.version = 1;
-- A refresh by passes: warm-started on the sample, Lloyd passes over every row.
SELECT version, promoted FROM segment_refresh('cp', promote => 'always');
SELECT refresh->'fit'->>'method' AS refresh_method, rows_used FROM segment.versions
WHERE model = 'cp' AND version = 2;
SET pg_segment.fit_method = 'sometimes';
SELECT k FROM segment_train('bad_method', 'cust', 'id', k => 4, seed => 1);
RESET pg_segment.fit_method;
SHOW pg_segment.fit_method;

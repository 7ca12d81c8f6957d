-- segment_train / segment_assign on a small, well-separated dataset.
CREATE EXTENSION pg_segment;
CREATE SCHEMA crm;
CREATE TABLE crm.customers (
    customer_id int PRIMARY KEY,
    age         int,
    income      numeric,
    orders      int,
    region      text,
    vip         boolean,
    signup      date            -- not a usable feature type: left out by default
);
-- three groups: young/low, middle/mid, old/high; regions follow the groups loosely
INSERT INTO crm.customers
SELECT i,
       CASE i % 3 WHEN 0 THEN 22 + i % 5 WHEN 1 THEN 45 + i % 5 ELSE 70 + i % 5 END,
       CASE i % 3 WHEN 0 THEN 20000 + 100 * (i % 7) WHEN 1 THEN 60000 + 100 * (i % 7) ELSE 120000 + 100 * (i % 7) END,
       CASE i % 3 WHEN 0 THEN 1 + i % 2 WHEN 1 THEN 5 + i % 2 ELSE 12 + i % 2 END,
       CASE i % 3 WHEN 0 THEN 'north' WHEN 1 THEN 'south' ELSE (CASE WHEN i % 2 = 0 THEN 'east' ELSE 'west' END) END,
       i % 3 = 2,
       date '2024-01-01' + i
FROM generate_series(1, 300) i;

SELECT model, version, k, rows_used, rows_skipped, skipped, sampled,
       silhouette > 0.8 AS well_separated, silhouette_sample,
       davies_bouldin < 0.5 AS compact, calinski_harabasz > 100 AS separated
FROM segment_train('customers', 'crm.customers'::regclass, 'customer_id',
                   features => '{"age": "standard", "income": "log_standard",
                                 "orders": "robust", "region": {"one_hot": {"top": 3}}}',
                   k => 3, seed => 42);

-- the catalog
SELECT name, owner, source, id_column, id_type, current_version, assignments,
       spec->'region' AS region_spec
FROM segment.models;
SELECT model, version, k, dim, feature_names, rows_read, rows_used, iterations, converged
FROM segment.versions;
SELECT model, segment, size, round(share::numeric, 3) AS share, nearest_segment IS NOT NULL AS has_nearest
FROM segment.summary ORDER BY segment;

-- the three groups land in three different segments, each group whole
SELECT count(DISTINCT segment_assign('customers', c)) AS segments,
       count(DISTINCT (i_group, segment_assign('customers', c))) AS group_segment_pairs
FROM (SELECT c, c.customer_id % 3 AS i_group FROM crm.customers c) s;

-- assignments are materialized, keyed by the source's own id type, and agree
SELECT pg_typeof(customer_id) AS id_type, count(*) FROM segment.customers_assignments GROUP BY 1;
SELECT count(*) AS disagreements
FROM crm.customers c JOIN segment.customers_assignments a USING (customer_id)
WHERE a.segment <> segment_assign('customers', c);

-- jsonb and row forms agree; unseen categories are fine; extra keys are ignored
SELECT segment_assign('customers', c) =
       segment_assign('customers', jsonb_build_object('age', c.age, 'income', c.income,
                                                      'orders', c.orders, 'region', c.region, 'extra', 1)) AS same
FROM crm.customers c WHERE customer_id IN (1, 2, 3) ORDER BY customer_id;
SELECT segment_assign('customers', '{"age": 23, "income": 20100, "orders": 1, "region": "atlantis"}'::jsonb)
     = segment_assign('customers', c) AS unseen_region_ok
FROM crm.customers c WHERE customer_id = 3;

-- the encoded form round-trips through segment_encode
SELECT segment_assign('customers', segment_encode('customers', c)) = segment_assign('customers', c) AS same
FROM crm.customers c WHERE customer_id = 5;
SELECT array_length(segment_encode('customers', c), 1) AS dim FROM crm.customers c WHERE customer_id = 5;

-- detail: distance, runner-up and margin
SELECT d.segment = segment_assign('customers', c) AS same_segment, d.label,
       d.distance >= 0 AS dist_ok, d.runner_up <> d.segment AS runner_up_ok, d.margin > 0 AS margin_ok
FROM crm.customers c, segment_assign_detail('customers', c) d WHERE customer_id = 7;

-- labels
SELECT segment_label('customers', segment_assign('customers', c), 'seniors')
FROM crm.customers c WHERE customer_id = 2;
SELECT (segment_assign_detail('customers', c)).label FROM crm.customers c WHERE customer_id = 5;
SELECT label, count(*) FROM segment.summary GROUP BY label ORDER BY label;

-- profiles in original units
SELECT feature, category, round(segment_value::numeric, 2) AS segment_value,
       round(overall_value::numeric, 2) AS overall_value, index
FROM segment.profiles WHERE label = 'seniors' ORDER BY feature, category;

-- quality history
SELECT model, version, k, rows_used, current FROM segment.quality;

-- default features: numeric standardized, text/bool one-hot, other types left out
SELECT k, rows_used FROM segment_train('defaults', 'crm.customers', 'customer_id', k => 2, seed => 1);
SELECT jsonb_object_keys(spec) AS feature FROM segment.models WHERE name = 'defaults' ORDER BY 1;

-- automatic k: the per-k scores are kept
SELECT k FROM segment_train('auto', 'crm.customers', 'customer_id',
                            features => '{"age": "standard", "income": "standard"}', k_min => 2, k_max => 5, seed => 7);
SELECT k_selection->>'criterion' AS criterion, jsonb_array_length(k_selection->'scores') AS tried,
       (k_selection->>'chosen')::int AS chosen
FROM segment.versions WHERE model = 'auto';

-- same seed + same data = same model
SELECT k FROM segment_train('again', 'crm.customers', 'customer_id',
                            features => '{"age": "standard", "income": "standard"}', k => 4, seed => 42);
CREATE TEMP TABLE first_fit AS SELECT centroids, inertia FROM segment.versions WHERE model = 'again';
SELECT segment_drop('again');
SELECT k FROM segment_train('again', 'crm.customers', 'customer_id',
                            features => '{"age": "standard", "income": "standard"}', k => 4, seed => 42);
SELECT v.centroids = f.centroids AS same_centroids, v.inertia = f.inertia AS same_inertia
FROM segment.versions v, first_fit f WHERE v.model = 'again';

-- drop
SELECT segment_drop('defaults');
SELECT segment_drop('defaults', if_exists => true);
SELECT to_regclass('segment.defaults_assignments') IS NULL AS table_gone;
SELECT name FROM segment.models ORDER BY name;

-- pinning a version
SELECT segment_assign('customers', c, 1) = segment_assign('customers', c) AS pinned_same
FROM crm.customers c WHERE customer_id = 10;

-- segment_assign runs in parallel workers, each loading the model once
CREATE TABLE crm.many AS
SELECT i AS customer_id, 20 + i % 60 AS age, (20000 + 37 * i % 90000)::numeric AS income,
       i % 15 AS orders, (ARRAY['north','south','east','west'])[1 + i % 4] AS region
FROM generate_series(1, 20000) i;
ANALYZE crm.many;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
CREATE FUNCTION plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS
$$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q; END $$;
SELECT * FROM plan_of($q$ SELECT segment_assign('customers', m), count(*) FROM crm.many m GROUP BY 1 $q$);
CREATE TEMP TABLE par_counts AS
SELECT segment_assign('customers', m) AS segment, count(*) AS n FROM crm.many m GROUP BY 1;
RESET max_parallel_workers_per_gather;
SET max_parallel_workers_per_gather = 0;
SELECT count(*) AS segments, sum(n) AS rows,
       bool_and(n = (SELECT count(*) FROM crm.many m WHERE segment_assign('customers', m) = p.segment)) AS same_as_serial
FROM par_counts p;
RESET ALL;

-- more rows than maintenance_work_mem holds: trained on a seeded sample, every row assigned
SET maintenance_work_mem = '1MB';
SELECT k, sampled, rows_used < 20000 AS fit_on_sample
FROM segment_train('big', 'crm.many', 'customer_id',
                   '{"age": "standard", "income": "standard", "region": "one_hot"}', k => 4, seed => 3);
RESET maintenance_work_mem;
SELECT count(*) AS assigned, count(DISTINCT segment) AS segments FROM segment.big_assignments;
SELECT sum(size) AS summary_total FROM segment.summary WHERE model = 'big';
SELECT count(*) AS disagreements FROM crm.many m JOIN segment.big_assignments a USING (customer_id)
WHERE a.segment <> segment_assign('big', m);

-- assignment tables have their primary key and NOT NULL columns, on both write paths
SELECT c.relname, a.attname, a.attnotnull, format_type(a.atttypid, a.atttypmod) AS type,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary
                 AND a.attnum = ANY (i.indkey)) AS primary_key,
       pg_get_userbyid(c.relowner) AS owner
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.relname IN ('customers_assignments', 'big_assignments') ORDER BY 1, a.attnum;

-- every id type keeps its type in the assignment table and joins back without casts:
-- integers are written in id order (here the source is in reverse order), other types
-- go through their input function
CREATE TABLE ids_int4 AS SELECT (1000 - i)::int4 AS id, (i % 7)::float8 AS x FROM generate_series(1, 200) i;
CREATE TABLE ids_int2 AS SELECT i::int2 AS id, (i % 7)::float8 AS x FROM generate_series(1, 200) i;
CREATE TABLE ids_uuid AS SELECT md5(i::text)::uuid AS id, (i % 7)::float8 AS x FROM generate_series(1, 200) i;
CREATE TABLE ids_numeric AS SELECT (i / 4.0)::numeric AS id, (i % 7)::float8 AS x FROM generate_series(1, 200) i;
CREATE TABLE ids_varchar AS SELECT ('c' || i)::varchar(10) AS id, (i % 7)::float8 AS x FROM generate_series(1, 200) i;
SELECT t AS source, k, rows_used
FROM unnest(ARRAY['ids_int4', 'ids_int2', 'ids_uuid', 'ids_numeric', 'ids_varchar']) t,
     LATERAL segment_train(t, t::regclass, 'id', k => 3, seed => 1);
SELECT 'ids_int4' AS model, pg_typeof(a.id) AS id_type, count(*) AS joined,
       bool_and(a.segment = segment_assign('ids_int4', s)) AS same_as_assign,
       (SELECT array_agg(id ORDER BY ctid) = array_agg(id ORDER BY id) FROM segment.ids_int4_assignments) AS in_id_order
FROM segment.ids_int4_assignments a JOIN ids_int4 s USING (id) GROUP BY 1, 2
UNION ALL
SELECT 'ids_int2', pg_typeof(a.id), count(*), bool_and(a.segment = segment_assign('ids_int2', s)), NULL
FROM segment.ids_int2_assignments a JOIN ids_int2 s USING (id) GROUP BY 1, 2
UNION ALL
SELECT 'ids_uuid', pg_typeof(a.id), count(*), bool_and(a.segment = segment_assign('ids_uuid', s)), NULL
FROM segment.ids_uuid_assignments a JOIN ids_uuid s USING (id) GROUP BY 1, 2
UNION ALL
SELECT 'ids_numeric', pg_typeof(a.id), count(*), bool_and(a.segment = segment_assign('ids_numeric', s)), NULL
FROM segment.ids_numeric_assignments a JOIN ids_numeric s USING (id) GROUP BY 1, 2
UNION ALL
SELECT 'ids_varchar', pg_typeof(a.id), count(*), bool_and(a.segment = segment_assign('ids_varchar', s)), NULL
FROM segment.ids_varchar_assignments a JOIN ids_varchar s USING (id) GROUP BY 1, 2;
SELECT segment_drop(t) FROM unnest(ARRAY['ids_int4', 'ids_int2', 'ids_uuid', 'ids_numeric', 'ids_varchar']) t;
DROP TABLE ids_int4, ids_int2, ids_uuid, ids_numeric, ids_varchar;

-- an event trigger that indexes every new table in schema segment: the assignment table
-- is then filled with plain INSERTs, so the index is maintained too
CREATE FUNCTION index_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()
             WHERE command_tag = 'CREATE TABLE' AND schema_name = 'segment' LOOP
        EXECUTE format('CREATE INDEX ON %s (segment)', r.object_identity);
    END LOOP;
END $$;
CREATE EVENT TRIGGER index_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION index_new_tables();
CREATE TABLE indexed_src AS SELECT i AS id, (i % 7)::float8 AS x FROM generate_series(1, 300) i;
SELECT k, rows_used FROM segment_train('indexed', 'indexed_src', 'id', k => 3, seed => 1);
DROP EVENT TRIGGER index_new_tables;
SET enable_seqscan = off;
SELECT count(*) AS via_index FROM segment.indexed_assignments WHERE segment BETWEEN 1 AND 3;
RESET enable_seqscan;
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'segment.indexed_assignments'::regclass;
SELECT segment_drop('indexed');
DROP TABLE indexed_src;
DROP FUNCTION index_new_tables();

-- planner support: segment_assign('<constant>', <table row>) is rewritten to pass only
-- the feature columns (no whole-row Datum); the result is the same as the plain call
CREATE TABLE ps_src AS
SELECT i AS id, 20 + i % 40 AS age, CASE WHEN i % 5 = 0 THEN NULL ELSE i % 3 END AS visits,
       (ARRAY['a', 'b', 'c'])[1 + i % 3] AS tier, 'extra' AS ignored
FROM generate_series(1, 500) i;
SELECT k FROM segment_train('ps', 'ps_src', 'id',
    '{"age": "standard", "visits": {"standard": {}, "null": "skip"}, "tier": "one_hot"}', k => 3, seed => 2);
SELECT * FROM plan_of($q$ SELECT id, segment_assign('ps', s) FROM ps_src s $q$);
-- (the model travels in the plan as text; shown here as <model>)
CREATE FUNCTION verbose_plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS
$$ DECLARE l text; BEGIN
    FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(l, '''\{"centroids".*\}''::text', '<model>');
    END LOOP;
END $$;
SELECT * FROM verbose_plan_of($q$ SELECT id, segment_assign('ps', s) FROM ps_src s $q$) LIMIT 2;
-- the same rows through the plain function (a model name that is not a constant)
SELECT count(*) AS rows, count(*) FILTER (WHERE fast IS NULL) AS skipped,
       count(*) FILTER (WHERE fast IS DISTINCT FROM plain) AS disagreements
FROM (SELECT segment_assign('ps', s) AS fast, segment_assign(m.name, s) AS plain
      FROM ps_src s, (SELECT 'ps'::text AS name) m) x;
-- pinned versions are rewritten too
SELECT * FROM verbose_plan_of($q$ SELECT segment_assign('ps', s, 1) FROM ps_src s $q$) LIMIT 2;
-- not rewritten: GROUP BY (the planner's group estimate), explicit JOINs, subqueries
SELECT * FROM verbose_plan_of($q$ SELECT segment_assign('ps', s), count(*) FROM ps_src s GROUP BY 1 $q$) LIMIT 2;
SELECT * FROM verbose_plan_of($q$ SELECT segment_assign('ps', s) FROM ps_src s LEFT JOIN ps_src t USING (id) $q$) LIMIT 1;
SELECT * FROM verbose_plan_of($q$ SELECT segment_assign('ps', s) FROM (SELECT * FROM ps_src OFFSET 0) s $q$) LIMIT 1;
-- UPDATE ... SET = segment_assign(model, t) and partitions whose columns sit at other
-- positions are rewritten too, with the same results
CREATE TABLE ps_upd AS SELECT *, 0 AS seg FROM ps_src;
UPDATE ps_upd u SET seg = coalesce(segment_assign('ps', u), 0);
SELECT count(*) FILTER (WHERE u.seg = coalesce(segment_assign(m.name, s), 0)) AS same, count(*)
FROM ps_upd u JOIN ps_src s USING (id), (SELECT 'ps'::text AS name) m;
CREATE TABLE ps_part (LIKE ps_src) PARTITION BY RANGE (id);
CREATE TABLE ps_part1 PARTITION OF ps_part FOR VALUES FROM (0) TO (250);
CREATE TABLE ps_part2 (ignored text, tier text, visits int, age int, id int);
ALTER TABLE ps_part ATTACH PARTITION ps_part2 FOR VALUES FROM (250) TO (1000);
INSERT INTO ps_part SELECT * FROM ps_src;
SELECT count(*) FILTER (WHERE segment_assign('ps', p) IS NOT DISTINCT FROM segment_assign(m.name, p)) AS same, count(*)
FROM ps_part p, (SELECT 'ps'::text AS name) m;
SELECT count(*) AS rewritten_scans FROM verbose_plan_of($q$ SELECT segment_assign('ps', p) FROM ps_part p $q$) l
WHERE l LIKE '%segment._assign_planned%';
DROP TABLE ps_upd, ps_part;

-- a cached plan holds the model it was planned with; any change of a model makes it be
-- planned again, so the next execution uses the current model, even one retrained with
-- other features (also a generic plan, as drivers that prepare statements use)
SET plan_cache_mode = force_generic_plan;
PREPARE ps_one AS SELECT segment_assign('ps', s) FROM ps_src s WHERE id = $1;
EXECUTE ps_one(7);
SELECT segment_drop('ps');
SELECT k FROM segment_train('ps', 'ps_src', 'id', '{"age": "standard", "ignored": "one_hot"}', k => 1, seed => 2);
EXECUTE ps_one(7);
DEALLOCATE ps_one;
RESET plan_cache_mode;
-- a statement planned before a concurrent retrain commits and executed after it (the
-- one-time filter sleeps while another session drops the model and trains it again,
-- with other features and k = 2) uses the model it was planned with (k = 1)
\! (sleep 1; psql -X -q -d regress_train -c "SELECT segment_drop('ps')" -c "SELECT 1 FROM segment_train('ps', 'ps_src', 'id', '{\"age\": \"standard\", \"tier\": \"one_hot\"}', k => 2, seed => 3)") >/dev/null 2>&1 &
SELECT count(segment_assign('ps', s)) AS assigned, count(DISTINCT segment_assign('ps', s)) AS segments
FROM ps_src s WHERE (SELECT pg_sleep(3)) IS NOT NULL;
SELECT count(DISTINCT segment_assign('ps', s)) AS segments_now FROM ps_src s;
-- concurrent trainings of one name: the second waits for the first, then gets 42710
\! (psql -X -q -d regress_train -c "BEGIN" -c "SELECT 1 FROM segment_train('race', 'ps_src', 'id', '{\"age\": \"standard\"}', k => 2)" -c "SELECT pg_sleep(2)" -c "COMMIT") >/dev/null 2>&1 &
SELECT pg_sleep(1);
SELECT segment_train('race', 'ps_src', 'id', '{"age": "standard"}', k => 2);
SELECT name FROM segment.models WHERE name = 'race';
SELECT segment_drop('race');
SELECT segment_drop('ps');
DROP TABLE ps_src;
DROP FUNCTION verbose_plan_of(text);

-- pg_segment.huge_pages: large training buffers (8 MiB or more: here the 250k x 10
-- encoded matrix) are hinted onto transparent huge pages unless it is off; the results
-- are the same either way. With more than 200k rows, k-means++ seeds come from a
-- 100k-row sample (recorded in the model's params).
SHOW pg_segment.huge_pages;
CREATE TABLE thp_src AS
SELECT i AS id, (i % 97)::float8 AS a, (i % 89)::float8 AS b, (i % 83)::float8 AS c,
       (i % 7)::text AS d
FROM generate_series(1, 250000) i;
SET pg_segment.huge_pages = off;
SELECT k, rows_used, iterations FROM segment_train('thp_off', 'thp_src', 'id', '{"a": "standard", "b": "standard", "c": "standard", "d": "one_hot"}', k => 3, seed => 1);
RESET pg_segment.huge_pages;
SELECT k, rows_used, iterations FROM segment_train('thp_on', 'thp_src', 'id', '{"a": "standard", "b": "standard", "c": "standard", "d": "one_hot"}', k => 3, seed => 1);
SELECT count(*) AS rows, count(*) FILTER (WHERE f.segment <> n.segment OR f.distance <> n.distance) AS differ
FROM segment.thp_off_assignments f JOIN segment.thp_on_assignments n USING (id);
SELECT (SELECT inertia FROM segment.versions WHERE model = 'thp_off') =
       (SELECT inertia FROM segment.versions WHERE model = 'thp_on') AS same_inertia;
SELECT params->'init_sample' AS init_sample FROM segment.models WHERE name = 'thp_on';
SET pg_segment.huge_pages = maybe;
SELECT segment_drop('thp_off'), segment_drop('thp_on');
DROP TABLE thp_src;

-- segment_train: the model, its catalog rows, its assignment table, automatic k,
-- reproducibility, training on a sample, id types, write paths, huge pages.
\ir include/customers.psql

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

-- a larger source for the sample test
CREATE TABLE crm.many AS
SELECT i AS customer_id, 20 + i % 60 AS age, (20000 + 37 * i % 90000)::numeric AS income,
       i % 15 AS orders, (ARRAY['north','south','east','west'])[1 + i % 4] AS region
FROM generate_series(1, 20000) i;
ANALYZE crm.many;

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

-- order independence: the same rows in another physical order give the same model,
-- numbered the same (rows are fitted in id order: integers numerically, text by its
-- bytes), and segment 1 is the largest
CREATE TABLE ord_fwd AS
SELECT i AS id, 'c' || i AS tid, (i % 13)::float8 AS a, ((i * 7) % 11)::float8 AS b,
       (ARRAY['x', 'y', 'z'])[1 + i % 3] AS r
FROM generate_series(1, 3000) i ORDER BY i;
CREATE TABLE ord_rev AS SELECT * FROM ord_fwd ORDER BY id DESC;
SELECT m, k FROM unnest(ARRAY['ord_fwd', 'ord_rev']) m,
     LATERAL segment_train(m, m::regclass, 'id', '{"a": "standard", "b": "standard", "r": "one_hot"}', k => 4, seed => 3);
SELECT m, k FROM unnest(ARRAY['ord_fwd', 'ord_rev']) t, LATERAL (SELECT t || '_text' AS m) n,
     LATERAL segment_train(m, t::regclass, 'tid', '{"a": "standard", "b": "standard", "r": "one_hot"}', k => 4, seed => 3);
SELECT f.model, f.centroids = r.centroids AS same_centroids, f.inertia = r.inertia AS same_inertia,
       f.iterations = r.iterations AS same_iterations
FROM segment.versions f JOIN segment.versions r ON r.model = replace(f.model, 'fwd', 'rev')
WHERE f.model LIKE 'ord_fwd%' ORDER BY 1;
SELECT count(*) AS rows, count(*) FILTER (WHERE f.segment <> r.segment OR f.distance <> r.distance) AS differ
FROM segment.ord_fwd_assignments f JOIN segment.ord_rev_assignments r USING (id);
SELECT model, array_agg(size ORDER BY segment) AS sizes,
       bool_and(size >= coalesce(next_size, 0)) AS largest_first
FROM (SELECT model, segment, size, lead(size) OVER (PARTITION BY model ORDER BY segment) AS next_size
      FROM segment.segments WHERE model LIKE 'ord%') s
GROUP BY model ORDER BY model;
SELECT segment_drop(m) FROM unnest(ARRAY['ord_fwd', 'ord_rev', 'ord_fwd_text', 'ord_rev_text']) m;
DROP TABLE ord_fwd, ord_rev;

-- ... also when the source is larger than maintenance_work_mem: the sample is drawn by
-- a seeded hash of the ids, not by position
CREATE TABLE big_fwd AS
SELECT i AS id, (i % 97)::float8 AS a, ((i * 7) % 89)::float8 AS b FROM generate_series(1, 20000) i;
CREATE TABLE big_rev AS SELECT * FROM big_fwd ORDER BY id DESC;
SET maintenance_work_mem = '1MB';
-- (1MB holds about 12,000 of these rows: 80 bytes a row, see docs/operations.md)
SELECT m, k, sampled, rows_used BETWEEN 10000 AND 14000 AS sample_size_near_budget
FROM unnest(ARRAY['big_fwd', 'big_rev']) m,
     LATERAL segment_train(m, m::regclass, 'id', '{"a": "standard", "b": "standard"}', k => 3, seed => 5);
RESET maintenance_work_mem;
SELECT f.centroids = r.centroids AS same_centroids, f.rows_used = r.rows_used AS same_sample
FROM segment.versions f, segment.versions r WHERE f.model = 'big_fwd' AND r.model = 'big_rev';
SELECT count(*) AS rows, count(*) FILTER (WHERE f.segment <> r.segment) AS differ
FROM segment.big_fwd_assignments f JOIN segment.big_rev_assignments r USING (id);
SELECT segment_drop('big_fwd'), segment_drop('big_rev');
DROP TABLE big_fwd, big_rev;

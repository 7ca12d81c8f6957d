-- segment_refresh and segment_promote: stable ids, labels carried, migrations,
-- stability, promotion rules, rollback, retention, order independence, errors.
\ir include/customers.psql
SELECT segment_label('customers', s.segment, l.label)
FROM segment.summary s
JOIN (VALUES (22, 'young'), (47, 'middle'), (72, 'seniors')) l(age, label)
  ON s.segment = (SELECT segment_assign('customers', c) FROM crm.customers c WHERE c.age = l.age LIMIT 1)
ORDER BY 1;

-- 1. A refresh of unchanged data: every segment keeps its id and label.
SELECT version, from_version, k, promoted, ari, segments_kept, segments_new,
       segments_retired, customers_moved, customers_new, customers_gone, note
FROM segment_refresh('customers');
SELECT model, version, segment, label, size FROM segment.summary ORDER BY segment;
SELECT from_version, to_version, status, from_segment, from_label, to_segment, to_label,
       jaccard, band, ari
FROM segment.stability ORDER BY to_version, from_segment;
SELECT version, segment_ids, parent_version, ari, refresh->>'promote' AS promote,
       refresh->>'warm_start' AS warm FROM segment.versions ORDER BY version;
-- the assignment table holds version 2, and agrees with segment_assign
SELECT version, count(*) FROM segment.customers_assignments GROUP BY version;
SELECT count(*) AS disagree FROM segment.customers_assignments a
JOIN crm.customers c USING (customer_id) WHERE a.segment <> segment_assign('customers', c);

-- 2. Customers change: 60 new ones, 30 leave, 30 seniors become young-like.
INSERT INTO crm.customers
SELECT i, 23 + i % 4, 21000 + 50 * (i % 9), 1 + i % 2, 'north', false, date '2025-01-01'
FROM generate_series(1001, 1060) i;
DELETE FROM crm.customers WHERE customer_id BETWEEN 1 AND 30 AND customer_id % 3 = 1;
UPDATE crm.customers SET age = 24, income = 20500, orders = 1, region = 'north'
WHERE customer_id IN (SELECT customer_id FROM crm.customers WHERE age >= 70 ORDER BY customer_id LIMIT 30);
SELECT version, from_version, promoted, round(ari::numeric, 4) AS ari, segments_kept,
       segments_new, segments_retired, customers_moved, customers_new, customers_gone
FROM segment_refresh('customers');
SELECT from_segment, from_label, to_segment, to_label, customers, round(share_of_from::numeric, 3) AS share
FROM segment.migrations WHERE to_version = 3 ORDER BY from_segment NULLS FIRST, to_segment NULLS LAST;
SELECT segment, label, size FROM segment.summary ORDER BY segment;

-- 3. k up: a fourth segment gets a fresh id (4), never one used before.
SELECT version, k, promoted, segments_kept, segments_new, segments_retired
FROM segment_refresh('customers', k => 4);
SELECT segment, label, matched_from, round(jaccard::numeric, 3) AS jaccard
FROM segment.segments WHERE version = 4 ORDER BY segment;
SELECT last_segment FROM segment.models;

-- 4. k down with if_stable: a segment dissolves, so the version stays a candidate.
SELECT version, k, promoted, segments_retired, note
FROM segment_refresh('customers', k => 2, promote => 'if_stable');
SELECT current_version FROM segment.models;
SELECT DISTINCT version FROM segment.customers_assignments;
SELECT status, from_segment, to_segment, band FROM segment.stability
WHERE to_version = 5 ORDER BY status, from_segment;
-- promote it by hand, then roll back to version 4
SELECT * FROM segment_promote('customers', 5);
SELECT version, count(DISTINCT segment) FROM segment.customers_assignments GROUP BY version;
SELECT * FROM segment_promote('customers', 4);
SELECT current_version FROM segment.models;
SELECT count(*) AS disagree FROM segment.customers_assignments a
JOIN crm.customers c USING (customer_id) WHERE a.segment <> segment_assign('customers', c);
SELECT * FROM segment_promote('customers', 4);

-- 5. a cold start (k-means++) keeps ids just the same; fresh ids continue past 5.
SELECT version, promoted, segments_kept, segments_new
FROM segment_refresh('customers', warm_start => false, refit_encoder => false);
SELECT segment, label FROM segment.summary ORDER BY segment;

-- 6. retention: keep 2 versions; the current one always stays.
SELECT version FROM segment_refresh('customers', keep_versions => 2);
SELECT version FROM segment.versions ORDER BY version;
SELECT keep_versions FROM segment.models;
SELECT DISTINCT from_version, to_version FROM segment.migrations ORDER BY 1;

-- 7. order independence: the same rows rewritten in reverse physical order give the
-- same model and ids.
CREATE TABLE crm.rev AS SELECT * FROM crm.customers ORDER BY customer_id;
SELECT segment_train('ord', 'crm.rev', 'customer_id', k => 3, seed => 7) IS NOT NULL AS trained;
SELECT version, segments_kept, customers_moved FROM segment_refresh('ord');
CREATE TABLE crm.rev2 AS SELECT * FROM crm.rev ORDER BY customer_id DESC;
SELECT version, segments_kept, customers_moved, round(ari::numeric, 6) AS ari
FROM segment_refresh('ord', source => 'crm.rev2');
SELECT count(DISTINCT centroids) AS distinct_centroids FROM segment.versions
WHERE model = 'ord' AND version > 1;

-- 7b. a source larger than maintenance_work_mem: the fit and the matching see a sample,
-- every row is assigned and counted in the migrations.
CREATE TABLE crm.big AS
SELECT i AS id, (i % 4) * 10 + (i % 13) / 13.0 AS a, (i % 4) * 3 + (i % 7) / 7.0 AS b
FROM generate_series(1, 20000) i;
SET maintenance_work_mem = '1MB';
SELECT sampled FROM segment_train('big', 'crm.big', 'id', k => 4, seed => 3);
UPDATE crm.big SET a = a + 0.1 WHERE id % 10 = 0;
SELECT version, sampled, promoted, segments_kept, customers_moved, customers_new, customers_gone
FROM segment_refresh('big');
RESET maintenance_work_mem;
SELECT sum(customers) AS counted, count(*) FILTER (WHERE from_segment <> to_segment) AS moves
FROM segment.migrations WHERE model = 'big';
SELECT count(*) AS rows, count(*) FILTER (WHERE version = 2) AS at_v2 FROM segment.big_assignments;
SELECT segment_drop('big');

-- 8. errors
SELECT * FROM segment_refresh(NULL);
SELECT * FROM segment_refresh('nope');
SELECT * FROM segment_refresh('customers', promote => 'sometimes');
SELECT * FROM segment_refresh('customers', keep_versions => 0);
SELECT * FROM segment_refresh('customers', k => 0);
SELECT * FROM segment_promote('customers', 99);
SELECT * FROM segment_promote('customers', NULL);
SELECT segment_label('customers', 3, 'gone');
-- a feature column gone (42703), a changed type (42804), an empty source (22000),
-- a dropped source (42P01): each leaves the current version untouched
CREATE TABLE crm.nofeat AS SELECT customer_id, age, orders, region FROM crm.customers;
SELECT * FROM segment_refresh('customers', source => 'crm.nofeat');
CREATE TABLE crm.retyped AS SELECT customer_id, age::text AS age, income, orders, region FROM crm.customers;
SELECT * FROM segment_refresh('customers', source => 'crm.retyped');
CREATE TABLE crm.idtext AS SELECT customer_id::text AS customer_id, age, income, orders, region FROM crm.customers;
SELECT * FROM segment_refresh('customers', source => 'crm.idtext');
CREATE TABLE crm.empty AS SELECT * FROM crm.customers WHERE false;
SELECT * FROM segment_refresh('customers', source => 'crm.empty');
DROP TABLE crm.rev;
SELECT * FROM segment_refresh('ord');
SELECT name, current_version FROM segment.models ORDER BY name;

-- 9. privileges: only members of the owner role refresh or promote (42501)
CREATE ROLE refresh_intruder;
GRANT USAGE ON SCHEMA crm TO refresh_intruder;
GRANT SELECT ON crm.customers TO refresh_intruder;
SELECT segment_grant('customers', 'refresh_intruder');
SET ROLE refresh_intruder;
SELECT * FROM segment_refresh('customers');
SELECT * FROM segment_promote('customers', 6);
RESET ROLE;
SELECT segment_drop('customers');
SELECT segment_drop('ord');
SELECT count(*) FROM segment.migration_data;
SELECT count(*) FROM segment.stability_data;
DROP OWNED BY refresh_intruder;
DROP ROLE refresh_intruder;

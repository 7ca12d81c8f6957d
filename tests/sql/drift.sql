-- segment_drift: reference distributions stored with each version, PSI and
-- Jensen-Shannon distance per feature and for the segment shares, the history, errors.
\ir include/customers.psql
-- what a version stores
SELECT f->>'feature' AS feature, f->>'kind' AS kind, jsonb_array_length(f->'shares') AS bins,
       round((SELECT sum(x::numeric) FROM jsonb_array_elements_text(f->'shares') x), 6) AS total
FROM segment.versions, jsonb_array_elements(reference->'features') f ORDER BY 1;
SELECT reference->'segment_shares' AS segment_shares FROM segment.versions;

-- 1. the unchanged source: 0 everywhere, nobody would move
SELECT run, feature, kind, psi, js_distance, band, rows, would_move_share, new_ids, vanished_ids
FROM segment_drift('customers') ORDER BY feature;

-- 2. a changed source: older, richer customers, a new region, NULL incomes, new and
-- vanished ids
CREATE TABLE crm.later AS SELECT customer_id, age, income, orders, region FROM crm.customers;
UPDATE crm.later SET age = age + 30 WHERE customer_id % 2 = 0;
UPDATE crm.later SET region = 'central' WHERE customer_id % 5 = 0;
UPDATE crm.later SET income = income * 3 WHERE customer_id % 3 = 0;
DELETE FROM crm.later WHERE customer_id <= 20;
INSERT INTO crm.later SELECT 1000 + i, 30, 50000, 3, 'south' FROM generate_series(1, 15) i;
SELECT run, feature, kind, round(psi::numeric, 4) AS psi, round(js_distance::numeric, 4) AS js,
       band, rows, round(would_move_share::numeric, 4) AS would_move, new_ids, vanished_ids
FROM segment_drift('customers', 'crm.later') ORDER BY feature;

-- 3. the history and the latest run per model
SELECT model, run, count(*) AS features, max(psi) > 0.25 AS significant
FROM segment.drift_history GROUP BY model, run ORDER BY run;
SELECT run, feature, band FROM segment.drift ORDER BY feature;

-- 4. an all-NULL column and a column of unseen categories
CREATE TABLE crm.blank AS SELECT customer_id, age, NULL::numeric AS income, orders,
       'nowhere'::text AS region FROM crm.customers;
SELECT feature, band FROM segment_drift('customers', 'crm.blank') ORDER BY feature;

-- 4b. the documented recipe: refresh only when drift is significant (one statement,
-- as a pg_cron job would run it)
SELECT version FROM segment_refresh('customers')
WHERE EXISTS (SELECT 1 FROM segment_drift('customers') WHERE band = 'significant');
SELECT current_version FROM segment.models;
UPDATE crm.customers SET income = income * 4 WHERE customer_id % 2 = 0;
SELECT version FROM segment_refresh('customers')
WHERE EXISTS (SELECT 1 FROM segment_drift('customers') WHERE band = 'significant');
SELECT current_version FROM segment.models;
-- a refreshed version has its own reference: no drift against its own data
SELECT max(psi) AS max_psi FROM segment_drift('customers');

-- 6. many rows (the scan hands them to a second thread in batches of 8192 rows), text
-- ids, a boolean feature, NULL ids: rows, would_move_share, new and vanished ids agree
-- with segment_assign over the same rows; the physical row order changes nothing
CREATE TABLE crm.big AS SELECT 'c' || i AS cid, (i % 7) * 10 + (hashint4(i) & 15) AS visits,
       (i % 3 = 0) AS member, (ARRAY['a', 'b', 'c'])[1 + (i / 3) % 3] AS tier
FROM generate_series(1, 30000) i;
SELECT k FROM segment_train('big', 'crm.big', 'cid', k => 4, seed => 0);
CREATE TABLE crm.big2 AS SELECT * FROM crm.big WHERE cid NOT LIKE '%7';
UPDATE crm.big2 SET visits = visits + 25 WHERE hashint4(length(cid) * 31 + ascii(right(cid, 1))) & 3 = 0;
UPDATE crm.big2 SET member = NOT member WHERE right(cid, 1) = '5';
UPDATE crm.big2 SET tier = NULL WHERE right(cid, 1) = '4';
INSERT INTO crm.big2 SELECT NULL, 5, true, 'a' FROM generate_series(1, 10);
INSERT INTO crm.big2 SELECT 'n' || i, i % 90, i % 2 = 0, 'd' FROM generate_series(1, 500) i;
SELECT feature, kind, round(psi::numeric, 4) AS psi, round(js_distance::numeric, 4) AS js, band,
       rows, round(would_move_share::numeric, 4) AS would_move, new_ids, vanished_ids
FROM segment_drift('big', 'crm.big2') ORDER BY feature;
WITH d AS (SELECT * FROM segment.drift WHERE model = 'big' LIMIT 1),
     s AS (SELECT count(*) AS rows,
                  count(*) FILTER (WHERE a.cid IS NULL AND b.cid IS NOT NULL) AS new_ids,
                  -- rows the version cannot encode (tier NULL, policy "error") are not compared
                  avg(CASE WHEN a.cid IS NOT NULL AND b.tier IS NOT NULL
                           THEN (segment_assign('big', b) <> a.segment)::int END) AS moved
           FROM crm.big2 b LEFT JOIN segment.big_assignments a USING (cid))
SELECT d.rows = s.rows AS same_rows, d.new_ids = s.new_ids AS same_new,
       abs(d.would_move_share - s.moved::float8) < 1e-12 AS same_would_move,
       d.vanished_ids = (SELECT count(*) FROM segment.big_assignments a
                         WHERE NOT EXISTS (SELECT 1 FROM crm.big2 b WHERE b.cid = a.cid))
         AS same_vanished
FROM d, s;
CREATE TABLE crm.big3 AS SELECT * FROM crm.big2 ORDER BY md5(coalesce(cid, '') || visits);
SELECT count(*) AS differing_rows FROM (
  (SELECT feature, psi, js_distance, rows, would_move_share, new_ids, vanished_ids
   FROM segment_drift('big', 'crm.big3')
   EXCEPT
   SELECT feature, psi, js_distance, rows, would_move_share, new_ids, vanished_ids
   FROM segment.drift_history WHERE model = 'big' AND run = 1)) x;
SELECT segment_drop('big');

-- 5. errors
SELECT * FROM segment_drift(NULL);
SELECT * FROM segment_drift('nope');
CREATE TABLE crm.noage AS SELECT customer_id, income, orders, region FROM crm.customers;
SELECT * FROM segment_drift('customers', 'crm.noage');
CREATE TABLE crm.none AS SELECT * FROM crm.customers WHERE false;
SELECT * FROM segment_drift('customers', 'crm.none');
CREATE ROLE drift_reader;
SELECT segment_grant('customers', 'drift_reader');
SET ROLE drift_reader;
SELECT * FROM segment_drift('customers');
SELECT count(*) > 0 AS reads_history FROM segment.drift;
RESET ROLE;
-- a failed run records nothing
SELECT count(DISTINCT run) FROM segment.drift_history;
SELECT segment_drop('customers');
SELECT count(*) FROM segment.drift_history;
DROP OWNED BY drift_reader;
DROP ROLE drift_reader;

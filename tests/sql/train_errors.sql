-- Every bad input to segment_train / segment_assign gets an ERROR with a SQLSTATE, a
-- message naming the culprit, and a hint; a failed call leaves nothing behind.
CREATE EXTENSION pg_segment;
CREATE TABLE people (id int, age float8, city text, joined date);
INSERT INTO people SELECT i, 20 + i % 50, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, date '2020-01-01' + i
FROM generate_series(1, 50) i;
SELECT k FROM segment_train('m', 'people', 'id', '{"age": "standard"}', k => 2);

-- parameters
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 0);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => NULL, k_min => 5, k_max => 2);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2, n_init => 0);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2, max_iter => 0);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2, tol => -1);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 51);
-- model names: existing, invalid, injection attempts
SELECT segment_train('m', 'people', 'id', '{"age": "standard"}', k => 2);
SELECT segment_train('bad name', 'people', 'id', '{"age": "standard"}', k => 2);
SELECT segment_train('x"; DROP TABLE people; --', 'people', 'id', '{"age": "standard"}', k => 2);
SELECT segment_assign('m''; DROP TABLE people; --', '{"age": 1}'::jsonb);
SELECT count(*) AS people_still_there FROM people;
-- columns and specs
SELECT segment_train('bad', 'people', 'nope', '{"age": "standard"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"height": "standard"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"age; DROP TABLE people": "standard"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"city": "standard"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"joined": "one_hot"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"age": "zscore"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"age": {"standard": {}, "null": "sometimes"}}', k => 2);
SELECT segment_train('bad', 'people', 'id', '["age"]', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"id": "standard"}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{}', k => 2);
-- data: NULL / NaN / Infinity under the default policy name the column and an id
UPDATE people SET age = NULL WHERE id = 17;
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2);
UPDATE people SET age = 'NaN' WHERE id = 17;
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2);
UPDATE people SET age = '-Infinity' WHERE id = 17;
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2);
-- ... and a NULL policy fixes it
SELECT k, rows_used, rows_skipped, skipped FROM segment_train('skips', 'people', 'id', '{"age": {"standard": {}, "null": "skip"}}', k => 2);
UPDATE people SET age = 30 WHERE id = 17;
UPDATE people SET age = -3 WHERE id = 4;
SELECT segment_train('bad', 'people', 'id', '{"age": "log_standard"}', k => 2);
-- duplicate and NULL ids
INSERT INTO people VALUES (5, 40, 'a', NULL);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2);
DELETE FROM people WHERE id = 5 AND joined IS NULL;
-- text ids: a duplicate is found by the sort of the ids, in or out of order, also when
-- the fit runs on a sample (equal ids hash alike, so both are in it)
CREATE TABLE text_people AS SELECT 'p' || i AS pid, (i % 50)::float8 AS age FROM generate_series(1, 20000) i;
INSERT INTO text_people VALUES ('p777', 3);
SELECT segment_train('bad', 'text_people', 'pid', '{"age": "standard"}', k => 2);
CREATE TABLE text_sorted AS SELECT * FROM text_people ORDER BY pid;
SELECT segment_train('bad', 'text_sorted', 'pid', '{"age": "standard"}', k => 2);
SET maintenance_work_mem = '1MB';
SELECT segment_train('bad', 'text_people', 'pid', '{"age": "standard"}', k => 2);
RESET maintenance_work_mem;
DROP TABLE text_people, text_sorted;
INSERT INTO people VALUES (NULL, 40, 'a', NULL);
SELECT k, rows_used, rows_skipped, skipped FROM segment_train('nullid', 'people', 'id', '{"age": "standard"}', k => 2);
-- empty source, too few distinct rows
CREATE TABLE empty_people (LIKE people);
SELECT segment_train('bad', 'empty_people', 'id', '{"age": "standard"}', k => 2);
CREATE TABLE same_people AS SELECT i AS id, 1.0::float8 AS age FROM generate_series(1, 10) i;
SELECT segment_train('bad', 'same_people', 'id', '{"age": "standard"}', k => 2);
SELECT segment_train('bad', 'same_people', 'id', '{"age": "standard"}', k => NULL, k_min => 2, k_max => 4);
-- not a table
CREATE SEQUENCE seq;
SELECT segment_train('bad', 'seq', 'id', NULL, k => 2);
-- privileges: the source is read with the caller's rights
CREATE ROLE analyst;
GRANT USAGE ON SCHEMA public TO analyst;
SET ROLE analyst;
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2);
-- ... and other people's models cannot be changed
SELECT segment_label('m', 1, 'mine now');
SELECT segment_drop('m');
RESET ROLE;
-- nothing was left behind by any failure
SELECT name FROM segment.models ORDER BY name;
SELECT count(*) AS leftover_tables FROM pg_tables WHERE schemaname = 'segment' AND tablename LIKE 'bad%';

-- assignment errors
SELECT segment_assign('nope', '{"age": 1}'::jsonb);
SELECT segment_assign('m', '{"age": 1}'::jsonb, version => 9);
SELECT segment_assign('m', '{"height": 1}'::jsonb);
SELECT segment_assign('m', '{"age": "old"}'::jsonb);
SELECT segment_assign('m', '{"age": [1]}'::jsonb);
SELECT segment_assign('m', '[1, 2]'::jsonb);
SELECT segment_assign('m', '{"age": null}'::jsonb);
SELECT segment_assign('m', ARRAY[1, 2]::float8[]);
SELECT segment_assign('m', ARRAY['NaN']::float8[]);
SELECT segment_assign('m', 42);
SELECT segment_assign('m', t) FROM (SELECT 1 AS height) t;
SELECT segment_label('m', 7, 'x');
SELECT segment_label('nope', 1, 'x');
SELECT segment_drop('nope');

-- the catalog cannot be abused to make the delete trigger (the one SECURITY DEFINER
-- action left) touch other tables, or to act on other roles' models
SET ROLE analyst;
INSERT INTO segment.models (name, source, source_oid, id_column, id_type, spec, params, assignments)
VALUES ('evil', 'x', 0, 'id', 'int', '{}', '{}', 'models');
INSERT INTO segment.models (name, owner, source, source_oid, id_column, id_type, spec, params, assignments)
VALUES ('evil', 'postgres', 'x', 0, 'id', 'int', '{}', '{}', 'evil_assignments');
SELECT segment._grant('m', 'analyst'::regrole, true);
DELETE FROM segment.models WHERE name = 'm';
RESET ROLE;
SELECT count(*) AS models_intact FROM segment.models WHERE name = 'm';
SELECT to_regclass('segment.m_assignments') IS NOT NULL AS assignments_intact;

-- an ordinary role with SELECT on the source trains, relabels and drops its own model
GRANT SELECT ON people TO analyst;
SET ROLE analyst;
SELECT model, k, rows_used FROM segment_train('mine', 'people', 'id', '{"age": "standard"}', k => 2, seed => 1);
SELECT name, owner FROM segment.models WHERE name = 'mine';
SELECT tableowner, has_table_privilege('public', 'segment.mine_assignments', 'SELECT') AS public_reads,
       has_table_privilege('analyst', 'segment.mine_assignments', 'SELECT') AS owner_reads
FROM pg_tables WHERE schemaname = 'segment' AND tablename = 'mine_assignments';
SELECT segment_label('mine', 1, 'young');
SELECT segment_assign('mine', p) IS NOT NULL AS assigns FROM people p WHERE id = 1;
SELECT segment_drop('mine');
RESET ROLE;
SELECT count(*) AS left_behind FROM segment.models WHERE name = 'mine';

-- ... also when the source is larger than maintenance_work_mem (trained on a sample,
-- every row streamed into its assignment table, text ids cast back to their type)
CREATE TABLE many_people AS
SELECT 'p' || i AS pid, 20 + i % 50 AS age FROM generate_series(1, 30000) i;
GRANT SELECT ON many_people TO analyst;
SET ROLE analyst;
SET maintenance_work_mem = '1MB';
SELECT model, k, sampled, rows_used < 30000 AS fit_on_sample
FROM segment_train('mine_big', 'many_people', 'pid', '{"age": "standard"}', k => 2, seed => 1);
RESET maintenance_work_mem;
SELECT count(*) AS assigned, count(DISTINCT segment) AS segments,
       pg_typeof(min(pid)) AS id_type FROM segment.mine_big_assignments;
SELECT tableowner FROM pg_tables WHERE schemaname = 'segment' AND tablename = 'mine_big_assignments';
SELECT segment_drop('mine_big');
RESET ROLE;
DROP TABLE many_people;

-- bad input never ends in XX000: JSON nested beyond reason, numbers beyond float8
SELECT segment_train('bad', 'people', 'id', (repeat('{"a":', 200) || '1' || repeat('}', 200))::jsonb, k => 2);
SELECT segment_train('bad', 'people', 'id', (repeat('[', 3000) || repeat(']', 3000))::jsonb, k => 2);
SELECT segment_train('bad', 'people', 'id', '{"age": {"standard": {}, "weight": 1e309}}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"age": {"standard": {}, "null": {"constant": 1e400}}}', k => 2);
SELECT segment_train('bad', 'people', 'id', '{"age": {"standard": {}, "weight": 1e308}}', k => 2);
-- a jsonb row: keys the model does not read are ignored however deep they nest; a
-- feature's number beyond float8 follows its NULL policy
SELECT segment_assign('m', ('{"age": 30, "notes": ' || repeat('[', 3000) || repeat(']', 3000) || '}')::jsonb) IS NOT NULL AS deep_ignored;
SELECT segment_assign('m', '{"age": 1e309}'::jsonb);
-- values at float8's limits: every encoder's statistics and encoded values stay finite
-- and bounded, or the feature is named
CREATE TABLE extremes (id int, v float8);
INSERT INTO extremes VALUES (1, 1e308), (2, -1e308), (3, 5e-324), (4, 0), (5, 1), (6, 2);
SELECT segment_train('bad', 'extremes', 'id', '{"v": "min_max"}', k => 2);
SELECT segment_train('bad', 'extremes', 'id', '{"v": "standard"}', k => 2);
SELECT segment_train('bad', 'extremes', 'id', '{"v": "passthrough"}', k => 2);
SELECT segment_train('bad', 'extremes', 'id', '{"v": "robust"}', k => 2);
SELECT k, rows_used FROM segment_train('ext_bins', 'extremes', 'id', '{"v": {"quantile_bins": {"bins": 3}}}', k => 2);
SELECT segment_drop('ext_bins');
-- limits on the work asked for
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 150000);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => NULL, k_min => 2, k_max => 1000000);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2, n_init => 2147483647);
SELECT segment_train('bad', 'people', 'id', '{"age": "standard"}', k => 2, max_iter => 2147483647);
-- a forged catalog row is refused when loaded, never used
UPDATE segment.versions SET centroids = '{{NaN},{2}}' WHERE model = 'm';
SELECT segment_assign('m', '{"age": 30}'::jsonb);
UPDATE segment.versions SET centroids = '{1}' WHERE model = 'm';
SELECT segment_assign('m', '{"age": 30}'::jsonb);
UPDATE segment.versions SET centroids = '{{1e300},{2}}' WHERE model = 'm';
SELECT segment_assign('m', '{"age": 30}'::jsonb);
UPDATE segment.versions SET encoder = '{"version": 1}' WHERE model = 'm';
SELECT segment_assign('m', '{"age": 30}'::jsonb);
SELECT count(*) AS leftover FROM segment.models WHERE name LIKE 'bad%' OR name LIKE 'ext%';

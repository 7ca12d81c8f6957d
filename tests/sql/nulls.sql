-- NULL behaviour of every function: the assignment and encoding functions give NULL for
-- a NULL model, row, jsonb or vector (so an outer join's NULL row gets a NULL segment);
-- a NULL where a value is required is 22004 naming the argument; never XX000.
CREATE EXTENSION pg_segment;
CREATE TABLE t (id int PRIMARY KEY, a float8, b text);
INSERT INTO t SELECT i, i % 10, CASE WHEN i % 2 = 0 THEN 'x' ELSE 'y' END FROM generate_series(1, 40) i;
CREATE TABLE other (id int PRIMARY KEY);
INSERT INTO other VALUES (1), (1000);
SELECT model FROM segment_train('m', 't', 'id', '{"a": "standard", "b": "one_hot"}', k => 2);

-- assignment and encoding: NULL in, NULL out
SELECT o.id, segment_assign('m', t) AS seg, (segment_assign_detail('m', t)).segment AS detail,
       segment_encode('m', t) IS NULL AS no_vector
FROM other o LEFT JOIN t ON t.id = o.id ORDER BY o.id;
SELECT segment_assign(NULL, t) FROM t ORDER BY id LIMIT 1;
SELECT segment_assign('m', NULL::t);
SELECT segment_assign('m', NULL::jsonb), segment_assign(NULL, '{"a": 1, "b": "x"}'::jsonb);
SELECT segment_assign('m', NULL::float8[]), segment_assign(NULL, ARRAY[0, 1, 0, 0]::float8[]);
SELECT segment_assign_detail('m', NULL::jsonb), segment_assign_detail(NULL, '{"a": 1, "b": "x"}'::jsonb);
SELECT segment_assign_detail('m', NULL::t), segment_assign_detail(NULL, t) FROM t ORDER BY id LIMIT 1;
SELECT segment_encode('m', NULL::jsonb), segment_encode(NULL, '{"a": 1, "b": "x"}'::jsonb);
SELECT segment_encode('m', NULL::t), segment_encode(NULL, t) FROM t ORDER BY id LIMIT 1;
-- a NULL version means the current one
SELECT segment_assign('m', '{"a": 1, "b": "x"}'::jsonb, NULL) = segment_assign('m', '{"a": 1, "b": "x"}'::jsonb) AS current_version;
-- a NULL feature value follows the feature's NULL policy (here: error, naming it)
SELECT segment_assign('m', '{"a": null, "b": "x"}'::jsonb);
SELECT segment_nearest(NULL, ARRAY[[0, 0]]::float8[]), segment_nearest(ARRAY[1, 2]::float8[], NULL);

-- arguments that need a value
SELECT segment_train(NULL, 't', 'id', '{"a": "standard"}', k => 2);
SELECT segment_train('n', NULL, 'id', '{"a": "standard"}', k => 2);
SELECT segment_train('n', 't', NULL, '{"a": "standard"}', k => 2);
SELECT segment_train('n', 't', 'id', '{"a": "standard"}', k => NULL, k_min => NULL);
SELECT segment_train('n', 't', 'id', '{"a": "standard"}', k => NULL, k_max => NULL);
SELECT segment_train('n', 't', 'id', '{"a": "standard"}', k => 2, seed => NULL);
SELECT segment_train('n', 't', 'id', '{"a": "standard"}', k => 2, n_init => NULL);
SELECT segment_train('n', 't', 'id', '{"a": "standard"}', k => 2, max_iter => NULL);
SELECT segment_train('n', 't', 'id', '{"a": "standard"}', k => 2, tol => NULL);
-- NULL features means the defaults, NULL k means "choose k"
SELECT model, k FROM segment_train('n', 't', 'id', NULL, k => NULL, k_min => 2, k_max => 3);
SELECT segment_label(NULL, 1, 'x');
SELECT segment_label('m', NULL, 'x');
SELECT segment_label('m', 1, NULL) IS NULL AS label_removed;
SELECT segment_drop(NULL);
SELECT segment_drop('m', NULL);
SELECT segment_grant(NULL, 'postgres');
SELECT segment_grant('m', NULL);
SELECT segment_revoke(NULL, 'postgres');
SELECT segment_revoke('m', NULL);
SELECT segment._grant('m', NULL, true);
SELECT segment._grant('m', 10, NULL);
SELECT count(*) AS models FROM segment.models;

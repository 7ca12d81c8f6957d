-- The planner support function of segment_assign(model, row): the rewrite, where it
-- does not apply, cached plans across retrains, and concurrent trainings.
CREATE EXTENSION pg_segment;
CREATE FUNCTION plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS
$$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q; END $$;

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
\! (sleep 1; psql -X -q -d regress_planner -c "SELECT segment_drop('ps')" -c "SELECT 1 FROM segment_train('ps', 'ps_src', 'id', '{\"age\": \"standard\", \"tier\": \"one_hot\"}', k => 2, seed => 3)") >/dev/null 2>&1 &
SELECT count(segment_assign('ps', s)) AS assigned, count(DISTINCT segment_assign('ps', s)) AS segments
FROM ps_src s WHERE (SELECT pg_sleep(3)) IS NOT NULL;
SELECT count(DISTINCT segment_assign('ps', s)) AS segments_now FROM ps_src s;
-- concurrent trainings of one name: the second waits for the first, then gets 42710
\! (psql -X -q -d regress_planner -c "BEGIN" -c "SELECT 1 FROM segment_train('race', 'ps_src', 'id', '{\"age\": \"standard\"}', k => 2)" -c "SELECT pg_sleep(2)" -c "COMMIT") >/dev/null 2>&1 &
SELECT pg_sleep(1);
SELECT segment_train('race', 'ps_src', 'id', '{"age": "standard"}', k => 2);
SELECT name FROM segment.models WHERE name = 'race';
SELECT segment_drop('race');
SELECT segment_drop('ps');
DROP TABLE ps_src;
DROP FUNCTION verbose_plan_of(text);

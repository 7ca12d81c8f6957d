-- segment_assign, segment_assign_detail and segment_encode: row, jsonb and encoded
-- forms, pinned versions, parallel workers.
\ir include/customers.psql

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

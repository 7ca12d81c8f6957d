-- The model lifecycle: labels, profiles and quality history in the views, drop.
\ir include/customers.psql

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

-- a second model, to drop
SELECT k, rows_used FROM segment_train('defaults', 'crm.customers', 'customer_id', k => 2, seed => 1);

-- drop
SELECT segment_drop('defaults');
SELECT segment_drop('defaults', if_exists => true);
SELECT to_regclass('segment.defaults_assignments') IS NULL AS table_gone;
SELECT name FROM segment.models ORDER BY name;

-- segment.health: each segment of the current version rated substantial, stable,
-- homogeneous and distinct (differentiable), with the figures, a verdict and a reason;
-- per-model thresholds; each criterion's boundary; errors and privacy.
\ir include/customers.psql
\set health 'SELECT segment, size, round(share::numeric, 4) AS share, substantial, round(jaccard::numeric, 3) AS jaccard, stable, round(dispersion::numeric, 3) AS dispersion, homogeneous, nearest_segment, round(distinctness::numeric, 3) AS distinctness, differentiable, verdict, reason FROM segment.health WHERE model = '

-- 1. a first version: stability is not measurable yet (NULL), the rest holds
:health 'customers' ORDER BY segment;
SELECT DISTINCT min_share, min_size, min_jaccard, max_dispersion, min_distinctness
FROM segment.health WHERE model = 'customers';

-- 2. each criterion's boundary: a figure equal to its threshold passes, just past fails
SELECT min_size FROM segment_health_settings('customers', min_size => 100);
SELECT count(*) FILTER (WHERE substantial) AS substantial FROM segment.health WHERE model = 'customers';
SELECT min_size FROM segment_health_settings('customers', min_size => 101);
SELECT segment, substantial, verdict, reason FROM segment.health WHERE model = 'customers' ORDER BY segment;
SELECT min_share FROM segment_health_settings('customers', min_size => 0,
       min_share => (SELECT min(share) FROM segment.health WHERE model = 'customers'));
SELECT count(*) FILTER (WHERE substantial) AS substantial FROM segment.health WHERE model = 'customers';
SELECT 1 FROM segment_health_settings('customers',
       max_dispersion => (SELECT dispersion FROM segment.health WHERE model = 'customers' AND segment = 1));
SELECT segment, homogeneous FROM segment.health WHERE model = 'customers' AND segment = 1;
SELECT 1 FROM segment_health_settings('customers',
       max_dispersion => (SELECT dispersion * (1 - 1e-9) FROM segment.health WHERE model = 'customers' AND segment = 1));
SELECT segment, homogeneous, verdict, reason FROM segment.health WHERE model = 'customers' AND segment = 1;
SELECT 1 FROM segment_health_settings('customers', max_dispersion => 10,
       min_distinctness => (SELECT distinctness FROM segment.health WHERE model = 'customers' AND segment = 2));
SELECT segment, differentiable FROM segment.health WHERE model = 'customers' AND segment = 2;
SELECT 1 FROM segment_health_settings('customers',
       min_distinctness => (SELECT distinctness * (1 + 1e-9) FROM segment.health WHERE model = 'customers' AND segment = 2));
SELECT segment, differentiable, verdict, reason FROM segment.health WHERE model = 'customers' AND segment = 2;
-- two failing criteria: act
SELECT 1 FROM segment_health_settings('customers', min_share => 0.5);
SELECT segment, verdict, reason FROM segment.health WHERE model = 'customers' AND segment = 2;
-- back to the defaults
SELECT * FROM segment_health_settings('customers', reset => true);
SELECT count(*) FILTER (WHERE verdict = 'healthy') AS healthy FROM segment.health WHERE model = 'customers';

-- 3. after a refresh: the Jaccard with the predecessor; a dissolved segment is acted on
-- 80 of the old group move to the middle one: the 20 left are a new segment whose best
-- Jaccard with a predecessor is 0.2
UPDATE crm.customers SET age = 45 + customer_id % 5, income = 60000, orders = 5, region = 'south'
WHERE customer_id % 3 = 2 AND customer_id % 5 <> 0;
SELECT version, segments_kept, segments_new, segments_retired FROM segment_refresh('customers');
:health 'customers' ORDER BY segment;
-- (only the stability criterion can fail now: a dissolved segment alone means act)
SELECT 1 FROM segment_health_settings('customers', min_jaccard => 0.99, min_size => 10, max_dispersion => 10);
SELECT segment, round(jaccard::numeric, 3) AS jaccard, stable, verdict, reason FROM segment.health
WHERE model = 'customers' ORDER BY segment;

-- 4. a model with one tiny segment: flagged not substantial
CREATE TABLE crm.tiny AS SELECT customer_id, age, income FROM crm.customers WHERE customer_id % 3 <> 2
UNION ALL SELECT 1000 + i, 90, 500000 FROM generate_series(1, 4) i;
SELECT k FROM segment_train('tiny', 'crm.tiny', 'customer_id', k => 3, seed => 1);
SELECT segment, size, substantial, verdict, reason FROM segment.health WHERE model = 'tiny' AND NOT substantial;
SELECT min_share FROM segment_health_settings('tiny', min_share => 0.01);

-- 5. errors: NULL and unknown models, a threshold out of range, a non-owner
SELECT * FROM segment_health_settings(NULL);
SELECT * FROM segment_health_settings('nope');
SELECT * FROM segment_health_settings('tiny', min_share => 1.5);
SELECT * FROM segment_health_settings('tiny', max_dispersion => 0);
CREATE ROLE health_reader;
SELECT segment_grant('tiny', 'health_reader');
SET ROLE health_reader;
SELECT count(*) AS rows_seen, count(DISTINCT model) AS models_seen FROM segment.health;
SELECT * FROM segment_health_settings('tiny', min_share => 0.01);
SELECT * FROM segment_health_settings('customers', min_share => 0.01);
INSERT INTO segment.health_settings (model, min_share) VALUES ('tiny', 0.01);
RESET ROLE;
SELECT count(*) AS settings FROM segment.health_settings;
SELECT segment_drop('tiny');
SELECT count(*) AS settings_after_drop FROM segment.health_settings;
DROP OWNED BY health_reader;
DROP ROLE health_reader;

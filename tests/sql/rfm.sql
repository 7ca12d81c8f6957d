-- segment_rfm: recency, frequency and monetary value per customer as a view, quintile
-- scores with a fixed tie rule, segments named by a map in segment.rfm_maps (the shipped
-- 'standard' one, or a role's own), a hostile search_path, errors, and the CDNOW data
-- against a fixture computed with pandas (tests/fixtures/make_rfm_fixture.py).
CREATE EXTENSION pg_segment;
SET TimeZone = 'UTC';

-- 1. The shipped map is total: each of the 25 (r, f) cells has exactly one name.
SELECT count(*) AS cells, count(*) FILTER (WHERE names = 1) AS named_once,
       count(DISTINCT segment) AS segments
FROM (SELECT g_r.r, g_f.f, count(m.segment) AS names, min(m.segment) AS segment
      FROM generate_series(1, 5) g_r(r) CROSS JOIN generate_series(1, 5) g_f(f)
      LEFT JOIN segment.rfm_maps m ON m.map = 'standard' AND m.r = g_r.r AND m.f = g_f.f
      GROUP BY g_r.r, g_f.f) c;
SELECT r, f, segment FROM segment.rfm_maps WHERE map = 'standard' ORDER BY r, f;
SELECT map, owner, count(*) AS cells FROM segment.rfm_maps GROUP BY map, owner;

-- 2. A hand-made table: ties, a refund, a NULL amount, a customer with only a NULL
--    amount, one with only a refund, one whose only purchase is on the as-of day, a
--    purchase after it, a NULL customer and a NULL date.
CREATE SCHEMA shop;
CREATE TABLE shop.orders (customer_id int, ordered_on date, amount numeric(10,2));
INSERT INTO shop.orders VALUES
    (1, '2024-02-29', 50.00), (1, '2024-01-10', 30.00),
    (1, '2024-03-05', 10.00),                            -- after the as-of day
    (2, '2024-02-29', 20.00),                            -- as recent as 1
    (2, NULL, 1000.00),                                  -- NULL date: ignored
    (3, '2024-02-10', 100.00), (3, '2024-02-11', -40.00), (3, '2024-01-05', 10.00),  -- a refund
    (4, '2024-01-15', NULL), (4, '2024-01-20', 25.00),   -- a NULL amount
    (5, '2024-02-01', NULL),                             -- only a NULL amount
    (6, '2024-03-01', 99.00),                            -- only on the as-of day
    (7, '2023-12-01', 200.00), (7, '2023-12-15', 200.00), (7, '2024-01-02', 200.00),
    (7, '2024-02-20', 200.00),
    (8, '2023-11-01', 15.00),
    (9, '2024-02-20', 60.00), (9, '2024-02-25', 60.00),
    (10, '2024-01-31', 20.00),                           -- monetary as 2
    (11, '2024-02-01', -10.00),                          -- only a refund
    (NULL, '2024-02-28', 500.00);                        -- NULL customer: ignored
-- as of the start of 2024-03-01: customer 6 is left out, and 1's purchase of 03-05.
-- n = 10, so ranks 1-2 score 1, 3-4 score 2, 5-6 score 3, 7-8 score 4, 9-10 score 5;
-- equal values share the lowest rank.
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', as_of => '2024-03-01');
SELECT * FROM shop.orders_rfm ORDER BY customer_id;
\d shop.orders_rfm
SELECT obj_description('shop.orders_rfm'::regclass, 'pg_class') AS comment;

-- 3. as_of NULL: the day after the last transaction (2024-03-06), read live.
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', view_name => 'orders_live');
SELECT * FROM shop.orders_live ORDER BY customer_id;
INSERT INTO shop.orders VALUES (8, '2024-03-10', 5.00), (12, '2024-03-08', 1.00);
SELECT customer_id, recency_days, frequency, monetary, cell, segment
FROM shop.orders_live WHERE customer_id IN (1, 8, 12) ORDER BY customer_id;
DELETE FROM shop.orders WHERE ordered_on > '2024-03-05';
-- the explicit as_of is fixed: the new rows did not change shop.orders_rfm
SELECT count(*) AS customers, sum(frequency) AS transactions FROM shop.orders_rfm;
-- an as_of before every transaction: an empty view, not an error
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', as_of => '2020-01-01',
                   view_name => 'shop.orders_empty');
SELECT count(*) AS customers FROM shop.orders_empty;
-- a temporary relation gets a temporary view
CREATE TEMP TABLE recent AS SELECT * FROM shop.orders WHERE ordered_on >= '2024-02-01';
SELECT segment_rfm('recent', 'customer_id', 'ordered_on', 'amount', as_of => '2024-03-01');
SELECT count(*) AS customers, sum(frequency) AS transactions FROM pg_temp.recent_rfm;
SELECT segment_rfm('recent', 'customer_id', 'ordered_on', 'amount', view_name => 'shop.recent_rfm');

-- 4. A text customer id and a timestamp with time zone: the session's TimeZone decides
--    the day of a timestamp, when the view is read.
CREATE TABLE shop.events (client text, at timestamptz, total float8);
INSERT INTO shop.events VALUES
    ('ann', '2024-02-29 23:30+00', 10), ('ann', '2024-02-01 12:00+00', 5.5),
    ('bob', '2024-02-15 08:00+00', 20), ('cy', '2024-01-01 00:00+00', 7.25),
    ('dee', '2024-03-01 03:00+00', 3), (NULL, '2024-02-20 10:00+00', 1),
    ('eve', NULL, 9), ('eve', '2024-02-29 12:00+00', NULL);
SELECT segment_rfm('shop.events', 'client', 'at', 'total', as_of => '2024-03-01');
SELECT * FROM shop.events_rfm ORDER BY client;
SELECT pg_typeof(client) AS client_type FROM shop.events_rfm LIMIT 1;
-- in Tokyo ann's last purchase is on 03-01 (left out); in New York dee's is on 02-29
SET TimeZone = 'Asia/Tokyo';
SELECT client, recency_days, frequency, monetary FROM shop.events_rfm ORDER BY client;
SET TimeZone = 'America/New_York';
SELECT client, recency_days, frequency, monetary FROM shop.events_rfm ORDER BY client;
SET TimeZone = 'UTC';

-- 5. A role's own map: everyone may use it, only its owner may change it.
CREATE ROLE rfm_analyst;
CREATE ROLE rfm_other;
CREATE SCHEMA analyst AUTHORIZATION rfm_analyst;
GRANT USAGE ON SCHEMA shop TO rfm_analyst, rfm_other;
GRANT SELECT ON shop.orders TO rfm_analyst, rfm_other;
SET ROLE rfm_analyst;
INSERT INTO segment.rfm_maps (map, r, f, segment)
SELECT 'simple', r, f, CASE WHEN r >= 4 THEN 'active' WHEN r = 3 THEN 'cooling' ELSE 'lapsed' END
FROM generate_series(1, 5) r, generate_series(1, 5) f;
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', as_of => '2024-03-01',
                   map => 'simple', view_name => 'analyst.rfm');
SELECT customer_id, cell, segment FROM analyst.rfm ORDER BY customer_id;
RESET ROLE;
SELECT map, owner, count(*) AS cells FROM segment.rfm_maps GROUP BY map, owner ORDER BY map;
SET ROLE rfm_other;
-- reads it, and may use it
SELECT count(*) AS cells FROM segment.rfm_maps WHERE map = 'simple';
-- changes nothing: an UPDATE or DELETE finds no row it may change
WITH u AS (UPDATE segment.rfm_maps SET segment = 'mine' WHERE map = 'simple' RETURNING 1)
SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM segment.rfm_maps WHERE map = 'simple' RETURNING 1)
SELECT count(*) AS deleted FROM d;
WITH u AS (UPDATE segment.rfm_maps SET segment = 'mine' WHERE map = 'standard' RETURNING 1)
SELECT count(*) AS updated_standard FROM u;
-- an UPDATE handing its own row to the analyst, an INSERT in the analyst's name, or one
-- in its own name into the analyst's map (a cell taken or not) is refused by the policy
INSERT INTO segment.rfm_maps (map, r, f, segment, owner) VALUES ('simple', 1, 1, 'mine', 'rfm_analyst');
INSERT INTO segment.rfm_maps (map, r, f, segment) VALUES ('simple', 1, 1, 'mine');
INSERT INTO segment.rfm_maps (map, r, f, segment) VALUES ('others', 1, 1, 'mine');
UPDATE segment.rfm_maps SET owner = 'rfm_analyst' WHERE map = 'others';
-- an incomplete map is refused, naming the cells it lacks
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', map => 'others',
                   view_name => 'pg_temp.others_rfm');
DELETE FROM segment.rfm_maps WHERE map = 'others';
RESET ROLE;
SET ROLE rfm_analyst;
-- the owner renames a segment; the view reads the map live
UPDATE segment.rfm_maps SET segment = 'gone' WHERE map = 'simple' AND r <= 2;
SELECT segment, count(*) FROM analyst.rfm GROUP BY segment ORDER BY segment;
RESET ROLE;

-- 6. A hostile search_path: nothing but pg_catalog (and temporary tables named like the
--    catalogs, searched first for relations), then an attacker's schema first.
SET search_path = '';
CREATE TEMP TABLE pg_attribute (attacker int);
CREATE TEMP TABLE pg_class (attacker int);
CREATE TEMP TABLE pg_namespace (attacker int);
CREATE TEMP TABLE pg_type (attacker int);
CREATE TEMP TABLE rfm_maps (attacker int);
SELECT public.segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', as_of => '2024-03-01',
                          view_name => 'shop.orders_hostile');
SELECT count(*) AS differing_rows FROM (
    (TABLE shop.orders_rfm EXCEPT ALL TABLE shop.orders_hostile)
    UNION ALL (TABLE shop.orders_hostile EXCEPT ALL TABLE shop.orders_rfm)) d;
SELECT customer_id, cell, segment FROM shop.orders_hostile ORDER BY customer_id LIMIT 3;
DISCARD TEMP;
CREATE SCHEMA evil;
CREATE FUNCTION evil.boom() RETURNS boolean LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'attacker''s code ran'; END $$;
CREATE FUNCTION evil.date_mi(date, date) RETURNS int LANGUAGE sql AS 'SELECT 0 WHERE evil.boom()';
CREATE OPERATOR evil.- (LEFTARG = date, RIGHTARG = date, FUNCTION = evil.date_mi);
CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT evil.boom()';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);
CREATE FUNCTION evil.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql AS 'SELECT NULL::text WHERE evil.boom()';
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE sql AS 'SELECT NULL::text WHERE evil.boom()';
CREATE FUNCTION evil.parse_ident(text, boolean DEFAULT true) RETURNS text[] LANGUAGE sql AS 'SELECT NULL::text[] WHERE evil.boom()';
CREATE TABLE evil.rfm_maps (map text, r int, f int, segment text);
CREATE TABLE evil.pg_class (attacker int);
SET search_path = evil, pg_catalog, public;
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', as_of => '2024-03-01',
                   view_name => 'shop.orders_evil');
SELECT count(*) AS rows, min(cell) AS min_cell, max(cell) AS max_cell FROM shop.orders_evil;
RESET search_path;
-- the attacker's objects do run when named from that path (the trap is armed)
SET search_path = evil, pg_catalog, public;
SELECT date '2024-03-01' - date '2024-02-01';
RESET search_path;
DROP SCHEMA evil CASCADE;

-- 7. Errors.
SELECT segment_rfm(NULL, 'customer_id', 'ordered_on', 'amount');
SELECT segment_rfm('shop.orders', NULL, 'ordered_on', 'amount');
SELECT segment_rfm('shop.orders', 'customer_id', NULL, 'amount');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', NULL);
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', map => NULL);
SELECT segment_rfm('shop.orders', 'customer', 'ordered_on', 'amount');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'Amount');
SELECT segment_rfm('shop.orders', 'customer_id', 'amount', 'amount');
SELECT segment_rfm('shop.events', 'client', 'at', 'client');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', map => 'nope');
INSERT INTO segment.rfm_maps (map, r, f, segment)
SELECT 'partial', r, f, 'x' FROM generate_series(1, 5) r, generate_series(1, 5) f WHERE r * f < 20;
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', map => 'partial');
DELETE FROM segment.rfm_maps WHERE map = 'partial';
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', view_name => 'shop.orders');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', view_name => 'a.b.c');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', view_name => 'no_schema.v');
SELECT segment_rfm('shop.orders', 'customer_id', 'ordered_on', 'amount', as_of => 'infinity');
SELECT segment_rfm(0, 'customer_id', 'ordered_on', 'amount');
CREATE TABLE shop.clash (r int, ordered_on date, amount int);
SELECT segment_rfm('shop.clash', 'r', 'ordered_on', 'amount');
CREATE INDEX orders_customer ON shop.orders (customer_id);
SELECT segment_rfm('shop.orders_customer', 'customer_id', 'ordered_on', 'amount');
-- a quoted view name with capitals and a space, in the transactions' schema
SELECT segment_rfm('shop.clash', 'amount', 'ordered_on', 'amount', view_name => '"Clash RFM"');

-- 8. CDNOW (Fader & Hardie: 69,659 purchases of 23,570 customers, 1997-01 .. 1998-06),
--    as of 1998-01-01, against tests/fixtures/rfm_cdnow.csv made with pandas.
CREATE SCHEMA crm;
CREATE TABLE crm.cdnow_raw (line text);
\copy crm.cdnow_raw FROM '../examples/data/CDNOW_master.txt'
CREATE TABLE crm.transactions AS
SELECT f[1]::int AS customer_id, to_date(f[2], 'YYYYMMDD') AS purchased_on,
       f[3]::int AS cds, f[4]::numeric(10,2) AS dollars
FROM (SELECT regexp_split_to_array(btrim(line), '\s+') AS f FROM crm.cdnow_raw
      WHERE btrim(line) ~ '^[0-9]') s;
DROP TABLE crm.cdnow_raw;
SELECT segment_rfm('crm.transactions', 'customer_id', 'purchased_on', 'dollars', as_of => '1998-01-01');
CREATE TABLE crm.rfm_fixture (customer_id int PRIMARY KEY, recency_days int, frequency bigint,
                              monetary numeric, r int, f int, m int);
\copy crm.rfm_fixture FROM 'fixtures/rfm_cdnow.csv' WITH (FORMAT csv, HEADER true)
SELECT (SELECT count(*) FROM crm.transactions_rfm) AS view_customers,
       (SELECT count(*) FROM crm.rfm_fixture) AS fixture_customers,
       (SELECT count(*) FROM crm.transactions_rfm v FULL JOIN crm.rfm_fixture x USING (customer_id)
        WHERE (v.recency_days, v.frequency, v.monetary, v.r, v.f, v.m)
              IS DISTINCT FROM (x.recency_days, x.frequency, x.monetary, x.r, x.f, x.m)) AS differing_rows;
SELECT segment, count(*) AS customers, round(avg(recency_days), 1) AS avg_recency,
       round(avg(frequency), 2) AS avg_frequency, round(avg(monetary), 2) AS avg_monetary
FROM crm.transactions_rfm GROUP BY segment ORDER BY customers DESC, segment;

-- the roles are the cluster's: leave none behind
DELETE FROM segment.rfm_maps WHERE map = 'simple';
DROP OWNED BY rfm_analyst, rfm_other;
DROP ROLE rfm_analyst, rfm_other;

-- pg_segment demo: behavioral segmentation of real CDNOW customers.
-- Run by scripts/demo.sh from the examples/ directory.
\set QUIET on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION pg_segment;

\echo
\echo '== 1. Load the CDNOW transactions (Fader & Hardie, 1997-01 .. 1998-06)'
CREATE SCHEMA crm;
CREATE TABLE crm.cdnow_raw (line text);
\copy crm.cdnow_raw FROM 'data/CDNOW_master.txt'
CREATE TABLE crm.transactions AS
SELECT f[1]::int AS customer_id, to_date(f[2], 'YYYYMMDD') AS purchased_on,
       f[3]::int AS cds, f[4]::numeric(10,2) AS dollars
FROM (SELECT regexp_split_to_array(btrim(line), '\s+') AS f FROM crm.cdnow_raw
      WHERE btrim(line) ~ '^[0-9]') s;
DROP TABLE crm.cdnow_raw;
SELECT count(*) AS transactions, count(DISTINCT customer_id) AS customers,
       min(purchased_on) AS first_day, max(purchased_on) AS last_day,
       sum(dollars) AS revenue
FROM crm.transactions;

\echo
\echo '== 2. RFM features per customer (as of the day after the last purchase)'
CREATE TABLE crm.customer_rfm AS
SELECT customer_id,
       (SELECT max(purchased_on) FROM crm.transactions) + 1 - max(purchased_on) AS recency_days,
       count(*) AS frequency,
       sum(dollars)::float8 AS monetary
FROM crm.transactions GROUP BY customer_id;
ALTER TABLE crm.customer_rfm ADD PRIMARY KEY (customer_id);
SELECT q AS quartile,
       percentile_disc(q / 4.0) WITHIN GROUP (ORDER BY recency_days) AS recency_days,
       percentile_disc(q / 4.0) WITHIN GROUP (ORDER BY frequency) AS frequency,
       round(percentile_disc(q / 4.0) WITHIN GROUP (ORDER BY monetary)::numeric, 2) AS monetary
FROM crm.customer_rfm, generate_series(1, 4) AS q GROUP BY q ORDER BY q;

-- 1M rows for bench/refresh_phases.sh and bench/cancel_latency.sh: 4 numeric columns and
-- one text column in 8 latent groups, table c (id primary key), analyzed.
CREATE TABLE c AS SELECT i AS id,
  (i % 8) * 3 + ((hashint4(i) & 1023) / 1023.0) AS a, (i % 8) * 2 + ((hashint4(i*3) & 1023) / 1023.0) AS b,
  ((hashint4(i*5) & 1023) / 1023.0) AS c1, ((hashint4(i*7) & 1023) / 1023.0) AS c2,
  (ARRAY['n','s','e','w'])[1 + (i % 8) % 4] AS region
FROM generate_series(1, 1000000) i;
ALTER TABLE c ADD PRIMARY KEY (id);
VACUUM ANALYZE c;

#!/usr/bin/env bash
# pg_segment on Citus: a coordinator and two workers (three throwaway clusters on
# loopback ports, all with shared_preload_libraries = 'citus'), pg_segment created on the
# coordinator and propagated by Citus. Checks:
# - the extension is on every node;
# - each exact-combining aggregate (metrics, k-means step, uplift) is pushed down
#   (citus.coordinator_aggregation_strategy = 'disabled' refuses anything else) and
#   equals the single-server result to 1e-9;
#   the same with extra_float_digits = 0 on the workers; with shards left empty;
# - by-value assignment (segment_model) runs on the workers and equals single-server
#   assignment for every row; the by-name form there says why it cannot, with a HINT
#   showing the by-value form; assignments written into a co-located distributed table
#   with INSERT ... SELECT that Citus pushes down;
# - segment_train on a distributed table fits by passes: the shards are sent only the
#   sample's read and aggregate passes (and one read for the write of the assignments);
#   the model equals the pass-based model of the same rows in a plain table; a source
#   distributed by another column is repartitioned on the workers; a view over the
#   distributed table is fitted by passes and written on the workers; empty shards; a
#   worker stopped in the middle of the Lloyd passes gives a clean error and no partial
#   model;
# - segment_refresh on it reads only its sample's current assignments, counts the
#   migrations with a join on the workers and rewrites the assignments shard by shard:
#   the same version, migrations and centroids as the plain table's refresh; a
#   candidate leaves the assignments as they were; segment_promote writes on the
#   workers; a refresh that fails after its staging table was written leaves nothing.
# Skipped (and says so) where the citus extension is not installed for this PostgreSQL:
# the project's scripts never build or install Citus; install it as its packages do.
# Assumes pg_segment is installed (scripts/test.sh does that first).
source "$(dirname "$0")/common.sh"

if ! has_module citus || [ ! -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]; then
  echo "skipped: the citus extension is not installed for PostgreSQL $PG_MAJOR here"
  echo "regression: 0 passed, 0 failed, 1 skipped"
  exit 0
fi

BASE_PORT="${CITUS_PORT:-54410}"
NODES=(citus_coord citus_w1 citus_w2)
declare -A SOCK PORTOF
i=0
for n in "${NODES[@]}"; do
  CLUSTER_PRELOAD=citus CLUSTER_LISTEN=127.0.0.1 cluster_start "$n" $((BASE_PORT + i))
  SOCK[$n]="$PGHOST"; PORTOF[$n]=$((BASE_PORT + i))
  i=$((i + 1))
done
trap 'for n in "${NODES[@]}"; do cluster_stop "$n"; done' EXIT

on() { # on NODE psql-args...: run psql against one node
  local n="$1"; shift
  psql -h "${SOCK[$n]}" -p "${PORTOF[$n]}" -U postgres -d postgres -X -q "$@"
}
pass=0; fail=0
check() { # check NAME EXPECTED SQL (on the coordinator)
  local got
  got="$(on citus_coord -A -t -c "$3" 2>&1 || true)"
  if [ "$got" = "$2" ]; then pass=$((pass + 1)); echo "ok      $1"
  else fail=$((fail + 1)); echo "FAILED  $1: expected [$2], got [$got]"; fi
}
check_like() { # check_like NAME PATTERN SQL: the output (errors included) matches PATTERN
  local got
  got="$(on citus_coord -A -t -c "$3" 2>&1 | tr '\n' ' ' || true)"
  if grep -qE -- "$2" <<<"$got"; then pass=$((pass + 1)); echo "ok      $1"
  else fail=$((fail + 1)); echo "FAILED  $1: expected /$2/, got [$got]"; fi
}

for n in "${NODES[@]}"; do
  on "$n" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION citus" >/dev/null
done
on citus_coord -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', ${PORTOF[citus_coord]});
SELECT citus_add_node('127.0.0.1', ${PORTOF[citus_w1]});
SELECT citus_add_node('127.0.0.1', ${PORTOF[citus_w2]});
SET client_min_messages = warning;
CREATE EXTENSION pg_segment;
SET citus.shard_count = 8;
-- The same customers twice: distributed on customer_id, and a plain table on the
-- coordinator (the single-server reference).
CREATE TABLE cust (customer_id bigint PRIMARY KEY, age int, spend float8, region text);
SELECT create_distributed_table('cust', 'customer_id');
INSERT INTO cust
SELECT i, 20 + (i * 7919) % 50, round((((i * 104729) % 1000) / 7.0 + (i % 3) * 40)::numeric, 2)::float8,
       (ARRAY['north', 'south', 'east', 'west'])[1 + (i * 31) % 4]
FROM generate_series(1, 20000) i;
CREATE TABLE cust_local AS SELECT * FROM cust;
ALTER TABLE cust_local ADD PRIMARY KEY (customer_id);
SELECT k FROM segment_train('cm', 'cust_local', 'customer_id', k => 4, seed => 1);
SQL

for n in citus_w1 citus_w2; do
  got="$(on "$n" -A -t -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_segment'")"
  if [ -n "$got" ]; then pass=$((pass + 1)); echo "ok      pg_segment $got is on $n"
  else fail=$((fail + 1)); echo "FAILED  pg_segment is not on $n"; fi
done

# Each aggregate over the distributed table, pushed down, against the plain table.
aggs=(
  "segment_inertia(ARRAY[age, spend]::float8[], customer_id % 4)"
  "segment_calinski_harabasz(ARRAY[age, spend]::float8[], customer_id % 4)"
  "segment_ari(customer_id % 4, age % 3)"
  "segment_nmi(customer_id % 4, age % 3)"
  "(segment_uplift_rate(customer_id % 2 = 0, age > 40)).p_value"
  "(segment_uplift_mean(customer_id % 2 = 0, spend)).ci_low"
)
close_sql() { # close_sql EXPR WHERE: 't' when the two results agree to 1e-9 relative
  echo "SET citus.coordinator_aggregation_strategy = 'disabled';
        SELECT (d.v IS NULL AND l.v IS NULL) OR abs(d.v - l.v) <= 1e-9 * greatest(abs(l.v), 1e-300)
        FROM (SELECT $1 AS v FROM cust $2) d, (SELECT $1 AS v FROM cust_local $2) l"
}
check_aggregates() { # check_aggregates LABEL WHERE
  for a in "${aggs[@]}"; do
    name="${a#(}"; check "${name%%(*} pushed down, equals single-server ($1)" "t" "$(close_sql "$a" "$2")"
  done
  check "segment_kmeans_step pushed down, equals single-server ($1)" "t" \
    "SET citus.coordinator_aggregation_strategy = 'disabled';
     SELECT bool_and(abs(d - l) <= 1e-9 * greatest(abs(l), 1))
     FROM unnest((SELECT segment_kmeans_step(ARRAY[age, spend]::float8[], '{{25,20},{40,60},{60,100},{30,120}}') FROM cust $2)) WITH ORDINALITY a(d, n)
     JOIN unnest((SELECT segment_kmeans_step(ARRAY[age, spend]::float8[], '{{25,20},{40,60},{60,100},{30,120}}') FROM cust_local $2)) WITH ORDINALITY b(l, n) USING (n)"
}
check_aggregates "every shard" ""
check_like "the workers compute partial states (EXPLAIN)" "worker_partial_agg" \
  "SET citus.coordinator_aggregation_strategy = 'disabled';
   EXPLAIN (VERBOSE, COSTS OFF) SELECT segment_inertia(ARRAY[age, spend]::float8[], customer_id % 4) FROM cust"
check_aggregates "two or more of the 8 shards empty" "WHERE customer_id IN (1, 2, 3, 4, 5, 6)"

for n in citus_w1 citus_w2; do
  on "$n" -c "ALTER SYSTEM SET extra_float_digits = 0" -c "SELECT pg_reload_conf()" >/dev/null
done
check "the workers run with extra_float_digits = 0" "0" \
  "SELECT result FROM run_command_on_workers('SHOW extra_float_digits') LIMIT 1"
check_aggregates "extra_float_digits = 0 on the workers" ""

# Assignment on the workers: the model by value, read once on the coordinator. The
# single-server reference: every row of the plain table assigned by name.
on citus_coord -v ON_ERROR_STOP=1 -c "CREATE TABLE ref AS
  SELECT customer_id, segment_assign('cm', l) AS segment, (segment_assign_detail('cm', l)).distance
  FROM cust_local l" >/dev/null
check "by-value assignment on the workers equals single-server assignment, every row" "20000|0" \
  "WITH m AS (SELECT segment_model('cm') AS model)
   SELECT count(*), count(*) FILTER (WHERE d.segment IS DISTINCT FROM r.segment)
   FROM (SELECT c.customer_id, segment_assign(m.model, c) AS segment FROM cust c, m) d
   JOIN ref r USING (customer_id)"
check "segment_assign_detail by value on the workers, every row" "20000|0" \
  "WITH m AS (SELECT segment_model('cm') AS model)
   SELECT count(*), count(*) FILTER (WHERE d.distance IS DISTINCT FROM r.distance)
   FROM (SELECT c.customer_id, (segment_assign_detail(m.model, c)).distance FROM cust c, m) d
   JOIN ref r USING (customer_id)"
check_like "by-value assignment is sent to the shards (citus.log_remote_commands)" \
  "issuing SELECT .*segment_assign\\('\\{.*FROM public\\.cust_[0-9]+" \
  "SET citus.log_remote_commands = on;
   WITH m AS (SELECT segment_model('cm') AS model)
   SELECT count(segment_assign(m.model, c)) FROM cust c, m"
check "a bound segment_model parameter works on the distributed table" "0" \
  "PREPARE q(segment_model) AS SELECT count(*) FILTER (WHERE segment_assign(\$1, c) IS NULL) FROM cust c;
   EXECUTE q(segment_model('cm'))"
check_like "by name in a single-shard query: the worker says why, HINT shows the by-value form" \
  "does not exist on this Citus worker.*HINT:.*segment_model\\('cm'\\)" \
  "SELECT segment_assign('cm', c) FROM cust c WHERE customer_id = 5"
on citus_coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE cust_segment (customer_id bigint PRIMARY KEY, segment int);
SELECT create_distributed_table('cust_segment', 'customer_id', colocate_with => 'cust');
SQL
check_like "assignments are written on the workers (INSERT ... SELECT pushed down)" \
  "issuing INSERT INTO public\\.cust_segment_[0-9]+ .*SELECT .*segment_assign\\(.*FROM public\\.cust_[0-9]+" \
  "SET citus.log_remote_commands = on;
   INSERT INTO cust_segment
   WITH m AS (SELECT segment_model('cm') AS model)
   SELECT c.customer_id, segment_assign(m.model, c) FROM cust c, m"
check "the co-located assignments equal single-server assignment, every row" "20000|0" \
  "SELECT count(*), count(*) FILTER (WHERE s.segment IS DISTINCT FROM r.segment)
   FROM cust_segment s JOIN ref r USING (customer_id)"

# Training on the distributed table: by passes (pg_segment.fit_method = auto). 150,000
# rows, more than the sample the encoder and the initial centroids come from.
on citus_coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE big (customer_id bigint PRIMARY KEY, age int, spend float8, region text);
SELECT create_distributed_table('big', 'customer_id');
INSERT INTO big
SELECT i, 20 + (i * 7919) % 50 + (i % 3) * 15, round((((i::bigint * 104729) % 1000) / 7.0 + (i % 3) * 40)::numeric, 2)::float8,
       (ARRAY['north', 'south', 'east', 'west'])[1 + (i * 31) % 4]
FROM generate_series(1, 150000) i;
CREATE TABLE big_local AS SELECT * FROM big;
ALTER TABLE big_local ADD PRIMARY KEY (customer_id);
SQL
train_log="$(on citus_coord -A -t 2>&1 <<'SQL'
SET citus.log_remote_commands = on;
SET client_min_messages = log;
SELECT 'result', model, k, rows_used, sampled FROM segment_train('dm', 'big', 'customer_id', k => 4, seed => 7);
SQL
)"
if grep -q "^result|dm|4|150000|t" <<<"$train_log"; then pass=$((pass + 1)); echo "ok      segment_train on the distributed table: k = 4, 150000 rows used, fitted from a sample"
else fail=$((fail + 1)); echo "FAILED  segment_train on the distributed table: $(grep -E '^result|ERROR' <<<"$train_log" | head -3)"; fi
check "it ran by passes (auto), with the initial centroids of its sample" "passes|t" \
  "SELECT params->'fit'->>'method', jsonb_array_length(params->'fit'->'initial_centroids') = 4 FROM segment.models WHERE name = 'dm'"
# What the shards were sent: the row count, the sample's read (a WHERE on a hash of the
# id), the fit's aggregate passes (worker_partial_agg of segment._cluster_pass and
# segment._kmeans_pass), and the INSERT ... SELECT that writes each shard's
# assignments into the co-located assignment table: no query that returns rows.
shards=$(on citus_coord -A -t -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'big'::regclass")
shard_selects() { grep -E "issuing SELECT .*FROM public\.big_[0-9]+" <<<"$train_log" || true; }
n_sample=$(shard_selects | grep -c "hashtextextended" || true)
n_pass=$(shard_selects | grep -c "worker_partial_agg" || true)
n_count=$(shard_selects | grep -v "worker_partial_agg" | grep -c "SELECT count(\*)" || true)
n_full=$(shard_selects | grep -v "hashtextextended\|worker_partial_agg\|SELECT count(\*)" | grep -c . || true)
n_insert=$(grep -cE "issuing INSERT INTO segment\.dm_assignments_[0-9]+ .*FROM \(?public\.big_[0-9]+" <<<"$train_log" || true)
if [ "$n_sample" -eq "$shards" ] && [ "$n_pass" -ge $((2 * shards)) ] && [ "$n_count" -eq "$shards" ] \
   && [ "$n_full" -eq 0 ] && [ "$n_insert" -eq "$shards" ]; then
  pass=$((pass + 1)); echo "ok      the $shards shards were sent their count, their sample's read, aggregate passes ($n_pass partial aggregates) and the INSERT of their assignments: no row went through the coordinator"
else
  fail=$((fail + 1)); echo "FAILED  shard queries over $shards shards: $n_count counts, $n_sample sample reads, $n_pass partial aggregates, $n_full full reads, $n_insert inserts"
fi
check "the assignment table is distributed, co-located with the source" "t" \
  "SELECT a.colocationid = s.colocationid FROM pg_dist_partition a, pg_dist_partition s
    WHERE a.logicalrelid = 'segment.dm_assignments'::regclass AND s.logicalrelid = 'big'::regclass"
check "segment sizes count every row" "150000" \
  "SELECT sum(size) FROM segment.segments WHERE model = 'dm'"
on citus_coord -v ON_ERROR_STOP=1 -c "SET pg_segment.fit_method = 'passes'" \
  -c "SELECT k FROM segment_train('lm', 'big_local', 'customer_id', k => 4, seed => 7)" >/dev/null
check "the distributed fit equals the pass-based fit of the plain table (1e-9)" "t|t|t" \
  "SELECT bool_and(abs(d - l) <= 1e-9 * greatest(abs(l), 1)), (SELECT abs(a.inertia - b.inertia) <= 1e-9 * b.inertia
          FROM segment.versions a, segment.versions b WHERE a.model = 'dm' AND b.model = 'lm'),
          (SELECT a.iterations = b.iterations FROM segment.versions a, segment.versions b WHERE a.model = 'dm' AND b.model = 'lm')
   FROM unnest((SELECT centroids FROM segment.versions WHERE model = 'dm')) WITH ORDINALITY x(d, n)
   JOIN unnest((SELECT centroids FROM segment.versions WHERE model = 'lm')) WITH ORDINALITY y(l, n) USING (n)"
check "every row of the distributed table has its segment, as the plain table's model says" "150000|0" \
  "CREATE TABLE lm_ref AS SELECT customer_id, segment_assign('lm', l) AS segment FROM big_local l;
   SELECT count(*), count(*) FILTER (WHERE a.segment IS DISTINCT FROM r.segment)
   FROM segment.dm_assignments a JOIN lm_ref r USING (customer_id)"
on citus_coord -v ON_ERROR_STOP=1 -c "CREATE ROLE citus_reader LOGIN" -c "SELECT segment_grant('dm', 'citus_reader')" >/dev/null
check "a role the model is shared with reads the distributed assignments" "150000" \
  "SET ROLE citus_reader; SELECT count(*) FROM segment.dm_assignments"
# A source distributed by another column than the id: the assignment table is
# distributed by the id all the same, and Citus repartitions the INSERT ... SELECT
# between the workers (no row through the coordinator).
on citus_coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE by_age AS SELECT * FROM big_local;
SELECT create_distributed_table('by_age', 'age');
SQL
age_log="$(on citus_coord -A -t 2>&1 <<'SQL'
SET citus.log_remote_commands = on;
SET client_min_messages = log;
SELECT 'result', rows_used FROM segment_train('am', 'by_age', 'customer_id', k => 4, seed => 7);
SQL
)"
if grep -q "^result|150000" <<<"$age_log" && grep -q "worker_partition_query_result" <<<"$age_log" \
   && ! grep -qE "issuing COPY segment\.am_assignments" <<<"$age_log"; then
  pass=$((pass + 1)); echo "ok      a source distributed by another column: its assignments are repartitioned between the workers"
else
  fail=$((fail + 1)); echo "FAILED  source distributed by age: $(grep -E '^result|ERROR|COPY segment' <<<"$age_log" | head -3)"
fi
check "(its assignment table is distributed by the id; it equals the plain table's model for every row)" "customer_id|150000|0" \
  "SELECT column_to_column_name(logicalrelid, partkey), (SELECT count(*) FROM segment.am_assignments),
          (SELECT count(*) FROM segment.am_assignments a JOIN lm_ref r USING (customer_id) WHERE a.segment IS DISTINCT FROM r.segment)
     FROM pg_dist_partition WHERE logicalrelid = 'segment.am_assignments'::regclass"

# A view over the distributed table: auto fits it by passes too, and its assignments are
# written on the workers (Citus plans the INSERT ... SELECT of the view).
on citus_coord -v ON_ERROR_STOP=1 -c "CREATE VIEW big_view AS SELECT customer_id, age, spend, region FROM big WHERE spend >= 0" >/dev/null
view_log="$(on citus_coord -A -t 2>&1 <<'SQL'
SET citus.log_remote_commands = on;
SET client_min_messages = log;
SELECT 'result', rows_used FROM segment_train('vm', 'big_view', 'customer_id', k => 4, seed => 7);
SQL
)"
v_full=$(grep -E "issuing SELECT .*FROM public\.big_[0-9]+" <<<"$view_log" \
  | grep -v "hashtextextended\|worker_partial_agg\|SELECT count(\*)" | grep -c . || true)
if grep -q "^result|150000" <<<"$view_log" && [ "$v_full" -eq 0 ]; then
  pass=$((pass + 1)); echo "ok      a view over the distributed table: fitted by passes, assignments written on the workers (no shard read whole)"
else
  fail=$((fail + 1)); echo "FAILED  view over the distributed table: $(grep -E '^result|ERROR' <<<"$view_log" | head -3), $v_full full reads"
fi
check "(by passes; its assignments distributed; the plain table's model for every row)" "passes|customer_id|150000|0" \
  "SELECT (SELECT params->'fit'->>'method' FROM segment.models WHERE name = 'vm'),
          column_to_column_name(logicalrelid, partkey), (SELECT count(*) FROM segment.vm_assignments),
          (SELECT count(*) FROM segment.vm_assignments a JOIN lm_ref r USING (customer_id) WHERE a.segment IS DISTINCT FROM r.segment)
     FROM pg_dist_partition WHERE logicalrelid = 'segment.vm_assignments'::regclass"

# A refresh: customers leave, arrive and change, the same on the distributed table and
# on the plain one. On Citus it fits by passes, reads the current assignments of its
# sample only, counts the migrations with a join on the workers and rewrites the
# assignments shard by shard; the plain table's refresh by passes streams every row.
# Both must give the same version, migrations and centroids.
on citus_coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
DELETE FROM big WHERE customer_id % 50 = 0;
DELETE FROM big_local WHERE customer_id % 50 = 0;
INSERT INTO big SELECT i, 30 + i % 40, 300 + (i % 17) * 3, 'north' FROM generate_series(150001, 156000) i;
INSERT INTO big_local SELECT i, 30 + i % 40, 300 + (i % 17) * 3, 'north' FROM generate_series(150001, 156000) i;
UPDATE big SET spend = spend + 8 WHERE customer_id % 7 = 0;
UPDATE big_local SET spend = spend + 8 WHERE customer_id % 7 = 0;
SQL
refresh_log="$(on citus_coord -A -t 2>&1 <<'SQL'
SET citus.log_remote_commands = on;
SET client_min_messages = log;
SELECT 'result', version, promoted, segments_kept, customers_moved, customers_new, customers_gone, round(ari::numeric, 9)
  FROM segment_refresh('dm', promote => 'always');
SQL
)"
local_refresh="$(on citus_coord -A -t -c "SET pg_segment.fit_method = 'passes'" \
  -c "SELECT 'result', version, promoted, segments_kept, customers_moved, customers_new, customers_gone, round(ari::numeric, 9) FROM segment_refresh('lm', promote => 'always')" 2>&1)"
dist_result="$(grep "^result" <<<"$refresh_log" || true)"
if [ -n "$dist_result" ] && [ "$dist_result" = "$local_refresh" ] && grep -q "^result|2|t" <<<"$dist_result"; then
  pass=$((pass + 1)); echo "ok      segment_refresh of the distributed model equals the plain table's: $dist_result"
else
  fail=$((fail + 1)); echo "FAILED  segment_refresh: distributed [$dist_result $(grep ERROR <<<"$refresh_log" | head -2)], plain [$local_refresh]"
fi
check "(the refresh fitted by passes)" "passes" \
  "SELECT refresh->'fit'->>'method' FROM segment.versions WHERE model = 'dm' AND version = 2"
check "the migrations equal the plain table's, segment by segment" "0|t" \
  "WITH d AS (SELECT from_segment, to_segment, customers FROM segment.migrations WHERE model = 'dm' AND to_version = 2),
        l AS (SELECT from_segment, to_segment, customers FROM segment.migrations WHERE model = 'lm' AND to_version = 2)
   SELECT (SELECT count(*) FROM ((TABLE d EXCEPT TABLE l) UNION ALL (TABLE l EXCEPT TABLE d)) x),
          (SELECT sum(customers) FROM d WHERE to_segment IS NOT NULL) = (SELECT count(*) FROM big)"
check "the refreshed centroids equal the plain table's (1e-9)" "t" \
  "SELECT bool_and(abs(d - l) <= 1e-9 * greatest(abs(l), 1))
   FROM unnest((SELECT centroids FROM segment.versions WHERE model = 'dm' AND version = 2)) WITH ORDINALITY x(d, n)
   JOIN unnest((SELECT centroids FROM segment.versions WHERE model = 'lm' AND version = 2)) WITH ORDINALITY y(l, n) USING (n)"
shard_queries() { grep -E "issuing .*(public\.big|segment\.dm_assignments)_[0-9]+" <<<"$refresh_log" || true; }
r_full=$(shard_queries | grep -E "issuing SELECT" \
  | grep -v "hashtextextended\|worker_partial_agg\|SELECT count(\*)\|GROUP BY" | grep -c . || true)
r_sample=$(shard_queries | grep -E "issuing SELECT .*segment\.dm_assignments_[0-9]+" | grep -c "hashtextextended" || true)
r_join=$(shard_queries | grep -E "FULL (OUTER )?JOIN" | grep -c "GROUP BY" || true)
if [ "$r_full" -eq 0 ] && [ "$r_sample" -eq "$shards" ] && [ "$r_join" -eq "$shards" ]; then
  pass=$((pass + 1)); echo "ok      the refresh read no shard whole: $r_sample sample reads of the assignments, $r_join grouped joins for the migrations"
else
  fail=$((fail + 1)); echo "FAILED  refresh shard queries over $shards shards: $r_full full reads, $r_sample sample reads of the assignments, $r_join grouped joins"
fi
check "its assignments: version 2 for every row, as the new model assigns them" "$(on citus_coord -A -t -c 'SELECT count(*) FROM big')|0" \
  "WITH m AS (SELECT segment_model('dm', 2) AS model)
   SELECT count(*) FILTER (WHERE a.version = 2),
          count(*) FILTER (WHERE a.segment IS DISTINCT FROM segment_assign(m.model, b))
   FROM segment.dm_assignments a JOIN big b USING (customer_id), m"
check "the assignment table kept its grants and co-location; no staging table is left" "t|t|0" \
  "SELECT has_table_privilege('citus_reader', 'segment.dm_assignments', 'SELECT'),
          (SELECT a.colocationid = s.colocationid FROM pg_dist_partition a, pg_dist_partition s
            WHERE a.logicalrelid = 'segment.dm_assignments'::regclass AND s.logicalrelid = 'big'::regclass),
          (SELECT count(*) FROM pg_class WHERE relname LIKE '\_refresh\_%')"
check "a candidate (promote => 'never')" "3|f" \
  "SET client_min_messages = warning; SELECT version, promoted FROM segment_refresh('dm', promote => 'never')"
check "(its migrations counted over every row; the assignments left as they were)" "t|t" \
  "SELECT (SELECT sum(customers) FROM segment.migrations WHERE model = 'dm' AND to_version = 3 AND to_segment IS NOT NULL) = (SELECT count(*) FROM big),
          (SELECT bool_and(version = 2) FROM segment.dm_assignments)"
promote_log="$(on citus_coord -A -t -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" \
  -c "SELECT 'result', version, previous_version, rows FROM segment_promote('dm', 3)" 2>&1)"
p_full=$(grep -E "issuing SELECT .*(public\.big|segment\.dm_assignments)_[0-9]+" <<<"$promote_log" | grep -vc "count(\*)" || true)
if grep -q "^result|3|2|$(on citus_coord -A -t -c 'SELECT count(*) FROM big')$" <<<"$promote_log" && [ "$p_full" -eq 0 ]; then
  pass=$((pass + 1)); echo "ok      segment_promote of the candidate rewrites the assignments on the workers (no shard read whole)"
else
  fail=$((fail + 1)); echo "FAILED  segment_promote: $(grep -E '^result|ERROR' <<<"$promote_log" | head -2), $p_full full reads"
fi
check "(every row now has version 3's segment)" "$(on citus_coord -A -t -c 'SELECT count(*) FROM big')|0" \
  "WITH m AS (SELECT segment_model('dm', 3) AS model)
   SELECT count(*) FILTER (WHERE a.version = 3),
          count(*) FILTER (WHERE a.segment IS DISTINCT FROM segment_assign(m.model, b))
   FROM segment.dm_assignments a JOIN big b USING (customer_id), m"
# A refresh that fails after its staging table was filled and the migrations counted
# (the assignment table is locked by another session: the TRUNCATE of the promotion
# times out): the current version, the versions and the assignments stay as they were,
# and no staging table is left, on the coordinator or on a worker.
before="$(on citus_coord -A -t -c "SELECT (SELECT current_version FROM segment.models WHERE name = 'dm'), (SELECT max(version) FROM segment.versions WHERE model = 'dm'), (SELECT string_agg(version || ':' || n, ',' ORDER BY version) FROM (SELECT version, count(*) n FROM segment.dm_assignments GROUP BY version) x)")"
on citus_coord -c "BEGIN" -c "LOCK TABLE segment.dm_assignments IN ACCESS SHARE MODE" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
locker=$!
for _ in $(seq 1 100); do
  [ "$(on citus_coord -A -t -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'dm_assignments' AND l.pid <> pg_backend_pid()")" -gt 0 ] && break
  sleep 0.1
done
check_like "a refresh whose promotion cannot lock the assignment table fails cleanly" "ERROR: .*lock timeout" \
  "SET lock_timeout = '2s'; SELECT version FROM segment_refresh('dm', promote => 'always')"
on citus_coord -A -t -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$locker" 2>/dev/null || true
check "(current version, versions and assignments as before the failed refresh)" "$before" \
  "SELECT (SELECT current_version FROM segment.models WHERE name = 'dm'), (SELECT max(version) FROM segment.versions WHERE model = 'dm'), (SELECT string_agg(version || ':' || n, ',' ORDER BY version) FROM (SELECT version, count(*) n FROM segment.dm_assignments GROUP BY version) x)"
left=0
for n in "${NODES[@]}"; do
  left=$((left + $(on "$n" -A -t -c "SELECT count(*) FROM pg_class WHERE relname LIKE '\_refresh\_%'")))
done
if [ "$left" -eq 0 ]; then pass=$((pass + 1)); echo "ok      (no staging table or shard is left on any node)"
else fail=$((fail + 1)); echo "FAILED  $left staging tables or shards left after the failed refresh"; fi
on citus_coord -v ON_ERROR_STOP=1 -c "SELECT segment_drop('dm')" >/dev/null
check "dropping the model drops its distributed assignment table" "t|0" \
  "SELECT to_regclass('segment.dm_assignments') IS NULL,
          (SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'segment.dm_%')"
on citus_coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE few (customer_id bigint PRIMARY KEY, age int, spend float8);
SELECT create_distributed_table('few', 'customer_id');
INSERT INTO few SELECT i, i % 50, (i * 37) % 100 FROM generate_series(1, 6) i;
SQL
check "a fit by passes with most shards empty" "4|6" \
  "SELECT k, rows_used FROM segment_train('fm', 'few', 'customer_id', k => 4, seed => 1)"
check "(by passes)" "passes" "SELECT params->'fit'->>'method' FROM segment.models WHERE name = 'fm'"
# A worker that stops in the middle of a fit (after its second Lloyd pass): a clean
# error, and no model left behind.
down_out="$(mktemp)"
on citus_coord -A -t -c "SELECT k FROM segment_train('down', 'big', 'customer_id', k => 8, seed => 7, tol => 0)" >"$down_out" 2>&1 &
down_pid=$!
at=0
for _ in $(seq 1 600); do
  at=$(on citus_coord -A -t -c "SELECT coalesce(max(iteration), 0) FROM segment.progress WHERE model = 'down' AND phase = 'iterations'" 2>/dev/null || echo 0)
  [ "${at:-0}" -ge 2 ] && break
  kill -0 "$down_pid" 2>/dev/null || break
  sleep 0.1
done
cluster_stop citus_w2
wait "$down_pid" || true
if [ "${at:-0}" -ge 2 ] && grep -q "ERROR: " "$down_out"; then
  pass=$((pass + 1)); echo "ok      a worker stopped at Lloyd pass $at: the training fails cleanly ($(grep -m1 'ERROR: ' "$down_out" | cut -c1-90))"
else
  fail=$((fail + 1)); echo "FAILED  worker stopped mid-fit (pass ${at:-?}): $(head -c 300 "$down_out")"
fi
rm -f "$down_out"
check "and leaves no model, no assignment table" "0|" \
  "SELECT count(*), pg_catalog.to_regclass('segment.down_assignments') FROM segment.models WHERE name = 'down'"

echo "regression: ${pass} passed, ${fail} failed, 0 skipped"
[ "$fail" -eq 0 ]

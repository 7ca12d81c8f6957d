#!/usr/bin/env bash
# pg_segment on Citus against one server, on this machine: a coordinator and two workers
# (three clusters sharing the same cores, so no speed-up is expected; what it shows is
# the cost of distribution and what crosses the network). For each data shape
# (BENCH_SHAPES, default "persona uniform"; BENCH_ROWS rows, default 1000000; 8 numeric +
# 2 text columns, k = 8) it prints:
# - the bytes one Lloyd pass sends: the query each shard receives (model and centroids
#   as literals) and the partial state each returns (its text form);
# - segment_train on the distributed table (by passes, assignments written on the
#   workers) against segment_train on the same rows in a plain table on the coordinator,
#   in memory and by passes;
# - assignment of every row (by-value segment_assign, count) on the distributed table
#   against the plain table;
# - segment_refresh after 5% of the rows changed: the distributed model (by passes,
#   migrations counted and assignments rewritten on the workers) against the plain
#   table's models, in memory and by passes.
# Needs the citus extension installed for PostgreSQL $PG_MAJOR (skips otherwise) and
# pg_segment installed (make install).
source "$(dirname "$0")/../scripts/common.sh"

if ! has_module citus || [ ! -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]; then
  echo "skipped: the citus extension is not installed for PostgreSQL $PG_MAJOR here"
  exit 0
fi
ROWS="${BENCH_ROWS:-1000000}"
SHAPES="${BENCH_SHAPES:-persona uniform}"
BASE_PORT="${CITUS_BENCH_PORT:-54420}"
NODES=(cb_coord cb_w1 cb_w2)
declare -A SOCK PORTOF
i=0
for n in "${NODES[@]}"; do
  CLUSTER_MWM=2GB CLUSTER_PRELOAD=citus CLUSTER_LISTEN=127.0.0.1 cluster_start "$n" $((BASE_PORT + i)) >/dev/null
  SOCK[$n]="$PGHOST"; PORTOF[$n]=$((BASE_PORT + i))
  i=$((i + 1))
done
trap 'for n in "${NODES[@]}"; do cluster_stop "$n"; done' EXIT
on() { local n="$1"; shift; psql -h "${SOCK[$n]}" -p "${PORTOF[$n]}" -U postgres -d postgres -X -q "$@"; }
for n in "${NODES[@]}"; do on "$n" -c "CREATE EXTENSION citus" >/dev/null; done
on cb_coord -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', ${PORTOF[cb_coord]});
SELECT citus_add_node('127.0.0.1', ${PORTOF[cb_w1]});
SELECT citus_add_node('127.0.0.1', ${PORTOF[cb_w2]});
SET client_min_messages = warning;
CREATE EXTENSION pg_segment;
SQL
# timed SQL: prints the seconds it took (psql's \timing of the last statement)
timed() {
  on cb_coord -A -t -c '\timing on' -c "$1" 2>&1 | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -1 \
    | awk '{printf "%.2f", $1 / 1000}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

for shape in $SHAPES; do
  case "$shape" in
    persona) gen="round(greatest(18, 45 + 12 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))::int,
                   round(exp(5 + random() * 2.5)::numeric, 2)::float8,
                   floor(-ln(1 - random()) * 6)::int, floor(-ln(1 - random()) * 20)::int,
                   round((random() * random() * 100)::numeric, 1)::float8, floor(random() * 5)::int,
                   round(exp(random() * 4)::numeric, 2)::float8, (random() < 0.3)::int,
                   (ARRAY['web','store','app','phone','partner'])[1 + floor(power(random(), 2) * 5)::int],
                   (ARRAY['north','south','east','west','central','islands'])[1 + floor(power(random(), 1.5) * 6)::int]" ;;
    uniform) gen="random(), random(), random(), random(), random(), random(), random(), random(),
                  (ARRAY['a','b','c','d','e'])[1 + floor(random() * 5)::int],
                  (ARRAY['p','q','r','s','t','u'])[1 + floor(random() * 6)::int]" ;;
    *) die "unknown shape $shape" ;;
  esac
  on cb_coord -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS dist, plain;
SELECT setseed(0.17);
CREATE TABLE plain (id bigint PRIMARY KEY, f1 float8, f2 float8, f3 float8, f4 float8, f5 float8,
                    f6 float8, f7 float8, f8 float8, channel text, region text);
INSERT INTO plain SELECT i, $gen FROM generate_series(1, $ROWS) i;
CREATE TABLE dist (LIKE plain INCLUDING ALL);
SELECT create_distributed_table('dist', 'id');
INSERT INTO dist SELECT * FROM plain;
VACUUM ANALYZE plain; VACUUM ANALYZE dist;
SQL
  shards=$(on cb_coord -A -t -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'dist'::regclass")
  t_mem=$(timed "SET pg_segment.fit_method = 'in_memory'; SELECT k FROM segment_train('b_mem', 'plain', 'id', k => 8, seed => 1)")
  t_pass=$(timed "SET pg_segment.fit_method = 'passes'; SELECT k FROM segment_train('b_pass', 'plain', 'id', k => 8, seed => 1)")
  t_dist=$(timed "SELECT k FROM segment_train('b_dist', 'dist', 'id', k => 8, seed => 1)")
  iters=$(on cb_coord -A -t -c "SELECT string_agg(model || ' ' || iterations, ', ' ORDER BY model) FROM segment.versions WHERE model LIKE 'b\_%'")
  # One Lloyd pass as the fit runs it (src/train/passes.rs): the query text each shard
  # is sent (citus.log_remote_commands) and the state it returns (its text form).
  dim=$(on cb_coord -A -t -c "SELECT dim FROM segment.versions WHERE model = 'b_dist'")
  k=8
  centroids="(SELECT v.centroids FROM segment.versions v WHERE v.model = 'b_dist')"
  model_lit=$(on cb_coord -A -t -c "SELECT quote_literal(segment_model('b_dist', NULL)::text)")
  cent_lit=$(on cb_coord -A -t -c "SELECT quote_literal($centroids::text)")
  pass_sql="SELECT segment._agg_state_send(segment._kmeans_pass(public.segment_encode($model_lit::public.segment_model, s), $cent_lit::float8[])) FROM public.dist s WHERE s.id IS NOT NULL"
  sent=$(on cb_coord -A -t -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = log" -c "$pass_sql" 2>&1 \
    | grep -E "issuing SELECT .*FROM public\.dist_[0-9]+" | awk '{ n += length($0) - length("NOTICE:  issuing ") } END { print n + 0 }')
  state_chars=$(on cb_coord -A -t -c "SELECT length(segment._kmeans_pass(segment_encode(segment_model('b_dist', NULL), s), $centroids)::text)
                                       FROM plain s WHERE s.id <= 1000")
  t_assign_plain=$(timed "WITH m AS (SELECT segment_model('b_mem', NULL) AS model) SELECT count(segment_assign(m.model, c)) FROM plain c, m")
  t_assign_dist=$(timed "WITH m AS (SELECT segment_model('b_mem', NULL) AS model) SELECT count(segment_assign(m.model, c)) FROM dist c, m")
  on cb_coord -v ON_ERROR_STOP=1 -c "UPDATE plain SET f2 = f2 * 1.5 WHERE id % 20 = 0" \
    -c "UPDATE dist SET f2 = f2 * 1.5 WHERE id % 20 = 0" >/dev/null
  t_ref_mem=$(timed "SET pg_segment.fit_method = 'in_memory'; SELECT version FROM segment_refresh('b_mem')")
  t_ref_pass=$(timed "SET pg_segment.fit_method = 'passes'; SELECT version FROM segment_refresh('b_pass')")
  t_ref_dist=$(timed "SELECT version FROM segment_refresh('b_dist')")
  moved=$(on cb_coord -A -t -c "SELECT string_agg(model || ' ' || (refresh->>'customers_moved'), ', ' ORDER BY model) FROM segment.versions WHERE model LIKE 'b\_%' AND version = 2")
  echo
  echo "== shape: $shape, $ROWS rows, k = 8, $shards shards on 2 workers (one machine, shared cores)"
  echo "one Lloyd pass ($k x $dim centroids): the $shards shards are sent $((sent / 1024)) KiB of query text in all (model and centroids as literals: $((sent / shards)) characters each) and return $state_chars characters of state each ($((state_chars * shards / 1024)) KiB in all); the same whatever the number of rows"
  echo "segment_train, plain table in memory:           ${t_mem} s"
  echo "segment_train, plain table by passes:           ${t_pass} s  ($(ratio "$t_pass" "$t_mem") the in-memory time)"
  echo "segment_train, distributed table (passes, assignments written on the workers): ${t_dist} s  ($(ratio "$t_dist" "$t_mem") the in-memory time, $(ratio "$t_dist" "$t_pass") the plain table by passes)"
  echo "iterations: $iters"
  echo "assign every row by value: plain ${t_assign_plain} s, distributed ${t_assign_dist} s  ($(ratio "$t_assign_dist" "$t_assign_plain"))"
  echo "segment_refresh after 5% of the rows changed, plain table in memory: ${t_ref_mem} s"
  echo "segment_refresh, plain table by passes:         ${t_ref_pass} s  ($(ratio "$t_ref_pass" "$t_ref_mem") the in-memory time)"
  echo "segment_refresh, distributed table (passes, migrations and assignments on the workers): ${t_ref_dist} s  ($(ratio "$t_ref_dist" "$t_ref_mem") the in-memory time, $(ratio "$t_ref_dist" "$t_ref_pass") the plain table by passes)"
  echo "customers moved: $moved"
  on cb_coord -c "SELECT segment_drop(name) FROM segment.models" >/dev/null
done

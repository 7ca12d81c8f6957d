#!/usr/bin/env bash
# The exact-combining aggregates (segment_inertia, segment_calinski_harabasz, segment_ari,
# segment_nmi, segment_kmeans_step, segment_uplift_rate, segment_uplift_mean) over 1M rows, serial and with 2 parallel workers,
# on two data shapes: uniform noise (8 dims, 8 labels) and skewed marginals (log-normal
# and exponential columns, 8 labels of very unequal sizes). Prints the fastest and the
# median of BENCH_REPEAT runs (default 5) per aggregate, shape and mode, in ms (on a
# shared 2-core machine the fastest run is the steadier figure).
# Used to compare builds: run it, install another build, run it again.
# Assumes pg_segment is installed (make install).
source "$(dirname "$0")/../scripts/common.sh"
ROWS="${BENCH_ROWS:-1000000}"; REPEAT="${BENCH_REPEAT:-5}"
CLUSTER_MWM=1GB cluster_start aggbench "${BENCH_PORT:-54431}"
trap 'cluster_stop aggbench' EXIT
psql -d postgres -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pg_segment;
SELECT setseed(0.42);
CREATE TABLE uniform AS
SELECT ARRAY(SELECT random() FROM generate_series(1, 8) j WHERE i > 0) AS v,
       (random() * 8)::bigint AS seg, (random() * 8)::bigint AS b
FROM generate_series(1, $ROWS) i;
CREATE TABLE skewed AS
SELECT ARRAY[exp(random() * 3), -ln(1 - random()), exp(random()), random() * 100,
             -ln(1 - random()) * 10, exp(random() * 2), random(), (i % 97)::float8] AS v,
       least(7, floor(-ln(1 - random()) * 2))::bigint AS seg, (i % 5)::bigint AS b
FROM generate_series(1, $ROWS) i;
VACUUM ANALYZE uniform; VACUUM ANALYZE skewed;
SQL
aggs=(
  "segment_inertia(v, seg)"
  "segment_calinski_harabasz(v, seg)"
  "segment_ari(seg, b)"
  "segment_nmi(seg, b)"
  "segment_kmeans_step(v, (SELECT array_agg(v) FROM (SELECT v FROM uniform LIMIT 8) c))"
  "(segment_uplift_rate(seg % 2 = 0, b < 2)).p_value"
  "(segment_uplift_mean(seg % 2 = 0, v[1])).p_value"
)
# BENCH_ONLY: a regular expression; only the aggregates it matches run.
if [ -n "${BENCH_ONLY:-}" ]; then
  kept=(); for a in "${aggs[@]}"; do grep -qE -- "$BENCH_ONLY" <<<"$a" && kept+=("$a"); done
  aggs=("${kept[@]}")
fi
printf '%-10s %-9s %-30s %10s %10s\n' shape mode aggregate "best ms" "median ms"
for shape in uniform skewed; do
  for mode in serial parallel; do
    if [ "$mode" = serial ]; then set_par="SET max_parallel_workers_per_gather = 0;"
    else set_par="SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"; fi
    for a in "${aggs[@]}"; do
      times=()
      for _ in $(seq 1 "$REPEAT"); do
        t=$(psql -d postgres -X -q -A -t -c "$set_par" -c "\\timing on" -c "SELECT $a IS NOT NULL FROM $shape" 2>&1 \
            | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p')
        times+=("$t")
      done
      best=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
      med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
      name="${a#(}"
      printf '%-10s %-9s %-30s %10.1f %10.1f\n' "$shape" "$mode" "${name%%(*}" "$best" "$med"
    done
  done
done

#!/usr/bin/env bash
# End-to-end SQL benchmark (see bench/sql_bench.py): builds and installs pg_segment
# (release), starts a throwaway cluster on port 54393 and, for each data shape in
# BENCH_SHAPES (default "segments persona uniform": latent segments, real-looking
# persona marginals, uniform noise), generates BENCH_ROWS (default 1M) customers and
# prints the ratios; then a summary of every ratio by shape, the scale curve
# (bench/memory_bench.sh at BENCH_SCALE_ROWS, default "1000000 3000000 10000000", on
# BENCH_SCALE_SHAPES, default "persona uniform"; BENCH_SCALE_ROWS="" skips it) and the
# cancel latency. About 25 minutes on 2 cores with the defaults.
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
python3 -c "import sklearn, pandas, psycopg2, threadpoolctl" 2>/dev/null \
  || python3 -m pip install -q scikit-learn pandas psycopg2-binary threadpoolctl
install_extension
CLUSTER_MWM=2GB cluster_start bench 54393
trap 'cluster_stop bench' EXIT
cat <<CONF | as_postgres tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
shared_buffers = '2GB'
work_mem = '64MB'
jit = off
CONF
as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w restart >/dev/null
psql -d postgres -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
psql -d bench -X -q -c "CREATE EXTENSION pg_segment"
SUMMARY="$(mktemp)"
trap 'cluster_stop bench; rm -f "$SUMMARY"' EXIT
for shape in ${BENCH_SHAPES:-segments persona uniform}; do
  echo "==== shape: $shape"
  BENCH_DATA="$shape" BENCH_SUMMARY="$SUMMARY" python3 "$ROOT/bench/sql_bench.py"
  echo
done
echo "summary: every ratio by data shape (best runs; targets: train >= 6x (persona) and >= 4x"
echo "(uniform) the export-to-Python path, assign <= 1.3x and drift <= 2x the scan, refresh no"
echo "slower than train)"
python3 - "$SUMMARY" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"  {'shape':<9} {'rows':>8} {'train vs Python':>16} {'(Python s / ours s)':>20} {'assign/scan':>12} {'drift/scan':>11} {'train/refresh':>14}")
for r in rows:
    print(f"  {r['shape']:<9} {r['rows']:>8} {r['train_vs_python']:>15.2f}x {r['python_s']:>9.2f} / {r['train_s']:<8.2f}"
          f" {r['assign_vs_scan']:>11.2f}x {r['drift_vs_scan']:>10.2f}x {r['train_vs_refresh']:>13.2f}x")
PY
cluster_stop bench
if [ -n "${BENCH_SCALE_ROWS-1000000 3000000 10000000}" ]; then
  echo
  echo "6. scale curve: segment_train phase by phase at ${BENCH_SCALE_ROWS-1000000 3000000 10000000} rows (bench/memory_bench.sh)"
  BENCH_ROWS="${BENCH_SCALE_ROWS-1000000 3000000 10000000}" BENCH_SHAPES="${BENCH_SCALE_SHAPES:-persona uniform}" \
    bash "$ROOT/bench/memory_bench.sh"
fi
# 5. Cancel latency, phase by phase, at 1M rows (its own cluster).
echo
echo "5. pg_cancel_backend at 1M rows: time from the cancel to the end of the call, by phase (target < 1 s)"
bash "$ROOT/bench/cancel_latency.sh" 2>&1 | grep -v "==>"

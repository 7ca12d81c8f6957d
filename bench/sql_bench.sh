#!/usr/bin/env bash
# End-to-end SQL benchmark (see bench/sql_bench.py): builds and installs pg_segment
# (release), starts a throwaway cluster on port 54393, generates BENCH_ROWS (default 1M)
# synthetic customers and prints the ratios. Takes a few minutes on 2 cores.
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
python3 "$ROOT/bench/sql_bench.py"
# 5. Cancel latency, phase by phase, at 1M rows (its own cluster).
cluster_stop bench
echo
echo "5. pg_cancel_backend at 1M rows: time from the cancel to the end of the call, by phase (target < 1 s)"
bash "$ROOT/bench/cancel_latency.sh" 2>&1 | grep -v "==>"

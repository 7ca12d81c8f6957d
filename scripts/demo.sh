#!/usr/bin/env bash
# The demo: setup, build and install pg_segment, start a throwaway cluster (data under
# target/pg/demo, its own port and socket; never a system cluster), load the real CDNOW
# transactions and walk through a segmentation. The cluster is stopped at the end unless
# KEEP=1, in which case the psql command to reach it is printed.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
PORT="${DEMO_PORT:-54392}"

"$ROOT/scripts/setup.sh"
install_extension
cluster_start demo "$PORT"
if [ -z "${KEEP:-}" ]; then trap 'cluster_stop demo' EXIT; fi

psql -d postgres -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS demo" -c "CREATE DATABASE demo"
(cd "$ROOT/examples" && psql -d demo -X -v ON_ERROR_STOP=1 -P pager=off -f demo.sql)

if [ -n "${KEEP:-}" ]; then
  log "cluster left running: psql -h $PGHOST -p $PGPORT -U postgres demo"
fi

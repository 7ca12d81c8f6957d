#!/usr/bin/env bash
# Runs the #[pg_test] suite with `cargo pgrx test`. pgrx starts its own cluster; initdb
# refuses root, so as root the cluster runs as the postgres user in a directory it owns.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
if [ "$(id -u)" -eq 0 ]; then
  dir="$(cluster_base)/pgrx-test"
  as_postgres mkdir -p "$dir"
  cargo pgrx test pg15 --runas postgres --pgdata "$dir" "$@"
else
  cargo pgrx test pg15 "$@"
fi

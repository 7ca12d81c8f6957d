#!/usr/bin/env bash
# Runs the #[pg_test] suite with `cargo pgrx test`. pgrx starts its own cluster. initdb
# refuses root, and a non-root user cannot write PostgreSQL's extension directory, so in
# both cases the cluster runs as the postgres user (`--runas`, through sudo) in a data
# directory it owns, and cargo-pgrx copies the extension files into place with sudo.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
dir="$(cluster_base)/pgrx-test-${PG_MAJOR}"
as_postgres mkdir -p "$dir"
cargo pgrx test "pg${PG_MAJOR}" --runas postgres --pgdata "$dir" "$@"

#!/usr/bin/env bash
# SQL regression suite: runs tests/sql/NAME.sql with psql against a throwaway cluster
# (started as the postgres user on its own port and socket directory, stopped after) and
# diffs the output with tests/expected/NAME.out. Error output is part of the golden files.
#   scripts/regress.sh            run every test
#   scripts/regress.sh NAME ...   run some
#   REGRESS_ACCEPT=1 scripts/regress.sh NAME   rewrite the expected output (review the diff!)
# Assumes the extension is installed (scripts/test.sh does that first).
source "$(dirname "$0")/common.sh"

PORT="${REGRESS_PORT:-54391}"
OUT="$ROOT/target/regress"
mkdir -p "$OUT"
# A test file may start with "-- requires: MODULE ..." (contrib modules not in every
# PostgreSQL build); where one is missing it is skipped, and the summary says so.
if has_module pg_cron; then CLUSTER_PRELOAD=pg_cron cluster_start regress "$PORT"
else cluster_start regress "$PORT"; fi
trap 'cluster_stop regress' EXIT

if [ "$#" -gt 0 ]; then tests=("$@"); else
  tests=(); for f in "$ROOT"/tests/sql/*.sql; do tests+=("$(basename "$f" .sql)"); done
fi

pass=0; fail=0; skipped=0; failed=()
for t in "${tests[@]}"; do
  sqlf="$ROOT/tests/sql/$t.sql"; exp="$ROOT/tests/expected/$t.out"; got="$OUT/$t.out"
  [ -f "$sqlf" ] || die "no such test: $sqlf"
  missing=""
  for m in $(sed -n '1s/^-- requires: //p' "$sqlf"); do has_module "$m" || missing+=" $m"; done
  if [ -n "$missing" ]; then
    skipped=$((skipped + 1)); echo "skipped $t (PostgreSQL $PG_MAJOR here lacks:$missing)"; continue
  fi
  psql -d postgres -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS regress_$t" -c "CREATE DATABASE regress_$t" >/dev/null
  # -a echoes the input; VERBOSITY verbose prints each error's SQLSTATE beside its
  # message, DETAIL and HINT. LOCATION lines (source file and line) are dropped.
  (cd "$ROOT/tests" && psql -d "regress_$t" -X -a -q -v ON_ERROR_STOP=0 \
      -v VERBOSITY=verbose -v SHOW_CONTEXT=never -f "$sqlf" >"$got" 2>&1) || true
  sed -i -E -e '/^LOCATION:  /d' -e 's/^psql:[^ ]*: //' "$got"
  # tests/expected/NAME.out, or an alternative NAME_pgN.out where PostgreSQL N words an
  # output differently (as pg_regress allows alternative expected files).
  alt="$ROOT/tests/expected/${t}_pg${PG_MAJOR}.out"
  [ -f "$alt" ] && exp="$alt"
  if [ -n "${REGRESS_ACCEPT:-}" ]; then cp "$got" "$exp"; fi
  if [ -f "$exp" ] && diff -u "$exp" "$got" >"$OUT/$t.diff"; then
    pass=$((pass + 1)); rm -f "$OUT/$t.diff"; echo "ok      $t"
  else
    fail=$((fail + 1)); failed+=("$t"); echo "FAILED  $t (diff: target/regress/$t.diff)"
    [ -f "$exp" ] || echo "        (no expected file tests/expected/$t.out)"
    head -40 "$OUT/$t.diff" 2>/dev/null || true
  fi
done
echo "regression: ${pass} passed, ${fail} failed, ${skipped} skipped"
[ "$fail" -eq 0 ]

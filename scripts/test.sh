#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: setup, lint, engine unit tests,
# then for each PostgreSQL version in PG_VERSIONS (default 15 16 18): pgrx tests
# (#[pg_test], inside a real PostgreSQL), the SQL regression suite, the crash-recovery
# test, the concurrency test, the pg_cron test and the upgrade + dump/restore test. PG_VERSIONS=15 ./scripts/test.sh runs one.
# Prints a summary and exits non-zero on any failure.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh"

results=()
LOGS="$ROOT/target/test-logs"
mkdir -p "$LOGS"
tests_passed=0; tests_failed=0; tests_skipped=0
step() { # step NAME CMD...: run, record pass/fail and the tests it counted, keep going
  local name="$1"; shift
  local logf="$LOGS/${name// /_}.log" rc=0 p f
  log "$name"
  "$@" 2>&1 | tee "$logf" || rc=$?
  # Count tests the step ran: cargo's "test result: ok. N passed; M failed" lines and
  # the regression runner's "regression: N passed, M failed".
  p=$( { sed -E 's/\x1b\[[0-9;]*m//g' "$logf" | grep -oE '(test result: [a-zA-Z]+\. |regression: )[0-9]+ passed' | grep -oE '[0-9]+ passed' || true; } | awk '{s+=$1} END {print s+0}' || true)
  f=$( { sed -E 's/\x1b\[[0-9;]*m//g' "$logf" | grep -oE '(test result: [a-zA-Z]+\. [0-9]+ passed; |regression: [0-9]+ passed, )[0-9]+ failed' | grep -oE '[0-9]+ failed' || true; } | awk '{s+=$1} END {print s+0}' || true)
  k=$( { sed -E 's/\x1b\[[0-9;]*m//g' "$logf" | grep -oE 'regression: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' | grep -oE '[0-9]+ skipped' || true; } | awk '{s+=$1} END {print s+0}' || true)
  tests_skipped=$((tests_skipped + k))
  tests_passed=$((tests_passed + p)); tests_failed=$((tests_failed + f))
  if [ "$rc" -eq 0 ]; then results+=("PASS  $name  ($p tests)"); else results+=("FAIL  $name  (exit $rc; log: target/test-logs/$(basename "$logf"))"); tests_failed=$((tests_failed + (f == 0 ? 1 : 0))); fi
}

engine_is_pure() {
  # The engine is a crate of its own; nothing in its dependency tree may be pgrx.
  local tree
  tree="$(cargo tree -p pg_segment_engine -e normal,build --prefix none)"
  if grep -E '^pgrx' <<<"$tree"; then
    echo "crates/engine must not depend on pgrx (lines above)"; return 1
  fi
  echo "crates/engine depends on: $(grep -c . <<<"$tree") crates, none of them pgrx"
}

step "rustfmt" cargo fmt --all --check
step "engine has no pgrx" engine_is_pure
step "clippy" cargo clippy --workspace --all-targets --features "pg_segment/pg_test" -- -D warnings
# The engine's plain #[test]s, no PostgreSQL involved; then the linfa cross-check, which
# lives in the bench crate beside it.
step "engine unit tests" cargo test -p pg_segment_engine
step "engine cross-check (linfa)" cargo test -p pg_segment_engine_bench --release
# Everything that needs PostgreSQL, once per tested version (PG_VERSIONS, see common.sh).
for v in $PG_VERSIONS; do
  export PG_MAJOR="$v"
  step "pgrx tests (PostgreSQL $v)" scripts/pgrx_test.sh
  step "install extension (PostgreSQL $v)" bash -c 'source scripts/common.sh && install_extension'
  step "SQL regression (PostgreSQL $v)" scripts/regress.sh
  step "concurrent refreshes, assignment and promotion (PostgreSQL $v)" scripts/concurrency_test.sh
  step "segment_refresh scheduled with pg_cron (PostgreSQL $v)" scripts/cron_test.sh
  step "crash recovery of assignment tables (PostgreSQL $v)" scripts/crash_test.sh
  step "upgrade, dump and restore (PostgreSQL $v)" scripts/upgrade_test.sh
  step "pg_segment on Citus (PostgreSQL $v)" scripts/citus_test.sh
done

echo
echo "================ pg_segment test summary ================"
printf '%s\n' "${results[@]}"
nfail=$(printf '%s\n' "${results[@]}" | grep -c '^FAIL' || true)
# A failed step that counted no failing test (fmt, clippy, a build) counts as one failure.
echo "summary: ${tests_passed} passed, ${tests_failed} failed, ${tests_skipped} skipped"
[ "$nfail" -eq 0 ] && [ "$tests_failed" -eq 0 ]

#!/usr/bin/env bash
# Crash-recovery test of the assignment tables segment_train (and segment_refresh) write a page at a time
# (pg_segment.direct_writes): train, kill the server (pg_ctl stop -m immediate: shared
# buffers are lost, only WAL and what reached the files survive), restart, and check that
# every row is back, that amcheck finds nothing wrong with the heap or its primary key,
# and that the rows agree with segment_assign. Run under wal_level = replica (pages come
# back from their WAL full-page images) and wal_level = minimal (the table is synced at
# commit instead). The background writer is off and checkpoints are far apart, so the
# pages cannot reach disk any other way before the kill; commits wait for their WAL.
# Assumes the extension is installed (scripts/test.sh does that first).
source "$(dirname "$0")/common.sh"

if ! has_module amcheck; then
  echo "skipped: PostgreSQL $PG_MAJOR here has no amcheck, and the page writer is not used on it"
  echo "regression: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
PORT="${CRASH_PORT:-54394}"
cluster_start crash "$PORT"
trap 'cluster_stop crash' EXIT

pass=0; fail=0
check() { # check NAME EXPECTED SQL
  local got
  got="$(psql -d crash -X -A -t -q -c "$3" 2>&1 || true)"
  if [ "$got" = "$2" ]; then pass=$((pass + 1)); echo "ok      $1"
  else fail=$((fail + 1)); echo "FAILED  $1: expected [$2], got [$got]"; fi
}

run_case() { # run_case WAL_LEVEL ROWS SHARED_BUFFERS [refresh]
  # With "refresh", the model is then refreshed: its assignment table is emptied
  # (TRUNCATE: new storage in the same transaction) and written again a page at a time.
  local level="$1" rows="$2" sb="$3" refresh="${4:-}"
  local then=""
  [ -n "$refresh" ] && then="UPDATE src SET x = x + 20 WHERE id % 5 = 0; SELECT version FROM segment_refresh('m', k => 5);"
  cat <<CONF | as_postgres tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
shared_buffers = '$sb'
wal_level = $level
synchronous_commit = on
max_wal_senders = 0
bgwriter_lru_maxpages = 0
checkpoint_timeout = '1h'
max_wal_size = '4GB'
CONF
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w restart >/dev/null
  psql -d postgres -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS crash" -c "CREATE DATABASE crash"
  psql -d crash -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE EXTENSION pg_segment;
CREATE EXTENSION amcheck;
CHECKPOINT;
CREATE TABLE src AS
SELECT i::int8 AS id, (i % 13)::float8 AS x, (i % 7)::float8 AS y,
       (ARRAY['a', 'b', 'c'])[1 + i % 3] AS tier
FROM generate_series(1, $rows) i;
SELECT k FROM segment_train('m', 'src', 'id', k => 4, seed => 1);
$then
SQL
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 120 start >/dev/null \
    || { tail -20 "$PGDATA_DIR/server.log" >&2; die "cluster did not restart"; }
  check "wal_level=$level, $rows rows, shared_buffers=$sb $refresh: rows after the crash" "$rows" \
    "SELECT count(*) FROM segment.m_assignments"
  check "wal_level=$level, $rows rows, shared_buffers=$sb: verify_heapam" "0" \
    "SELECT count(*) FROM verify_heapam('segment.m_assignments')"
  check "wal_level=$level, $rows rows, shared_buffers=$sb: bt_index_check with heapallindexed" "" \
    "SELECT bt_index_check('segment.m_assignments_pkey', true)"
  check "wal_level=$level, $rows rows, shared_buffers=$sb: rows agree with segment_assign" "0" \
    "SELECT count(*) FROM src s JOIN segment.m_assignments a USING (id)
     WHERE a.segment <> segment_assign('m', s)"
  check "wal_level=$level, $rows rows, shared_buffers=$sb: segment sizes match the catalog" "t" \
    "SELECT bool_and(s.size = c.n) FROM segment.summary s
     JOIN (SELECT segment, count(*) AS n FROM segment.m_assignments GROUP BY 1) c USING (segment)
     WHERE s.model = 'm'"
}

# 200k rows: ~1270 pages (10 MB). Within a quarter of 128 MB of shared buffers they stay
# there (dirty) until the kill; with 16 MB, they go through a ring of buffers (as COPY's
# do), so most reach the file before it and the last ones do not.
run_case replica 200000 128MB
run_case replica 200000 16MB
# More than wal_level = minimal's 2 MB WAL-skip threshold: synced at commit.
run_case minimal 200000 128MB
# Under it: WAL-logged at commit instead.
run_case minimal 5000 128MB
# A refresh rewriting the table, both ways.
run_case replica 200000 16MB refresh
run_case minimal 200000 128MB refresh
echo "regression: ${pass} passed, ${fail} failed, 0 skipped"
[ "$fail" -eq 0 ]

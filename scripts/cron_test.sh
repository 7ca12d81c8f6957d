#!/usr/bin/env bash
# segment_refresh scheduled with pg_cron, on a cluster of its own with
# shared_preload_libraries = 'pg_cron' (jobs run in background workers): an ordinary role
# schedules refreshes of its own models; the job runs and version 2 appears; a job whose
# source was dropped fails with pg_segment's message in cron.job_run_details and leaves
# the model untouched. Skipped (and says so) where pg_cron is not installed (Debian's
# postgresql-15-cron is installed by setup.sh for PostgreSQL 15). Takes a minute or two:
# pg_cron runs jobs at the start of each minute.
# Assumes the extension is installed (scripts/test.sh does that first).
source "$(dirname "$0")/common.sh"

if ! has_module pg_cron; then
  echo "skipped: pg_cron is not installed for PostgreSQL $PG_MAJOR here"
  echo "regression: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
PORT="${CRON_PORT:-54397}"
CLUSTER_PRELOAD=pg_cron cluster_start cron "$PORT"
trap 'cluster_stop cron' EXIT
echo "cron.use_background_workers = on" | as_postgres tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w restart >/dev/null

pass=0; fail=0
check() { # check NAME EXPECTED SQL
  local got
  got="$(psql -d postgres -X -A -t -q -c "$3" 2>&1 || true)"
  if [ "$got" = "$2" ]; then pass=$((pass + 1)); echo "ok      $1"
  else fail=$((fail + 1)); echo "FAILED  $1: expected [$2], got [$got]"; fi
}

psql -d postgres -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
CREATE EXTENSION pg_segment;
CREATE ROLE analyst LOGIN;
GRANT USAGE ON SCHEMA cron TO analyst;
CREATE SCHEMA crm AUTHORIZATION analyst;
SET ROLE analyst;
CREATE TABLE crm.customers AS
SELECT i AS id, (i % 3) * 10 + (i % 7) / 7.0 AS spend, (i % 3) * 4 + (i % 5) / 5.0 AS visits
FROM generate_series(1, 3000) i;
CREATE TABLE crm.doomed_src AS SELECT * FROM crm.customers;
SELECT k FROM segment_train('nightly', 'crm.customers', 'id', k => 3, seed => 1);
SELECT k FROM segment_train('doomed', 'crm.doomed_src', 'id', k => 3, seed => 1);
-- the documented recipe: a nightly refresh, here every minute
SELECT cron.schedule('refresh nightly', '* * * * *',
                     $$SELECT version FROM segment_refresh('nightly')$$);
SELECT cron.schedule('refresh doomed', '* * * * *',
                     $$SELECT version FROM segment_refresh('doomed')$$);
DROP TABLE crm.doomed_src;
SQL

# Wait for both jobs' first runs to finish (pg_cron starts them at the next minute).
for _ in $(seq 1 150); do
  done_runs="$(psql -d postgres -X -A -t -q -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details
                WHERE status IN ('succeeded', 'failed')")"
  [ "$done_runs" = "2" ] && break
  sleep 1
done
check "the jobs ran as the role that scheduled them" "analyst|analyst" \
  "SELECT string_agg(DISTINCT j.username, ','), string_agg(DISTINCT d.username, ',')
   FROM cron.job_run_details d JOIN cron.job j USING (jobid)"
check "the refresh job succeeded and version 2 is current" "succeeded|2|2" \
  "SELECT d.status, m.current_version, (SELECT count(*) FROM segment.versions v WHERE v.model = 'nightly')
   FROM cron.job_run_details d JOIN cron.job j USING (jobid), segment.models m
   WHERE j.jobname = 'refresh nightly' AND m.name = 'nightly' ORDER BY d.runid LIMIT 1"
check "the failing job left pg_segment's message in cron.job_run_details" \
  "failed|segment_refresh(\"doomed\"): its source crm.doomed_src no longer exists
HINT: Pass another source with the same columns: SELECT * FROM segment_refresh('doomed', source => 'schema.table');" \
  "SELECT d.status, regexp_replace(d.return_message, '^ERROR: +', '')
   FROM cron.job_run_details d JOIN cron.job j USING (jobid)
   WHERE j.jobname = 'refresh doomed' ORDER BY d.runid LIMIT 1"
check "... and the model it failed on is untouched" "1|1|3000" \
  "SELECT m.current_version, (SELECT count(*) FROM segment.versions v WHERE v.model = 'doomed'),
          (SELECT count(*) FROM segment.doomed_assignments) FROM segment.models m WHERE m.name = 'doomed'"

psql -d postgres -X -q -c "SET ROLE analyst" -c "SELECT cron.unschedule(jobid) FROM cron.job" >/dev/null
echo "regression: ${pass} passed, ${fail} failed, 0 skipped"
[ "$fail" -eq 0 ]

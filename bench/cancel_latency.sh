#!/usr/bin/env bash
# How fast pg_cancel_backend stops segment_train, segment_refresh and segment_drift at 1M
# rows, phase by phase: each call is started, canceled after a delay, and the time from the
# cancel to the end of the call is printed with the phase segment.progress showed then.
# Afterwards nothing of the canceled call may be left (no model, no table, no version).
# Assumes the extension is installed (make install).
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
CLUSTER_MWM=2GB cluster_start cancel 54399
trap 'cluster_stop cancel' EXIT
psql -d postgres -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS cancel" -c "CREATE DATABASE cancel"
psql -d cancel -X -q <<'SQL' >/dev/null
CREATE EXTENSION pg_segment;
\i bench/latent_1m.sql
SELECT k FROM segment_train('base', 'c', 'id', k => 8, seed => 0);
UPDATE c SET a = a + 1.5 WHERE id % 20 = 0;
SQL
worst=0
drift_done=0
for call in "segment_train('victim', 'c', 'id', k => 8, seed => 1)" "segment_refresh('base', k => 9)" \
            "segment_train('victim', 'c', 'id', k => NULL, k_max => 4, seed => 1)" "segment_drift('base')"; do
  delays="0.1 0.3 0.5 0.7 0.9 1.0 1.1 1.2 1.3 1.4 1.5 1.6 1.8 2.0 2.2 2.4 2.6 2.8 3.0 3.3 3.6"
  # segment_drift reads the assignment table, then the source: it takes about 0.5 s.
  case "$call" in segment_drift*) delays="0.05 0.1 0.15 0.2 0.25 0.3 0.35 0.4" ;; esac
  for delay in $delays; do
    psql -d cancel -X -A -t -q -c "SELECT 1 FROM $call" >/dev/null 2>&1 &
    job=$!
    sleep "$delay"
    phase="$(psql -d cancel -X -A -t -q -c "SELECT phase || coalesce(' it ' || iteration || ' k ' || k, '') FROM segment.progress LIMIT 1")"
    pid="$(psql -d cancel -X -A -t -q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT 1 FROM segment_%' AND pid <> pg_backend_pid() LIMIT 1")"
    if [ -z "$pid" ]; then
      echo "${call%%(*} at ${delay}s: already finished"; wait $job || true
      case "$call" in segment_drift*) drift_done=$((drift_done + 1)) ;; esac
      psql -d cancel -X -q -c "SELECT segment_drop('victim', if_exists => true)" >/dev/null
      continue
    fi
    t0=$(date +%s.%N)
    psql -d cancel -X -A -t -q -c "SELECT pg_cancel_backend($pid)" >/dev/null
    wait $job || true
    t1=$(date +%s.%N)
    ms=$(awk "BEGIN { printf \"%d\", ($t1 - $t0) * 1000 }")
    [ "$ms" -gt "$worst" ] && worst=$ms
    echo "${call%%(*} canceled at ${delay}s in phase [${phase:-none}]: stopped in ${ms} ms"
  done
done
left="$(psql -d cancel -X -A -t -q -c "SELECT (SELECT count(*) FROM segment.models WHERE name = 'victim'),
  (SELECT count(*) FROM pg_tables WHERE tablename = 'victim_assignments'),
  (SELECT current_version = (SELECT max(version) FROM segment.versions WHERE model = 'base') FROM segment.models WHERE name = 'base'),
  (SELECT bool_and(version = (SELECT current_version FROM segment.models WHERE name = 'base')) AND count(*) = 1000000 FROM segment.base_assignments),
  (SELECT count(DISTINCT run) FROM segment.drift_history WHERE model = 'base')")"
echo "left behind (victim models, victim tables; base: current is its newest version, assignment table whole at it; drift runs recorded): $left (expected 0|0|t|t|$drift_done)"
echo "worst: ${worst} ms"

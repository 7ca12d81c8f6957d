#!/usr/bin/env bash
# Phase timings (DEBUG1) of segment_train and of two segment_refresh runs (each rolled
# back, so both start from the trained version) on 1M rows: 4 numeric columns and one
# text column in 8 latent groups, 5% of the rows changed before the refreshes.
# Assumes the extension is installed (make install). Prints the DEBUG1 lines.
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
CLUSTER_MWM=2GB cluster_start phases 54398
trap 'cluster_stop phases' EXIT
psql -d postgres -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS phases" -c "CREATE DATABASE phases"
psql -d phases -X -q 2>&1 <<'SQL' | grep -E "DEBUG:  segment_|^ +[0-9]"
CREATE EXTENSION pg_segment;
\i bench/latent_1m.sql
SET client_min_messages = debug1;
SELECT iterations, seconds FROM segment_train('m', 'c', 'id', k => 8, n_init => 1, seed => 0);
UPDATE c SET a = a + 1.5 WHERE id % 20 = 0;
BEGIN;
SELECT iterations, seconds FROM segment_refresh('m');
ROLLBACK;
BEGIN;
SELECT iterations, seconds FROM segment_refresh('m');
ROLLBACK;
SQL

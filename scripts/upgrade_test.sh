#!/usr/bin/env bash
# Upgrade and dump/restore test.
#
# 1. Builds the 0.1.0 library from its release commit (git history of this checkout),
#    installs it, creates the extension at 0.1.0 from the frozen install script
#    (sql/pg_segment--0.1.0.sql) and trains models with it, as a user of 0.1.0 did.
# 2. Installs this checkout's library (restart), checks that writing the catalog is
#    refused until the update, runs ALTER EXTENSION pg_segment UPDATE, and checks that
#    the old models assign exactly as before, kept their labels, and are now private
#    to their owner; and that the updated extension's objects are defined exactly as a
#    fresh install's are.
# 3. pg_dump / pg_restore of that database: every model, version, label, grant and
#    assignment table comes back, the source is the restored table (by name, not by a
#    stale OID), and segment_assign answers identically.
# On a PostgreSQL version 0.1.0 was never built for (18), step 1 creates the extension at
# this checkout's version instead, steps 2's upgrade checks are skipped (and counted as
# skipped), and step 3 runs as on the others.
# Assumes this checkout's extension is installed (scripts/test.sh does that first) and
# leaves it installed.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# The commit that released 0.1.0 (the last commit before the 0.2.0 catalog changes).
V010_COMMIT=282114111224dc0a291ba0ac21b9978199ebdfca
PORT="${UPGRADE_PORT:-54395}"
LIBDIR="$("$PG_CONFIG" --pkglibdir)"
STASH="$ROOT/target/upgrade-test"
mkdir -p "$STASH"

CURRENT_LIB="$STASH/pg_segment-current-pg$PG_MAJOR.so"
OLD_LIB="$STASH/pg_segment-0.1.0-pg$PG_MAJOR.so"
cp "$LIBDIR/pg_segment.so" "$CURRENT_LIB"
case "$PG_MAJOR" in 15 | 16) FROM_010=1 ;; *) FROM_010="" ;; esac
if [ -n "$FROM_010" ]; then
  git cat-file -e "${V010_COMMIT}^{commit}" 2>/dev/null \
    || die "commit $V010_COMMIT (release 0.1.0) is not in this checkout's history: the upgrade test needs a full clone"
  log "building the 0.1.0 library for PostgreSQL $PG_MAJOR from $V010_COMMIT"
  rm -rf "$STASH/src" && mkdir -p "$STASH/src"
  git archive "$V010_COMMIT" | tar -x -C "$STASH/src"
  # It sits inside this checkout's workspace directory: make it a workspace of its own.
  printf '\n[workspace]\n' >>"$STASH/src/Cargo.toml"
  # In a target directory of its own for each PostgreSQL version: sharing this
  # checkout's would let the two versions' libraries overwrite each other at
  # target/release/libpg_segment.so, which cargo does not copy again for a build it finds
  # up to date (so a later build could pick up the wrong one).
  (cd "$STASH/src" && CARGO_TARGET_DIR="$STASH/target-pg$PG_MAJOR" cargo build --release --lib \
     --no-default-features --features "pg$PG_MAJOR" --quiet)
  cp "$STASH/target-pg$PG_MAJOR/release/libpg_segment.so" "$OLD_LIB"
else
  log "0.1.0 was never built for PostgreSQL $PG_MAJOR: no upgrade path to test here, only dump and restore"
fi

use_library() { # use_library FILE: install it as pg_segment.so and restart the cluster
  as_root cp "$1" "$LIBDIR/pg_segment.so"
  as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w -m fast restart >/dev/null
}
cluster_start upgrade "$PORT"
trap 'as_root cp "$CURRENT_LIB" "$LIBDIR/pg_segment.so"; cluster_stop upgrade' EXIT

pass=0; fail=0; skipped=0
check() { # check NAME EXPECTED SQL [DATABASE]
  local got
  got="$(psql -d "${4:-up}" -X -A -t -q -c "$3" 2>&1 || true)"
  if [ "$got" = "$2" ]; then pass=$((pass + 1)); echo "ok      $1"
  else fail=$((fail + 1)); echo "FAILED  $1: expected [$2], got [$got]"; fi
}
sql() { psql -d "$1" -X -q -v ON_ERROR_STOP=1 "${@:2}"; }

# --- 1. a 0.1.0 installation with models -------------------------------------------------
if [ -n "$FROM_010" ]; then use_library "$OLD_LIB"; START_VERSION="VERSION '0.1.0'"
else START_VERSION=""; fi
psql -d postgres -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS up" \
  -c "DROP DATABASE IF EXISTS up_restored" -c "DROP DATABASE IF EXISTS up_fresh" -c "CREATE DATABASE up"
sql up <<SQL >/dev/null
CREATE EXTENSION pg_segment $START_VERSION;
CREATE ROLE legacy_owner;
CREATE ROLE legacy_outsider;
CREATE SCHEMA crm;
GRANT USAGE ON SCHEMA crm TO legacy_owner, legacy_outsider;
CREATE TABLE crm.customers (id int PRIMARY KEY, age float8, spend float8, region text);
INSERT INTO crm.customers
SELECT i, 20 + i % 50, (i % 7) * 100 + i % 13, (ARRAY['north', 'south', 'east', 'west'])[1 + i % 4]
FROM generate_series(1, 2000) i;
GRANT SELECT ON crm.customers TO legacy_owner, legacy_outsider;
SELECT k FROM segment_train('legacy', 'crm.customers', 'id',
    '{"age": "standard", "spend": "log_standard", "region": "one_hot"}', k => 4, seed => 3);
SELECT segment_label('legacy', 2, 'big spenders');
SET ROLE legacy_owner;
SELECT k FROM segment_train('owned', 'crm.customers', 'id', '{"age": "standard"}', k => 3, seed => 1);
RESET ROLE;
CREATE TABLE before AS
SELECT c.id, segment_assign('legacy', c) AS legacy, segment_assign('owned', c) AS owned
FROM crm.customers c;
SQL
check "models trained" "2" "SELECT count(*) FROM segment.models"

# --- 2. the new library, then ALTER EXTENSION UPDATE ------------------------------------
if [ -n "$FROM_010" ]; then
check "0.1.0: installed from the frozen script" "0.1.0" \
  "SELECT extversion FROM pg_extension WHERE extname = 'pg_segment'"
use_library "$CURRENT_LIB"
check "new library, old SQL: training is refused until the update" \
  "ERROR:  pg_segment's library is version 0.2.0, but its SQL objects in this database are version 0.1.0
HINT:  Run ALTER EXTENSION pg_segment UPDATE;" \
  "SELECT segment_train('x', 'crm.customers', 'id', '{\"age\": \"standard\"}', k => 2)"
sql up -c "ALTER EXTENSION pg_segment UPDATE" >/dev/null
check "updated to 0.2.0" "0.2.0" "SELECT extversion FROM pg_extension WHERE extname = 'pg_segment'"
check "old models assign exactly as before (planner rewrite)" "0" \
  "SELECT count(*) FROM crm.customers c JOIN before b USING (id)
   WHERE segment_assign('legacy', c) IS DISTINCT FROM b.legacy OR segment_assign('owned', c) IS DISTINCT FROM b.owned"
check "old models assign exactly as before (jsonb)" "0" \
  "SELECT count(*) FROM crm.customers c JOIN before b USING (id)
   WHERE segment_assign('legacy', to_jsonb(c)) IS DISTINCT FROM b.legacy"
check "stored assignments agree" "0" \
  "SELECT count(*) FROM segment.legacy_assignments a JOIN before b USING (id) WHERE a.segment <> b.legacy"
check "labels kept" "big spenders" "SELECT label FROM segment.summary WHERE model = 'legacy' AND segment = 2"
check "a 0.1.0 version has no reference distributions: drift says to refresh first" \
  "ERROR:  segment_drift(\"legacy\"): version 1 has no reference distributions (it was trained before pg_segment 0.2.0)
HINT:  Refresh the model once, then measure drift: SELECT * FROM segment_refresh('legacy');" \
  "SELECT count(*) FROM segment_drift('legacy')"
check "a 0.1.0 model refreshes after the update: same customers, same ids, label kept" "2|4|0|1|big spenders" \
  "SELECT r.version, r.segments_kept, r.customers_moved, r.ari,
          (SELECT label FROM segment.summary WHERE model = 'legacy' AND segment = 2)
   FROM segment_refresh('legacy') r"
check "... its assignment table holds the new version" "2|0" \
  "SELECT max(a.version), count(*) FILTER (WHERE a.segment <> b.legacy)
   FROM segment.legacy_assignments a JOIN before b USING (id)"
check "old models are private: an outsider sees no catalog row" "0|0|0" \
  "SET ROLE legacy_outsider; SELECT (SELECT count(*) FROM segment.models), (SELECT count(*) FROM segment.versions),
   (SELECT count(*) FROM segment.summary)"
check "old models are private: an outsider cannot read an assignment table" \
  "ERROR:  permission denied for table owned_assignments" \
  "SET ROLE legacy_outsider; SELECT count(*) FROM segment.owned_assignments"
check "old models are private: the owner still reads its own" "2000" \
  "SET ROLE legacy_owner; SELECT count(*) FROM segment.owned_assignments"
check "assignment tables now belong to the extension's owner" "postgres|postgres" \
  "SELECT string_agg(tableowner, '|' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'segment' AND tablename LIKE '%_assignments'"
check "the updated model can be shared and dropped" "t|t" \
  "SET ROLE legacy_owner; SELECT segment_grant('owned', 'legacy_outsider'), segment_drop('owned')"
check "training works after the update" "3" \
  "SET ROLE legacy_owner; SELECT k FROM segment_train('owned', 'crm.customers', 'id', '{\"age\": \"standard\"}', k => 3, seed => 1)"
# The retrained model groups the customers at least as well as 0.1.0's did: a within-
# segment sum of squares (of the one feature, age) no larger. Not necessarily the same
# grouping: ages 20-69, forty times each, put some ages exactly halfway between two
# centroids, and which side such a tie falls on depends on the last bits of the sums,
# which 0.2.0's k-means (sums kept from the rows that move) adds in another order. On
# this data 0.1.0 stopped at 20-34 / 35-51 / 52-69 (sum of squares 46900, age 35 on the
# tie) and 0.2.0 goes on to 20-35 / 36-52 / 53-69 (46240).
check "... and groups the customers at least as well as the 0.1.0 training did (same data, same seed)" "t|3|3" \
  "WITH g AS (SELECT segment_assign('owned', c) AS s_new, b.owned AS s_old, c.age::numeric AS age
              FROM crm.customers c JOIN before b USING (id))
   SELECT round((SELECT sum(v) FROM (SELECT var_pop(age) * count(*) AS v FROM g GROUP BY s_new) a), 6)
          <= round((SELECT sum(v) FROM (SELECT var_pop(age) * count(*) AS v FROM g GROUP BY s_old) b), 6),
          (SELECT count(DISTINCT s_new) FROM g), (SELECT count(DISTINCT s_old) FROM g)"

# The updated extension's objects are defined exactly as a fresh 0.2.0 install's.
describe() { # every object of the extension, as text, one line each
  psql -d "$1" -X -A -t -q -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid)
       || coalesce(' comment ' || obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
WHERE p.prokind <> 'a'
UNION ALL
SELECT 'aggregate ' || p.oid::regprocedure || ' ' || a.aggtransfn || ' ' || a.aggfinalfn || ' ' || a.aggcombinefn
       || ' ' || a.aggtranstype::regtype || coalesce(' comment ' || obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, '-')
       || ' rls ' || c.relrowsecurity || ' options ' || coalesce(c.reloptions::text, '-')
       || coalesce(' comment ' || obj_description(c.oid, 'pg_class'), '')
       || coalesce(' view ' || pg_get_viewdef(c.oid), '')
FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' not null ' || a.attnotnull || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
       || ' acl ' || coalesce(a.attacl::text, '-')
FROM pg_attribute a JOIN pg_depend d ON d.objid = a.attrelid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = 'segment'::regnamespace AND conrelid::regclass::text NOT LIKE '%_assignments'
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid::regclass::text LIKE 'segment.%'
  AND indrelid::regclass::text NOT LIKE '%_assignments'
UNION ALL
SELECT 'policy ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd || ' ' || roles::text
       || ' using ' || coalesce(qual, '-') || ' check ' || coalesce(with_check, '-') FROM pg_policies
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal
UNION ALL
SELECT 'type ' || t.oid::regtype || ' ' || coalesce(obj_description(t.oid, 'pg_type'), '')
FROM pg_type t JOIN pg_depend d ON d.objid = t.oid AND d.classid = 'pg_type'::regclass AND d.deptype = 'e'
UNION ALL
SELECT 'config dump ' || unnest(extconfig)::regclass FROM pg_extension WHERE extname = 'pg_segment'
ORDER BY 1;
SQL
}
psql -d postgres -X -q -c "CREATE DATABASE up_fresh"
sql up_fresh -c "CREATE EXTENSION pg_segment" >/dev/null
describe up >"$STASH/updated.txt"
describe up_fresh >"$STASH/fresh.txt"
if diff -u "$STASH/fresh.txt" "$STASH/updated.txt" >"$STASH/objects.diff"; then
  pass=$((pass + 1)); echo "ok      updated objects are defined as a fresh install's ($(wc -l <"$STASH/fresh.txt") objects)"
else
  fail=$((fail + 1)); echo "FAILED  updated objects differ from a fresh install's (fresh -> updated):"
  cat "$STASH/objects.diff"
fi
else
  skipped=$((skipped + 1)); echo "skipped upgrade from 0.1.0 (never built for PostgreSQL $PG_MAJOR)"
fi

# --- 3. dump and restore ---------------------------------------------------------------------
sql up <<'SQL' >/dev/null
SELECT segment_grant('legacy', 'legacy_outsider');
-- a refreshed model: several versions, migrations and stability to restore
SELECT version FROM segment_refresh('legacy', k => 5);
SELECT count(*) FROM segment_drift('legacy');
SELECT segment_label('owned', 1, 'young');
-- a user's RFM map and a model's health thresholds
INSERT INTO segment.rfm_maps (map, r, f, segment)
SELECT 'mine', r, f, CASE WHEN r >= 4 THEN 'recent' ELSE 'older' END
FROM generate_series(1, 5) r, generate_series(1, 5) f;
SELECT 1 FROM segment_health_settings('legacy', min_share => 0.02);
CREATE TABLE before_dump AS
SELECT c.id, segment_assign('legacy', c) AS legacy, segment_assign('owned', c) AS owned
FROM crm.customers c;
SQL
as_postgres "$PG_BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres -Fc -f "/tmp/pg_segment-upgrade-$$.dump" up
psql -d postgres -X -q -c "CREATE DATABASE up_restored"
as_postgres "$PG_BIN/pg_restore" -h "$PGHOST" -p "$PGPORT" -U postgres -d up_restored --exit-on-error \
  "/tmp/pg_segment-upgrade-$$.dump"
as_postgres rm -f "/tmp/pg_segment-upgrade-$$.dump"
r=up_restored
counts="SELECT (SELECT count(*) FROM segment.models), (SELECT count(*) FROM segment.versions),
   (SELECT count(*) FROM segment.segments), (SELECT count(*) FROM segment.profile_data),
   (SELECT count(*) FROM segment.grants), (SELECT count(*) FROM segment.migrations),
   (SELECT count(*) FROM segment.stability), (SELECT max(last_segment) FROM segment.models),
   (SELECT count(*) FROM segment.drift_history), (SELECT count(*) FROM segment.versions WHERE reference IS NOT NULL)"
check "restore: every model, version, segment, profile, grant, migration and stability row" \
  "$(psql -d up -X -A -t -q -c "$counts")" "$counts" $r
check "restore: the user's RFM map beside the shipped one (not doubled), health thresholds" "mine:25,standard:25|0.02" \
  "SELECT (SELECT string_agg(map || ':' || n, ',' ORDER BY map) FROM (SELECT map, count(*) AS n FROM segment.rfm_maps GROUP BY map) m),
          (SELECT min_share FROM segment.health_settings WHERE model = 'legacy')" $r
check "restore: the refreshed model's versions" "$(psql -d up -X -A -t -q -c "SELECT string_agg(version::text, ',' ORDER BY version) FROM segment.versions WHERE model = 'legacy'")" \
  "SELECT string_agg(version::text, ',' ORDER BY version) FROM segment.versions WHERE model = 'legacy'" $r
check "restore: the source is the restored table, by name" "crm.customers|t" \
  "SELECT source_oid::text, bool_and(source_oid = 'crm.customers'::regclass) FROM segment.models GROUP BY 1" $r
check "restore: labels" "big spenders|young" \
  "SELECT string_agg(label, '|' ORDER BY model) FROM segment.summary WHERE label IS NOT NULL" $r
check "restore: assignment tables, their rows and owners" "4000|postgres" \
  "SELECT (SELECT count(*) FROM segment.legacy_assignments) + (SELECT count(*) FROM segment.owned_assignments),
          (SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'segment' AND tablename LIKE '%_assignments')" $r
check "restore: segment_assign answers identically" "0" \
  "SELECT count(*) FROM crm.customers c JOIN before_dump b USING (id)
   WHERE segment_assign('legacy', c) IS DISTINCT FROM b.legacy OR segment_assign('owned', c) IS DISTINCT FROM b.owned" $r
check "restore: still private, grants kept" "1|2000" \
  "SET ROLE legacy_outsider; SELECT (SELECT count(*) FROM segment.models), (SELECT count(*) FROM segment.legacy_assignments)" $r
check "restore: the owner can drop its model (and its table goes with it)" "t|t" \
  "SET ROLE legacy_owner; SELECT segment_drop('owned'), to_regclass('segment.owned_assignments') IS NULL" $r

echo "regression: ${pass} passed, ${fail} failed, ${skipped} skipped"
[ "$fail" -eq 0 ]

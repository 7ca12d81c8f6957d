-- pg_segment 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION pg_segment UPDATE TO '0.2.0'" to load this file. \quit

-- What changed, and why (see CHANGELOG.md):
-- * Security. Every internal statement is immune to the caller's search_path
--   (functions run with search_path = pg_catalog, pg_temp and name everything
--   schema-qualified). Models are private to their owner role and the roles it grants
--   (segment.grants, segment_grant, segment_revoke); the result views apply the
--   catalog's row-level security to whoever reads them (security_invoker). Assignment
--   tables belong to the extension's owner and are readable by the model's owner role
--   and its grantees only; the SQL-callable SECURITY DEFINER helpers that created them
--   are gone (segment_train creates the table itself), and a trigger drops a model's
--   table with its row. Role names of any spelling work (owner defaults no longer fold
--   case).
-- * segment.models.source_oid is a regclass, so dump and restore keep the source.
-- * segment_assign(model, row) is rewritten to segment._assign_planned, which carries
--   the model as planned (planning and execution can no longer disagree); plans that
--   hold a model are invalidated when any model changes.
-- * segment_drop is no longer STRICT: a NULL argument is an error (22004), not NULL.
-- * Living models: segment_refresh retrains a model into a new version whose segments
--   keep their ids (and labels) when they are still the same customers; segment_promote
--   makes any kept version current. Segment ids are no longer always 1..k
--   (versions.segment_ids); migrations and stability are recorded per refresh
--   (segment.migration_data, segment.stability_data and their views).
-- * Drift: each version stores reference distributions (segment.versions.reference);
--   segment_drift compares a source with them and records each run
--   (segment.drift_history, view segment.drift).
-- * segment.progress: what long calls are doing, from the per-backend progress slots.

-- Helpers that are gone.
DROP FUNCTION segment._create_assignments(text);
DROP FUNCTION segment._add_assignments_key(text);
DROP FUNCTION segment._hand_over(segment.models);
DROP FUNCTION segment._model_for_write(text);
DROP FUNCTION segment._drop_assignments(text);
DROP FUNCTION segment._assign_cols(text, integer, text[], "any");

-- Catalog columns.
ALTER TABLE segment.models
    ALTER COLUMN owner SET DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    ALTER COLUMN source_oid TYPE regclass USING source_oid::regclass;
ALTER TABLE segment.versions
    ALTER COLUMN trained_by SET DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole;

-- Policies: replaced below by the private-by-default ones.
DROP POLICY read ON segment.models;
DROP POLICY write ON segment.models;
DROP POLICY read ON segment.versions;
DROP POLICY write ON segment.versions;
DROP POLICY read ON segment.segments;
DROP POLICY write ON segment.segments;
DROP POLICY read ON segment.profile_data;
DROP POLICY write ON segment.profile_data;
DROP FUNCTION segment._owns(text);
REVOKE ALL ON segment.models, segment.versions, segment.segments, segment.profile_data FROM PUBLIC;

CREATE TABLE segment.grants (
    model           text NOT NULL REFERENCES segment.models (name) ON DELETE CASCADE,
    grantee         regrole NOT NULL,
    granted_by      regrole NOT NULL
                    DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    granted_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (model, grantee)
);
COMMENT ON TABLE segment.grants IS 'Roles a model''s owner has let read it (segment_grant / segment_revoke)';

-- Row-level security: a model's rows are read by its owner's members and grantees, and
-- written only by its owner's members.
ALTER TABLE segment.grants ENABLE ROW LEVEL SECURITY;

-- Whether `who` was granted `model`. SECURITY DEFINER only so that the policy on
-- segment.models can read segment.grants without the grants' own policy (which reads
-- segment.models) recursing; it reads nothing else and returns one boolean.
CREATE FUNCTION segment._granted(model text, who name) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM segment.grants g
                     WHERE g.model OPERATOR(pg_catalog.=) $1
                       AND pg_catalog.pg_has_role($2, g.grantee, 'MEMBER')) $$;
COMMENT ON FUNCTION segment._granted(text, name) IS 'internal: true when role "who" is a member of a role granted the model';

-- A catalog row of `model` is visible exactly when the model's row is (its policy).
CREATE FUNCTION segment._can_read(model text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1) $$;
COMMENT ON FUNCTION segment._can_read(text) IS 'internal: true when the current role may read the model';

CREATE FUNCTION segment._owns(model text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM segment.models m
                     WHERE m.name OPERATOR(pg_catalog.=) $1
                       AND pg_catalog.pg_has_role(m.owner, 'MEMBER')) $$;
COMMENT ON FUNCTION segment._owns(text) IS 'internal: true when the current role is a member of the model''s owner';

CREATE POLICY read ON segment.models FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'MEMBER') OR segment._granted(name, CURRENT_USER));
CREATE POLICY write ON segment.models FOR ALL
    USING (pg_catalog.pg_has_role(owner, 'MEMBER')) WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY read ON segment.versions FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.versions FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.segments FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.segments FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.profile_data FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.profile_data FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.grants FOR SELECT
    USING (pg_catalog.pg_has_role(grantee, 'MEMBER') OR segment._owns(model));
CREATE POLICY write ON segment.grants FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));

GRANT SELECT, INSERT, DELETE ON segment.models, segment.versions,
    segment.segments, segment.profile_data, segment.grants TO PUBLIC;
-- A model's name, owner and assignment table never change after training (the delete
-- trigger and the assignment table's grants rely on that); labels, the current
-- version and a version's training time (written last) may.
GRANT UPDATE (current_version) ON segment.models TO PUBLIC;
GRANT UPDATE (label) ON segment.segments TO PUBLIC;
GRANT UPDATE (seconds) ON segment.versions TO PUBLIC;

-- A model's assignment table goes with its catalog row, however the row is deleted.
CREATE FUNCTION segment._drop_assignments() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regclass(pg_catalog.format('segment.%I', OLD.assignments)) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP TABLE segment.%I', OLD.assignments);
    END IF;
    RETURN OLD;
END $$;
REVOKE ALL ON FUNCTION segment._drop_assignments() FROM PUBLIC;
COMMENT ON FUNCTION segment._drop_assignments() IS 'internal: drops a deleted model''s assignment table';
CREATE TRIGGER drop_assignments AFTER DELETE ON segment.models
    FOR EACH ROW EXECUTE FUNCTION segment._drop_assignments();

-- The owner of a model that exists, readable or not (like pg_class, names and owners are
-- not secret), so that a private model's error says "permission denied", not "does not
-- exist".
CREATE FUNCTION segment._model_owner(model text) RETURNS regrole
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT m.owner FROM segment.models m WHERE m.name OPERATOR(pg_catalog.=) $1 $$;
COMMENT ON FUNCTION segment._model_owner(text) IS 'internal: the owner of a model, readable or not';

-- Views: the catalog's row-level security applies to whoever reads them.
ALTER VIEW segment.summary SET (security_invoker = true);
ALTER VIEW segment.profiles SET (security_invoker = true);
ALTER VIEW segment.quality SET (security_invoker = true);

SELECT pg_catalog.pg_extension_config_dump('segment.grants', '');

-- Existing assignment tables: owned by the extension's owner (the role running this
-- update must be a superuser, as for CREATE EXTENSION), readable by the model's owner
-- role only.
DO $$
DECLARE m record;
BEGIN
    FOR m IN SELECT name, assignments, owner FROM segment.models LOOP
        IF pg_catalog.to_regclass(pg_catalog.format('segment.%I', m.assignments)) IS NOT NULL THEN
            EXECUTE pg_catalog.format('ALTER TABLE segment.%I OWNER TO %I', m.assignments,
                (SELECT pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n
                  WHERE n.nspname OPERATOR(pg_catalog.=) 'segment'));
            EXECUTE pg_catalog.format('REVOKE ALL ON segment.%I FROM PUBLIC', m.assignments);
            EXECUTE pg_catalog.format('GRANT SELECT ON segment.%I TO %I', m.assignments,
                pg_catalog.pg_get_userbyid(m.owner));
        END IF;
    END LOOP;
END $$;

-- The planner's new target.
CREATE FUNCTION segment._assign_planned(model text, planned text, VARIADIC cols "any")
RETURNS integer LANGUAGE c STABLE PARALLEL SAFE COST 25
AS 'MODULE_PATHNAME', 'segment_assign_planned';
COMMENT ON FUNCTION segment._assign_planned(text, text, "any") IS
    'internal: segment_assign(model, row) as the planner rewrites it: the model as planned, and only the feature columns';

-- segment_grant / segment_revoke.
CREATE FUNCTION segment."_grant"(
	"model" TEXT,
	"role" oid,
	"grant" bool
) RETURNS bool
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', '_grant_wrapper';
CREATE FUNCTION segment_grant(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT segment._grant(model, role::oid, true) $$;
COMMENT ON FUNCTION segment_grant(text, regrole) IS
    'Let a role (and its members) read a model: catalog rows, assignment table, segment_assign. Owner only.';
CREATE FUNCTION segment_revoke(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT segment._grant(model, role::oid, false) $$;
COMMENT ON FUNCTION segment_revoke(text, regrole) IS
    'Take back segment_grant: the role no longer reads the model. Owner only.';
COMMENT ON FUNCTION segment._grant(text, oid, boolean) IS
    'internal: segment_grant (true) and segment_revoke (false)';

-- NULL arguments are errors (22004), not a NULL result.
ALTER FUNCTION segment_drop(text, boolean) CALLED ON NULL INPUT;

-- Living models (segment_refresh / segment_promote).
ALTER TABLE segment.models
    ADD COLUMN last_segment int NOT NULL DEFAULT 0,
    ADD COLUMN keep_versions int NOT NULL DEFAULT 10 CHECK (keep_versions BETWEEN 1 AND 1000);
ALTER TABLE segment.versions
    ADD COLUMN segment_ids int[],
    ADD COLUMN parent_version int,
    ADD COLUMN ari float8,
    ADD COLUMN refresh jsonb;
-- A trained version's segments are 1..k.
UPDATE segment.versions v
   SET segment_ids = ARRAY(SELECT pg_catalog.generate_series(1, v.k));
ALTER TABLE segment.versions ALTER COLUMN segment_ids SET NOT NULL;
UPDATE segment.models m
   SET last_segment = COALESCE((SELECT pg_catalog.max(v.k) FROM segment.versions v
                                 WHERE v.model OPERATOR(pg_catalog.=) m.name), 0);
ALTER TABLE segment.segments
    ADD COLUMN matched_from int,
    ADD COLUMN jaccard float8;

-- What each refresh did to the customers: counts from each segment of the parent
-- version (NULL: new to the source) to each segment of the new one (NULL: gone).
CREATE TABLE segment.migration_data (
    model           text NOT NULL,
    from_version    int NOT NULL,
    to_version      int NOT NULL,
    from_segment    int,
    to_segment      int,
    customers       bigint NOT NULL,
    FOREIGN KEY (model, to_version) REFERENCES segment.versions ON DELETE CASCADE
);
CREATE INDEX ON segment.migration_data (model, to_version);
COMMENT ON TABLE segment.migration_data IS 'Per refresh: customers from each segment of the parent version to each of the new one';

-- Per refresh, each segment's fate: kept (a new segment inherited the id), retired (no
-- one did; jaccard is its best match, to_segment where most of it went), new (a fresh
-- id; from_segment its Hungarian partner, if any).
CREATE TABLE segment.stability_data (
    model           text NOT NULL,
    from_version    int NOT NULL,
    to_version      int NOT NULL,
    status          text NOT NULL CHECK (status IN ('kept', 'retired', 'new')),
    from_segment    int,
    to_segment      int,
    jaccard         float8 NOT NULL,
    FOREIGN KEY (model, to_version) REFERENCES segment.versions ON DELETE CASCADE
);
CREATE INDEX ON segment.stability_data (model, to_version);
COMMENT ON TABLE segment.stability_data IS 'Per refresh: each segment kept, retired or new, with its Jaccard';
ALTER TABLE segment.migration_data ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.stability_data ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON segment.migration_data FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.migration_data FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.stability_data FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.stability_data FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
GRANT SELECT, INSERT, DELETE ON segment.migration_data, segment.stability_data TO PUBLIC;
GRANT UPDATE (last_segment, keep_versions) ON segment.models TO PUBLIC;

CREATE VIEW segment.migrations WITH (security_invoker = true) AS
SELECT d.model, d.from_version, d.to_version, d.from_segment, f.label AS from_label,
       d.to_segment, t.label AS to_label, d.customers,
       d.customers::float8 / NULLIF(sum(d.customers) OVER (
           PARTITION BY d.model, d.from_version, d.to_version, d.from_segment), 0) AS share_of_from
FROM segment.migration_data d
LEFT JOIN segment.segments f
       ON f.model = d.model AND f.version = d.from_version AND f.segment = d.from_segment
LEFT JOIN segment.segments t
       ON t.model = d.model AND t.version = d.to_version AND t.segment = d.to_segment;
COMMENT ON VIEW segment.migrations IS 'Per refresh: customers from each old segment (NULL: new to the source) to each new one (NULL: gone), and their share of the old segment';

CREATE VIEW segment.stability WITH (security_invoker = true) AS
SELECT d.model, d.from_version, d.to_version, v.ari, d.status,
       d.from_segment, f.label AS from_label, d.to_segment, t.label AS to_label, d.jaccard,
       CASE WHEN d.status = 'new' THEN NULL
            WHEN d.jaccard >= 0.85 THEN 'highly stable'
            WHEN d.jaccard >= 0.75 THEN 'stable'
            WHEN d.jaccard >= 0.6 THEN 'pattern only'
            WHEN d.jaccard > 0.5 THEN 'unstable'
            ELSE 'dissolved' END AS band
FROM segment.stability_data d
JOIN segment.versions v ON v.model = d.model AND v.version = d.to_version
LEFT JOIN segment.segments f
       ON f.model = d.model AND f.version = d.from_version AND f.segment = d.from_segment
LEFT JOIN segment.segments t
       ON t.model = d.model AND t.version = d.to_version AND t.segment = d.to_segment;
COMMENT ON VIEW segment.stability IS 'Per refresh: ARI on shared customers, each segment kept / retired / new with its Jaccard and Hennig''s band (of the old segments)';
GRANT SELECT ON segment.migrations, segment.stability TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('segment.migration_data', '');
SELECT pg_catalog.pg_extension_config_dump('segment.stability_data', '');

-- segment_refresh / segment_promote.
CREATE FUNCTION "segment_refresh"(
	"model" TEXT,
	"source" regclass DEFAULT NULL,
	"k" INT DEFAULT NULL,
	"warm_start" bool DEFAULT true,
	"refit_encoder" bool DEFAULT true,
	"promote" TEXT DEFAULT 'always',
	"keep_versions" INT DEFAULT NULL,
	"seed" bigint DEFAULT NULL
) RETURNS TABLE (
	"model" TEXT,
	"version" INT,
	"k" INT,
	"rows_used" bigint,
	"rows_skipped" bigint,
	"skipped" jsonb,
	"sampled" bool,
	"iterations" INT,
	"inertia" double precision,
	"silhouette" double precision,
	"silhouette_sample" INT,
	"davies_bouldin" double precision,
	"calinski_harabasz" double precision,
	"seconds" double precision,
	"from_version" INT,
	"promoted" bool,
	"ari" double precision,
	"segments_kept" INT,
	"segments_new" INT,
	"segments_retired" INT,
	"customers_moved" bigint,
	"customers_new" bigint,
	"customers_gone" bigint,
	"note" TEXT
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'segment_refresh_wrapper';

CREATE FUNCTION "segment_promote"(
	"model" TEXT,
	"version" INT
) RETURNS TABLE (
	"model" TEXT,
	"version" INT,
	"previous_version" INT,
	"rows" bigint
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'segment_promote_wrapper';
COMMENT ON FUNCTION segment_refresh(text, regclass, int, boolean, boolean, text, int, bigint) IS
    'Retrain a model into a new version whose segments keep their ids and labels where they are still the same customers (owner only)';
COMMENT ON FUNCTION segment_promote(text, int) IS
    'Make a kept version of a model current (a candidate, or a rollback) and rewrite its assignment table (owner only)';

-- Drift (segment_drift): reference distributions with each version, every run recorded.
ALTER TABLE segment.versions ADD COLUMN reference jsonb;

-- Every segment_drift run: one row per feature and one for the segment shares
-- (feature '(segments)'), with the run's figures.
CREATE TABLE segment.drift_history (
    model           text NOT NULL REFERENCES segment.models (name) ON DELETE CASCADE,
    run             bigint NOT NULL,        -- 1, 2, ... per model
    version         int NOT NULL,           -- the version whose reference was used
    run_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    run_by          regrole NOT NULL
                    DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    source          text NOT NULL,
    rows            bigint NOT NULL,
    feature         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('numeric', 'categorical', 'segments')),
    psi             float8 NOT NULL,
    js_distance     float8 NOT NULL,
    band            text NOT NULL,
    would_move_share float8,                -- rows the version now puts elsewhere than stored
    new_ids         bigint NOT NULL,
    vanished_ids    bigint NOT NULL,
    PRIMARY KEY (model, run, feature)
);
COMMENT ON TABLE segment.drift_history IS 'Every segment_drift run: PSI, Jensen-Shannon distance and band per feature and for the segment shares';

ALTER TABLE segment.drift_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON segment.drift_history FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.drift_history FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
GRANT SELECT, INSERT, DELETE ON segment.drift_history TO PUBLIC;

CREATE VIEW segment.drift WITH (security_invoker = true) AS
SELECT h.model, h.run, h.version, h.run_at, h.source, h.rows, h.feature, h.kind, h.psi,
       h.js_distance, h.band, h.would_move_share, h.new_ids, h.vanished_ids
FROM segment.drift_history h
WHERE h.run = (SELECT max(l.run) FROM segment.drift_history l WHERE l.model = h.model);
COMMENT ON VIEW segment.drift IS 'The latest segment_drift run of each model, one row per feature and one for the segment shares';
GRANT SELECT ON segment.drift TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('segment.drift_history', '');

-- segment_drift.
CREATE FUNCTION "segment_drift"(
	"model" TEXT,
	"source" regclass DEFAULT NULL
) RETURNS TABLE (
	"model" TEXT,
	"version" INT,
	"run" bigint,
	"feature" TEXT,
	"kind" TEXT,
	"psi" double precision,
	"js_distance" double precision,
	"band" TEXT,
	"rows" bigint,
	"would_move_share" double precision,
	"new_ids" bigint,
	"vanished_ids" bigint
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'segment_drift_wrapper';
COMMENT ON FUNCTION segment_drift(text, regclass) IS
    'How far a source has drifted from the training data of a model''s current version: PSI, Jensen-Shannon distance and band per feature and for the segment shares, recorded in segment.drift_history (owner only)';

-- Progress of long calls.
-- What segment_train, segment_refresh, segment_drift and segment_promote are doing in
-- other sessions, from PostgreSQL's per-backend progress slots (see src/pg/progress.rs:
-- reported under VACUUM with a marker, as Citus does). A role sees its own backends and,
-- with pg_read_all_stats, everyone's: PostgreSQL's rule for progress reporting.
CREATE VIEW segment.progress WITH (security_invoker = true) AS
SELECT p.pid, a.datname, a.usename,
       CASE p.param2 WHEN 1 THEN 'segment_train' WHEN 2 THEN 'segment_refresh'
                     WHEN 3 THEN 'segment_drift' WHEN 4 THEN 'segment_promote' END AS function,
       pg_catalog.substring(a.query, $re$segment_(?:train|refresh|drift|promote)\s*\(\s*(?:model\s*=>\s*)?'([^']+)'$re$) AS model,
       CASE p.param3 WHEN 1 THEN 'read' WHEN 2 THEN 'encode' WHEN 3 THEN 'seeding'
                     WHEN 4 THEN 'iterations' WHEN 5 THEN 'metrics' WHEN 6 THEN 'write'
                     WHEN 7 THEN 'match' END AS phase,
       p.param4 AS rows_done, NULLIF(p.param5, 0) AS rows_total,
       NULLIF(p.param6, 0) AS iteration, NULLIF(p.param7, 0) AS max_iter,
       CASE WHEN p.param6 > 0 AND p.param8 >= 0 THEN p.param8 / 1000.0 END AS inertia,
       NULLIF(p.param9, 0) AS k,
       a.query_start, pg_catalog.now() - a.query_start AS elapsed
FROM pg_catalog.pg_stat_get_progress_info('VACUUM') p
LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = p.pid
WHERE p.param1 = 123589285340519;
COMMENT ON VIEW segment.progress IS 'Running segment_train / segment_refresh / segment_drift / segment_promote calls: phase, rows, iteration, inertia, k';
GRANT SELECT ON segment.progress TO PUBLIC;

-- segment.health (sql/health.sql).
-- segment.health: each segment of each model's current version rated on the marketing
-- criteria (substantial, stable, homogeneous, distinct; measurable holds by
-- construction: every customer's segment is the nearest centroid of its own features),
-- with the figure behind each, a verdict and a plain-language reason.

-- Per-model thresholds; a NULL column (or no row) means the documented default.
CREATE TABLE segment.health_settings (
    model            text PRIMARY KEY REFERENCES segment.models (name) ON DELETE CASCADE,
    min_share        float8 CHECK (min_share BETWEEN 0 AND 1),
    min_size         bigint CHECK (min_size >= 0),
    min_jaccard      float8 CHECK (min_jaccard BETWEEN 0 AND 1),
    max_dispersion   float8 CHECK (max_dispersion > 0),
    min_distinctness float8 CHECK (min_distinctness >= 0)
);
COMMENT ON TABLE segment.health_settings IS 'Per-model thresholds of segment.health (NULL: the default); set with segment_health_settings';
ALTER TABLE segment.health_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON segment.health_settings FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.health_settings FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
GRANT SELECT, INSERT, UPDATE, DELETE ON segment.health_settings TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('segment.health_settings', '');

CREATE VIEW segment.health WITH (security_invoker = true) AS
WITH t AS (
    SELECT m.name AS model, m.current_version AS version,
           coalesce(h.min_share, 0.05) AS min_share, coalesce(h.min_size, 100) AS min_size,
           coalesce(h.min_jaccard, 0.75) AS min_jaccard,
           coalesce(h.max_dispersion, 1.5) AS max_dispersion,
           coalesce(h.min_distinctness, 0.5) AS min_distinctness,
           v.parent_version
    FROM segment.models m
    JOIN segment.versions v ON v.model = m.name AND v.version = m.current_version
    LEFT JOIN segment.health_settings h ON h.model = m.name
), s AS (
    SELECT t.*, g.segment, g.label, g.size, g.share, g.silhouette, g.nearest_segment,
           -- stable: the Jaccard with the segment it was matched with, or (a new
           -- segment) its best overlap with any predecessor; NULL for a first version
           CASE WHEN t.parent_version IS NOT NULL
                THEN coalesce(g.jaccard, (SELECT max(d.jaccard) FROM segment.stability_data d
                                          WHERE d.model = t.model AND d.to_version = t.version
                                            AND d.to_segment = g.segment), 0) END AS jaccard,
           -- homogeneous: mean distance to the centroid over the rows' average of it
           g.mean_distance / NULLIF(sum(g.mean_distance * g.size) OVER w
                                    / NULLIF(sum(g.size) OVER w, 0), 0) AS dispersion,
           -- distinct: distance to the nearest other centroid over both segments' spread
           g.separation / NULLIF(g.mean_distance + n.mean_distance, 0) AS distinctness
    FROM t
    JOIN segment.segments g ON g.model = t.model AND g.version = t.version
    LEFT JOIN segment.segments n
           ON n.model = g.model AND n.version = g.version AND n.segment = g.nearest_segment
    WINDOW w AS (PARTITION BY t.model)
), c AS (
    SELECT s.*,
           (s.share >= s.min_share AND s.size >= s.min_size) AS substantial,
           (s.jaccard >= s.min_jaccard) AS stable,
           (s.dispersion <= s.max_dispersion) AS homogeneous,
           (s.distinctness >= s.min_distinctness) AS differentiable
    FROM s
), r AS (
    SELECT c.*,
           pg_catalog.array_remove(ARRAY[
             CASE WHEN NOT c.substantial THEN pg_catalog.format(
               'not substantial (share %s, %s customers; needs %s and %s)',
               round(c.share::numeric, 3), c.size, trim_scale(round(c.min_share::numeric, 4)), c.min_size) END,
             CASE WHEN c.jaccard < 0.5 THEN pg_catalog.format(
               'dissolved (Jaccard %s with its predecessor < 0.5)', round(c.jaccard::numeric, 3))
                  WHEN NOT c.stable THEN pg_catalog.format(
               'not stable (Jaccard %s with its predecessor < %s)',
               round(c.jaccard::numeric, 3), trim_scale(round(c.min_jaccard::numeric, 4))) END,
             CASE WHEN NOT c.homogeneous THEN pg_catalog.format(
               'not homogeneous (spread %s times the average > %s)',
               round(c.dispersion::numeric, 2), trim_scale(round(c.max_dispersion::numeric, 4))) END,
             CASE WHEN NOT c.differentiable THEN pg_catalog.format(
               'not distinct (segment %s is %s of the two spreads away < %s)',
               c.nearest_segment, round(c.distinctness::numeric, 2), trim_scale(round(c.min_distinctness::numeric, 4))) END
           ], NULL) AS failing
    FROM c
)
SELECT r.model, r.version, r.segment, r.label, r.size, r.share, r.substantial,
       r.jaccard, r.stable, r.dispersion, r.homogeneous, r.silhouette,
       r.nearest_segment, r.distinctness, r.differentiable,
       CASE WHEN NOT r.substantial OR r.jaccard < 0.5
                 OR pg_catalog.cardinality(r.failing) >= 2 THEN 'act'
            WHEN pg_catalog.cardinality(r.failing) = 1 THEN 'watch'
            ELSE 'healthy' END AS verdict,
       CASE WHEN pg_catalog.cardinality(r.failing) = 0 THEN
                 CASE WHEN r.jaccard IS NULL THEN 'meets every criterion (stability not yet measurable: first version)'
                      ELSE 'meets every criterion' END
            ELSE pg_catalog.array_to_string(r.failing, '; ')
       END AS reason,
       r.min_share, r.min_size, r.min_jaccard, r.max_dispersion, r.min_distinctness
FROM r;
COMMENT ON VIEW segment.health IS 'Each segment of each model''s current version rated substantial, stable, homogeneous and distinct, with the figure behind each, a verdict (healthy / watch / act) and the reason';
GRANT SELECT ON segment.health TO PUBLIC;

-- Set (or, with reset, clear) a model's health thresholds; NULL keeps the current value.
CREATE FUNCTION segment_health_settings(
    model text,
    min_share float8 DEFAULT NULL,
    min_size bigint DEFAULT NULL,
    min_jaccard float8 DEFAULT NULL,
    max_dispersion float8 DEFAULT NULL,
    min_distinctness float8 DEFAULT NULL,
    reset boolean DEFAULT false
) RETURNS SETOF segment.health_settings
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'segment_health_settings: argument "model" must not be NULL'
            USING ERRCODE = '22004', HINT = 'Name the model: SELECT * FROM segment_health_settings(''m'', min_share => 0.03);';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM segment.models m WHERE m.name = segment_health_settings.model) THEN
        RAISE EXCEPTION 'segment_health_settings: model "%" does not exist', model
            USING ERRCODE = '42704', HINT = 'SELECT name FROM segment.models lists the models you can see.';
    END IF;
    IF NOT segment._owns(model) THEN
        RAISE EXCEPTION 'segment_health_settings: only the owner of model "%" may set its thresholds', model
            USING ERRCODE = '42501', HINT = 'Ask a member of the model''s owner role.';
    END IF;
    IF reset THEN
        DELETE FROM segment.health_settings h WHERE h.model = segment_health_settings.model;
    END IF;
    INSERT INTO segment.health_settings AS h
        VALUES (model, min_share, min_size, min_jaccard, max_dispersion, min_distinctness)
    ON CONFLICT ON CONSTRAINT health_settings_pkey DO UPDATE SET
        min_share = coalesce(EXCLUDED.min_share, h.min_share),
        min_size = coalesce(EXCLUDED.min_size, h.min_size),
        min_jaccard = coalesce(EXCLUDED.min_jaccard, h.min_jaccard),
        max_dispersion = coalesce(EXCLUDED.max_dispersion, h.max_dispersion),
        min_distinctness = coalesce(EXCLUDED.min_distinctness, h.min_distinctness);
    RETURN QUERY SELECT * FROM segment.health_settings h WHERE h.model = segment_health_settings.model;
EXCEPTION WHEN check_violation THEN
    RAISE EXCEPTION 'segment_health_settings: a threshold is out of range'
        USING ERRCODE = '22023',
              HINT = 'min_share and min_jaccard lie in [0, 1]; min_size and min_distinctness are >= 0; max_dispersion is > 0.';
END
$$;
COMMENT ON FUNCTION segment_health_settings(text, float8, bigint, float8, float8, float8, boolean) IS
    'Set a model''s segment.health thresholds (owner only): substantial = share >= min_share (default 0.05) and size >= min_size (100); stable = Jaccard >= min_jaccard (0.75); homogeneous = spread / average spread <= max_dispersion (1.5); distinct = separation / (both spreads) >= min_distinctness (0.5). NULL keeps a value; reset => true returns to the defaults first';

-- RFM (sql/rfm.sql).
-- RFM (recency, frequency, monetary value): segment_rfm builds a view of one row per
-- customer with the three measures, quintile scores 1..5 and a named segment looked up
-- in a map of (r, f) cells kept in segment.rfm_maps. Pure SQL/PL/pgSQL, no Rust.
--
-- Security (as for the catalog, sql/catalog.sql):
-- * segment.rfm_maps: every role reads every map; a map's rows belong to the role that
--   inserted them (`owner`), and only members of that role may change or delete them,
--   or add rows to that map (row-level security). The shipped map 'standard' belongs to the installing role.
-- * segment_rfm is SECURITY INVOKER: the view it creates is the caller's, made with the
--   caller's rights. It runs with search_path = pg_catalog, pg_temp, and names every
--   object of its own qualified; the view's text is parsed inside it, so the view keeps
--   the pg_catalog functions and operators it resolved then, whatever the search_path
--   of those who query it later. Identifiers are quoted with format('%I'), the
--   transactions relation is its regclass's own (quoted, qualified) text.

CREATE TABLE segment.rfm_maps (
    map     text NOT NULL,
    r       int NOT NULL CHECK (r BETWEEN 1 AND 5),
    f       int NOT NULL CHECK (f BETWEEN 1 AND 5),
    segment text NOT NULL,
    -- quote_ident: current_user::regrole would fold "ProbeUpper" to probeupper
    owner   regrole NOT NULL DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    PRIMARY KEY (map, r, f)
);
COMMENT ON TABLE segment.rfm_maps IS
    'RFM segment maps for segment_rfm: the segment name of each (r, f) score cell of a map; a usable map has all 25 cells. Readable by everyone; rows are changed only by members of their owner role. The map ''standard'' ships with pg_segment';

ALTER TABLE segment.rfm_maps ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON segment.rfm_maps FOR SELECT USING (true);
-- Whether map `map` has rows whose owner `who` is not a member of. SECURITY DEFINER only
-- so that the write policy below can read the table without its own policies recursing;
-- it reads nothing else and returns one boolean.
CREATE FUNCTION segment._rfm_map_taken(map text, who name) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM segment.rfm_maps o
                     WHERE o.map OPERATOR(pg_catalog.=) $1
                       AND NOT pg_catalog.pg_has_role($2, o.owner, 'MEMBER')) $$;
COMMENT ON FUNCTION segment._rfm_map_taken(text, name) IS 'internal: true when the map has rows of a role "who" is not a member of';

-- A row is written only by a member of its owner, and only into a map no other role
-- has rows in: nobody adds cells to, or squats the name of, another role's map.
CREATE POLICY write ON segment.rfm_maps FOR ALL
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER')
                AND NOT segment._rfm_map_taken(map, CURRENT_USER));
GRANT SELECT, INSERT, UPDATE, DELETE ON segment.rfm_maps TO PUBLIC;

-- The shipped map, owned by the installing role. Users' maps are dumped by pg_dump;
-- 'standard' is not: CREATE EXTENSION makes it again on restore.
INSERT INTO segment.rfm_maps (map, r, f, segment)
SELECT 'standard', r.r, f.f, cell.segment
FROM (VALUES (1, 2, 1, 2, 'Hibernating'),
             (1, 2, 3, 4, 'At risk'),
             (1, 2, 5, 5, 'Can''t lose them'),
             (3, 3, 1, 2, 'About to sleep'),
             (3, 3, 3, 3, 'Need attention'),
             (3, 4, 4, 5, 'Loyal customers'),
             (4, 4, 1, 1, 'Promising'),
             (4, 5, 2, 3, 'Potential loyalists'),
             (5, 5, 1, 1, 'New customers'),
             (5, 5, 4, 5, 'Champions')) AS cell (r_from, r_to, f_from, f_to, segment)
CROSS JOIN LATERAL pg_catalog.generate_series(cell.r_from, cell.r_to) AS r (r)
CROSS JOIN LATERAL pg_catalog.generate_series(cell.f_from, cell.f_to) AS f (f);
SELECT pg_catalog.pg_extension_config_dump('segment.rfm_maps', 'WHERE map <> ''standard''');

CREATE FUNCTION segment_rfm(transactions regclass, customer_column name, date_column name,
                            amount_column name, as_of date DEFAULT NULL,
                            map text DEFAULT 'standard', view_name text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $segment_rfm$
DECLARE
    null_arg        text;
    rel_name        name;
    rel_nsp         oid;
    rel_kind        "char";
    rel_temp        boolean;
    rel_text        text := transactions::text;   -- quoted, schema-qualified when needed
    columns         text;
    cust_type       oid;
    date_type       oid;
    amount_type     oid;
    date_base       oid;
    amount_base     oid;
    maps            text;
    missing         text;
    parts           text[];
    view_nsp        oid;
    view_rel        name;
    temp_view       boolean;
    target          text;    -- the view's name as written in CREATE VIEW
    shown           text;    -- ... and in messages
    as_of_sql       text;
    filter_sql      text := '';
    view_oid        oid;
BEGIN
    null_arg := CASE WHEN transactions IS NULL THEN 'transactions'
                     WHEN customer_column IS NULL THEN 'customer_column'
                     WHEN date_column IS NULL THEN 'date_column'
                     WHEN amount_column IS NULL THEN 'amount_column'
                     WHEN segment_rfm.map IS NULL THEN 'map' END;
    IF null_arg IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = pg_catalog.format('segment_rfm: %s must not be NULL', null_arg),
            HINT = 'Only as_of (NULL: the day after the last transaction) and view_name (NULL: <transactions>_rfm) may be NULL; map defaults to ''standard''.';
    END IF;

    SELECT c.relname, c.relnamespace, c.relkind, c.relpersistence = 't'
      INTO rel_name, rel_nsp, rel_kind, rel_temp
    FROM pg_catalog.pg_class c WHERE c.oid = transactions;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = pg_catalog.format('segment_rfm: relation with OID %s does not exist', transactions::oid),
            HINT = 'Pass the table or view of transactions by name, for example ''shop.orders''.';
    END IF;
    IF rel_kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = pg_catalog.format('segment_rfm: %s is not a table, view, materialized view or foreign table', rel_text),
            HINT = 'Pass the relation that holds one row per transaction.';
    END IF;

    -- The three columns: they exist, and have usable types.
    SELECT pg_catalog.max(a.atttypid) FILTER (WHERE a.attname = customer_column),
           pg_catalog.max(a.atttypid) FILTER (WHERE a.attname = date_column),
           pg_catalog.max(a.atttypid) FILTER (WHERE a.attname = amount_column),
           pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
      INTO cust_type, date_type, amount_type, columns
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = transactions AND a.attnum > 0 AND NOT a.attisdropped;
    null_arg := CASE WHEN cust_type IS NULL THEN 'customer_column'
                     WHEN date_type IS NULL THEN 'date_column'
                     WHEN amount_type IS NULL THEN 'amount_column' END;
    IF null_arg IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42703',
            MESSAGE = pg_catalog.format('segment_rfm: column "%s" (%s) does not exist in %s',
                CASE null_arg WHEN 'customer_column' THEN customer_column
                              WHEN 'date_column' THEN date_column ELSE amount_column END,
                null_arg, rel_text),
            HINT = pg_catalog.format('The columns of %s are: %s.', rel_text, COALESCE(columns, '(none)'));
    END IF;
    IF customer_column IN ('recency_days', 'frequency', 'monetary', 'r', 'f', 'm', 'cell', 'segment') THEN
        RAISE EXCEPTION USING ERRCODE = '42701',
            MESSAGE = pg_catalog.format('segment_rfm: customer column "%s" has the name of a column the view adds', customer_column),
            HINT = 'The view adds recency_days, frequency, monetary, r, f, m, cell and segment: rename the customer column in a view over the transactions and pass that view.';
    END IF;
    -- Domains count as their base types.
    date_base := date_type;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid = date_base) = 'd' LOOP
        SELECT t.typbasetype INTO date_base FROM pg_catalog.pg_type t WHERE t.oid = date_base;
    END LOOP;
    amount_base := amount_type;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid = amount_base) = 'd' LOOP
        SELECT t.typbasetype INTO amount_base FROM pg_catalog.pg_type t WHERE t.oid = amount_base;
    END LOOP;
    IF date_base NOT IN ('pg_catalog.date'::regtype, 'pg_catalog.timestamp'::regtype,
                         'pg_catalog.timestamptz'::regtype) THEN
        RAISE EXCEPTION USING ERRCODE = '42804',
            MESSAGE = pg_catalog.format('segment_rfm: date column "%s" is of type %s, not date, timestamp or timestamp with time zone',
                date_column, pg_catalog.format_type(date_type, NULL)),
            HINT = 'Pass a view over the transactions that casts the column to date.';
    END IF;
    IF amount_base NOT IN ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype,
                           'pg_catalog.int8'::regtype, 'pg_catalog.numeric'::regtype,
                           'pg_catalog.float4'::regtype, 'pg_catalog.float8'::regtype) THEN
        RAISE EXCEPTION USING ERRCODE = '42804',
            MESSAGE = pg_catalog.format('segment_rfm: amount column "%s" is of type %s, not a number',
                amount_column, pg_catalog.format_type(amount_type, NULL)),
            HINT = 'The amount must be smallint, integer, bigint, numeric, real or double precision: pass a view over the transactions that casts it to numeric.';
    END IF;
    IF as_of IS NOT NULL AND NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('segment_rfm: as_of must be a finite date, not %s', as_of),
            HINT = 'Pass a day (transactions before it count), or NULL for the day after the last transaction.';
    END IF;

    -- The map: known, and complete over the 25 (r, f) cells.
    IF NOT EXISTS (SELECT 1 FROM segment.rfm_maps m WHERE m.map = segment_rfm.map) THEN
        SELECT pg_catalog.string_agg(pg_catalog.quote_literal(k.map), ', ' ORDER BY k.map) INTO maps
        FROM (SELECT DISTINCT m.map FROM segment.rfm_maps m) k;
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('segment_rfm: map %L does not exist', segment_rfm.map),
            HINT = pg_catalog.format('The maps in segment.rfm_maps are: %s.', COALESCE(maps, '(none)'));
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('(%s,%s)', g_r.r, g_f.f), ', ' ORDER BY g_r.r, g_f.f)
      INTO missing
    FROM pg_catalog.generate_series(1, 5) AS g_r (r)
    CROSS JOIN pg_catalog.generate_series(1, 5) AS g_f (f)
    WHERE NOT EXISTS (SELECT 1 FROM segment.rfm_maps m
                      WHERE m.map = segment_rfm.map AND m.r = g_r.r AND m.f = g_f.f);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('segment_rfm: map %L has no segment for the (r,f) cells %s', segment_rfm.map, missing),
            HINT = 'A map names the segment of each of the 25 cells r = 1..5, f = 1..5: insert the missing rows into segment.rfm_maps.';
    END IF;

    -- The view's name: view_name (name or schema.name), else <relname>_rfm (the
    -- relname shortened so that the suffix fits in an identifier, 63 bytes); an
    -- unqualified name goes to the transactions' schema.
    IF view_name IS NULL THEN
        parts := ARRAY[rel_name::text];
        WHILE pg_catalog.octet_length(parts[1] || '_rfm')
              > pg_catalog.octet_length(pg_catalog.repeat('x', 1000)::name::text) LOOP
            parts[1] := pg_catalog.left(parts[1], -1);
        END LOOP;
        parts[1] := parts[1] || '_rfm';
    ELSE
        BEGIN
            parts := pg_catalog.parse_ident(view_name);
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION USING ERRCODE = '42602',
                MESSAGE = pg_catalog.format('segment_rfm: view_name %L is not a valid name', view_name),
                HINT = 'Write name or schema.name; double-quote a part with capitals, spaces or dots: view_name => ''shop."RFM view"''.';
        END;
    END IF;
    IF pg_catalog.array_length(parts, 1) = 1 THEN
        view_nsp := rel_nsp;
    ELSIF pg_catalog.array_length(parts, 1) = 2 THEN
        IF parts[1] = 'pg_temp' THEN
            view_nsp := pg_catalog.pg_my_temp_schema();   -- 0 until a temporary object is made
        ELSE
            SELECT n.oid INTO view_nsp FROM pg_catalog.pg_namespace n WHERE n.nspname = parts[1];
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = '3F000',
                    MESSAGE = pg_catalog.format('segment_rfm: schema "%s" does not exist', parts[1]),
                    HINT = 'Create the schema first, or pass view_name without a schema (the view then goes to the schema of the transactions).';
            END IF;
        END IF;
    ELSE
        RAISE EXCEPTION USING ERRCODE = '42602',
            MESSAGE = pg_catalog.format('segment_rfm: view_name %L is not a valid name', view_name),
            HINT = 'Write name or schema.name; double-quote a part with capitals, spaces or dots: view_name => ''shop."RFM view"''.';
    END IF;
    view_rel := parts[pg_catalog.array_length(parts, 1)]::name;
    temp_view := (pg_catalog.array_length(parts, 1) = 2 AND parts[1] = 'pg_temp')
                 OR (view_nsp <> 0 AND view_nsp = pg_catalog.pg_my_temp_schema());
    IF temp_view THEN
        target := pg_catalog.format('%I', view_rel);
        shown := pg_catalog.format('pg_temp.%I', view_rel);
    ELSE
        target := pg_catalog.format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = view_nsp), view_rel);
        shown := target;
    END IF;
    IF rel_temp AND NOT temp_view THEN
        RAISE EXCEPTION USING ERRCODE = '42P16',
            MESSAGE = pg_catalog.format('segment_rfm: the view of the temporary relation %s must be temporary, not %s', rel_text, shown),
            HINT = pg_catalog.format('Pass view_name => %L, or no view_name.', 'pg_temp.' || view_rel);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = view_nsp AND c.relname = view_rel) THEN
        RAISE EXCEPTION USING ERRCODE = '42P07',
            MESSAGE = pg_catalog.format('segment_rfm: relation %s already exists', shown),
            HINT = pg_catalog.format('Pass another name, view_name => %L, or drop %s first.',
                CASE WHEN temp_view THEN 'pg_temp.' ELSE '' END || view_rel || '_2', shown);
    END IF;

    -- as of the start of day as_of: transactions strictly before it count. NULL: the day
    -- after the last transaction, computed whenever the view is read.
    IF as_of IS NULL THEN
        as_of_sql := '(pg_catalog.max(p.last_day) OVER () + 1)';
    ELSE
        as_of_sql := pg_catalog.format('%L::pg_catalog.date', as_of);
        -- a timestamptz's day is the session's (TimeZone); date and timestamp compare
        -- as they are, so an index on the column serves the filter
        filter_sql := CASE WHEN date_base = 'pg_catalog.timestamptz'::regtype
                           THEN pg_catalog.format(' AND (t.%I)::pg_catalog.date < %s', date_column, as_of_sql)
                           ELSE pg_catalog.format(' AND t.%I < %s', date_column, as_of_sql) END;
    END IF;

    EXECUTE pg_catalog.format($view$
CREATE %1$s VIEW %2$s AS
WITH per_customer AS (
    SELECT t.%3$I AS customer,
           pg_catalog.max((t.%4$I)::pg_catalog.date) AS last_day,
           pg_catalog.count(*) AS frequency,
           COALESCE(pg_catalog.sum((t.%5$I)::pg_catalog.numeric), 0::pg_catalog.numeric) AS monetary
    FROM %6$s t
    WHERE t.%3$I IS NOT NULL AND t.%4$I IS NOT NULL AND pg_catalog.isfinite(t.%4$I)%7$s
    GROUP BY t.%3$I
), measured AS (
    SELECT p.customer, (%8$s - p.last_day) AS recency_days, p.frequency, p.monetary
    FROM per_customer p
), scored AS (
    SELECT m.customer, m.recency_days, m.frequency, m.monetary,
           ((5 * (pg_catalog.rank() OVER (ORDER BY m.recency_days DESC) - 1))
              / pg_catalog.count(*) OVER () + 1)::pg_catalog.int4 AS r,
           ((5 * (pg_catalog.rank() OVER (ORDER BY m.frequency) - 1))
              / pg_catalog.count(*) OVER () + 1)::pg_catalog.int4 AS f,
           ((5 * (pg_catalog.rank() OVER (ORDER BY m.monetary) - 1))
              / pg_catalog.count(*) OVER () + 1)::pg_catalog.int4 AS m
    FROM measured m
)
SELECT s.customer AS %3$I, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
       s.r::pg_catalog.text || s.f::pg_catalog.text || s.m::pg_catalog.text AS cell,
       cells.segment
FROM scored s
LEFT JOIN segment.rfm_maps cells ON cells.map = %9$L AND cells.r = s.r AND cells.f = s.f
$view$,
        CASE WHEN temp_view THEN 'TEMPORARY' ELSE '' END, target, customer_column, date_column,
        amount_column, rel_text, filter_sql, as_of_sql, segment_rfm.map);

    SELECT c.oid INTO view_oid FROM pg_catalog.pg_class c
    WHERE c.relname = view_rel
      AND c.relnamespace = CASE WHEN temp_view THEN pg_catalog.pg_my_temp_schema() ELSE view_nsp END;
    EXECUTE pg_catalog.format('COMMENT ON VIEW %s IS %L', view_oid::regclass,
        pg_catalog.format('RFM of %s by %I as of %s (segment_rfm: dates %I, amounts %I, map %L)',
            rel_text, customer_column,
            COALESCE(as_of::text, 'the day after the last transaction'),
            date_column, amount_column, segment_rfm.map));
    RETURN view_oid::regclass;
END
$segment_rfm$;

COMMENT ON FUNCTION segment_rfm(regclass, name, name, name, date, text, text) IS
$$Create a view of recency, frequency and monetary value per customer of a transactions relation, with quintile scores and a named segment; returns the view.
Arguments: transactions (table or view, one row per transaction), customer_column (any type the view can group by), date_column (date, timestamp or timestamp with time zone), amount_column (smallint, integer, bigint, numeric, real or double precision); as_of (default NULL), map (default 'standard', a map in segment.rfm_maps), view_name (default NULL: <transactions>_rfm in the transactions' schema; an unqualified name also goes to that schema; schema.name accepted).
As of: the view is as of the start of day as_of: only transactions dated strictly before as_of count (a customer whose purchases are all on or after as_of is not in the view), and recency_days = as_of - the customer's last day. The given as_of is fixed in the view. as_of NULL: the day after the last transaction in the relation, computed each time the view is read, so the view always covers every transaction. Dates are taken with ::date; for timestamp with time zone the day is the one in the session's TimeZone when the view is read. Rows with a NULL customer or a NULL or infinite date are ignored.
Columns: the customer column (its name and type), recency_days int, frequency bigint (transactions), monetary numeric (sum of the amounts: refunds, i.e. negative amounts, reduce it; NULL amounts are left out of the sum but the transaction counts for recency and frequency; 0 when all are NULL), r, f, m int 1..5, cell text (r, f and m, e.g. '543'), segment text (the map's name for (r, f), read from segment.rfm_maps whenever the view is read: NULL if the cell has since been removed from the map).
Scores: for a measure v over the n customers in the view, score = floor(5 * (rank_min - 1) / n) + 1 with rank_min = rank() OVER (ORDER BY v), 1-based, equal values sharing the lowest rank, so equal values share a score; f ranks frequency ascending, m monetary ascending, r recency_days descending (recent customers score high).
The view may be empty (no transaction before as_of). It belongs to the caller and reads the transactions with its owner's rights, like any view; it depends on segment.rfm_maps.
Errors: 22004 a NULL transactions, customer_column, date_column, amount_column or map; 42P01 no such relation; 42809 a relation that is not a table, view, materialized view or foreign table; 42703 a column not in the relation; 42701 a customer column named like a column the view adds; 42804 a date or amount column of another type; 22023 an unknown map, an incomplete map (fewer than the 25 (r, f) cells), an infinite as_of; 42602 an invalid view_name; 3F000 an unknown schema in view_name; 42P16 a view of a temporary relation outside pg_temp (the view of a temporary relation is temporary); 42P07 a relation already named like the view.$$;

-- Uplift of controlled tests and p-value adjustment (src/marketing.rs, sql/marketing.sql).
-- pg_segment::marketing::segment_p_adjust
CREATE  FUNCTION "segment_p_adjust"(
	"p" double precision[], /* :: std :: option :: Option < Array < '_, f64 > > */
	"method" TEXT DEFAULT 'holm' /* Option < & str > */
) RETURNS double precision[] /* :: std :: option :: Option < Vec < Option < f64 > > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'segment_p_adjust_wrapper';

CREATE SCHEMA IF NOT EXISTS segment; /* pg_segment::marketing::segment */

-- pg_segment::marketing::segment::_uplift_rate_combine
CREATE  FUNCTION segment."_uplift_rate_combine"(
	"a" double precision[], /* Array < '_, f64 > */
	"b" double precision[] /* Array < '_, f64 > */
) RETURNS double precision[] /* Vec < f64 > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_rate_combine_wrapper';

-- pg_segment::marketing::segment::_uplift_mean_trans
CREATE  FUNCTION segment."_uplift_mean_trans"(
	"state" double precision[], /* :: std :: option :: Option < Array < '_, f64 > > */
	"treated" bool, /* Option < bool > */
	"value" double precision, /* Option < f64 > */
	"confidence" double precision /* Option < f64 > */
) RETURNS double precision[] /* :: std :: option :: Option < Vec < f64 > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_mean_trans_wrapper';

-- pg_segment::marketing::segment::_uplift_mean_trans
CREATE  FUNCTION segment."_uplift_mean_trans"(
	"state" double precision[], /* :: std :: option :: Option < Array < '_, f64 > > */
	"treated" bool, /* Option < bool > */
	"value" double precision /* Option < f64 > */
) RETURNS double precision[] /* :: std :: option :: Option < Vec < f64 > > */
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_mean_trans_default_wrapper';

-- pg_segment::marketing::segment::_uplift_mean_combine
CREATE  FUNCTION segment."_uplift_mean_combine"(
	"a" double precision[], /* Array < '_, f64 > */
	"b" double precision[] /* Array < '_, f64 > */
) RETURNS double precision[] /* Vec < f64 > */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_mean_combine_wrapper';

-- pg_segment::marketing::segment::_uplift_rate_trans
CREATE  FUNCTION segment."_uplift_rate_trans"(
	"state" double precision[], /* :: std :: option :: Option < Array < '_, f64 > > */
	"treated" bool, /* Option < bool > */
	"converted" bool, /* Option < bool > */
	"confidence" double precision /* Option < f64 > */
) RETURNS double precision[] /* :: std :: option :: Option < Vec < f64 > > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_rate_trans_wrapper';

-- pg_segment::marketing::segment::_p_adjust_window
CREATE  FUNCTION segment."_p_adjust_window"(
	"_p" double precision, /* Option < f64 > */
	"_method" TEXT /* Option < & str > */
) RETURNS double precision /* Option < f64 > */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_p_adjust_window_wrapper';

-- pg_segment::marketing::segment::_uplift_mean_figures
CREATE  FUNCTION segment."_uplift_mean_figures"(
	"state" double precision[] /* :: std :: option :: Option < Array < '_, f64 > > */
) RETURNS TABLE (
	"treated_n" bigint,  /* i64 */
	"treated_mean" double precision,  /* Option < f64 > */
	"control_n" bigint,  /* i64 */
	"control_mean" double precision,  /* Option < f64 > */
	"diff" double precision,  /* Option < f64 > */
	"ci_low" double precision,  /* Option < f64 > */
	"ci_high" double precision,  /* Option < f64 > */
	"df" double precision,  /* Option < f64 > */
	"p_value" double precision,  /* Option < f64 > */
	"confidence" double precision,  /* Option < f64 > */
	"note" TEXT  /* Option < String > */
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_mean_figures_wrapper';

-- pg_segment::marketing::segment::_uplift_rate_trans
CREATE  FUNCTION segment."_uplift_rate_trans"(
	"state" double precision[], /* :: std :: option :: Option < Array < '_, f64 > > */
	"treated" bool, /* Option < bool > */
	"converted" bool /* Option < bool > */
) RETURNS double precision[] /* :: std :: option :: Option < Vec < f64 > > */
IMMUTABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_rate_trans_default_wrapper';

-- pg_segment::marketing::segment::_uplift_rate_figures
CREATE  FUNCTION segment."_uplift_rate_figures"(
	"state" double precision[] /* :: std :: option :: Option < Array < '_, f64 > > */
) RETURNS TABLE (
	"treated_n" bigint,  /* i64 */
	"treated_conversions" bigint,  /* i64 */
	"treated_rate" double precision,  /* Option < f64 > */
	"control_n" bigint,  /* i64 */
	"control_conversions" bigint,  /* i64 */
	"control_rate" double precision,  /* Option < f64 > */
	"diff" double precision,  /* Option < f64 > */
	"ci_low" double precision,  /* Option < f64 > */
	"ci_high" double precision,  /* Option < f64 > */
	"relative_lift" double precision,  /* Option < f64 > */
	"p_value" double precision,  /* Option < f64 > */
	"confidence" double precision,  /* Option < f64 > */
	"note" TEXT  /* Option < String > */
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_uplift_rate_figures_wrapper';

-- requires:
--   segment::_uplift_rate_trans
--   segment::_uplift_rate_trans_default
--   segment::_uplift_rate_combine
--   segment::_uplift_rate_figures
--   segment::_uplift_mean_trans
--   segment::_uplift_mean_trans_default
--   segment::_uplift_mean_combine
--   segment::_uplift_mean_figures
--   segment::_p_adjust_window
--   segment_p_adjust

-- Uplift of controlled tests per segment (src/marketing.rs): the result types, the
-- aggregates over the support functions in schema segment, and the window form of
-- segment_p_adjust.

CREATE TYPE segment.uplift_rate AS (
    treated_n            bigint,
    treated_conversions  bigint,
    treated_rate         float8,
    control_n            bigint,
    control_conversions  bigint,
    control_rate         float8,
    diff                 float8,    -- treated rate minus control rate
    ci_low               float8,    -- Newcombe's hybrid score interval of diff
    ci_high              float8,
    relative_lift        float8,    -- diff / control rate
    p_value              float8,    -- two-sided pooled two-proportion z-test
    confidence           float8,
    note                 text       -- why a figure is NULL or conventional
);
COMMENT ON TYPE segment.uplift_rate IS 'Result of segment_uplift_rate: conversions per arm, the difference treated minus control with its Newcombe-Wilson interval, the relative lift and a p-value';

CREATE TYPE segment.uplift_mean AS (
    treated_n     bigint,
    treated_mean  float8,
    control_n     bigint,
    control_mean  float8,
    diff          float8,    -- treated mean minus control mean
    ci_low        float8,    -- Welch interval of diff
    ci_high       float8,
    df            float8,    -- Welch-Satterthwaite degrees of freedom
    p_value       float8,    -- Welch's two-sided t-test
    confidence    float8,
    note          text
);
COMMENT ON TYPE segment.uplift_mean IS 'Result of segment_uplift_mean: means per arm, the difference treated minus control with its Welch interval and a p-value';

CREATE FUNCTION segment._uplift_rate_final(state float8[]) RETURNS segment.uplift_rate
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(f.*)::segment.uplift_rate FROM segment._uplift_rate_figures($1) f $$;
COMMENT ON FUNCTION segment._uplift_rate_final(float8[]) IS 'internal: final function of segment_uplift_rate';

CREATE FUNCTION segment._uplift_mean_final(state float8[]) RETURNS segment.uplift_mean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(f.*)::segment.uplift_mean FROM segment._uplift_mean_figures($1) f $$;
COMMENT ON FUNCTION segment._uplift_mean_final(float8[]) IS 'internal: final function of segment_uplift_mean';

CREATE AGGREGATE segment_uplift_rate(treated boolean, converted boolean, confidence float8) (
    SFUNC = segment._uplift_rate_trans, STYPE = float8[],
    FINALFUNC = segment._uplift_rate_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_rate_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_rate(boolean, boolean, float8) IS
    'Uplift of a conversion rate in a controlled test (use with GROUP BY segment): counts and rates per arm, treated minus control with Newcombe''s hybrid score (Wilson) interval at the given confidence, relative lift, two-sided pooled z-test p-value; an arm with fewer than 2 rows gives NULL figures and a note';

CREATE AGGREGATE segment_uplift_rate(treated boolean, converted boolean) (
    SFUNC = segment._uplift_rate_trans, STYPE = float8[],
    FINALFUNC = segment._uplift_rate_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_rate_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_rate(boolean, boolean) IS
    'segment_uplift_rate at confidence 0.95';

CREATE AGGREGATE segment_uplift_mean(treated boolean, value float8, confidence float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = float8[],
    FINALFUNC = segment._uplift_mean_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_mean_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_mean(boolean, float8, float8) IS
    'Uplift of a mean (e.g. revenue) in a controlled test (use with GROUP BY segment): means per arm, treated minus control with a Welch interval at the given confidence, Welch-Satterthwaite df, two-sided Welch t-test p-value; an arm with fewer than 2 values gives NULL figures and a note';

CREATE AGGREGATE segment_uplift_mean(treated boolean, value float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = float8[],
    FINALFUNC = segment._uplift_mean_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_mean_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_mean(boolean, float8) IS
    'segment_uplift_mean at confidence 0.95';

CREATE FUNCTION segment_p_adjust(p float8, method text DEFAULT 'holm') RETURNS float8
WINDOW IMMUTABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_p_adjust_window_wrapper';
COMMENT ON FUNCTION segment_p_adjust(float8, text) IS
    'Window function: each row''s p-value adjusted over its window partition (the frame is ignored) by Holm (''holm'') or Benjamini-Hochberg (''bh''), as statsmodels multipletests; NULLs are skipped and stay NULL';
COMMENT ON FUNCTION segment_p_adjust(float8[], text) IS
    'Adjusted p-values of an array by Holm (''holm'') or Benjamini-Hochberg (''bh''), as statsmodels multipletests; NULLs are skipped and stay NULL';

-- 0.2.0: the exact-combining aggregates keep their state in the type segment.agg_state
-- (a real type with a combine function, so that Citus pushes them down to its workers);
-- their `internal`-state support functions go. Then the by-value model, segment_model.
DROP AGGREGATE segment_inertia(float8[], bigint);
DROP AGGREGATE segment_calinski_harabasz(float8[], bigint);
DROP AGGREGATE segment_ari(bigint, bigint);
DROP AGGREGATE segment_nmi(bigint, bigint);
DROP AGGREGATE segment_kmeans_step(float8[], float8[]);
DROP FUNCTION segment._cluster_stats_trans(internal, float8[], bigint);
DROP FUNCTION segment._cluster_stats_combine(internal, internal);
DROP FUNCTION segment._cluster_stats_serial(internal);
DROP FUNCTION segment._cluster_stats_deserial(bytea, internal);
DROP FUNCTION segment._inertia_final(internal);
DROP FUNCTION segment._calinski_harabasz_final(internal);
DROP FUNCTION segment._contingency_trans(internal, bigint, bigint);
DROP FUNCTION segment._contingency_combine(internal, internal);
DROP FUNCTION segment._contingency_serial(internal);
DROP FUNCTION segment._contingency_deserial(bytea, internal);
DROP FUNCTION segment._ari_final(internal);
DROP FUNCTION segment._nmi_final(internal);
DROP FUNCTION segment._kmeans_step_trans(internal, float8[], float8[]);
DROP FUNCTION segment._kmeans_step_combine(internal, internal);
DROP FUNCTION segment._kmeans_step_serial(internal);
DROP FUNCTION segment._kmeans_step_deserial(bytea, internal);
DROP FUNCTION segment._kmeans_step_final(internal);

-- The type segment.agg_state (src/pg/expanded.rs) and the support functions of the
-- aggregates that keep their state in it (src/aggregates.rs): written by hand, because
-- pgrx sees these states as `internal`. A real state type with a combine function is
-- what lets PostgreSQL run the aggregates in parallel and Citus push them down to its
-- workers (the partial state travels as the type's text output).
CREATE TYPE segment.agg_state;
CREATE FUNCTION segment._agg_state_in(cstring) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_agg_state_in_wrapper';
COMMENT ON FUNCTION segment._agg_state_in(cstring) IS 'internal: text input of segment.agg_state';
CREATE FUNCTION segment._agg_state_out(segment.agg_state) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_agg_state_out_wrapper';
COMMENT ON FUNCTION segment._agg_state_out(segment.agg_state) IS 'internal: text output of segment.agg_state (kind:hex, exact)';
CREATE FUNCTION segment._agg_state_recv(internal) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_agg_state_recv_wrapper';
COMMENT ON FUNCTION segment._agg_state_recv(internal) IS 'internal: binary input of segment.agg_state';
CREATE FUNCTION segment._agg_state_send(segment.agg_state) RETURNS bytea
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_agg_state_send_wrapper';
COMMENT ON FUNCTION segment._agg_state_send(segment.agg_state) IS 'internal: binary output of segment.agg_state';
CREATE TYPE segment.agg_state (
    INPUT = segment._agg_state_in, OUTPUT = segment._agg_state_out,
    RECEIVE = segment._agg_state_recv, SEND = segment._agg_state_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended);
COMMENT ON TYPE segment.agg_state IS
    'Partial state of pg_segment''s exact-combining aggregates (inertia, Calinski-Harabasz, ARI, NMI, k-means step, uplift); text form kind:hex, exact';

CREATE FUNCTION segment._cluster_stats_trans(segment.agg_state, float8[], bigint) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_cluster_stats_trans_wrapper';
COMMENT ON FUNCTION segment._cluster_stats_trans(segment.agg_state, float8[], bigint) IS
    'internal: transition of segment_inertia and segment_calinski_harabasz';
CREATE FUNCTION segment._cluster_stats_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_cluster_stats_combine_wrapper';
COMMENT ON FUNCTION segment._cluster_stats_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_inertia and segment_calinski_harabasz';
CREATE FUNCTION segment._inertia_final(segment.agg_state) RETURNS float8
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_inertia_final_wrapper';
COMMENT ON FUNCTION segment._inertia_final(segment.agg_state) IS 'internal: final function of segment_inertia';
CREATE FUNCTION segment._calinski_harabasz_final(segment.agg_state) RETURNS float8
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_calinski_harabasz_final_wrapper';
COMMENT ON FUNCTION segment._calinski_harabasz_final(segment.agg_state) IS 'internal: final function of segment_calinski_harabasz';

CREATE FUNCTION segment._contingency_trans(segment.agg_state, bigint, bigint) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_contingency_trans_wrapper';
COMMENT ON FUNCTION segment._contingency_trans(segment.agg_state, bigint, bigint) IS
    'internal: transition of segment_ari and segment_nmi';
CREATE FUNCTION segment._contingency_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_contingency_combine_wrapper';
COMMENT ON FUNCTION segment._contingency_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_ari and segment_nmi';
CREATE FUNCTION segment._ari_final(segment.agg_state) RETURNS float8
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_ari_final_wrapper';
COMMENT ON FUNCTION segment._ari_final(segment.agg_state) IS 'internal: final function of segment_ari';
CREATE FUNCTION segment._nmi_final(segment.agg_state) RETURNS float8
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_nmi_final_wrapper';
COMMENT ON FUNCTION segment._nmi_final(segment.agg_state) IS 'internal: final function of segment_nmi';

CREATE FUNCTION segment._kmeans_step_trans(segment.agg_state, float8[], float8[]) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_kmeans_step_trans_wrapper';
COMMENT ON FUNCTION segment._kmeans_step_trans(segment.agg_state, float8[], float8[]) IS
    'internal: transition of segment_kmeans_step';
CREATE FUNCTION segment._kmeans_step_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_kmeans_step_combine_wrapper';
COMMENT ON FUNCTION segment._kmeans_step_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_kmeans_step';
CREATE FUNCTION segment._kmeans_step_final(segment.agg_state) RETURNS float8[]
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_kmeans_step_final_wrapper';
COMMENT ON FUNCTION segment._kmeans_step_final(segment.agg_state) IS 'internal: final function of segment_kmeans_step';

-- The pass-based fit's aggregates (src/train/passes.rs): the states themselves, no
-- final function (a pass reads the bytes with segment._agg_state_send).
CREATE AGGREGATE segment._kmeans_pass(vec float8[], centroids float8[]) (
    SFUNC = segment._kmeans_step_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._kmeans_step_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE segment._kmeans_pass(float8[], float8[]) IS
    'internal: the state of segment_kmeans_step (sums, counts, inertia), for a pass of the pass-based fit';
CREATE AGGREGATE segment._cluster_pass(vec float8[], seg bigint) (
    SFUNC = segment._cluster_stats_trans, STYPE = segment.agg_state,
    COMBINEFUNC = segment._cluster_stats_combine, PARALLEL = SAFE);
COMMENT ON AGGREGATE segment._cluster_pass(float8[], bigint) IS
    'internal: the state of segment_inertia, for the pass-based fit''s total sum of squares';

CREATE AGGREGATE segment_inertia(vec float8[], seg bigint) (
    SFUNC = segment._cluster_stats_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._inertia_final,
    COMBINEFUNC = segment._cluster_stats_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_inertia(float8[], bigint) IS
    'Within-segment sum of squared distances to each segment''s mean';

CREATE AGGREGATE segment_calinski_harabasz(vec float8[], seg bigint) (
    SFUNC = segment._cluster_stats_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._calinski_harabasz_final,
    COMBINEFUNC = segment._cluster_stats_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_calinski_harabasz(float8[], bigint) IS
    'Calinski-Harabasz index (as sklearn.metrics.calinski_harabasz_score)';

CREATE AGGREGATE segment_ari(a bigint, b bigint) (
    SFUNC = segment._contingency_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._ari_final,
    COMBINEFUNC = segment._contingency_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_ari(bigint, bigint) IS
    'Adjusted Rand index of two labelings (as sklearn.metrics.adjusted_rand_score)';

CREATE AGGREGATE segment_nmi(a bigint, b bigint) (
    SFUNC = segment._contingency_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._nmi_final,
    COMBINEFUNC = segment._contingency_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_nmi(bigint, bigint) IS
    'Normalized mutual information, arithmetic normalization (as sklearn.metrics.normalized_mutual_info_score)';

CREATE AGGREGATE segment_kmeans_step(vec float8[], centroids float8[]) (
    SFUNC = segment._kmeans_step_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._kmeans_step_final,
    COMBINEFUNC = segment._kmeans_step_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_kmeans_step(float8[], float8[]) IS
    'One Lloyd iteration: the means of the vectors nearest each centroid (empty clusters keep their centroid)';

-- The by-value model (src/model_value.rs): the type segment_model, segment_model(name
-- [, version]) and the assignment functions that take one. Written by hand: pgrx sees
-- the model as `internal`.
CREATE TYPE segment_model;
CREATE FUNCTION segment._model_in(cstring) RETURNS segment_model
LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_model_in_wrapper';
COMMENT ON FUNCTION segment._model_in(cstring) IS 'internal: text input of segment_model (its JSON, or a model name: the current version)';
CREATE FUNCTION segment._model_out(segment_model) RETURNS cstring
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_model_out_wrapper';
COMMENT ON FUNCTION segment._model_out(segment_model) IS 'internal: text output of segment_model (JSON, exact)';
CREATE FUNCTION segment._model_recv(internal) RETURNS segment_model
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_model_recv_wrapper';
COMMENT ON FUNCTION segment._model_recv(internal) IS 'internal: binary input of segment_model';
CREATE FUNCTION segment._model_send(segment_model) RETURNS bytea
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_model_send_wrapper';
COMMENT ON FUNCTION segment._model_send(segment_model) IS 'internal: binary output of segment_model';
CREATE TYPE segment_model (
    INPUT = segment._model_in, OUTPUT = segment._model_out,
    RECEIVE = segment._model_recv, SEND = segment._model_send,
    INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = extended);
COMMENT ON TYPE segment_model IS
    'One version of a model as a value (encoder, centroids, segment ids, labels), for assignment without the catalog (Citus workers); text form JSON, exact';

CREATE FUNCTION segment_model(name text, version int DEFAULT NULL) RETURNS segment_model
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segment_model_wrapper';
COMMENT ON FUNCTION segment_model(text, int) IS
    'A model version (default: the current one) as a segment_model value, for segment_assign(segment_model, row) where there is no catalog';

CREATE FUNCTION segment_assign(model segment_model, "row" anyelement) RETURNS integer
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segment_assign_value_wrapper';
COMMENT ON FUNCTION segment_assign(segment_model, anyelement) IS
    'Segment (1-based) of a row under a model passed by value; reads no catalog (runs on Citus workers)';
CREATE FUNCTION segment_assign_detail(model segment_model, "row" anyelement) RETURNS segment_assignment
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segment_assign_detail_value_wrapper';
COMMENT ON FUNCTION segment_assign_detail(segment_model, anyelement) IS
    'Segment, label, distance, runner-up segment and margin of a row under a model passed by value; reads no catalog';
CREATE FUNCTION segment_encode(model segment_model, "row" anyelement) RETURNS float8[]
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segment_encode_value_wrapper';
COMMENT ON FUNCTION segment_encode(segment_model, anyelement) IS
    'The encoded feature vector of a row under a model passed by value; reads no catalog';

-- 0.2.0: the uplift aggregates keep their state in segment.agg_state too (exact whatever
-- extra_float_digits says, and no new array per row).
DROP AGGREGATE segment_uplift_rate(boolean, boolean, float8);
DROP AGGREGATE segment_uplift_rate(boolean, boolean);
DROP AGGREGATE segment_uplift_mean(boolean, float8, float8);
DROP AGGREGATE segment_uplift_mean(boolean, float8);
DROP FUNCTION segment._uplift_rate_final(float8[]);
DROP FUNCTION segment._uplift_mean_final(float8[]);
DROP FUNCTION segment._uplift_rate_trans(float8[], boolean, boolean, float8);
DROP FUNCTION segment._uplift_rate_trans(float8[], boolean, boolean);
DROP FUNCTION segment._uplift_rate_combine(float8[], float8[]);
DROP FUNCTION segment._uplift_rate_figures(float8[]);
DROP FUNCTION segment._uplift_mean_trans(float8[], boolean, float8, float8);
DROP FUNCTION segment._uplift_mean_trans(float8[], boolean, float8);
DROP FUNCTION segment._uplift_mean_combine(float8[], float8[]);
DROP FUNCTION segment._uplift_mean_figures(float8[]);
CREATE FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean, float8) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_trans_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean, float8) IS
    'internal: transition of segment_uplift_rate(treated, converted, confidence)';
CREATE FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_trans_default_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_trans(segment.agg_state, boolean, boolean) IS
    'internal: transition of segment_uplift_rate(treated, converted)';
CREATE FUNCTION segment._uplift_rate_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_combine_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_uplift_rate';
CREATE FUNCTION segment._uplift_rate_figures(state segment.agg_state) RETURNS TABLE (
    treated_n bigint, treated_conversions bigint, treated_rate float8, control_n bigint,
    control_conversions bigint, control_rate float8, diff float8, ci_low float8,
    ci_high float8, relative_lift float8, p_value float8, confidence float8, note text)
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_rate_figures_wrapper';
COMMENT ON FUNCTION segment._uplift_rate_figures(segment.agg_state) IS
    'internal: the figures of a segment_uplift_rate state';
CREATE FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8, float8) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_trans_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8, float8) IS
    'internal: transition of segment_uplift_mean(treated, value, confidence)';
CREATE FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_trans_default_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_trans(segment.agg_state, boolean, float8) IS
    'internal: transition of segment_uplift_mean(treated, value)';
CREATE FUNCTION segment._uplift_mean_combine(segment.agg_state, segment.agg_state) RETURNS segment.agg_state
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_combine_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_combine(segment.agg_state, segment.agg_state) IS
    'internal: combine of segment_uplift_mean';
CREATE FUNCTION segment._uplift_mean_figures(state segment.agg_state) RETURNS TABLE (
    treated_n bigint, treated_mean float8, control_n bigint, control_mean float8,
    diff float8, ci_low float8, ci_high float8, df float8, p_value float8,
    confidence float8, note text)
LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_uplift_mean_figures_wrapper';
COMMENT ON FUNCTION segment._uplift_mean_figures(segment.agg_state) IS
    'internal: the figures of a segment_uplift_mean state';

CREATE FUNCTION segment._uplift_rate_final(state segment.agg_state) RETURNS segment.uplift_rate
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(f.*)::segment.uplift_rate FROM segment._uplift_rate_figures($1) f $$;
COMMENT ON FUNCTION segment._uplift_rate_final(segment.agg_state) IS 'internal: final function of segment_uplift_rate';

CREATE FUNCTION segment._uplift_mean_final(state segment.agg_state) RETURNS segment.uplift_mean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ROW(f.*)::segment.uplift_mean FROM segment._uplift_mean_figures($1) f $$;
COMMENT ON FUNCTION segment._uplift_mean_final(segment.agg_state) IS 'internal: final function of segment_uplift_mean';

CREATE AGGREGATE segment_uplift_rate(treated boolean, converted boolean, confidence float8) (
    SFUNC = segment._uplift_rate_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_rate_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_rate_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_rate(boolean, boolean, float8) IS
    'Uplift of a conversion rate in a controlled test (use with GROUP BY segment): counts and rates per arm, treated minus control with Newcombe''s hybrid score (Wilson) interval at the given confidence, relative lift, two-sided pooled z-test p-value; an arm with fewer than 2 rows gives NULL figures and a note';

CREATE AGGREGATE segment_uplift_rate(treated boolean, converted boolean) (
    SFUNC = segment._uplift_rate_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_rate_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_rate_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_rate(boolean, boolean) IS
    'segment_uplift_rate at confidence 0.95';

CREATE AGGREGATE segment_uplift_mean(treated boolean, value float8, confidence float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_mean_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_mean_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_mean(boolean, float8, float8) IS
    'Uplift of a mean (e.g. revenue) in a controlled test (use with GROUP BY segment): means per arm, treated minus control with a Welch interval at the given confidence, Welch-Satterthwaite df, two-sided Welch t-test p-value; an arm with fewer than 2 values gives NULL figures and a note';

CREATE AGGREGATE segment_uplift_mean(treated boolean, value float8) (
    SFUNC = segment._uplift_mean_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._uplift_mean_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = segment._uplift_mean_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_uplift_mean(boolean, float8) IS
    'segment_uplift_mean at confidence 0.95';

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

-- pg_segment catalog: models, their versions, per-segment facts and profiles, and who
-- may read each model, all in schema "segment". Functions stay in the extension's
-- schema; these tables are what segment_train writes and what the result views read.
--
-- Security model (see README, "Who can see what"):
-- * A model belongs to the role that trained it (`owner`). Only members of that role
--   may change or drop it (row-level security on every catalog table), because the SQL
--   functions run with the caller's privileges (SECURITY INVOKER).
-- * A model is private: its catalog rows (statistics of the source's columns) are
--   readable only by members of the owner role and of roles it was granted to
--   (segment_grant); its assignment table (the source's ids) likewise.
-- * Assignment tables are owned by the extension's owner, so that no model owner can
--   rename, drop or keep one apart from its model; they are created only by
--   segment_train's own code (never through an SQL-callable helper) and dropped with
--   their model's row (trigger below).
-- * Every function here runs with search_path = pg_catalog, pg_temp, and every object
--   it names is schema-qualified: nothing on a caller's search_path can stand in.
CREATE SCHEMA IF NOT EXISTS segment;
COMMENT ON SCHEMA segment IS 'pg_segment catalog tables and result views';
GRANT USAGE ON SCHEMA segment TO PUBLIC;

CREATE TABLE segment.models (
    name            text PRIMARY KEY
                    CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,47}$'),
    -- quote_ident: current_user::regrole would fold "ProbeUpper" to probeupper
    owner           regrole NOT NULL
                    DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    source          text NOT NULL,          -- qualified name of the training source
    source_oid      regclass NOT NULL,      -- the source itself (dumps by name)
    id_column       text NOT NULL,
    id_type         regtype NOT NULL,
    features        jsonb,                  -- the spec as given (NULL = defaults)
    spec            jsonb NOT NULL,         -- the resolved spec, one entry per feature
    params          jsonb NOT NULL,         -- k, k_min, k_max, seed, n_init, max_iter, tol
    current_version int,
    -- segment."<name>_assignments". The CHECK matters for security: the delete
    -- trigger below drops exactly this table, so it must never name anything else.
    assignments     text NOT NULL CHECK (assignments = name || '_assignments'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The highest segment id the model has ever given: a fresh id is above it, so a
    -- retired id is never reused.
    last_segment    int NOT NULL DEFAULT 0,
    -- Versions segment_refresh keeps (the current one always stays).
    keep_versions   int NOT NULL DEFAULT 10 CHECK (keep_versions BETWEEN 1 AND 1000)
);
COMMENT ON TABLE segment.models IS 'One row per model: spec, parameters, owner, current version';

CREATE TABLE segment.versions (
    model           text NOT NULL REFERENCES segment.models (name) ON DELETE CASCADE,
    version         int NOT NULL,
    k               int NOT NULL,
    dim             int NOT NULL,           -- encoded dimensions
    feature_names   text[] NOT NULL,        -- encoded column names
    encoder         jsonb NOT NULL,         -- fitted encoder (engine JSON, versioned)
    centroids       float8[] NOT NULL,      -- k x dim, encoded space
    rows_read       bigint NOT NULL,
    rows_used       bigint NOT NULL,
    rows_skipped    bigint NOT NULL,
    skipped         jsonb NOT NULL,         -- reason -> count
    sampled         boolean NOT NULL,       -- trained on a reservoir sample
    sample_rows     bigint NOT NULL,        -- rows the k-means fit saw
    iterations      int NOT NULL,
    converged       boolean NOT NULL,
    inertia         float8 NOT NULL,
    silhouette      float8,
    silhouette_sample int,
    davies_bouldin  float8,
    calinski_harabasz float8,
    k_selection     jsonb,                  -- per-k scores when k was chosen
    seed            bigint NOT NULL,
    trained_by      regrole NOT NULL
                    DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    trained_at      timestamptz NOT NULL DEFAULT now(),
    seconds         float8 NOT NULL,
    -- Segment id of each centroid row, in centroid order (1..k for a trained version;
    -- a refresh's matched and fresh ids).
    segment_ids     int[] NOT NULL,
    parent_version  int,                    -- the version a refresh started from
    ari             float8,                 -- adjusted Rand index with it (shared customers)
    refresh         jsonb,                  -- what the refresh did (options, counts, promotion)
    reference       jsonb,                  -- reference distributions, for segment_drift
    PRIMARY KEY (model, version)
);
COMMENT ON TABLE segment.versions IS 'One row per trained version: lineage, fitted encoder, centroids, metrics';

CREATE TABLE segment.segments (
    model           text NOT NULL,
    version         int NOT NULL,
    segment         int NOT NULL,           -- 1..k
    label           text,
    size            bigint NOT NULL,
    share           float8 NOT NULL,
    mean_distance   float8,                 -- mean Euclidean distance to the centroid
    silhouette      float8,                 -- mean silhouette of the segment's sampled rows
    nearest_segment int,                    -- nearest other centroid
    separation      float8,                 -- distance to it
    centroid        float8[] NOT NULL,      -- encoded space
    matched_from    int,                    -- a refresh: the parent's segment it was matched with
    jaccard         float8,                 -- and their Jaccard (the id is inherited when > 0.5)
    PRIMARY KEY (model, version, segment),
    FOREIGN KEY (model, version) REFERENCES segment.versions ON DELETE CASCADE
);
COMMENT ON TABLE segment.segments IS 'One row per segment of each version';

CREATE TABLE segment.profile_data (
    model           text NOT NULL,
    version         int NOT NULL,
    segment         int NOT NULL,
    feature         text NOT NULL,
    category        text,                   -- NULL for numeric features
    segment_value   float8,                 -- mean (numeric) or share (category) in segment
    overall_value   float8,                 -- the same over all rows
    FOREIGN KEY (model, version) REFERENCES segment.versions ON DELETE CASCADE
);
CREATE INDEX ON segment.profile_data (model, version);
COMMENT ON TABLE segment.profile_data IS 'Per segment and feature: mean or category share, in original units';

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
ALTER TABLE segment.models ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.segments ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.profile_data ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.migration_data ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.stability_data ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.drift_history ENABLE ROW LEVEL SECURITY;

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
CREATE POLICY read ON segment.migration_data FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.migration_data FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.stability_data FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.stability_data FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.drift_history FOR SELECT USING (segment._can_read(model));
CREATE POLICY write ON segment.drift_history FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.grants FOR SELECT
    USING (pg_catalog.pg_has_role(grantee, 'MEMBER') OR segment._owns(model));
CREATE POLICY write ON segment.grants FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));

GRANT SELECT, INSERT, DELETE ON segment.models, segment.versions,
    segment.segments, segment.profile_data, segment.grants,
    segment.migration_data, segment.stability_data, segment.drift_history TO PUBLIC;
-- A model's name, owner and assignment table never change after training (the delete
-- trigger and the assignment table's grants rely on that); labels, the current
-- version, the ids given, the retention and a version's training time (written last)
-- may.
GRANT UPDATE (current_version, last_segment, keep_versions) ON segment.models TO PUBLIC;
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

-- What segment_assign_detail returns (lives in the extension's schema).
CREATE TYPE segment_assignment AS (
    segment   int,      -- 1-based segment
    label     text,     -- its label, if any
    distance  float8,   -- Euclidean distance to its centroid (encoded space)
    runner_up int,      -- the next-nearest segment
    margin    float8    -- runner-up distance minus distance
);
COMMENT ON TYPE segment_assignment IS 'Result of segment_assign_detail';

-- Result views for BI tools: the current version of every model the reader may read
-- (security_invoker: the catalog's row-level security applies to whoever queries them).
CREATE VIEW segment.summary WITH (security_invoker = true) AS
SELECT s.model, s.version, s.segment, s.label, s.size, s.share, s.mean_distance,
       s.silhouette, s.nearest_segment, s.separation
FROM segment.segments s
JOIN segment.models m ON m.name = s.model AND m.current_version = s.version;
COMMENT ON VIEW segment.summary IS 'Current version of each model, one row per segment';

CREATE VIEW segment.profiles WITH (security_invoker = true) AS
SELECT p.model, p.version, p.segment, g.label, p.feature, p.category,
       p.segment_value, p.overall_value,
       CASE WHEN p.overall_value IS NULL OR p.overall_value = 0 THEN NULL
            ELSE round((100 * p.segment_value / p.overall_value)::numeric, 1) END AS index
FROM segment.profile_data p
JOIN segment.models m ON m.name = p.model AND m.current_version = p.version
JOIN segment.segments g USING (model, version, segment);
COMMENT ON VIEW segment.profiles IS 'Segment x feature: mean (numeric) or share (category) in the segment vs overall, and index = 100 * segment / overall';

CREATE VIEW segment.quality WITH (security_invoker = true) AS
SELECT v.model, v.version, v.k, v.rows_used, v.inertia, v.silhouette,
       v.silhouette_sample, v.davies_bouldin, v.calinski_harabasz, v.iterations,
       v.converged, v.trained_at, v.seconds, (m.current_version = v.version) AS current
FROM segment.versions v JOIN segment.models m ON m.name = v.model;
COMMENT ON VIEW segment.quality IS 'Metric history, one row per model version';

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

CREATE VIEW segment.drift WITH (security_invoker = true) AS
SELECT h.model, h.run, h.version, h.run_at, h.source, h.rows, h.feature, h.kind, h.psi,
       h.js_distance, h.band, h.would_move_share, h.new_ids, h.vanished_ids
FROM segment.drift_history h
WHERE h.run = (SELECT max(l.run) FROM segment.drift_history l WHERE l.model = h.model);
COMMENT ON VIEW segment.drift IS 'The latest segment_drift run of each model, one row per feature and one for the segment shares';

GRANT SELECT ON segment.summary, segment.profiles, segment.quality,
    segment.migrations, segment.stability, segment.drift TO PUBLIC;

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

SELECT pg_catalog.pg_extension_config_dump('segment.models', '');
SELECT pg_catalog.pg_extension_config_dump('segment.versions', '');
SELECT pg_catalog.pg_extension_config_dump('segment.segments', '');
SELECT pg_catalog.pg_extension_config_dump('segment.profile_data', '');
SELECT pg_catalog.pg_extension_config_dump('segment.grants', '');
SELECT pg_catalog.pg_extension_config_dump('segment.migration_data', '');
SELECT pg_catalog.pg_extension_config_dump('segment.stability_data', '');
SELECT pg_catalog.pg_extension_config_dump('segment.drift_history', '');

-- pg_segment catalog: models, their versions, per-segment facts and profiles, all in
-- schema "segment". Functions stay in the extension's schema; these tables are what
-- segment_train writes and what the result views read. Rows are readable by everyone;
-- only members of a model's owning role may change or delete them (row-level security),
-- because the SQL functions run with the caller's privileges (SECURITY INVOKER).
CREATE SCHEMA IF NOT EXISTS segment;
COMMENT ON SCHEMA segment IS 'pg_segment catalog tables and result views';
GRANT USAGE ON SCHEMA segment TO PUBLIC;

CREATE TABLE segment.models (
    name            text PRIMARY KEY
                    CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,47}$'),
    owner           regrole NOT NULL DEFAULT current_user::regrole,
    source          text NOT NULL,          -- qualified name of the training source
    source_oid      oid NOT NULL,
    id_column       text NOT NULL,
    id_type         regtype NOT NULL,
    features        jsonb,                  -- the spec as given (NULL = defaults)
    spec            jsonb NOT NULL,         -- the resolved spec, one entry per feature
    params          jsonb NOT NULL,         -- k, k_min, k_max, seed, n_init, max_iter, tol
    current_version int,
    -- segment."<name>_assignments". The CHECK matters for security: the SECURITY
    -- DEFINER helpers below create and drop exactly this table, so it must never name
    -- anything else.
    assignments     text NOT NULL CHECK (assignments = name || '_assignments'),
    created_at      timestamptz NOT NULL DEFAULT now()
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
    trained_by      regrole NOT NULL DEFAULT current_user::regrole,
    trained_at      timestamptz NOT NULL DEFAULT now(),
    seconds         float8 NOT NULL,
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

-- Row-level security: everyone reads, owners write.
ALTER TABLE segment.models ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.segments ENABLE ROW LEVEL SECURITY;
ALTER TABLE segment.profile_data ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION segment._owns(model text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog
AS $$ SELECT EXISTS (SELECT 1 FROM segment.models m
                     WHERE m.name = $1 AND pg_has_role(m.owner, 'MEMBER')) $$;
COMMENT ON FUNCTION segment._owns(text) IS 'true when the current role is a member of the model''s owner';

CREATE POLICY read ON segment.models FOR SELECT USING (true);
CREATE POLICY write ON segment.models FOR ALL
    USING (pg_has_role(owner, 'MEMBER')) WITH CHECK (pg_has_role(owner, 'MEMBER'));
CREATE POLICY read ON segment.versions FOR SELECT USING (true);
CREATE POLICY write ON segment.versions FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.segments FOR SELECT USING (true);
CREATE POLICY write ON segment.segments FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));
CREATE POLICY read ON segment.profile_data FOR SELECT USING (true);
CREATE POLICY write ON segment.profile_data FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));

GRANT SELECT, INSERT, UPDATE, DELETE ON segment.models, segment.versions,
    segment.segments, segment.profile_data TO PUBLIC;

-- internal: the catalog row of a model the session's role may write, or an error.
CREATE FUNCTION segment._model_for_write(model text) RETURNS segment.models
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE m segment.models;
BEGIN
    SELECT * INTO m FROM segment.models WHERE name = model;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = '22023';
    END IF;
    IF NOT pg_has_role(session_user, m.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'must be a member of role "%" to write model "%"', m.owner, model
            USING ERRCODE = '42501';
    END IF;
    RETURN m;
END $$;
COMMENT ON FUNCTION segment._model_for_write(text) IS 'internal: a writable model''s catalog row';

-- internal: give a just-created assignment table to the model's owner, readable by all.
CREATE FUNCTION segment._hand_over(m segment.models) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    EXECUTE format('ALTER TABLE segment.%I OWNER TO %I', m.assignments, m.owner::text);
    EXECUTE format('GRANT SELECT ON segment.%I TO PUBLIC', m.assignments);
    RETURN format('segment.%I', m.assignments);
END $$;
REVOKE ALL ON FUNCTION segment._hand_over(segment.models) FROM PUBLIC;
COMMENT ON FUNCTION segment._hand_over(segment.models) IS 'internal: hands an assignment table to its model''s owner';

-- Assignment tables live in schema segment, which ordinary roles may not create in.
-- This SECURITY DEFINER helper creates one for a model whose catalog row the caller was
-- allowed to write (row-level security), owned by that model's owner role.
CREATE FUNCTION segment._create_assignments(model text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
AS $$
DECLARE m segment.models;
BEGIN
    m := segment._model_for_write(model);
    -- segment_train fills it in bulk, then adds the primary key on the id. The two int
    -- columns sit together so that, after an 8-byte id, rows need no alignment padding.
    EXECUTE format('CREATE TABLE segment.%I (%I %s NOT NULL, segment int NOT NULL, '
                   'version int NOT NULL, distance float8 NOT NULL)',
                   m.assignments, m.id_column, m.id_type);
    RETURN segment._hand_over(m);
END $$;
COMMENT ON FUNCTION segment._create_assignments(text) IS 'internal: creates a model''s assignment table for its owner';

-- Its primary key, built once after the bulk load (creating an index needs CREATE on
-- schema segment, which ordinary roles lack). Serially: the rows arrive in id order where
-- ids are integers, and a parallel build would only add worker start-up.
CREATE FUNCTION segment._add_assignments_key(model text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog
SET max_parallel_maintenance_workers = 0
AS $$
DECLARE m segment.models;
BEGIN
    m := segment._model_for_write(model);
    EXECUTE format('ALTER TABLE segment.%I ADD PRIMARY KEY (%I)', m.assignments, m.id_column);
END $$;
COMMENT ON FUNCTION segment._add_assignments_key(text) IS 'internal: adds the primary key of a model''s assignment table';

-- Dropping needs ownership of the table (which the model's owner role has), not schema
-- privileges, so this one runs with the caller's rights.
CREATE FUNCTION segment._drop_assignments(model text) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog
AS $$
DECLARE m segment.models;
BEGIN
    SELECT * INTO m FROM segment.models WHERE name = model;
    IF NOT FOUND THEN RETURN; END IF;
    EXECUTE format('DROP TABLE IF EXISTS segment.%I', m.assignments);
END $$;
COMMENT ON FUNCTION segment._drop_assignments(text) IS 'internal: drops a model''s assignment table';

-- What segment_assign_detail returns (lives in the extension's schema).
CREATE TYPE segment_assignment AS (
    segment   int,      -- 1-based segment
    label     text,     -- its label, if any
    distance  float8,   -- Euclidean distance to its centroid (encoded space)
    runner_up int,      -- the next-nearest segment
    margin    float8    -- runner-up distance minus distance
);
COMMENT ON TYPE segment_assignment IS 'Result of segment_assign_detail';

-- Result views for BI tools: the current version of every model.
CREATE VIEW segment.summary AS
SELECT s.model, s.version, s.segment, s.label, s.size, s.share, s.mean_distance,
       s.silhouette, s.nearest_segment, s.separation
FROM segment.segments s
JOIN segment.models m ON m.name = s.model AND m.current_version = s.version;
COMMENT ON VIEW segment.summary IS 'Current version of each model, one row per segment';

CREATE VIEW segment.profiles AS
SELECT p.model, p.version, p.segment, g.label, p.feature, p.category,
       p.segment_value, p.overall_value,
       CASE WHEN p.overall_value IS NULL OR p.overall_value = 0 THEN NULL
            ELSE round((100 * p.segment_value / p.overall_value)::numeric, 1) END AS index
FROM segment.profile_data p
JOIN segment.models m ON m.name = p.model AND m.current_version = p.version
JOIN segment.segments g USING (model, version, segment);
COMMENT ON VIEW segment.profiles IS 'Segment x feature: mean (numeric) or share (category) in the segment vs overall, and index = 100 * segment / overall';

CREATE VIEW segment.quality AS
SELECT v.model, v.version, v.k, v.rows_used, v.inertia, v.silhouette,
       v.silhouette_sample, v.davies_bouldin, v.calinski_harabasz, v.iterations,
       v.converged, v.trained_at, v.seconds, (m.current_version = v.version) AS current
FROM segment.versions v JOIN segment.models m ON m.name = v.model;
COMMENT ON VIEW segment.quality IS 'Metric history, one row per model version';

GRANT SELECT ON segment.summary, segment.profiles, segment.quality TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('segment.models', '');
SELECT pg_catalog.pg_extension_config_dump('segment.versions', '');
SELECT pg_catalog.pg_extension_config_dump('segment.segments', '');
SELECT pg_catalog.pg_extension_config_dump('segment.profile_data', '');

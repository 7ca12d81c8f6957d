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

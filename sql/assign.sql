-- Assignment (src/assign.rs): the comments of the functions pgrx generates, and the
-- planner support wiring of segment_assign(model, row) (src/pg/planner.rs): the C
-- functions the planner rewrites the call into, and the SUPPORT clause.
COMMENT ON FUNCTION segment_assign(text, anyelement, int) IS
    'Segment (1-based) of a row, columns mapped to the model''s features by name';
COMMENT ON FUNCTION segment_assign(text, jsonb, int) IS
    'Segment (1-based) of a jsonb object keyed by feature name';
COMMENT ON FUNCTION segment_assign(text, float8[], int) IS
    'Segment (1-based) of an already-encoded vector';
COMMENT ON FUNCTION segment_assign_detail(text, anyelement, int) IS
    'Segment, label, distance, runner-up segment and margin of a row';
COMMENT ON FUNCTION segment_assign_detail(text, jsonb, int) IS
    'Segment, label, distance, runner-up segment and margin of a jsonb object';
COMMENT ON FUNCTION segment_encode(text, anyelement, int) IS
    'The encoded feature vector of a row (segment.versions.feature_names order)';
COMMENT ON FUNCTION segment_encode(text, jsonb, int) IS
    'The encoded feature vector of a jsonb object';

CREATE FUNCTION segment._assign_planned(model text, planned text, VARIADIC cols "any")
RETURNS integer LANGUAGE c STABLE PARALLEL SAFE COST 25
AS 'MODULE_PATHNAME', 'segment_assign_planned';
COMMENT ON FUNCTION segment._assign_planned(text, text, "any") IS
    'internal: segment_assign(model, row) as the planner rewrites it: the model as planned, and only the feature columns';
CREATE FUNCTION segment._assign_support(internal) RETURNS internal
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segment_assign_support';
COMMENT ON FUNCTION segment._assign_support(internal) IS
    'internal: planner support for segment_assign(model, row) (passes only the feature columns)';
ALTER FUNCTION segment_assign(text, anyelement, integer) SUPPORT segment._assign_support;

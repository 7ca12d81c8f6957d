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

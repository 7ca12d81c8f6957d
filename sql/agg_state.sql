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

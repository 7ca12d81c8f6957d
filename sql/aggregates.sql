-- The aggregates (src/aggregates.rs) over the support functions pgrx generates in schema
-- segment; included last (finalize). Written by hand: pgrx 0.18 generates a wrong
-- deserialize signature for `internal` states.
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

CREATE AGGREGATE segment_davies_bouldin(vec float8[], seg bigint) (
    SFUNC = segment._collect_trans, STYPE = internal,
    FINALFUNC = segment._davies_bouldin_final,
    COMBINEFUNC = segment._collect_combine,
    SERIALFUNC = segment._collect_serial, DESERIALFUNC = segment._collect_deserial,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_davies_bouldin(float8[], bigint) IS
    'Davies-Bouldin index (as sklearn.metrics.davies_bouldin_score); holds its rows, within maintenance_work_mem';

CREATE AGGREGATE segment_silhouette(vec float8[], seg bigint) (
    SFUNC = segment._silhouette_default_trans, STYPE = internal,
    FINALFUNC = segment._silhouette_final,
    COMBINEFUNC = segment._silhouette_combine,
    SERIALFUNC = segment._silhouette_serial, DESERIALFUNC = segment._silhouette_deserial,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_silhouette(float8[], bigint) IS
    'Mean silhouette (as sklearn.metrics.silhouette_score): exact up to 20000 rows, a seeded uniform sample of 20000 above';

CREATE AGGREGATE segment_silhouette(vec float8[], seg bigint, max_sample int, seed bigint) (
    SFUNC = segment._silhouette_trans, STYPE = internal,
    FINALFUNC = segment._silhouette_final,
    COMBINEFUNC = segment._silhouette_combine,
    SERIALFUNC = segment._silhouette_serial, DESERIALFUNC = segment._silhouette_deserial,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_silhouette(float8[], bigint, int, bigint) IS
    'Mean silhouette: exact up to max_sample rows, a uniform sample of max_sample rows (seeded) above';

CREATE AGGREGATE segment_kmeans(vec float8[], k int, seed bigint) (
    SFUNC = segment._collect_kmeans_trans, STYPE = internal,
    FINALFUNC = segment._kmeans_final,
    COMBINEFUNC = segment._collect_combine,
    SERIALFUNC = segment._collect_serial, DESERIALFUNC = segment._collect_deserial,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_kmeans(float8[], int, bigint) IS
    'k-means centroids (float8[][], one row per centroid) of the vectors: seeded k-means++, 4 restarts';

CREATE AGGREGATE segment_kmeans_step(vec float8[], centroids float8[]) (
    SFUNC = segment._kmeans_step_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._kmeans_step_final,
    COMBINEFUNC = segment._kmeans_step_combine,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE segment_kmeans_step(float8[], float8[]) IS
    'One Lloyd iteration: the means of the vectors nearest each centroid (empty clusters keep their centroid)';

-- segment_nearest (src/adhoc.rs)
COMMENT ON FUNCTION segment_nearest(float8[], float8[]) IS
    '1-based index of the nearest row of a centroid matrix';

-- segment_nearest: nearest centroid by squared Euclidean distance, 1-based.
CREATE EXTENSION pg_segment;
SELECT segment_nearest(ARRAY[0.9, 2.1], ARRAY[[0,0],[1,2],[5,5]]::float8[]);
-- ties go to the lower index
SELECT segment_nearest(ARRAY[1, 1]::float8[], ARRAY[[0,1],[2,1]]::float8[]);
-- a one-dimensional array is one centroid
SELECT segment_nearest(ARRAY[7]::float8[], ARRAY[3]::float8[]);
-- NULL in, NULL out (strict)
SELECT segment_nearest(NULL, ARRAY[[0,0]]::float8[]) IS NULL AS is_null;
-- in an ordinary query
SELECT v, segment_nearest(ARRAY[v], ARRAY[[0],[10]]::float8[]) AS seg
FROM (VALUES (1.0::float8), (4.9), (5.1), (12)) t(v) ORDER BY v;
-- errors
SELECT segment_nearest(ARRAY[1,2,3]::float8[], ARRAY[[0,0],[1,2]]::float8[]);
SELECT segment_nearest(ARRAY[1,NULL]::float8[], ARRAY[[0,0]]::float8[]);
SELECT segment_nearest(ARRAY[1,2]::float8[], ARRAY[[0,NULL]]::float8[]);
SELECT segment_nearest(ARRAY[1,2]::float8[], '{}'::float8[]);
SELECT segment_nearest(ARRAY[1,2]::float8[], '{{{1,2}}}'::float8[]);
-- every public function and aggregate is documented for \df+ / \da+
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_segment'
WHERE p.pronamespace = 'public'::regnamespace
ORDER BY 1, 2;

-- requires: pageinspect amcheck
-- The page writer (pg_segment.direct_writes): assignment tables with integer ids laid out
-- a page at a time are exactly what heap_multi_insert writes. Needs the contrib modules
-- pageinspect and amcheck; the runner skips this file (and says so) where they are
-- missing, and there the page writer is never used (see src/sql/pg_compat.rs).
CREATE EXTENSION pg_segment;
-- integer ids: the assignment table is laid out a page at a time (pg_segment.direct_writes,
-- on by default). amcheck finds nothing wrong with the heap or its primary key, and the
-- pages hold exactly what heap_multi_insert writes (direct_writes = off): same page
-- headers, line pointers, tuple headers (but for the inserting command id and hint
-- bits) and tuple data. 1000 rows of int4 ids (int4 + padding) and of int8 ids.
CREATE EXTENSION amcheck;
CREATE EXTENSION pageinspect;
CREATE TABLE pages_src AS
SELECT i AS id4, i::int8 AS id8, (i % 11)::float8 AS x, (i % 7)::float8 AS y FROM generate_series(1, 1000) i;
CREATE VIEW pages_src4 AS SELECT id4, x, y FROM pages_src;
CREATE VIEW pages_src8 AS SELECT id8, x, y FROM pages_src;
SHOW pg_segment.direct_writes;
SELECT k FROM segment_train('pages4_direct', 'pages_src4', 'id4', k => 3, seed => 1);
SELECT k FROM segment_train('pages8_direct', 'pages_src8', 'id8', k => 3, seed => 1);
SET pg_segment.direct_writes = off;
SELECT k FROM segment_train('pages4_heap', 'pages_src4', 'id4', k => 3, seed => 1);
SELECT k FROM segment_train('pages8_heap', 'pages_src8', 'id8', k => 3, seed => 1);
RESET pg_segment.direct_writes;
-- a table's pages as text rows, one per line pointer and tuple ('item': without the hint
-- bits HEAP_XMIN_COMMITTED / INVALID, and without cmin, which differs by command) or one
-- per page header ('header'), each prefixed with its block number
CREATE FUNCTION page_contents(rel regclass, kind text) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT b || ' ' || i.r
    FROM generate_series(0, (pg_relation_size(rel) / 8192)::int - 1) b,
         LATERAL (SELECT row(lp, lp_off, lp_flags, lp_len, t_xmax, t_ctid, t_infomask2,
                             t_infomask & ~768, t_hoff, t_bits, t_data)::text AS r
                  FROM heap_page_items(get_raw_page(rel::text, b)) WHERE kind = 'item'
                  UNION ALL
                  SELECT row(lower, upper, special, pagesize, version, flags, prune_xid)::text
                  FROM page_header(get_raw_page(rel::text, b)) WHERE kind = 'header') i
$$;
CREATE FUNCTION pages_differ(a regclass, b regclass, kind text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT page_contents(a, kind) EXCEPT ALL SELECT page_contents(b, kind))
        UNION ALL
        (SELECT page_contents(b, kind) EXCEPT ALL SELECT page_contents(a, kind))) d
$$;
SELECT m AS model,
       pg_relation_size(t.direct) / 8192 AS pages,
       (SELECT count(*) FROM page_contents(t.direct, 'item')) AS tuples,
       (SELECT count(*) FROM verify_heapam(t.direct)) AS heap_problems,
       EXISTS (SELECT bt_index_check(t.direct_key, true)) AS index_ok,
       pages_differ(t.direct, t.heap, 'item') AS differing_items,
       pages_differ(t.direct, t.heap, 'header') AS differing_pages
FROM unnest(ARRAY['pages4', 'pages8']) m,
     LATERAL (SELECT format('segment.%I', m || '_direct_assignments')::regclass AS direct,
                     format('segment.%I', m || '_direct_assignments_pkey')::regclass AS direct_key,
                     format('segment.%I', m || '_heap_assignments')::regclass AS heap) t;
-- inside the training's transaction: the rows are its own (xmin, not frozen), visible to
-- it, and counted as inserted in the statistics; rolled back, no table is left
BEGIN;
SELECT k FROM segment_train('pages_rolled_back', 'pages_src8', 'id8', k => 3, seed => 1);
SELECT count(*) AS tuples, count(*) FILTER (WHERE t_xmin = pg_current_xact_id()::xid) AS own_xmin,
       count(*) FILTER (WHERE t_infomask & 768 = 768) AS frozen
FROM heap_page_items(get_raw_page('segment.pages_rolled_back_assignments', 0));
SELECT count(*) AS visible FROM segment.pages_rolled_back_assignments;
SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'pages_rolled_back_assignments';
ROLLBACK;
SELECT to_regclass('segment.pages_rolled_back_assignments') AS table_after_rollback;
SELECT segment_drop(m) FROM unnest(ARRAY['pages4_direct', 'pages8_direct', 'pages4_heap', 'pages8_heap']) m;
DROP FUNCTION pages_differ(regclass, regclass, text), page_contents(regclass, text);
DROP VIEW pages_src4, pages_src8;
DROP TABLE pages_src;
DROP EXTENSION pageinspect;
DROP EXTENSION amcheck;


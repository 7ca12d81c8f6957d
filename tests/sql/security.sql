-- Security: no caller's search_path reaches pg_segment's own SQL, models are private
-- to their owner role unless shared, role names of any spelling work, assignment tables
-- cannot be squatted or outlive their model, and column grants suffice for training.
CREATE EXTENSION pg_segment;
SET client_min_messages = notice;
CREATE ROLE sec_analyst;
CREATE ROLE sec_reader;
CREATE ROLE sec_outsider;
CREATE ROLE "SecUpper";
CREATE ROLE "Sec Role-1";
CREATE ROLE "Sëc rôle";
CREATE ROLE sec_team;
GRANT sec_team TO sec_analyst;
CREATE TABLE people (id int PRIMARY KEY, a float8, b float8, region text, ssn text);
INSERT INTO people
SELECT i, (i % 3) * 10 + i % 5, CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 3) * 5 + i % 2 END,
       (ARRAY['north', 'south', 'east'])[i % 3 + 1], 'ssn-' || i
FROM generate_series(1, 300) i;
GRANT SELECT ON people TO sec_analyst, sec_reader, sec_outsider, "SecUpper", "Sec Role-1", "Sëc rôle", sec_team;
-- transactions for segment_rfm and a controlled test for the uplift aggregates
CREATE TABLE orders AS SELECT 1 + i % 40 AS customer_id, date '2024-01-01' + i % 90 AS day,
       (i % 17)::numeric AS amount FROM generate_series(1, 400) i;
CREATE TABLE trial AS SELECT i % 3 AS seg, i % 2 = 0 AS treated, i % 5 < 2 AS converted,
       (i % 11)::float8 AS revenue FROM generate_series(1, 300) i;
GRANT SELECT ON orders, trial TO sec_analyst;

-- 1. The attacker's schema, first in the path (before pg_catalog) and last, for a
--    superuser and for an ordinary role.
\ir include/attacker.psql
\set path 'evil, pg_catalog, public'
\ir include/security_calls.psql
\set path 'public, evil'
\ir include/security_calls.psql
SET ROLE sec_analyst;
\set path 'evil, pg_catalog, public'
\ir include/security_calls.psql
\set path 'public, evil'
\ir include/security_calls.psql
RESET ROLE;
-- ... and the attacker's objects do run when named from that path (the trap is armed):
SET search_path = evil, pg_catalog, public;
SELECT format('%I', 'x'::name);
SELECT count(*) FROM people;
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA evil CASCADE;
DISCARD TEMP;
RESET client_min_messages;

-- 2. Private by default. A superuser trains on a table an sec_analyst sees only partly
--    (row-level security); nobody else reads the model until it is shared.
ALTER TABLE people ENABLE ROW LEVEL SECURITY;
CREATE POLICY partial ON people FOR SELECT USING (id <= 100);
SELECT model, rows_used FROM segment_train('priv', 'people', 'id', '{"a": "standard"}', k => 2);
SET ROLE sec_outsider;
SELECT count(*) AS visible_rows FROM people;
SELECT count(*) FROM segment.priv_assignments;
SELECT (SELECT count(*) FROM segment.models) AS models, (SELECT count(*) FROM segment.versions) AS versions,
       (SELECT count(*) FROM segment.segments) AS segments, (SELECT count(*) FROM segment.profile_data) AS profiles,
       (SELECT count(*) FROM segment.summary) AS summary, (SELECT count(*) FROM segment.profiles) AS profile_view,
       (SELECT count(*) FROM segment.quality) AS quality, (SELECT count(*) FROM segment.grants) AS grants;
SELECT segment_assign('priv', '{"a": 1}'::jsonb);
SELECT segment_assign('priv', p) FROM people p ORDER BY id LIMIT 1;
SELECT segment_label('priv', 1, 'mine now');
SELECT segment_grant('priv', 'sec_outsider');
SELECT segment_drop('priv');
RESET ROLE;
SELECT segment_grant('priv', 'sec_reader') AS granted, segment_grant('priv', 'sec_reader') AS granted_again;
SELECT model, grantee, granted_by FROM segment.grants;
SET ROLE sec_reader;
SELECT count(*) AS assignments_read FROM segment.priv_assignments;
SELECT count(*) AS summary_rows FROM segment.summary;
SELECT segment_assign('priv', '{"a": 1}'::jsonb) IS NOT NULL AS assigns;
SELECT segment_label('priv', 1, 'readers cannot write');
SELECT segment_drop('priv');
DELETE FROM segment.models WHERE name = 'priv';
RESET ROLE;
SELECT segment_revoke('priv', 'sec_reader') AS revoked;
SET ROLE sec_reader;
SELECT count(*) FROM segment.priv_assignments;
SELECT count(*) AS summary_rows FROM segment.summary;
RESET ROLE;
SELECT segment_drop('priv');
ALTER TABLE people DISABLE ROW LEVEL SECURITY;

-- 3. Members of the owner role act for it; others do not.
SET ROLE sec_team;
SELECT model FROM segment_train('team_m', 'people', 'id', '{"a": "standard"}', k => 2);
SET ROLE sec_analyst;  -- a member of sec_team
SELECT segment_label('team_m', 1, 'set by a member'), count(*) > 0 AS reads FROM segment.team_m_assignments;
SELECT segment_drop('team_m');
RESET ROLE;

-- 4. Role names of any spelling: training, ownership, grants.
SET ROLE "SecUpper";
SELECT model FROM segment_train('upper_m', 'people', 'id', '{"a": "standard"}', k => 2);
RESET ROLE;
SET ROLE "Sec Role-1";
SELECT model FROM segment_train('spaced_m', 'people', 'id', '{"a": "standard"}', k => 2);
SELECT segment_grant('spaced_m', '"Sëc rôle"');
RESET ROLE;
SET ROLE "Sëc rôle";
SELECT model FROM segment_train('unicode_m', 'people', 'id', '{"a": "standard"}', k => 2);
SELECT count(*) > 0 AS reads_granted FROM segment.spaced_m_assignments;
RESET ROLE;
SELECT name, owner, pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = to_regclass('segment.' || quote_ident(assignments)))) = current_user AS table_owned_by_extension_owner,
       has_table_privilege(owner, 'segment.' || quote_ident(assignments), 'SELECT') AS owner_reads
FROM segment.models ORDER BY name;
SELECT model, grantee FROM segment.grants;
SET ROLE "SecUpper";
SELECT segment_drop('upper_m');
RESET ROLE;
SET ROLE "Sec Role-1";
SELECT segment_drop('spaced_m');
RESET ROLE;
SET ROLE "Sëc rôle";
SELECT segment_drop('unicode_m');
RESET ROLE;

-- 5. No squatting: a role cannot create, keep or rename an assignment table.
SET ROLE sec_analyst;
SELECT model FROM segment_train('own', 'people', 'id', '{"a": "standard"}', k => 2);
INSERT INTO segment.models (name, source, source_oid, id_column, id_type, spec, params, assignments)
VALUES ('victim', 'people', 'people', 'id', 'int4', '[]', '{}', 'victim_assignments');
SELECT segment._create_assignments('victim');
ALTER TABLE segment.own_assignments RENAME TO victim_assignments;
DROP TABLE segment.own_assignments;
CREATE TABLE segment.victim_assignments (id int);
UPDATE segment.models SET name = 'other' WHERE name = 'own';
UPDATE segment.models SET assignments = 'people' WHERE name = 'own';
DELETE FROM segment.models WHERE name IN ('own', 'victim');
SELECT to_regclass('segment.own_assignments') IS NULL AS table_went_with_its_row;
RESET ROLE;
SELECT model FROM segment_train('victim', 'people', 'id', '{"a": "standard"}', k => 2);
SELECT segment_drop('victim');
SELECT count(*) AS tables_left_in_segment FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'segment' AND c.relname LIKE '%\_assignments';

-- 6. Column grants: SELECT on the id and feature columns suffices; a missing one is named.
CREATE TABLE pii (id int PRIMARY KEY, a float8, b float8, ssn text);
INSERT INTO pii SELECT i, i % 10, i % 7, 'ssn-' || i FROM generate_series(1, 100) i;
GRANT SELECT (id, a, b) ON pii TO sec_analyst;
SET ROLE sec_analyst;
SELECT model, rows_used FROM segment_train('cols', 'pii', 'id', '{"a": "standard", "b": "standard"}', k => 2);
SELECT segment_train('cols2', 'pii', 'id', '{"a": "standard", "ssn": "one_hot"}', k => 2);
SELECT segment_train('cols3', 'pii', 'id', NULL, k => 2);
SELECT segment_drop('cols');
RESET ROLE;

-- 7. Temporary relations named like catalogs change nothing.
CREATE TEMP TABLE pg_attribute (attacker int);
CREATE TEMP TABLE pg_class (attacker int);
CREATE TEMP TABLE models (attacker int);
SELECT model, k FROM segment_train('temps', 'people', 'id', '{"a": "standard", "region": "one_hot"}', k => 2);
SELECT segment_drop('temps');

-- 8. An aggregate of one's own that pairs pg_segment's support functions differently
--    cannot make a final function read another aggregate's state as its own.
CREATE AGGREGATE mixed_up(bigint, bigint) (
    SFUNC = segment._contingency_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._inertia_final);
SELECT mixed_up(id, id % 3) FROM people;
CREATE AGGREGATE mixed_up_combine(float8[], bigint) (
    SFUNC = segment._cluster_stats_trans, STYPE = segment.agg_state,
    FINALFUNC = segment._ari_final);
SELECT mixed_up_combine(ARRAY[a], id % 3) FROM people;
DROP AGGREGATE mixed_up(bigint, bigint);
DROP AGGREGATE mixed_up_combine(float8[], bigint);

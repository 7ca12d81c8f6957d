-- pg_segment 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION pg_segment UPDATE TO '0.2.0'" to load this file. \quit

-- What changed, and why (see CHANGELOG.md):
-- * Security. Every internal statement is immune to the caller's search_path
--   (functions run with search_path = pg_catalog, pg_temp and name everything
--   schema-qualified). Models are private to their owner role and the roles it grants
--   (segment.grants, segment_grant, segment_revoke); the result views apply the
--   catalog's row-level security to whoever reads them (security_invoker). Assignment
--   tables belong to the extension's owner and are readable by the model's owner role
--   and its grantees only; the SQL-callable SECURITY DEFINER helpers that created them
--   are gone (segment_train creates the table itself), and a trigger drops a model's
--   table with its row. Role names of any spelling work (owner defaults no longer fold
--   case).
-- * segment.models.source_oid is a regclass, so dump and restore keep the source.
-- * segment_assign(model, row) is rewritten to segment._assign_planned, which carries
--   the model as planned (planning and execution can no longer disagree); plans that
--   hold a model are invalidated when any model changes.
-- * segment_drop is no longer STRICT: a NULL argument is an error (22004), not NULL.

-- Helpers that are gone.
DROP FUNCTION segment._create_assignments(text);
DROP FUNCTION segment._add_assignments_key(text);
DROP FUNCTION segment._hand_over(segment.models);
DROP FUNCTION segment._model_for_write(text);
DROP FUNCTION segment._drop_assignments(text);
DROP FUNCTION segment._assign_cols(text, integer, text[], "any");

-- Catalog columns.
ALTER TABLE segment.models
    ALTER COLUMN owner SET DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    ALTER COLUMN source_oid TYPE regclass USING source_oid::regclass;
ALTER TABLE segment.versions
    ALTER COLUMN trained_by SET DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole;

-- Policies: replaced below by the private-by-default ones.
DROP POLICY read ON segment.models;
DROP POLICY write ON segment.models;
DROP POLICY read ON segment.versions;
DROP POLICY write ON segment.versions;
DROP POLICY read ON segment.segments;
DROP POLICY write ON segment.segments;
DROP POLICY read ON segment.profile_data;
DROP POLICY write ON segment.profile_data;
DROP FUNCTION segment._owns(text);
REVOKE ALL ON segment.models, segment.versions, segment.segments, segment.profile_data FROM PUBLIC;

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
ALTER TABLE segment.grants ENABLE ROW LEVEL SECURITY;

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
CREATE POLICY read ON segment.grants FOR SELECT
    USING (pg_catalog.pg_has_role(grantee, 'MEMBER') OR segment._owns(model));
CREATE POLICY write ON segment.grants FOR ALL USING (segment._owns(model)) WITH CHECK (segment._owns(model));

GRANT SELECT, INSERT, DELETE ON segment.models, segment.versions,
    segment.segments, segment.profile_data, segment.grants TO PUBLIC;
-- A model's name, owner and assignment table never change after training (the delete
-- trigger and the assignment table's grants rely on that); labels, the current
-- version and a version's training time (written last) may.
GRANT UPDATE (current_version) ON segment.models TO PUBLIC;
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

-- Views: the catalog's row-level security applies to whoever reads them.
ALTER VIEW segment.summary SET (security_invoker = true);
ALTER VIEW segment.profiles SET (security_invoker = true);
ALTER VIEW segment.quality SET (security_invoker = true);

SELECT pg_catalog.pg_extension_config_dump('segment.grants', '');

-- Existing assignment tables: owned by the extension's owner (the role running this
-- update must be a superuser, as for CREATE EXTENSION), readable by the model's owner
-- role only.
DO $$
DECLARE m record;
BEGIN
    FOR m IN SELECT name, assignments, owner FROM segment.models LOOP
        IF pg_catalog.to_regclass(pg_catalog.format('segment.%I', m.assignments)) IS NOT NULL THEN
            EXECUTE pg_catalog.format('ALTER TABLE segment.%I OWNER TO %I', m.assignments,
                (SELECT pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n
                  WHERE n.nspname OPERATOR(pg_catalog.=) 'segment'));
            EXECUTE pg_catalog.format('REVOKE ALL ON segment.%I FROM PUBLIC', m.assignments);
            EXECUTE pg_catalog.format('GRANT SELECT ON segment.%I TO %I', m.assignments,
                pg_catalog.pg_get_userbyid(m.owner));
        END IF;
    END LOOP;
END $$;

-- The planner's new target.
CREATE FUNCTION segment._assign_planned(model text, planned text, VARIADIC cols "any")
RETURNS integer LANGUAGE c STABLE PARALLEL SAFE COST 25
AS 'MODULE_PATHNAME', 'segment_assign_planned';
COMMENT ON FUNCTION segment._assign_planned(text, text, "any") IS
    'internal: segment_assign(model, row) as the planner rewrites it: the model as planned, and only the feature columns';

-- segment_grant / segment_revoke.
CREATE FUNCTION segment."_grant"(
	"model" TEXT,
	"role" oid,
	"grant" bool
) RETURNS bool
VOLATILE
LANGUAGE c
AS 'MODULE_PATHNAME', '_grant_wrapper';
CREATE FUNCTION segment_grant(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT segment._grant(model, role::oid, true) $$;
COMMENT ON FUNCTION segment_grant(text, regrole) IS
    'Let a role (and its members) read a model: catalog rows, assignment table, segment_assign. Owner only.';
CREATE FUNCTION segment_revoke(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT segment._grant(model, role::oid, false) $$;
COMMENT ON FUNCTION segment_revoke(text, regrole) IS
    'Take back segment_grant: the role no longer reads the model. Owner only.';
COMMENT ON FUNCTION segment._grant(text, oid, boolean) IS
    'internal: segment_grant (true) and segment_revoke (false)';

-- NULL arguments are errors (22004), not a NULL result.
ALTER FUNCTION segment_drop(text, boolean) CALLED ON NULL INPUT;

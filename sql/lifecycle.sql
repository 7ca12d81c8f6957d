-- The model lifecycle (src/lifecycle.rs): SQL wrappers around segment._grant, and the
-- comments of the lifecycle functions pgrx generates.
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
COMMENT ON FUNCTION segment_label(text, int, text) IS
    'Label a segment of the current version of a model (owner only)';
COMMENT ON FUNCTION segment_drop(text, boolean) IS
    'Drop a model, its versions and its assignment table (owner only)';

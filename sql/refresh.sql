-- The model lifecycle after training (src/train/refresh.rs): the comments of the
-- functions pgrx generates.
COMMENT ON FUNCTION segment_refresh(text, regclass, int, boolean, boolean, text, int, bigint) IS
    'Retrain a model into a new version whose segments keep their ids and labels where they are still the same customers (owner only)';
COMMENT ON FUNCTION segment_promote(text, int) IS
    'Make a kept version of a model current (a candidate, or a rollback) and rewrite its assignment table (owner only)';

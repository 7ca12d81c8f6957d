-- Training (src/train/mod.rs): the comment of the function pgrx generates.
COMMENT ON FUNCTION segment_train(text, regclass, text, jsonb, int, int, int, bigint, int, int, float8) IS
    'Train a k-means segmentation model on a table or view; stores it in schema segment and writes segment.<model>_assignments';

-- Drift (src/train/drift.rs): the comment of the function pgrx generates.
COMMENT ON FUNCTION segment_drift(text, regclass) IS
    'How far a source has drifted from the training data of a model''s current version: PSI, Jensen-Shannon distance and band per feature and for the segment shares, recorded in segment.drift_history (owner only)';

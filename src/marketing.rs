//! The marketer's layer: `segment.health` (each segment rated substantial, stable,
//! homogeneous and distinct, sql/health.sql), `segment_rfm` (RFM scores and named
//! segments from a transactions table, sql/rfm.sql) and the uplift aggregates of
//! controlled tests per segment.

// segment.health, its thresholds and segment_health_settings: sql/health.sql (catalog
// tables only, so anywhere after the bootstrap).
pgrx::extension_sql_file!("../sql/health.sql", name = "health");

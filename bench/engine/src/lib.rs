//! The engine modules of pg_segment (src/engine), compiled as a plain library so they
//! can be benchmarked and cross-checked against other implementations without pgrx.
#![deny(unsafe_code)]

#[path = "../../../src/engine/error.rs"]
pub mod error;
#[path = "../../../src/engine/kmeans.rs"]
pub mod kmeans;
#[path = "../../../src/engine/matching.rs"]
pub mod matching;
#[path = "../../../src/engine/metrics.rs"]
pub mod metrics;
#[path = "../../../src/engine/sample.rs"]
pub mod sample;

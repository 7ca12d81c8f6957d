//! Segment-quality metrics: inertia, Davies–Bouldin, Calinski–Harabasz, silhouette (exact
//! and seeded-sampled), adjusted Rand index, normalized mutual information and per-cluster
//! summaries — plus the mergeable states behind the ad-hoc aggregates ([`ClusterStats`],
//! [`Contingency`], [`Reservoir`]) and their compact, versioned, validated byte format.
//!
//! Definitions and special cases follow scikit-learn (`sklearn.metrics`): labels are
//! arbitrary integers, mapped to dense indices in sorted order like `LabelEncoder`;
//! DB/CH/silhouette need 2 ..= n-1 distinct labels; a singleton cluster has silhouette 0;
//! CH is 1.0 when the within-cluster dispersion is 0; ARI/NMI return 1.0 for labelings
//! that agree up to a permutation (including two one-cluster labelings). Sums that can
//! lose precision are compensated (Neumaier) or two-pass, and every distance is computed
//! so that it agrees with the exact value to ~1e-11 relative (see the silhouette kernel).
//!
//! Threads: the exact silhouette may use up to [`DEFAULT_MAX_THREADS`] threads through
//! `std::thread::scope`, and the per-cluster passes behind Davies–Bouldin,
//! Calinski–Harabasz and the cluster summaries split large inputs (rows × features ≥
//! 2^20) over two threads, each summing a fixed half of the rows, merged in order (so the
//! result does not depend on timing). Those threads only do arithmetic on buffers owned
//! here: they never call into Postgres. The interrupt callback runs only on the calling
//! thread.
//!
//! Layout (one job per file):
//! - `passes.rs`: input checks, dense label indices, the compensated (Neumaier) sum and
//!   the blocked per-cluster passes (means, spreads) shared by the dispersion metrics.
//! - `dispersion.rs`: [`inertia`], [`davies_bouldin`], [`calinski_harabasz`],
//!   [`cluster_summaries`].
//! - `silhouette_kernel.rs`: the exact silhouette's packed panels and the portable
//!   distance-tile kernel; its AVX2+FMA tile and the dispatch to it live in
//!   `crate::simd` (`simd/silhouette_avx2.rs`).
//! - `silhouette.rs`: the silhouette API (exact, sampled, of a reservoir), threads and
//!   the memory estimate.
//! - `agreement.rs`: [`adjusted_rand_index`], [`normalized_mutual_info`], [`Contingency`].
//! - `cluster_stats.rs`: [`ClusterStats`], the mergeable per-cluster sums.
//! - The reservoir sample ([`Reservoir`]) lives in [`crate::sample`].
//! - `tests/`: the tests, one file per topic.

mod agreement;
mod cluster_stats;
mod dispersion;
mod passes;
mod silhouette;
pub(crate) mod silhouette_kernel;
#[cfg(test)]
mod tests;

pub use crate::sample::{Reservoir, SampleItem};
pub use agreement::Contingency;
// The scikit-learn-shaped entry points below are what the fixture tests call; the
// extension goes through the mergeable states (Contingency, Reservoir) instead.
#[cfg(test)]
pub(crate) use agreement::{adjusted_rand_index, normalized_mutual_info};
pub use cluster_stats::ClusterStats;
#[cfg(test)]
pub(crate) use dispersion::cluster_summaries;
pub use dispersion::{
    calinski_harabasz, davies_bouldin, davies_bouldin_calinski_harabasz, inertia,
};
#[cfg(test)]
pub(crate) use silhouette::silhouette_sampled;
pub use silhouette::{
    silhouette_kernel, silhouette_memory_bytes, silhouette_of_reservoir, silhouette_samples,
    silhouette_samples_threads, silhouette_score,
};
pub use silhouette_kernel::{Silhouette, DEFAULT_MAX_THREADS};

#[allow(unused_imports)]
use crate::codec::*;
#[allow(unused_imports)]
use {
    agreement::*, cluster_stats::*, dispersion::*, passes::*, silhouette::*, silhouette_kernel::*,
};

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

use ndarray::{Array2, ArrayView2};
#[cfg(test)]
use rand::SeedableRng;
#[cfg(test)]
use rand_chacha::ChaCha8Rng;

use crate::error::EngineError;

//! Ad-hoc aggregates that need no catalog: quality metrics over `(vector, segment)`
//! pairs, agreement between two labelings, and k-means itself.
//!
//! Each aggregate keeps an engine state behind an `internal` pointer allocated in the
//! aggregate's memory context. Where the math combines exactly (per-cluster
//! count/mean/M2, contingency tables, the k-means step, concatenated samples) the
//! aggregate is PARALLEL SAFE with combine / serialize / deserialize functions; the
//! `CREATE AGGREGATE` statements are written by hand (pgrx 0.18 generates a wrong
//! deserialize signature for `internal` states). The support functions live in schema
//! `segment` with a leading underscore: they are not for direct use.
use crate::engine::kmeans::{self, StepState};
use crate::engine::metrics::{self, ClusterStats, Contingency, Reservoir};
use crate::engine::EngineError;
use crate::error::{raise, raise_engine, Code};
use crate::pg::agg_state::{
    combine_states, deserialize_state, serialize_state, state_mut, state_ref, AggState,
};
use crate::pg::arrays::Matrix;
use ndarray::{Array2, ArrayView2};
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal};

/// Exact silhouette up to this many rows; a seeded uniform sample of this size above.
pub const SILHOUETTE_MAX_SAMPLE: i32 = 20_000;

impl AggState for ClusterStats {
    const WHAT: &'static str = "cluster metric aggregate";
    fn serialize(&self) -> Vec<u8> {
        self.to_bytes()
    }
    fn deserialize(bytes: &[u8]) -> Result<Self, EngineError> {
        Self::from_bytes(bytes)
    }
    fn absorb(&mut self, other: &Self) -> Result<(), EngineError> {
        self.merge(other)
    }
}

impl AggState for Contingency {
    const WHAT: &'static str = "segment_ari";
    fn serialize(&self) -> Vec<u8> {
        self.to_bytes()
    }
    fn deserialize(bytes: &[u8]) -> Result<Self, EngineError> {
        Self::from_bytes(bytes)
    }
    fn absorb(&mut self, other: &Self) -> Result<(), EngineError> {
        self.merge(other);
        Ok(())
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
}

/// The silhouette aggregate's state: a seeded reservoir of (vector, segment).
type Sample = Reservoir<(Vec<f64>, i64)>;

impl AggState for Sample {
    const WHAT: &'static str = "segment_silhouette";
    fn serialize(&self) -> Vec<u8> {
        self.to_bytes()
    }
    fn deserialize(bytes: &[u8]) -> Result<Self, EngineError> {
        Self::from_bytes(bytes)
    }
    fn absorb(&mut self, other: &Self) -> Result<(), EngineError> {
        self.merge(other.clone());
        Ok(())
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
}

impl AggState for Collected {
    const WHAT: &'static str = "segment aggregate";
    fn serialize(&self) -> Vec<u8> {
        self.to_bytes()
    }
    fn deserialize(bytes: &[u8]) -> Result<Self, EngineError> {
        Self::from_bytes(bytes)
    }
    fn absorb(&mut self, other: &Self) -> Result<(), EngineError> {
        self.merge(other)
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
}

impl AggState for StepCarry {
    const WHAT: &'static str = "segment_kmeans_step";
    fn serialize(&self) -> Vec<u8> {
        self.to_bytes()
    }
    fn deserialize(bytes: &[u8]) -> Result<Self, EngineError> {
        Self::from_bytes(bytes)
    }
    fn absorb(&mut self, other: &Self) -> Result<(), EngineError> {
        self.step.merge(&other.step)
    }
}

/// The combine, serialize and deserialize support functions of one state type.
macro_rules! state_support {
    ($ty:ty, $combine:ident, $serial:ident, $deserial:ident) => {
        /// Combine: merge two partial states (exact).
        #[pg_extern(immutable, parallel_safe)]
        fn $combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
            combine_states::<$ty>(a, b, fcinfo)
        }

        /// Serialize a partial state for the leader.
        #[pg_extern(immutable, parallel_safe, strict)]
        fn $serial(state: Internal) -> Vec<u8> {
            serialize_state::<$ty>(state)
        }

        /// Deserialize a partial state into the aggregate memory context.
        #[pg_extern(immutable, parallel_safe, strict)]
        fn $deserial(
            bytes: &[u8],
            _internal: Internal,
            fcinfo: pg_sys::FunctionCallInfo,
        ) -> Internal {
            deserialize_state::<$ty>(bytes, fcinfo)
        }
    };
}

fn vector<'a>(v: &'a Array<'_, f64>, what: &str) -> &'a [f64] {
    crate::pg::arrays::vector(v, what)
}

// ---------------------------------------------------------------------------------------
// Per-cluster statistics: segment_inertia, segment_calinski_harabasz
// ---------------------------------------------------------------------------------------

#[pg_schema]
mod segment {
    use super::*;

    /// Transition: add `(vec, seg)` to per-cluster count/mean/M2. NULLs are skipped.
    #[pg_extern(immutable, parallel_safe)]
    fn _cluster_stats_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        seg: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let mut state = state;
        let (Some(vec), Some(seg)) = (vec, seg) else {
            return state;
        };
        let x = vector(&vec, "vec");
        let st = state_mut(&mut state, fcinfo, "segment_calinski_harabasz", || {
            ClusterStats::new(x.len())
        });
        st.push(seg, x)
            .unwrap_or_else(|e| raise_engine(e, "cluster metric aggregate"));
        state
    }

    state_support!(
        ClusterStats,
        _cluster_stats_combine,
        _cluster_stats_serial,
        _cluster_stats_deserial
    );

    /// Final: within-segment sum of squared distances to the segment means.
    #[pg_extern(immutable, parallel_safe)]
    fn _inertia_final(state: Internal) -> Option<f64> {
        state_ref::<ClusterStats>(&state, ClusterStats::WHAT).map(ClusterStats::within_ss)
    }

    /// Final: the Calinski-Harabasz index.
    #[pg_extern(immutable, parallel_safe)]
    fn _calinski_harabasz_final(state: Internal) -> Option<f64> {
        let st = state_ref::<ClusterStats>(&state, ClusterStats::WHAT)?;
        Some(
            st.calinski_harabasz()
                .unwrap_or_else(|e| raise_engine(e, "segment_calinski_harabasz")),
        )
    }

    // -----------------------------------------------------------------------------------
    // Contingency tables: segment_ari, segment_nmi
    // -----------------------------------------------------------------------------------

    /// Transition: count the pair `(a, b)` in the contingency table. NULLs are skipped.
    #[pg_extern(immutable, parallel_safe)]
    fn _contingency_trans(
        state: Internal,
        a: Option<i64>,
        b: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let mut state = state;
        let (Some(a), Some(b)) = (a, b) else {
            return state;
        };
        state_mut(&mut state, fcinfo, "segment_ari", Contingency::new).push(a, b);
        state
    }

    state_support!(
        Contingency,
        _contingency_combine,
        _contingency_serial,
        _contingency_deserial
    );

    /// Final: adjusted Rand index.
    #[pg_extern(immutable, parallel_safe)]
    fn _ari_final(state: Internal) -> Option<f64> {
        let st = state_ref::<Contingency>(&state, Contingency::WHAT)?;
        Some(st.ari().unwrap_or_else(|e| raise_engine(e, "segment_ari")))
    }

    /// Final: normalized mutual information (arithmetic normalization).
    #[pg_extern(immutable, parallel_safe)]
    fn _nmi_final(state: Internal) -> Option<f64> {
        let st = state_ref::<Contingency>(&state, Contingency::WHAT)?;
        Some(st.nmi().unwrap_or_else(|e| raise_engine(e, "segment_nmi")))
    }

    // -----------------------------------------------------------------------------------
    // Collected rows: segment_davies_bouldin, segment_kmeans
    // -----------------------------------------------------------------------------------

    /// Transition: gather `(vec, seg)` (Davies-Bouldin). NULL vectors are skipped.
    #[pg_extern(immutable, parallel_safe)]
    fn _collect_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        seg: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let mut state = state;
        let Some(vec) = vec else { return state };
        let x = vector(&vec, "vec");
        let st = state_mut(&mut state, fcinfo, "segment aggregate", || {
            Collected::new(x.len())
        });
        st.push(x, seg.unwrap_or(0));
        state
    }

    /// Transition: gather `vec` for `segment_kmeans`. NULL vectors are skipped.
    #[pg_extern(immutable, parallel_safe)]
    fn _collect_kmeans_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        k: Option<i32>,
        seed: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let mut state = state;
        let Some(vec) = vec else { return state };
        let x = vector(&vec, "vec");
        let st = state_mut(&mut state, fcinfo, "segment_kmeans", || {
            Collected::new(x.len())
        });
        st.k = k;
        st.seed = seed.unwrap_or(0);
        st.push(x, 0);
        state
    }

    state_support!(
        Collected,
        _collect_combine,
        _collect_serial,
        _collect_deserial
    );

    /// Final: the Davies-Bouldin index of the gathered rows.
    #[pg_extern(immutable, parallel_safe)]
    fn _davies_bouldin_final(state: Internal) -> Option<f64> {
        let st = state_ref::<Collected>(&state, Collected::WHAT)?;
        let x = st.view();
        Some(
            metrics::davies_bouldin(x, &st.labels)
                .unwrap_or_else(|e| raise_engine(e, "segment_davies_bouldin")),
        )
    }

    /// Final: k-means centroids (seeded k-means++, 4 restarts) as float8[][].
    #[pg_extern(immutable, parallel_safe)]
    fn _kmeans_final(state: Internal) -> Option<Matrix> {
        let st = state_ref::<Collected>(&state, Collected::WHAT)?;
        let k = st.k.unwrap_or_else(|| {
            raise(
                Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "segment_kmeans: k must not be NULL",
                None,
            )
        });
        if k < 1 {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("segment_kmeans: k must be at least 1, got {k}"),
                None,
            );
        }
        let params = kmeans::KMeansParams::new(k as usize)
            .seed(st.seed as u64)
            .n_init(4);
        let r = kmeans::fit(st.view(), &params, &mut crate::pg::PgHooks)
            .unwrap_or_else(|e| raise_engine(e, "segment_kmeans"));
        Some(Matrix::from_array(&r.centroids))
    }

    // -----------------------------------------------------------------------------------
    // Reservoir sample: segment_silhouette
    // -----------------------------------------------------------------------------------

    /// Transition of the two-argument form: default sample size and seed.
    #[pg_extern(immutable, parallel_safe)]
    fn _silhouette_default_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        seg: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        _silhouette_trans(state, vec, seg, None, None, fcinfo)
    }

    /// Transition: offer `(vec, seg)` to the seeded reservoir sample.
    #[pg_extern(immutable, parallel_safe)]
    fn _silhouette_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        seg: Option<i64>,
        max_sample: Option<i32>,
        seed: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let mut state = state;
        let (Some(vec), Some(seg)) = (vec, seg) else {
            return state;
        };
        let x = vector(&vec, "vec");
        let cap = max_sample.unwrap_or(SILHOUETTE_MAX_SAMPLE);
        if cap < 2 {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("segment_silhouette: max_sample must be at least 2, got {cap}"),
                None,
            );
        }
        let st = state_mut(&mut state, fcinfo, "segment_silhouette", || {
            Sample::new(cap as usize, seed.unwrap_or(0) as u64)
        });
        st.push((x.to_vec(), seg));
        state
    }

    state_support!(
        Sample,
        _silhouette_combine,
        _silhouette_serial,
        _silhouette_deserial
    );

    /// Final: mean silhouette of the sample (exact when it holds every row).
    #[pg_extern(immutable, parallel_safe)]
    fn _silhouette_final(state: Internal) -> Option<f64> {
        let st = state_ref::<Sample>(&state, Sample::WHAT)?;
        let s = metrics::silhouette_of_reservoir(st, &mut || {
            check_for_interrupts!();
            Ok(())
        })
        .unwrap_or_else(|e| raise_engine(e, "segment_silhouette"));
        if !s.exact {
            notice!(
                "segment_silhouette: sampled {} of {} rows (seeded); pass a larger max_sample for an exact value",
                s.sample_size,
                st.seen()
            );
        }
        Some(s.score)
    }

    // -----------------------------------------------------------------------------------
    // One k-means (Lloyd) step: segment_kmeans_step
    // -----------------------------------------------------------------------------------

    /// Transition: add `vec` to the sums of its nearest centroid.
    #[pg_extern(immutable, parallel_safe)]
    fn _kmeans_step_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        centroids: Option<Array<'_, f64>>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let mut state = state;
        let (Some(vec), Some(centroids)) = (vec, centroids) else {
            return state;
        };
        let x = vector(&vec, "vec");
        let (c, k, d) = crate::pg::arrays::matrix(centroids, "centroids");
        let st = state_mut(&mut state, fcinfo, "segment_kmeans_step", || StepCarry {
            step: StepState::new(k, d),
            centroids: c.clone(),
        });
        let view = ArrayView2::from_shape((k, d), &c).expect("matrix shape");
        st.step
            .add(view, x)
            .unwrap_or_else(|e| raise_engine(e, "segment_kmeans_step"));
        state
    }

    state_support!(
        StepCarry,
        _kmeans_step_combine,
        _kmeans_step_serial,
        _kmeans_step_deserial
    );

    /// Final: the new centroids (empty clusters keep their centroid).
    #[pg_extern(immutable, parallel_safe)]
    fn _kmeans_step_final(state: Internal) -> Option<Matrix> {
        let st = state_ref::<StepCarry>(&state, StepCarry::WHAT)?;
        let (k, d) = (st.step.k(), st.step.d());
        let old = ArrayView2::from_shape((k, d), &st.centroids).expect("matrix shape");
        let new: Array2<f64> = st.step.new_centroids(old);
        Some(Matrix::from_array(&new))
    }
}

/// Rows gathered for aggregates that need all of them (Davies–Bouldin, k-means). Combines
/// exactly by concatenation. Checked against `maintenance_work_mem`.
#[derive(Clone)]
struct Collected {
    d: usize,
    data: Vec<f64>,
    labels: Vec<i64>,
    k: Option<i32>,
    seed: i64,
}

impl Collected {
    fn new(d: usize) -> Self {
        Collected {
            d,
            data: Vec::new(),
            labels: Vec::new(),
            k: None,
            seed: 0,
        }
    }

    fn push(&mut self, x: &[f64], label: i64) {
        if x.len() != self.d {
            raise_engine(
                EngineError::DimensionMismatch {
                    expected: self.d,
                    got: x.len(),
                },
                "segment aggregate: vectors must all have the same length",
            );
        }
        if self.data.len().is_multiple_of(65_536) {
            check_budget((self.data.len() + x.len()) * 8 + self.labels.len() * 8);
        }
        self.data.extend_from_slice(x);
        self.labels.push(label);
    }

    fn merge(&mut self, other: &Collected) -> Result<(), EngineError> {
        if other.d != self.d {
            return Err(EngineError::DimensionMismatch {
                expected: self.d,
                got: other.d,
            });
        }
        check_budget((self.data.len() + other.data.len()) * 8);
        self.data.extend_from_slice(&other.data);
        self.labels.extend_from_slice(&other.labels);
        if self.k.is_none() {
            self.k = other.k;
            self.seed = other.seed;
        }
        Ok(())
    }

    fn view(&self) -> ArrayView2<'_, f64> {
        ArrayView2::from_shape((self.labels.len(), self.d), &self.data).expect("rows x d")
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.data.len() * 8 + self.labels.len() * 8);
        b.extend_from_slice(b"PSCL\x01");
        b.extend_from_slice(&(self.d as u64).to_le_bytes());
        b.extend_from_slice(&(self.labels.len() as u64).to_le_bytes());
        b.extend_from_slice(&self.k.map_or(-1i64, i64::from).to_le_bytes());
        b.extend_from_slice(&self.seed.to_le_bytes());
        for v in &self.data {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for l in &self.labels {
            b.extend_from_slice(&l.to_le_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8]) -> Result<Self, EngineError> {
        let bad = || EngineError::Internal("malformed segment aggregate state".into());
        if b.len() < 37 || &b[..5] != b"PSCL\x01" {
            return Err(bad());
        }
        let word = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let d = word(5) as usize;
        let n = word(13) as usize;
        let k = word(21) as i64;
        let seed = word(29) as i64;
        let need = n
            .checked_mul(d + 1)
            .and_then(|m| m.checked_mul(8))
            .and_then(|m| m.checked_add(37))
            .ok_or_else(bad)?;
        if b.len() != need {
            return Err(bad());
        }
        let mut o = 37;
        let mut data = Vec::with_capacity(n * d);
        for _ in 0..n * d {
            data.push(f64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes")));
            o += 8;
        }
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            labels.push(i64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes")));
            o += 8;
        }
        Ok(Collected {
            d,
            data,
            labels,
            k: (k >= 0).then_some(k as i32),
            seed,
        })
    }
}

/// A k-means step state together with the centroids it steps from.
struct StepCarry {
    step: StepState,
    centroids: Vec<f64>,
}

impl StepCarry {
    fn to_bytes(&self) -> Vec<u8> {
        let s = self.step.to_bytes();
        let mut b = Vec::with_capacity(8 + s.len() + self.centroids.len() * 8);
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(&s);
        for v in &self.centroids {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8]) -> Result<Self, EngineError> {
        let bad = || EngineError::Internal("malformed segment_kmeans_step state".into());
        if b.len() < 8 {
            return Err(bad());
        }
        let len = u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as usize;
        let rest = b.get(8..).ok_or_else(bad)?;
        let s = rest.get(..len).ok_or_else(bad)?;
        let step = StepState::from_bytes(s)?;
        let c = &rest[len..];
        if c.len() != step.k() * step.d() * 8 {
            return Err(bad());
        }
        let centroids = c
            .chunks_exact(8)
            .map(|w| f64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        Ok(StepCarry { step, centroids })
    }
}

/// Raise 54000 when gathered rows would exceed `maintenance_work_mem`.
fn check_budget(bytes: usize) {
    let budget = crate::pg::maintenance_work_mem();
    if bytes > budget {
        raise(
            Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("segment aggregate needs more than maintenance_work_mem ({budget} bytes) to hold its rows"),
            Some("Raise maintenance_work_mem, aggregate a sample (TABLESAMPLE), or train with segment_train, which samples.".into()),
        );
    }
}

// CREATE AGGREGATE statements and comments: sql/aggregates.sql, after every function.
pgrx::extension_sql_file!("../sql/aggregates.sql", name = "aggregates", finalize);

//! Ad-hoc aggregates that need no catalog: quality metrics over `(vector, segment)`
//! pairs, agreement between two labelings, and k-means itself.
//!
//! The aggregates whose math combines exactly over any split of the rows (per-cluster
//! count/mean/M2: `segment_inertia`, `segment_calinski_harabasz`; contingency tables:
//! `segment_ari`, `segment_nmi`; the k-means step) keep their state in the SQL type
//! `segment.agg_state` (see `pg::expanded`): a real type with a combine function, so
//! PostgreSQL runs them in parallel and Citus pushes them down to its workers. The
//! aggregates that gather rows (`segment_davies_bouldin`, `segment_kmeans`,
//! `segment_silhouette`'s sample) keep an engine state behind an `internal` pointer, with
//! combine / serialize / deserialize functions for parallel query.
//!
//! The `CREATE AGGREGATE` statements are written by hand (sql/aggregates.sql; pgrx 0.18
//! generates a wrong deserialize signature for `internal` states), and so are the
//! `CREATE FUNCTION`s of the `segment.agg_state` support functions (sql/agg_state.sql:
//! pgrx sees their state as `internal`). The support functions live in schema `segment`
//! with a leading underscore: they are not for direct use.
use crate::engine::gathered::Gathered;
use crate::engine::kmeans::{self, CentroidStep};
use crate::engine::metrics::{self, ClusterStats, Contingency, Reservoir};
use crate::error::{raise, raise_engine, Code};
use crate::pg::agg_state::{
    combine_states, deserialize_state, serialize_state, state_mut, state_ref, AggState,
};
use crate::pg::arrays::Matrix;
use crate::pg::expanded::{self, FlatState, Kind};
use ndarray::ArrayView2;
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal};

/// Exact silhouette up to this many rows; a seeded uniform sample of this size above.
pub const SILHOUETTE_MAX_SAMPLE: i32 = crate::engine::defaults::AGGREGATE_SILHOUETTE_SAMPLE as i32;

/// The budget of the aggregates that gather their rows.
fn budget() -> usize {
    crate::pg::maintenance_work_mem()
}

crate::impl_agg_state!(ClusterStats, "cluster metric aggregate", |a, b| a.merge(b));
crate::impl_agg_state!(Contingency, "segment_ari", |a, b| {
    a.merge(b);
    Ok(())
});
/// The silhouette aggregate's state: a seeded reservoir of (vector, segment).
type Sample = Reservoir<(Vec<f64>, i64)>;
crate::impl_agg_state!(Sample, "segment_silhouette", |a, b| {
    a.merge(b.clone());
    Ok(())
});
crate::impl_agg_state!(Gathered, "segment aggregate", |a, b| a.merge(b, budget()));
crate::impl_agg_state!(CentroidStep, "segment_kmeans_step", |a, b| a
    .step
    .merge(&b.step));

impl FlatState for ClusterStats {
    const NAME: &'static str = "cluster_stats";
    const MAGIC: &'static [u8; 4] = crate::engine::CLUSTER_STATS_MAGIC;
}
impl FlatState for Contingency {
    const NAME: &'static str = "contingency";
    const MAGIC: &'static [u8; 4] = crate::engine::CONTINGENCY_MAGIC;
}
impl FlatState for CentroidStep {
    const NAME: &'static str = "kmeans_step";
    const MAGIC: &'static [u8; 4] = crate::engine::CENTROID_STEP_MAGIC;
}

/// What a `segment.agg_state` may hold.
const KINDS: &[Kind] = &[
    Kind::of::<ClusterStats>(),
    Kind::of::<Contingency>(),
    Kind::of::<CentroidStep>(),
    Kind::of::<crate::engine::uplift::RateAgg>(),
    Kind::of::<crate::engine::uplift::MeanAgg>(),
];

/// The combine, serialize and deserialize support functions of one `internal` state.
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
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _cluster_stats_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        seg: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let (Some(vec), Some(seg)) = (vec, seg) else {
            return state;
        };
        let x = vector(&vec, "vec");
        let (state, st) = expanded::state_update(state, fcinfo, || ClusterStats::new(x.len()));
        st.push(seg, x)
            .unwrap_or_else(|e| raise_engine(e, "cluster metric aggregate"));
        state
    }

    /// Combine: merge two partial states (exact).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _cluster_stats_combine(
        a: Internal,
        b: Internal,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        expanded::combine::<ClusterStats>(a, b, fcinfo)
    }

    /// Final: within-segment sum of squared distances to the segment means.
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _inertia_final(state: Internal) -> Option<f64> {
        expanded::state_view::<ClusterStats>(state).map(|st| st.within_ss())
    }

    /// Final: the Calinski-Harabasz index.
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _calinski_harabasz_final(state: Internal) -> Option<f64> {
        let st = expanded::state_view::<ClusterStats>(state)?;
        Some(
            st.calinski_harabasz()
                .unwrap_or_else(|e| raise_engine(e, "segment_calinski_harabasz")),
        )
    }

    // -----------------------------------------------------------------------------------
    // Contingency tables: segment_ari, segment_nmi
    // -----------------------------------------------------------------------------------

    /// Transition: count the pair `(a, b)` in the contingency table. NULLs are skipped.
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _contingency_trans(
        state: Internal,
        a: Option<i64>,
        b: Option<i64>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let (Some(a), Some(b)) = (a, b) else {
            return state;
        };
        let (state, st) = expanded::state_update(state, fcinfo, Contingency::new);
        st.push(a, b);
        state
    }

    /// Combine: merge two partial contingency tables (exact).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _contingency_combine(
        a: Internal,
        b: Internal,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        expanded::combine::<Contingency>(a, b, fcinfo)
    }

    /// Final: adjusted Rand index.
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _ari_final(state: Internal) -> Option<f64> {
        let st = expanded::state_view::<Contingency>(state)?;
        Some(st.ari().unwrap_or_else(|e| raise_engine(e, "segment_ari")))
    }

    /// Final: normalized mutual information (arithmetic normalization).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _nmi_final(state: Internal) -> Option<f64> {
        let st = expanded::state_view::<Contingency>(state)?;
        Some(st.nmi().unwrap_or_else(|e| raise_engine(e, "segment_nmi")))
    }

    // -----------------------------------------------------------------------------------
    // Gathered rows: segment_davies_bouldin, segment_kmeans
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
            Gathered::new(x.len())
        });
        st.push(x, seg.unwrap_or(0), budget())
            .unwrap_or_else(|e| raise_engine(e, "segment aggregate"));
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
            Gathered::new(x.len())
        });
        st.k = k;
        st.seed = seed.unwrap_or(0);
        st.push(x, 0, budget())
            .unwrap_or_else(|e| raise_engine(e, "segment_kmeans"));
        state
    }

    state_support!(
        Gathered,
        _collect_combine,
        _collect_serial,
        _collect_deserial
    );

    /// Final: the Davies-Bouldin index of the gathered rows.
    #[pg_extern(immutable, parallel_safe)]
    fn _davies_bouldin_final(state: Internal) -> Option<f64> {
        let st = state_ref::<Gathered>(&state, Gathered::WHAT)?;
        let x = st.view();
        Some(
            metrics::davies_bouldin(x, st.labels())
                .unwrap_or_else(|e| raise_engine(e, "segment_davies_bouldin")),
        )
    }

    /// Final: k-means centroids (seeded k-means++, 4 restarts) as float8[][].
    #[pg_extern(immutable, parallel_safe)]
    fn _kmeans_final(state: Internal) -> Option<Matrix> {
        let st = state_ref::<Gathered>(&state, Gathered::WHAT)?;
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
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _kmeans_step_trans(
        state: Internal,
        vec: Option<Array<'_, f64>>,
        centroids: Option<Array<'_, f64>>,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        let (Some(vec), Some(centroids)) = (vec, centroids) else {
            return state;
        };
        let x = vector(&vec, "vec");
        // The centroids are the same on every row: once the state holds them, a row whose
        // centroids have the same values is added without parsing them again.
        let same = |st: &CentroidStep| {
            centroids
                .as_slice()
                .is_ok_and(|c| c == st.centroids.as_slice())
        };
        let state = match expanded::state_if(state, same) {
            Ok((state, st)) => {
                let CentroidStep { step, centroids } = st;
                let view = ArrayView2::from_shape((step.k(), step.d()), centroids.as_slice())
                    .expect("matrix shape");
                step.add(view, x)
                    .unwrap_or_else(|e| raise_engine(e, "segment_kmeans_step"));
                return state;
            }
            Err(state) => state,
        };
        let (c, k, d) = crate::pg::arrays::matrix(centroids, "centroids");
        let (state, st) =
            expanded::state_update(state, fcinfo, || CentroidStep::new(c.clone(), k, d));
        let view = ArrayView2::from_shape((k, d), &c).expect("matrix shape");
        st.step
            .add(view, x)
            .unwrap_or_else(|e| raise_engine(e, "segment_kmeans_step"));
        state
    }

    /// Combine: add two partial sums (exact).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _kmeans_step_combine(
        a: Internal,
        b: Internal,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Internal {
        expanded::combine::<CentroidStep>(a, b, fcinfo)
    }

    /// Final: the new centroids (empty clusters keep their centroid).
    #[pg_extern(immutable, parallel_safe, sql = false)]
    fn _kmeans_step_final(state: Internal) -> Option<Matrix> {
        let st = expanded::state_view::<CentroidStep>(state)?;
        Some(Matrix::from_array(&st.new_centroids()))
    }

    // -----------------------------------------------------------------------------------
    // The type segment.agg_state: text `kind:hex`, binary the state's bytes
    // -----------------------------------------------------------------------------------

    /// Text input of `segment.agg_state`.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _agg_state_in(input: &core::ffi::CStr) -> Internal {
        let text = input.to_str().unwrap_or_else(|_| {
            raise(
                Code::ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type segment.agg_state: not UTF-8",
                None,
            )
        });
        Internal::from(Some(expanded::text_in(KINDS, text)))
    }

    /// Text output of `segment.agg_state`: `kind:hex`, exact.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _agg_state_out(state: Internal) -> std::ffi::CString {
        let d = state.unwrap().expect("strict");
        std::ffi::CString::new(expanded::text_out(KINDS, d)).expect("hex has no NUL")
    }

    /// Binary receive of `segment.agg_state`.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _agg_state_recv(buf: Internal) -> Internal {
        Internal::from(Some(expanded::recv(KINDS, buf)))
    }

    /// Binary send of `segment.agg_state`.
    #[pg_extern(immutable, parallel_safe, strict, sql = false)]
    fn _agg_state_send(state: Internal) -> Vec<u8> {
        expanded::send(state.unwrap().expect("strict"))
    }
}

// The type segment.agg_state and its aggregates' support functions: sql/agg_state.sql.
pgrx::extension_sql_file!("../sql/agg_state.sql", name = "agg_state");

// CREATE AGGREGATE statements and comments: sql/aggregates.sql, after every function.
pgrx::extension_sql_file!("../sql/aggregates.sql", name = "aggregates", finalize);

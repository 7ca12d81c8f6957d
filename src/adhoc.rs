//! `segment_nearest`: nearest centroid of an ad-hoc centroid matrix, no catalog needed.
use crate::engine::kmeans;
use crate::error::{raise, Code};
use crate::pg::arrays;
use crate::pg::call_site;
use ndarray::ArrayView2;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Centroids parsed at one call site, reused while the argument stays the same (the
/// usual case: a constant or a scalar subquery).
struct CentroidCache {
    raw: Vec<f64>,
    k: usize,
    d: usize,
}

/// The 1-based index of the centroid (row of `centroids`) nearest to `vec` in squared
/// Euclidean distance; ties go to the lower index. NULL input gives NULL.
///
/// ```sql
/// SELECT segment_nearest(ARRAY[1.0, 2.0], ARRAY[[0, 0], [1, 2]]::float8[]);  -- 2
/// ```
#[pg_extern(immutable, strict, parallel_safe)]
fn segment_nearest(
    vec: Array<'_, f64>,
    centroids: Array<'_, f64>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> i32 {
    let (cache, _) = call_site::slot::<CentroidCache>(fcinfo);
    let same = match (cache.as_ref(), centroids.as_slice()) {
        (Some(c), Ok(s)) => c.raw.as_slice() == s,
        _ => false,
    };
    if !same {
        let (raw, k, d) = arrays::matrix(centroids, "centroids");
        *cache = Some(CentroidCache { raw, k, d });
    }
    let c = cache.as_ref().expect("filled above");
    let x = arrays::vector(&vec, "vec");
    if x.len() != c.d {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!(
                "vec has {} elements but the centroids have {} columns",
                x.len(),
                c.d
            ),
            Some("Every vector must have as many elements as a centroid row.".into()),
        );
    }
    let view = ArrayView2::from_shape((c.k, c.d), &c.raw).expect("matrix shape");
    kmeans::nearest(view, x).index as i32 + 1
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn nearest_picks_closest_row() {
        let got = Spi::get_one::<i32>(
            "SELECT segment_nearest(ARRAY[0.9, 2.1], ARRAY[[0,0],[1,2],[5,5]]::float8[])",
        );
        assert_eq!(got, Ok(Some(2)));
    }

    #[pg_test(error = "vec has 3 elements but the centroids have 2 columns")]
    fn nearest_rejects_dimension_mismatch() {
        Spi::run("SELECT segment_nearest(ARRAY[1,2,3]::float8[], ARRAY[[0,0],[1,2]]::float8[])")
            .unwrap();
    }
}

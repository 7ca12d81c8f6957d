//! Ad-hoc functions and aggregates that need no catalog: `segment_nearest`,
//! `segment_kmeans`, and the quality-metric aggregates.
use super::arrays;
use super::error::{raise, Code};
use pgrx::prelude::*;

/// The 1-based index of the centroid (row of `centroids`) nearest to `vec` in squared
/// Euclidean distance; ties go to the lower index. NULL input gives NULL.
///
/// ```sql
/// SELECT segment_nearest(ARRAY[1.0, 2.0], ARRAY[[0, 0], [1, 2]]::float8[]);  -- 2
/// ```
#[pg_extern(immutable, strict, parallel_safe)]
fn segment_nearest(vec: Array<'_, f64>, centroids: Array<'_, f64>) -> i32 {
    let (c, k, d) = arrays::matrix(centroids, "centroids");
    let x = arrays::vector(&vec, "vec");
    if x.len() != d {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!("vec has {} elements but the centroids have {d} columns", x.len()),
            Some("Every vector must have as many elements as a centroid row.".into()),
        );
    }
    // TEMP until engine::kmeans lands.
    let mut best = (0usize, f64::INFINITY);
    for j in 0..k {
        let s: f64 = (0..d).map(|i| (c[j * d + i] - x[i]).powi(2)).sum();
        if s < best.1 {
            best = (j, s);
        }
    }
    (best.0 + 1) as i32
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

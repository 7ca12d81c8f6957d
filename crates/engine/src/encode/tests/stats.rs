//! The numpy / scikit-learn compatible statistics (`stats.rs`).

use super::*;

#[test]
fn numpy_percentile_and_median() {
    let s = [1.0, 2.0, 3.0, 4.0, 10.0];
    assert_eq!(percentile_sorted(&s, 25.0), 2.0);
    assert_eq!(percentile_sorted(&s, 75.0), 4.0);
    assert_eq!(percentile_sorted(&[1.0, 2.0, 3.0, 4.0], 25.0), 1.75);
    assert_eq!(percentile_sorted(&[5.0], 75.0), 5.0);
    assert_eq!(median_sorted(&[1.0, 2.0, 3.0, 4.0]), 2.5);
}

#[test]
fn fused_standard_stats_are_bit_identical_to_materialized_sums() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for len in (1..300).chain([1000, 4097, 100_003]) {
        // near-constant around a large offset, and plain spread-out values
        let v: Vec<f64> = (0..len)
            .map(|_| match len % 2 {
                0 => 1e6 + rng.gen::<f64>() * 1e-3 * rng.gen::<f64>(),
                _ => rng.gen::<f64>() * 1000.0 - 300.0,
            })
            .collect();
        // the former implementation: materialize deviations and their squares
        let n = len as f64;
        let mean = sum(&v) / n;
        let d: Vec<f64> = v.iter().map(|x| x - mean).collect();
        let d2: Vec<f64> = d.iter().map(|t| t * t).collect();
        let (corr, sq) = stats::sum_deviations(&v, mean);
        assert_eq!(corr.to_bits(), sum(&d).to_bits(), "len {len}");
        assert_eq!(sq.to_bits(), sum(&d2).to_bits(), "len {len}");
        let var = (sum(&d2) - sum(&d) * sum(&d) / n) / n;
        let (m, scale) = standard_stats(&v);
        assert_eq!(m.to_bits(), mean.to_bits());
        let eps = f64::EPSILON;
        let bound = n * eps * var + (n * mean * eps) * (n * mean * eps);
        let want = if var <= bound { 1.0 } else { var.sqrt() };
        assert_eq!(scale.to_bits(), want.to_bits(), "len {len}");
    }
}

//! The pass-based fit: k-means as a sequence of aggregate queries over the source, so
//! that on a Citus distributed table the rows stay on the workers and only k x d-sized
//! states cross the network per pass.
//!
//! 1. The rows whose seeded hash of the id falls under a threshold (a `WHERE` Citus runs
//!    on each shard) are read: about [`SAMPLE_ROWS`] rows. The encoder is fitted on them,
//!    and k-means (k chosen there too when asked) runs on them in memory: its centroids
//!    are the initial centroids.
//! 2. One pass measures the data's total sum of squares (`segment._cluster_pass`), for
//!    scikit-learn's tolerance.
//! 3. Lloyd iterations, each one pass of `segment._kmeans_pass` (the state of
//!    `segment_kmeans_step`) over every row, encoded where it lives by the by-value
//!    `segment_encode`; a last pass gives the inertia and the segment sizes
//!    (`engine::kmeans::lloyd_passes`).
//!
//! Everything after the fit is the sampled training's: the quality figures come from the
//! sample, and the write step assigns every row of the source (on a Citus table, on the
//! workers: distributed.rs).
//!
//! `pg_segment.fit_method` chooses: `auto` (the default) runs passes for a Citus table
//! or a view over a distributed one, in memory otherwise; `passes` and `in_memory` force one.
//! `segment_refresh` fits the same way (its warm start runs on the sample); on Citus it
//! counts the migrations and writes on the workers too (distributed.rs), elsewhere by
//! streaming every row, as a sampled refresh does.
use super::ctx;
use super::source::{PushedSample, Source};
use crate::catalog::LoadedModel;
use crate::engine::encode::FittedEncoder;
use crate::engine::kmeans::{self, CentroidStep, KMeansResult};
use crate::engine::metrics::ClusterStats;
use crate::error::{raise, OrRaise};
use crate::pg::spi;
use ndarray::ArrayView2;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use std::ffi::CString;

/// Rows of the sample the encoder and the initial centroids come from.
pub const SAMPLE_ROWS: usize = 100_000;

/// `pg_segment.fit_method`.
pub static FIT_METHOD: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"auto"));

/// Defines `pg_segment.fit_method` (called from `_PG_init`).
pub fn define_gucs() {
    GucRegistry::define_string_guc(
        c"pg_segment.fit_method",
        c"How segment_train fits k-means: auto, in_memory or passes.",
        c"passes: the k-means iterations run as aggregate queries over the source (on a \
          Citus distributed table they run on the workers), from centroids fitted on a \
          seeded sample; in_memory: the source is read into memory once; auto: passes for \
          a Citus table or a view over a distributed one, in memory otherwise.",
        &FIT_METHOD,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// Whether `segment_train` fits `source` by passes.
pub(super) fn by_passes(model: &str, source: &Source) -> bool {
    let setting = FIT_METHOD
        .get()
        .map(|s| s.to_string_lossy().trim().to_ascii_lowercase())
        .unwrap_or_default();
    match setting.as_str() {
        "passes" => true,
        "in_memory" => false,
        "auto" | "" => is_distributed(source),
        other => raise(
            crate::error::Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{}: unknown pg_segment.fit_method \"{other}\"", ctx(model)),
            Some("Set it to auto, in_memory or passes.".into()),
        ),
    }
}

/// Whether `source` is a Citus table, or a view over a distributed one.
fn is_distributed(source: &Source) -> bool {
    crate::pg::citus::is_citus_table(source.oid)
        || crate::pg::citus::view_over_distributed(source.oid)
}

/// The sample to read: rows whose hash of the id (seeded) is under a threshold that
/// keeps about [`SAMPLE_ROWS`] of `total` (every row when there are not more).
pub(super) fn sample(model: &str, source: &Source, id_column: &str, seed: i64) -> PushedSample {
    // Like the read itself, this runs with the caller's search_path (a view's functions
    // behave as for the caller); everything it names is qualified.
    let total = Spi::get_one::<i64>(&format!(
        "SELECT pg_catalog.count(*) FROM {}",
        source.qualified
    ))
    .unwrap_or_else(|e| spi_failed(model, e))
    .unwrap_or(0)
    .max(0) as u64;
    if total as usize <= SAMPLE_ROWS {
        return PushedSample {
            filter: String::new(),
            expected: total as usize,
            total,
        };
    }
    let fraction = SAMPLE_ROWS as f64 / total as f64;
    // hashtextextended covers the whole int8 range: keep the lowest `fraction` of it.
    let threshold = (-(2f64.powi(63)) + fraction * 2f64.powi(64)) as i64;
    PushedSample {
        filter: format!(
            "pg_catalog.hashtextextended({}::pg_catalog.text, {seed}) OPERATOR(pg_catalog.<) {threshold}",
            spi::ident(id_column)
        ),
        expected: SAMPLE_ROWS + SAMPLE_ROWS / 8,
        total,
    }
}

pub(super) fn spi_failed(model: &str, e: pgrx::spi::SpiError) -> ! {
    raise(
        crate::error::Code::ERRCODE_INTERNAL_ERROR,
        format!("{}: a pass over the source failed: {e}", ctx(model)),
        None,
    )
}

/// A SQL literal of `text` that no setting changes the meaning of (dollar quoting with a
/// tag the text does not contain).
pub(super) fn literal(text: &str) -> String {
    let mut tag = String::from("pgseg");
    while text.contains(&format!("${tag}$")) {
        tag.push('x');
    }
    format!("${tag}${text}${tag}$")
}

/// The schema pg_segment's objects live in, quoted.
pub(super) fn extension_schema() -> String {
    let schema = spi::one::<String>(
        "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
          WHERE e.extname OPERATOR(pg_catalog.=) 'pg_segment'",
        &[],
    )
    .unwrap_or_else(|| "public".into());
    spi::ident(&schema)
}

/// `ROW(s."f1", s."f2", ...)`: the model's features of source row `s`, in the encoder's
/// order, as an anonymous row the by-value functions read by position. Not the whole row
/// `s`: Citus sends a view's whole row to its workers as `ROW(col, ...)` without the
/// column names, which the functions could not map by name.
pub(super) fn features_row(encoder: &FittedEncoder) -> String {
    let cols: Vec<String> = encoder
        .feature_names()
        .iter()
        .map(|f| format!("s.{}", spi::ident(f)))
        .collect();
    format!("ROW({})", cols.join(", "))
}

/// The passes' queries over `source`, each the encoded rows fed to one aggregate.
struct Passes<'a> {
    model: &'a str,
    source: &'a Source,
    id_column: &'a str,
    /// `<schema>.segment_encode('<model>'::<schema>.segment_model, ROW(s.<feature>, ...))`
    encoded: String,
}

impl Passes<'_> {
    /// The bytes of `segment.<agg>(<encoded row><args>)` over every row with an id.
    fn state(&self, agg: &str, args: &str) -> Vec<u8> {
        let sql = format!(
            "SELECT segment._agg_state_send(segment.{agg}({}{args})) FROM {} s WHERE s.{} IS NOT NULL",
            self.encoded,
            self.source.qualified,
            spi::ident(self.id_column)
        );
        check_for_interrupts!();
        Spi::get_one::<Vec<u8>>(&sql)
            .unwrap_or_else(|e| spi_failed(self.model, e))
            .unwrap_or_default()
    }

    /// The data's sum of squares around its mean, and its row count.
    fn total_ss(&self) -> (f64, u64) {
        let bytes = self.state("_cluster_pass", ", 0::pg_catalog.int8");
        if bytes.is_empty() {
            return (0.0, 0);
        }
        let st = ClusterStats::from_bytes(&bytes).or_raise(&ctx(self.model));
        (st.within_ss(), st.n())
    }

    /// One Lloyd pass from `centroids`.
    fn step(
        &self,
        centroids: ArrayView2<f64>,
    ) -> Result<kmeans::StepState, crate::engine::EngineError> {
        let rows: Vec<String> = centroids
            .rows()
            .into_iter()
            .map(|r| {
                let v: Vec<String> = r.iter().map(|x| format!("{x:?}")).collect();
                format!("{{{}}}", v.join(","))
            })
            .collect();
        let lit = literal(&format!("{{{}}}", rows.join(",")));
        let bytes = self.state("_kmeans_pass", &format!(", {lit}::pg_catalog.float8[]"));
        if bytes.is_empty() {
            let (k, d) = centroids.dim();
            return Ok(kmeans::StepState::new(k, d));
        }
        Ok(CentroidStep::from_bytes(&bytes)?.step)
    }
}

/// The fit by passes: Lloyd from the sample fit's centroids (`init`, canonical), over
/// every row of `source`. Returns the fit over every row, with the labels of the sample
/// rows (`sample`, encoded) against its centroids, numbered canonically by the sizes
/// over every row; and the number of rows it used.
#[allow(clippy::too_many_arguments)]
pub(super) fn lloyd(
    model: &str,
    source: &Source,
    id_column: &str,
    encoder: &FittedEncoder,
    init: &KMeansResult,
    sample: ArrayView2<f64>,
    max_iter: usize,
    tol: f64,
) -> (KMeansResult, u64) {
    let c = ctx(model);
    let (k, dim) = init.centroids.dim();
    let segment_ids: Vec<i32> = (1..=k as i32).collect();
    let value = LoadedModel::fitted(model, 0, encoder, init.centroids.view(), &segment_ids);
    let ext = extension_schema();
    let passes = Passes {
        model,
        source,
        id_column,
        encoded: format!(
            "{ext}.segment_encode({}::{ext}.segment_model, {})",
            literal(&crate::model_value::to_text(&value)),
            features_row(encoder)
        ),
    };
    crate::pg::progress::phase(crate::pg::progress::Phase::Iterations);
    let (ss, n) = passes.total_ss();
    let tol_abs = kmeans::tolerance_from_total(ss, n, dim, tol);
    let mut iteration = 0usize;
    let fit = kmeans::lloyd_passes(init.centroids.clone(), tol_abs, max_iter, |centroids| {
        let st = passes.step(centroids)?;
        iteration += 1;
        crate::pg::progress::iteration(iteration, st.inertia(), k);
        debug1!(
            "{c}: pass {iteration}: inertia {} against the centroids it was given",
            st.inertia()
        );
        Ok(st)
    })
    .or_raise(&c);
    let labels = kmeans::assign(sample, fit.centroids.view()).0;
    let mut result = KMeansResult {
        centroids: fit.centroids,
        labels,
        inertia: fit.inertia,
        n_iter: fit.n_iter,
        converged: fit.converged,
        best_run: 0,
    };
    result.canonicalize_by(&fit.counts);
    debug1!(
        "{c}: fitted by {} passes over {n} rows ({} iterations, inertia {})",
        fit.passes + 1,
        result.n_iter,
        result.inertia
    );
    (result, n)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::engine::kmeans::{self, Algorithm, Init, KMeansParams};
    use ndarray::Array2;
    use pgrx::prelude::*;

    /// The matrix of a JSON array of arrays of numbers.
    fn matrix(v: &serde_json::Value) -> Array2<f64> {
        let rows: Vec<Vec<f64>> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        let (k, d) = (rows.len(), rows[0].len());
        Array2::from_shape_vec((k, d), rows.concat()).unwrap()
    }

    /// A fit by passes over a table larger than the sample ends where the in-memory
    /// Lloyd ends from the same initial centroids, over the same encoded rows: the same
    /// centroids and inertia to 1e-9 relative.
    #[pg_test]
    fn passes_end_where_the_in_memory_lloyd_ends() {
        Spi::run(
            "CREATE TABLE pass_src AS
             SELECT i AS id, (i * 7919) % 50 + (i % 3) * 30 AS age,
                    ((i::bigint * 104729) % 1000) / 7.0 + (i % 5) * 40 AS spend,
                    (ARRAY['north', 'south', 'east'])[1 + (i * 31) % 3] AS region
             FROM generate_series(1, 150000) i;
             SET pg_segment.fit_method = 'passes';",
        )
        .unwrap();
        let (sampled, iterations) = Spi::get_two::<bool, i32>(
            "SELECT sampled, iterations FROM segment_train('pass_m', 'pass_src', 'id', k => 5, seed => 3, tol => 1e-6)",
        )
        .unwrap();
        assert_eq!(sampled, Some(true), "150000 rows are more than the sample");
        assert!(iterations.unwrap() >= 1);
        let params =
            Spi::get_one::<pgrx::JsonB>("SELECT params FROM segment.models WHERE name = 'pass_m'")
                .unwrap()
                .unwrap()
                .0;
        assert_eq!(params["fit"]["method"], "passes");
        let init = matrix(&params["fit"]["initial_centroids"]);
        let (stored, inertia) = Spi::get_two::<Vec<f64>, f64>(
            "SELECT centroids, inertia FROM segment.versions WHERE model = 'pass_m'",
        )
        .unwrap();
        let (k, d) = init.dim();
        let stored = Array2::from_shape_vec((k, d), stored.unwrap()).unwrap();
        // Every row, encoded by the model's encoder (the one the passes used).
        let rows = Spi::connect(|c| {
            let t = c.select(
                "SELECT segment_encode('pass_m', s) FROM pass_src s ORDER BY id",
                None,
                &[],
            )?;
            let mut out = Vec::new();
            for r in t {
                out.extend(r.get::<Vec<f64>>(1)?.unwrap());
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .unwrap();
        let x = Array2::from_shape_vec((rows.len() / d, d), rows).unwrap();
        let p = KMeansParams::new(k)
            .init(Init::Given(init))
            .n_init(1)
            .max_iter(300)
            .tol(1e-6)
            .algorithm(Algorithm::Lloyd);
        let r = kmeans::fit(x.view(), &p, &mut crate::pg::PgHooks).unwrap();
        assert_eq!(r.n_iter as i32, iterations.unwrap());
        for c in stored.rows() {
            let best = r
                .centroids
                .rows()
                .into_iter()
                .map(|o| {
                    o.iter()
                        .zip(c.iter())
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                })
                .fold(f64::INFINITY, f64::min);
            let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            assert!(
                best <= 1e-9 * scale,
                "centroid {c} is {best} from the in-memory fit's"
            );
        }
        let inertia = inertia.unwrap();
        assert!(
            (inertia - r.inertia).abs() <= 1e-9 * r.inertia,
            "{inertia} vs {}",
            r.inertia
        );
    }
}

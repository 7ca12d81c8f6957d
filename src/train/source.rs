//! The training source: its columns as the catalog describes them, the features spec
//! resolved against them, the caller's column privileges, and the read itself (with a
//! seeded row sample past the memory budget, duplicate and NULL id checks). Also the
//! second pass that assigns every row when the fit saw a sample.
use super::ctx;
use crate::engine::encode::{self, ColumnKind, FeatureSpec, RawColumns, Value, ZeroedMatrix};
use crate::engine::kmeans;
use crate::engine::kmeans::KMeansParams;
use crate::engine::sample::KeySample;
use crate::error::{raise, raise_detail, Code, OrRaise};
use crate::pg::reader::{self, Id, IdKind, Ids};
use crate::pg::spi;
use crate::pg::values::kind_of_category;
use ndarray::ArrayView2;
use pgrx::prelude::*;

pub(super) struct SourceColumn {
    pub(super) name: String,
    pub(super) type_oid: pg_sys::Oid,
    pub(super) type_name: String,
    pub(super) kind: Option<ColumnKind>,
}

pub(super) struct Source {
    pub(super) oid: pg_sys::Oid,
    pub(super) qualified: String,
    pub(super) columns: Vec<SourceColumn>,
}

impl Source {
    /// The relation `oid` and its columns (a table, view, materialized view, partitioned
    /// or foreign table).
    pub(super) fn describe(oid: pg_sys::Oid) -> Source {
        describe_source(oid)
    }

    /// The id column (42703 naming the source's columns when there is none).
    pub(super) fn id_column(&self, name: &str) -> &SourceColumn {
        self.columns
            .iter()
            .find(|col| col.name == name)
            .unwrap_or_else(|| undefined_column(name, self))
    }
}

fn describe_source(oid: pg_sys::Oid) -> Source {
    let (qualified, relkind) = spi::two::<String, String>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
             ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[oid.into()],
    )
    .map(|(a, b)| (a.unwrap_or_default(), b.unwrap_or_default()))
    .unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("relation with OID {} does not exist", oid.to_u32()),
            None,
        )
    });
    if !matches!(relkind.as_str(), "r" | "v" | "m" | "p" | "f") {
        raise(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{qualified}\" is not a table, view or materialized view"),
            None,
        );
    }
    let columns = spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attname::pg_catalog.text, a.atttypid,
                    pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory::pg_catalog.text
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t
                 ON t.oid OPERATOR(pg_catalog.=) a.atttypid
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[oid.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let cat: String = r.get(4)?.unwrap_or_default();
            out.push(SourceColumn {
                name: r.get(1)?.unwrap_or_default(),
                type_oid: r.get(2)?.unwrap_or(pg_sys::Oid::INVALID),
                type_name: r.get(3)?.unwrap_or_default(),
                kind: kind_of_category(&cat),
            });
        }
        Ok(out)
    });
    Source {
        oid,
        qualified,
        columns,
    }
}

/// Training reads exactly the id and feature columns, with the caller's privileges: a
/// column grant on those suffices (as for any SELECT), and a missing one is named.
pub(super) fn check_column_privileges(model: &str, source: &Source, columns: &[&str]) {
    let columns: Vec<&str> = columns.to_vec();
    let missing = spi::one::<String>(
        "SELECT u.c FROM pg_catalog.unnest($2::pg_catalog.text[]) WITH ORDINALITY u(c, i)
          WHERE NOT pg_catalog.has_column_privilege($1, u.c, 'SELECT') ORDER BY u.i LIMIT 1",
        &[source.oid.into(), columns.into()],
    );
    if let Some(col) = missing {
        raise(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "{}: permission denied for column \"{col}\" of relation {}",
                ctx(model),
                source.qualified
            ),
            Some(format!(
                "segment_train reads the id and feature columns with your privileges: GRANT SELECT ({}) ON {} TO the role that trains the model.",
                spi::ident(&col),
                source.qualified
            )),
        );
    }
}

pub(super) fn undefined_column(col: &str, source: &Source) -> ! {
    let names: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
    raise(
        Code::ERRCODE_UNDEFINED_COLUMN,
        format!(
            "column \"{col}\" of relation {} does not exist",
            source.qualified
        ),
        Some(format!("Its columns are: {}.", names.join(", "))),
    )
}

/// Resolve the features spec against the source's columns.
pub(super) fn resolve_spec(
    model: &str,
    features: Option<&serde_json::Value>,
    id_column: &str,
    source: &Source,
) -> Vec<FeatureSpec> {
    let usable: Vec<(String, ColumnKind)> = source
        .columns
        .iter()
        .filter_map(|c| c.kind.map(|k| (c.name.clone(), k)))
        .collect();
    let specs = match features {
        None | Some(serde_json::Value::Null) => {
            let specs = encode::default_spec(&usable, id_column);
            let ignored: Vec<String> = source
                .columns
                .iter()
                .filter(|c| c.kind.is_none() && c.name != id_column)
                .map(|c| format!("{} ({})", c.name, c.type_name))
                .collect();
            if !ignored.is_empty() {
                notice!(
                    "segment_train(\"{model}\"): default features leave out columns of other types: {}",
                    ignored.join(", ")
                );
            }
            specs
        }
        Some(v) => encode::parse_spec(v).or_raise(&ctx(model)),
    };
    if specs.is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{}: no features to train on", ctx(model)),
            Some("Name features in the features argument, or give the source numeric, text or boolean columns besides the id.".into()),
        );
    }
    for s in &specs {
        if s.name == id_column {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "{}: the id column \"{id_column}\" cannot also be a feature",
                    ctx(model)
                ),
                None,
            );
        }
        match source.columns.iter().find(|c| c.name == s.name) {
            None => undefined_column(&s.name, source),
            Some(c) if c.kind.is_none() => raise(
                Code::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "{}: feature \"{}\" has type {}, which pg_segment cannot encode",
                    ctx(model),
                    s.name,
                    c.type_name
                ),
                Some(
                    "Use numeric, text, enum or boolean columns; cast other types in a view."
                        .into(),
                ),
            ),
            _ => {}
        }
    }
    encode::check_kinds(&specs, &usable).unwrap_or_else(|e| {
        raise(
            Code::ERRCODE_DATATYPE_MISMATCH,
            format!("{}: {e}", ctx(model)),
            e.hint(),
        )
    });
    specs
}

/// What was read from the source, in id order (see [`read_source`]).
pub(super) struct Read {
    pub(super) raw: RawColumns,
    pub(super) ids: Ids,
    pub(super) rows_read: u64,
    pub(super) null_ids: u64,
    pub(super) sampled: bool,
    /// Zeros for the encoded matrix, taken by the encoding (see `read_source`).
    pub(super) matrix: std::cell::Cell<ZeroedMatrix>,
}

/// Integer ids: None when strictly increasing (so unique), else row positions sorted by
/// id; Err(id) names a duplicate.
fn sort_int_ids(ids: &[i64]) -> Result<Option<Vec<u32>>, i64> {
    if ids.windows(2).all(|w| w[0] < w[1]) {
        return Ok(None);
    }
    let mut pairs: Vec<(i64, u32)> = ids
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i as u32))
        .collect();
    pairs.sort_unstable();
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(w[0].0);
    }
    Ok(Some(pairs.into_iter().map(|(_, i)| i).collect()))
}

/// Text ids: None when strictly increasing by their bytes, else row positions in that
/// order; Err(position of a duplicated id) when one appears twice.
fn sort_text_ids(ids: &[String]) -> Result<Option<Vec<u32>>, usize> {
    if ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()) {
        return Ok(None);
    }
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| ids[a as usize].as_bytes().cmp(ids[b as usize].as_bytes()));
    if let Some(w) = order
        .windows(2)
        .find(|w| ids[w[0] as usize] == ids[w[1] as usize])
    {
        return Err(w[0] as usize);
    }
    Ok(Some(order))
}

pub(super) fn feature_kinds(source: &Source, specs: &[FeatureSpec]) -> Vec<ColumnKind> {
    specs
        .iter()
        .map(|s| {
            source
                .columns
                .iter()
                .find(|c| c.name == s.name)
                .and_then(|c| c.kind)
                .expect("features were checked against the source")
        })
        .collect()
}

pub(super) fn feature_query(
    source: &Source,
    id_column: &str,
    id_kind: IdKind,
    specs: &[FeatureSpec],
) -> String {
    let features: Vec<(&str, ColumnKind, pg_sys::Oid)> = specs
        .iter()
        .map(|s| {
            let c = source
                .columns
                .iter()
                .find(|c| c.name == s.name)
                .expect("checked");
            (s.name.as_str(), c.kind.expect("checked"), c.type_oid)
        })
        .collect();
    reader::select_query(&source.qualified, id_column, id_kind, &features)
}

/// Sets its flag when dropped: the prefault thread stops when the scan ends, or when an
/// error unwinds past it (its buffers are then freed).
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A sample the source's own query draws (a `WHERE` on a seeded hash of the id, so that
/// Citus filters on its workers): what the pass-based fit reads (see passes.rs).
pub(super) struct PushedSample {
    /// The condition, on the source's columns as the query names them.
    pub filter: String,
    /// Rows the condition is expected to keep.
    pub expected: usize,
    /// Rows of the whole source.
    pub total: u64,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn read_source(
    model: &str,
    source: &Source,
    id_column: &str,
    id_kind: IdKind,
    specs: &[FeatureSpec],
    budget: usize,
    seed: u64,
    kmeans: &KMeansParams,
    pushed: Option<&PushedSample>,
) -> Read {
    let kinds = feature_kinds(source, specs);
    let query = feature_query(source, id_column, id_kind, specs);
    let query = match pushed {
        Some(p) if !p.filter.is_empty() => format!("{query} WHERE {}", p.filter),
        _ => query,
    };

    // Rows beyond the memory budget: train on a seeded sample of the rows, drawn by id.
    // The exact count costs a scan, so tables whose planner estimate is well inside the
    // budget skip it (the read itself still stops at twice the budget).
    let dim = encode_width_estimate(source, specs);
    let bytes = |rows: usize| training_bytes(rows, specs.len(), id_kind, dim, kmeans);
    // The most rows a full fit holds within the budget (at least 1000): the estimate
    // grows with the rows, so a bisection finds it.
    let capacity = {
        let (mut lo, mut hi) = (1_000usize, 1usize << 40);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if bytes(mid) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    };
    let estimate = spi::one::<f32>(
        "SELECT CASE WHEN c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m}'::pg_catalog.\"char\"[])
                     THEN c.reltuples END
           FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[source.oid.into()],
    )
    .unwrap_or(-1.0);
    let total = if let Some(p) = pushed {
        p.expected
    } else if estimate >= 0.0 && (estimate as f64) * 2.0 < capacity as f64 {
        estimate as usize
    } else {
        // Like the read itself (reader.rs), this runs with the caller's search_path, so
        // that a view's functions behave as for the caller; everything it names is
        // qualified. It reads no column, so the feature columns' grants suffice.
        Spi::get_one::<i64>(&format!(
            "SELECT pg_catalog.count(*) FROM {}",
            source.qualified
        ))
        .ok()
        .flatten()
        .unwrap_or(0) as usize
    };
    let needed = bytes(total);
    let mb = |b: usize| b as f64 / super::MB;
    debug1!(
        "{}: memory: a full fit of {total} rows needs about {:.1} MB (estimate, {dim} encoded columns); maintenance_work_mem is {:.1} MB",
        ctx(model),
        mb(needed),
        mb(budget)
    );
    // The sample is drawn by id (a seeded hash of it), so it is the same whatever order
    // the rows come in; it holds about `capacity` rows.
    let sample =
        (pushed.is_none() && total > capacity).then(|| KeySample::new(capacity, total, seed));
    if sample.is_some() {
        notice!(
            "{}: training on a sample of about {capacity} of the {total} rows: a full fit needs about {:.1} MB, maintenance_work_mem is {:.1} MB (every row is still assigned)",
            ctx(model),
            mb(needed),
            mb(budget)
        );
    }
    // A pushed-down sample counts as sampled: the write step streams every row.
    let sampled = sample.is_some() || pushed.is_some_and(|p| !p.filter.is_empty());

    let expected = if sample.is_some() {
        capacity + capacity / 8
    } else {
        total
    };
    let mut raw = RawColumns::new(&kinds);
    raw.reserve(expected);
    let mut ids = Ids::new(id_kind, expected);
    // Ids are checked for duplicates after the read, by the sort the assignment writer
    // needs anyway.
    let mut rows_read = 0u64;
    let mut null_ids = 0u64;
    // The encoded matrix is allocated now (at the width the memory estimate assumed), so
    // that its pages, like the columns', are faulted in on the second core while this
    // one scans: the kernel's zeroing of fresh pages is most of what encoding costs at
    // 10M rows otherwise. What is not done when the scan ends faults in as it is written.
    // A sample is sized to `capacity` rows (the buffers' extra eighth is slack for its
    // variance, which the matrix need not hold twice: should the sample come out larger,
    // encoding allocates afresh, after freeing this).
    let matrix_rows = if sample.is_some() { capacity } else { expected };
    let mut matrix = ZeroedMatrix::new(matrix_rows.saturating_mul(dim));
    let mut spare = raw.spare_capacity();
    spare.extend(ids.spare_capacity());
    spare.push(matrix.range());
    let stop = StopOnDrop(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
        false,
    )));
    let prefault = {
        let stop = stop.0.clone();
        std::thread::spawn(move || crate::pg::alloc::prefault(&spare, &stop))
    };
    crate::pg::progress::phase(crate::pg::progress::Phase::Read);
    crate::pg::progress::rows(0, total as u64);
    reader::for_each_row(&query, id_kind, &kinds, |row| {
        rows_read += 1;
        if rows_read.is_multiple_of(65_536) {
            crate::pg::progress::rows(rows_read, total as u64);
        }
        let Some(id) = row.id else {
            null_ids += 1;
            return;
        };
        if let Some(s) = &sample {
            let kept = match id {
                Id::Int(v) => s.keeps_int(v),
                Id::Text(t) => s.keeps_text(t),
            };
            if !kept {
                return;
            }
        }
        // The row count was an estimate (the planner's) and the source has more rows:
        // grow by an eighth, not by doubling, so that the buffers stay near the estimate
        // the sampling decision was made on.
        if ids.len() == ids.capacity() {
            let more = (ids.len() / 8).max(1024);
            raw.reserve_exact(more);
            ids.reserve_exact(more);
        }
        for (i, v) in row.values.iter().enumerate() {
            match *v {
                Value::Null => match kinds[i] {
                    ColumnKind::Numeric => raw.push_num(i, None),
                    _ => raw.push_text(i, None),
                },
                Value::Num(x) => raw.push_num(i, Some(x)),
                Value::Bool(b) => raw.push_bool(i, Some(b)),
                Value::Text(t) => raw.push_text(i, Some(t)),
            }
        }
        ids.push(id);
        if !sampled
            && rows_read.is_multiple_of(100_000)
            && raw.heap_bytes() > budget.saturating_mul(2)
        {
            raise(
                Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "{}: the source grew past the memory budget while being read",
                    ctx(model)
                ),
                Some("Raise maintenance_work_mem, or retry.".into()),
            );
        }
    });
    // Only madvise calls: it ends on its own even when the scan raised an error above.
    drop(stop);
    let _ = prefault.join();
    // The rows go into id order (integers numerically, text by its bytes), so that what
    // is fitted does not depend on the source's physical row order, and the assignment
    // table's primary key builds from sorted input. Integer ids are checked for
    // duplicates here (text ids were, as they came).
    let order = match &ids {
        Ids::Int(v) => sort_int_ids(v)
            .unwrap_or_else(|dup| duplicate_id(model, id_column, Id::Int(dup), source)),
        Ids::Text(v) => sort_text_ids(v)
            .unwrap_or_else(|dup| duplicate_id(model, id_column, Id::Text(&v[dup]), source)),
    };
    if let Some(order) = order {
        raw.reorder(&order);
        ids.reorder(&order);
    }
    if ids.is_empty() {
        raise(
            Code::ERRCODE_DATA_EXCEPTION,
            format!(
                "{}: {} has no rows to train on",
                ctx(model),
                source.qualified
            ),
            Some(if null_ids > 0 {
                format!("All {null_ids} rows have a NULL {id_column}.")
            } else {
                "Load data into the source first.".into()
            }),
        );
    }
    Read {
        raw,
        ids,
        rows_read: match pushed {
            Some(p) if !p.filter.is_empty() => p.total,
            _ => rows_read,
        },
        null_ids,
        sampled,
        matrix: std::cell::Cell::new(matrix),
    }
}

pub(super) fn duplicate_id(model: &str, id_column: &str, id: Id<'_>, source: &Source) -> ! {
    raise_detail(
        Code::ERRCODE_UNIQUE_VIOLATION,
        format!("{}: id column \"{id_column}\" is not unique", ctx(model)),
        format!(
            "{id_column} = {id} appears more than once in {}.",
            source.qualified
        ),
        Some("Use a key column, or train on a view with one row per id.".into()),
    )
}

/// Encoded columns a spec will produce: one per feature, except one-hot, which keeps its
/// top-n categories, or fewer when the planner's statistics (`pg_stats.n_distinct`) say
/// the column has fewer, plus `(other)` (and `(null)` when asked for). Without statistics
/// (a view, a table never analyzed) one-hot counts at its top-n bound.
fn encode_width_estimate(source: &Source, specs: &[FeatureSpec]) -> usize {
    let distinct: Vec<(String, f64)> = spi::pairs(
        "SELECT s.attname::pg_catalog.text, CASE WHEN s.n_distinct OPERATOR(pg_catalog.>=) 0
                THEN s.n_distinct::pg_catalog.float8
                ELSE (OPERATOR(pg_catalog.-) s.n_distinct OPERATOR(pg_catalog.*) c.reltuples)::pg_catalog.float8 END
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
           JOIN pg_catalog.pg_stats s ON s.schemaname OPERATOR(pg_catalog.=) n.nspname
                AND s.tablename OPERATOR(pg_catalog.=) c.relname
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[source.oid.into()],
    );
    specs
        .iter()
        .map(|s| match &s.encoder {
            encode::Encoder::OneHot { top, null_category } => {
                let known = distinct
                    .iter()
                    .find(|(name, _)| *name == s.name)
                    .map(|(_, d)| d.ceil().max(1.0) as usize);
                (*top).min(known.unwrap_or(*top)) + 1 + usize::from(*null_category)
            }
            _ => 1,
        })
        .sum()
}

/// Bytes of pg_segment's heap a fit of `rows` rows holds at its peak (`bench/memory_bench.sh`
/// checks it against the allocator's count): the raw columns (8 bytes a value), the ids,
/// the encoded matrix (8 bytes a column), and the larger of k-means' working set
/// ([`KMeansParams::memory_estimate`]) and the write phase's (each row's segment and
/// distance, the kept-row index and the metrics' per-row figures: 40 bytes). What does
/// not grow with the rows (the silhouette sample, profiles, buffers: a few MiB) is left
/// out, so that a small `maintenance_work_mem` still holds a sample of useful size.
fn training_bytes(
    rows: usize,
    features: usize,
    id_kind: IdKind,
    dim: usize,
    kmeans: &KMeansParams,
) -> usize {
    const WRITE_PER_ROW: usize = 40;
    // Text ids: the String (24 bytes) and its heap block (malloc's smallest chunk is 32
    // bytes).
    let id = match id_kind {
        IdKind::Int => 8,
        IdKind::Text => 24 + 32,
    };
    let held = rows.saturating_mul(8 * features + id + 8 * dim);
    let working = kmeans
        .memory_estimate(rows, dim)
        .max(rows.saturating_mul(WRITE_PER_ROW));
    held.saturating_add(working)
}

/// Assign every row of the source by streaming it again (used when the fit saw a
/// sample): `push(id, centroid row, distance)` per row kept.
#[allow(clippy::too_many_arguments)]
pub(super) fn stream_assignments(
    model: &str,
    source: &Source,
    id_column: &str,
    id_kind: IdKind,
    specs: &[FeatureSpec],
    encoder: &encode::FittedEncoder,
    centroids: ArrayView2<f64>,
    push: &mut dyn FnMut(Id<'_>, usize, f64),
) {
    let kinds = feature_kinds(source, specs);
    let query = feature_query(source, id_column, id_kind, specs);
    let mut out = vec![0f64; encoder.dim()];
    let mut done = 0u64;
    reader::for_each_row(&query, id_kind, &kinds, |row| {
        done += 1;
        if done.is_multiple_of(65_536) {
            crate::pg::progress::rows(done, 0);
        }
        let Some(id) = row.id else { return };
        let keep = encoder
            .transform_row(row.values, &mut out)
            .unwrap_or_else(|e| {
                raise_detail(
                    crate::error::code_of(&e),
                    format!("{}: {e}", ctx(model)),
                    format!("Row with {id_column} = {id}."),
                    e.hint(),
                )
            });
        if keep {
            let nr = kmeans::nearest(centroids, &out);
            push(id, nr.index, nr.dist_sq.sqrt());
        }
    });
}

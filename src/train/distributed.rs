//! The write step of a pass-based fit on a Citus distributed table: the assignments are
//! computed and written where the rows live, by `INSERT ... SELECT` queries that carry
//! the model by value (`segment_assign_detail(segment_model, row)`), and what the
//! catalog needs back (segment sizes, mean distances, a refresh's migrations) comes from
//! `GROUP BY` queries whose partial aggregates Citus runs on each shard.
//!
//! - `segment_train` ([`write_train`]): the assignment table is created distributed by
//!   the id column, co-located with the source when the source is distributed by the id
//!   too (then no row crosses the network), and filled by one `INSERT ... SELECT`. A
//!   source distributed by another column is repartitioned by Citus between the workers
//!   (`INSERT ... SELECT` by repartitioning): the rows still never reach the coordinator.
//!   A view over distributed tables is planned by Citus the same way (pushed down where
//!   it can be).
//! - `segment_refresh` ([`write_refresh`]): the new version's assignments go into a
//!   staging table co-located with the assignment table; a `FULL JOIN` of the two on the
//!   id, grouped by old and new segment, counts the migrations exactly (customers moved,
//!   new and gone) and gives the sizes; when the version is promoted, the assignment
//!   table is emptied and refilled from the staging table, shard by shard. The staging
//!   table is dropped in the same transaction: a failure anywhere leaves nothing.
//! - `segment_promote` ([`promote`]) of such a model: the assignment table is emptied and
//!   refilled from the source by one `INSERT ... SELECT` with the promoted version.
//!
//! The other quality figures come from the sample the fit read, as for a sampled
//! training.
use super::ctx;
use super::passes::{extension_schema, literal, spi_failed};
use super::source::{Read, Source};
use super::write::{set_population, Target, Written};
use crate::catalog::LoadedModel;
use crate::engine::encode::{Encoded, FittedEncoder};
use crate::engine::kmeans::KMeansResult;
use crate::engine::lineage::Transitions;
use crate::engine::quality::Quality;
use crate::error::{raise, Code, OrRaise};
use crate::pg::{citus, spi};
use ndarray::ArrayView2;
use pgrx::prelude::*;

/// Whether a pass-based training writes its assignments on the workers: the source is a
/// hash-distributed Citus table, or a view over one (Citus then plans the `INSERT ...
/// SELECT` of the view: pushed down, repartitioned, or, for a view it cannot push down,
/// through the coordinator as a plain training would).
pub(super) fn train_on_workers(source: &Source) -> bool {
    citus::distribution_column(source.oid).is_some() || citus::view_over_distributed(source.oid)
}

/// Whether a pass-based refresh counts its migrations and writes on the workers: the
/// source is a hash-distributed Citus table and the model's assignment table is
/// distributed by the id column (as [`write_train`] creates it). An assignment table
/// left on the coordinator (a model trained before its source was distributed) is
/// refreshed by streaming, as on one server.
pub(super) fn refresh_on_workers(source: &Source, table: &str, id_column: &str) -> bool {
    if !train_on_workers(source) {
        return false;
    }
    table_oid(table)
        .and_then(citus::distribution_column)
        .is_some_and(|c| c == id_column)
}

/// The OID of `segment.<table>`, if it exists.
fn table_oid(table: &str) -> Option<pg_sys::Oid> {
    spi::one::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[format!("segment.{}", spi::ident(table)).as_str().into()],
    )
}

/// The quality figures of the rows in memory (the sample the fit read); frees them.
fn sample_quality(
    t: &Target,
    read: &mut Read,
    encoded: &mut Encoded,
    encoder: &FittedEncoder,
    r: &KMeansResult,
    seed: u64,
) -> Quality {
    let c = ctx(t.model);
    let (n, dim) = (encoded.kept_rows.len(), encoder.dim());
    let x = ArrayView2::from_shape((n, dim), &encoded.matrix)
        .map_err(|e| crate::engine::EngineError::Internal(e.to_string()))
        .or_raise(&c);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let quality = crate::engine::quality::quality(
        x,
        &r.labels,
        r.centroids.view(),
        &read.raw,
        &encoder.feature_names(),
        &encoded.kept_rows,
        seed,
        &cancel,
    )
    .or_raise(&c);
    drop(std::mem::take(&mut encoded.matrix));
    drop(std::mem::take(&mut read.raw));
    quality
}

/// The new version as a `segment_model` value.
fn model_value(t: &Target, encoder: &FittedEncoder, r: &KMeansResult) -> LoadedModel {
    LoadedModel::fitted(
        t.model,
        t.version,
        encoder,
        r.centroids.view(),
        t.segment_ids,
    )
}

/// Create `segment.<table>` (the assignment table's columns), distributed by the id
/// column and co-located with `colocate_with` (a table's name, or `default`).
fn create_distributed(t: &Target, table: &str, colocate_with: &str) -> String {
    crate::pg::writer::create_table(t.model, table, t.id_column, t.id_type);
    let qualified = format!("segment.{}", spi::ident(table));
    spi::as_extension_owner(&[], || {
        spi::run(
            "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2, colocate_with => $3)",
            &[
                qualified.as_str().into(),
                t.id_column.into(),
                colocate_with.into(),
            ],
        );
    });
    qualified
}

/// `INSERT ... SELECT` every assignable row of the source into `table` (qualified), with
/// the caller's rights on the source (row-level security and column privileges apply as
/// to the read): INSERT on `table` is granted to the caller for this statement and
/// revoked after it, in the same transaction.
fn insert_assignments(
    model: &str,
    source: &Source,
    id_column: &str,
    table: &str,
    value: &LoadedModel,
) {
    let role = spi::one::<String>("SELECT current_user::pg_catalog.text", &[]).unwrap_or_default();
    let role = spi::ident(&role);
    spi::as_extension_owner(&[], || {
        spi::run(&format!("GRANT INSERT ON {table} TO {role}"), &[])
    });
    let ext = extension_schema();
    let idq = spi::ident(id_column);
    // Under the caller's search_path, like the read of the source; everything named is
    // qualified.
    Spi::run(&format!(
        "INSERT INTO {table} ({idq}, segment, version, distance)
         SELECT s.{idq}, d.segment, {version}, d.distance
           FROM {src} s CROSS JOIN LATERAL {ext}.segment_assign_detail({lit}::{ext}.segment_model, {row}) d
          WHERE s.{idq} IS NOT NULL AND d.segment IS NOT NULL",
        version = value.version,
        src = source.qualified,
        lit = literal(&crate::model_value::to_text(value)),
        row = super::passes::features_row(&value.encoder),
    ))
    .unwrap_or_else(|e| spi_failed(model, e));
    spi::as_extension_owner(&[], || {
        spi::run(&format!("REVOKE INSERT ON {table} FROM {role}"), &[])
    });
}

/// The write step of a pass-based training on a Citus distributed table (see the module
/// doc).
pub(super) fn write_train(
    t: &Target,
    read: &mut Read,
    encoded: &mut Encoded,
    encoder: &FittedEncoder,
    r: &KMeansResult,
    seed: u64,
) -> Written {
    let mut quality = sample_quality(t, read, encoded, encoder, r, seed);
    crate::pg::progress::phase(crate::pg::progress::Phase::Write);
    let by_id = citus::distribution_column(t.source.oid).is_some_and(|c| c == t.id_column);
    let colocate = if by_id {
        t.source.qualified.clone()
    } else {
        "default".to_string()
    };
    let table = create_distributed(t, t.table, &colocate);
    insert_assignments(
        t.model,
        t.source,
        t.id_column,
        &table,
        &model_value(t, encoder, r),
    );
    let idq = spi::ident(t.id_column);
    spi::as_extension_owner(&[], || {
        spi::run(&format!("ALTER TABLE {table} ADD PRIMARY KEY ({idq})"), &[]);
    });
    let k = t.segment_ids.len();
    let (mut sizes, mut sums) = (vec![0u64; k], vec![0f64; k]);
    for (_, new, n, sum) in grouped(
        t.model,
        &format!("SELECT NULL::pg_catalog.int4, segment, pg_catalog.count(*), pg_catalog.sum(distance) FROM {table} GROUP BY segment"),
    ) {
        if let Some(j) = new.and_then(|s| t.segment_ids.iter().position(|&id| id == s)) {
            sizes[j] = n;
            sums[j] = sum;
        }
    }
    set_population(&mut quality, &sizes, &sums);
    debug1!(
        "{}: {} assignments written on the workers into {table}",
        ctx(t.model),
        sizes.iter().sum::<u64>()
    );
    Written {
        quality,
        transitions: None,
    }
}

/// Rows of `(old segment, new segment, count, distance sum)` a grouping query returns,
/// run as the extension's owner (it reads pg_segment's own tables only).
fn grouped(model: &str, sql: &str) -> Vec<(Option<i32>, Option<i32>, u64, f64)> {
    let mut out = Vec::new();
    spi::as_extension_owner(&[], || {
        spi::connect(|client| {
            for row in client.select(sql, None, &[])? {
                out.push((
                    row.get::<i32>(1)?,
                    row.get::<i32>(2)?,
                    row.get::<i64>(3)?.unwrap_or(0).max(0) as u64,
                    row.get::<f64>(4)?.unwrap_or(0.0),
                ));
            }
            Ok(())
        })
    });
    debug2!("{}: {} groups from the workers", ctx(model), out.len());
    out
}

/// The write step of a pass-based refresh on a Citus distributed table (see the module
/// doc): the quality figures of the sample, and the exact migrations from
/// `current_ids` (the current version's segment ids, in centroid order) to the new
/// version. `t.mode` says whether the assignment table is rewritten (a promotion) or
/// only counted (a candidate).
#[allow(clippy::too_many_arguments)]
pub(super) fn write_refresh(
    t: &Target,
    current_ids: &[i32],
    read: &mut Read,
    encoded: &mut Encoded,
    encoder: &FittedEncoder,
    r: &KMeansResult,
    seed: u64,
) -> Written {
    let mut quality = sample_quality(t, read, encoded, encoder, r, seed);
    crate::pg::progress::phase(crate::pg::progress::Phase::Write);
    let assignments = format!("segment.{}", spi::ident(t.table));
    let oid = table_oid(t.table).unwrap_or_default();
    // Named after the assignment table's OID: unique, short, and the model's lock (held)
    // keeps two refreshes of one model from meeting here.
    let stage_name = format!("_refresh_{}", u32::from(oid));
    let stage = create_distributed(t, &stage_name, &assignments);
    insert_assignments(
        t.model,
        t.source,
        t.id_column,
        &stage,
        &model_value(t, encoder, r),
    );
    let idq = spi::ident(t.id_column);
    // Co-located on the id: Citus runs the join on each shard and sends back the
    // per-shard counts (k_old x k_new rows at most).
    let groups = grouped(
        t.model,
        &format!(
            "SELECT a.segment, n.segment, pg_catalog.count(*), pg_catalog.sum(n.distance)
               FROM {stage} n FULL JOIN {assignments} a ON a.{idq} OPERATOR(pg_catalog.=) n.{idq}
              GROUP BY 1, 2"
        ),
    );
    let k = t.segment_ids.len();
    let mut moves = Transitions::new(current_ids.len(), k);
    let (mut sizes, mut sums) = (vec![0u64; k], vec![0f64; k]);
    for (old, new, n, sum) in groups {
        let from = old.map(|s| {
            current_ids.iter().position(|&id| id == s).unwrap_or_else(|| {
                raise(
                    Code::ERRCODE_DATA_CORRUPTED,
                    format!(
                        "model \"{}\": its assignment table holds segment {s}, which its current version does not have",
                        t.model
                    ),
                    Some("Promote a version again with segment_promote, or drop and retrain the model.".into()),
                )
            })
        });
        let to = new.and_then(|s| t.segment_ids.iter().position(|&id| id == s));
        if let Some(j) = to {
            sizes[j] += n;
            sums[j] += sum;
        }
        moves.add(from, to, n);
    }
    spi::as_extension_owner(&[], || {
        if t.mode == crate::pg::writer::TableMode::Replace {
            // Shard by shard (co-located): TRUNCATE keeps the table's OID, grants and
            // dependent views.
            spi::run(&format!("TRUNCATE {assignments}"), &[]);
            spi::run(
                &format!(
                    "INSERT INTO {assignments} ({idq}, segment, version, distance)
                     SELECT {idq}, segment, version, distance FROM {stage}"
                ),
                &[],
            );
        }
        spi::run(&format!("DROP TABLE {stage}"), &[]);
    });
    set_population(&mut quality, &sizes, &sums);
    Written {
        quality,
        transitions: Some(moves),
    }
}

/// `segment_promote` of a model whose refresh runs on the workers
/// ([`refresh_on_workers`]): the assignment table is emptied and refilled with
/// `version`'s assignment of every row of the source, by one `INSERT ... SELECT` on the
/// workers. Returns the rows written.
pub(super) fn promote(
    model: &str,
    source: &Source,
    table: &str,
    id_column: &str,
    version: &LoadedModel,
) -> u64 {
    let assignments = format!("segment.{}", spi::ident(table));
    spi::as_extension_owner(&[], || spi::run(&format!("TRUNCATE {assignments}"), &[]));
    insert_assignments(model, source, id_column, &assignments, version);
    spi::as_extension_owner(&[], || {
        spi::one::<i64>(
            &format!("SELECT pg_catalog.count(*) FROM {assignments}"),
            &[],
        )
    })
    .unwrap_or(0)
    .max(0) as u64
}

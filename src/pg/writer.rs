//! Writing a model's assignment table (`segment.<model>_assignments`) in bulk.
//!
//! [`create_table`] creates the empty table as the extension's owner (see spi.rs), for
//! the model being trained. With integer ids, rows are laid out a page at a time and each page is
//! logged as one full-page image (pages.rs; `pg_segment.direct_writes`); otherwise they
//! go straight into the heap with `heap_multi_insert` in batches, as `COPY FROM` does
//! (one WAL record per page rather than per row, no executor, no SQL arrays). Either
//! way the primary key is built once at the end, from rows written in id order where the
//! ids are integers, so the index build's sort finds them sorted.
//!
//! A table that gained indexes, triggers or row-level security between its creation and
//! the load (an event trigger could do that) is written with plain `INSERT`s instead, so
//! whatever was attached still runs.
use crate::error::{raise, Code};
use crate::pg::compat::PAGE_WRITER_PROVEN;
use crate::pg::pages::PageWriter;
use crate::pg::reader::Id;
use crate::pg::spi;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

/// `pg_segment.direct_writes`: whether assignment tables with integer ids are written a
/// page at a time (see pages.rs) rather than through `heap_multi_insert`.
pub static DIRECT_PAGES: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Defines `pg_segment.direct_writes` (called from `_PG_init`).
pub fn define_gucs() {
    GucRegistry::define_bool_guc(
        c"pg_segment.direct_writes",
        c"Write assignment tables with integer ids a whole page at a time.",
        c"segment_train lays out the pages of a new assignment table itself and logs each \
          as a full-page image, instead of inserting row by row with heap_multi_insert. \
          Used only for a table created in the same transaction, with wal_level below \
          logical, on PostgreSQL 15 and 18 (where it is proven). Turn off to use \
          heap_multi_insert.",
        &DIRECT_PAGES,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// Create `segment.<assignments>` for `model`, whose catalog row this transaction has
/// just inserted (segment_train is the only caller; no SQL-callable function does this).
/// The table belongs to the extension's owner, so that no model owner can rename, drop
/// or keep it apart from its model (the delete trigger on segment.models drops it);
/// the model's owner role may read it, and roles it grants (segment_grant).
pub(crate) fn create_table(
    model: &str,
    assignments: &str,
    id_column: &str,
    id_type_oid: pg_sys::Oid,
) -> pg_sys::Oid {
    let owner = spi::one::<String>(
        "SELECT pg_catalog.pg_get_userbyid(m.owner)::pg_catalog.text FROM segment.models m
          WHERE m.name OPERATOR(pg_catalog.=) $1",
        &[model.into()],
    )
    .unwrap_or_else(|| {
        raise(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("model \"{model}\" has no catalog row to create its assignment table for"),
            None,
        )
    });
    // Under the fixed search_path, format_type qualifies every type outside pg_catalog.
    let id_type = spi::one::<String>(
        "SELECT pg_catalog.format_type($1, NULL)",
        &[id_type_oid.into()],
    )
    .unwrap_or_default();
    let table = format!("segment.{}", spi::ident(assignments));
    // The two int columns sit together so that, after an 8-byte id, rows need no
    // alignment padding.
    let create = format!(
        "CREATE TABLE {table} ({} {id_type} NOT NULL, segment pg_catalog.int4 NOT NULL, \
         version pg_catalog.int4 NOT NULL, distance pg_catalog.float8 NOT NULL)",
        spi::ident(id_column)
    );
    let grant = format!("GRANT SELECT ON {table} TO {}", spi::ident(&owner));
    spi::as_extension_owner(&[], || {
        spi::run(&create, &[]);
        spi::run(&grant, &[]);
    });
    spi::one::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[table.as_str().into()],
    )
    .unwrap_or_else(|| {
        raise(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("could not create the assignment table of model \"{model}\""),
            None,
        )
    })
}

/// What happens to the model's assignment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMode {
    /// Create it (a new model).
    Create,
    /// Empty it (`TRUNCATE`: new storage in this transaction, the old one kept for
    /// readers that started before and for an abort) and write it anew: a version is
    /// promoted. Its OID, grants and dependent views stay.
    Replace,
    /// Write nothing: only count (a refresh kept as a candidate).
    CountOnly,
}

/// `TRUNCATE` the model's assignment table (as the extension's owner, who owns it) and
/// return its OID.
fn truncate_table(model: &str, assignments: &str) -> pg_sys::Oid {
    let table = format!("segment.{}", spi::ident(assignments));
    let oid = spi::one::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[table.as_str().into()],
    )
    .unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("the assignment table {table} of model \"{model}\" is missing"),
            Some("Drop the model and train it again.".into()),
        )
    });
    spi::as_extension_owner(&[], || spi::run(&format!("TRUNCATE {table}"), &[]));
    oid
}

/// Rows per heap_multi_insert call (COPY FROM's own batch size).
const BATCH: usize = 1000;
/// Rows per INSERT in the fallback path.
const INSERT_ROWS: usize = 50_000;

/// How ids become Datums of the table's id column.
enum IdDatum {
    /// int2 / int4 / int8 (or domains over them): the integer itself.
    Int(pg_sys::Oid),
    /// Any other type, from its text form through the type's input function.
    Input {
        func: pg_sys::Oid,
        ioparam: pg_sys::Oid,
    },
}

impl IdDatum {
    /// An integer id as a Datum of the column's integer type (`Int` only).
    fn int(&self, v: i64) -> pg_sys::Datum {
        match self {
            IdDatum::Int(pg_sys::INT2OID) => pg_sys::Datum::from(v as i16),
            IdDatum::Int(pg_sys::INT4OID) => pg_sys::Datum::from(v as i32),
            IdDatum::Int(_) => pg_sys::Datum::from(v),
            IdDatum::Input { .. } => {
                unreachable!("ids of other types go through their input function")
            }
        }
    }
}

enum Sink {
    /// Integer ids: whole pages laid out in Rust (see pages.rs).
    Pages {
        rel: pg_sys::Relation,
        pages: PageWriter,
    },
    Heap {
        rel: pg_sys::Relation,
        bistate: pg_sys::BulkInsertState,
        slots: Vec<*mut pg_sys::TupleTableSlot>,
        filled: usize,
        cid: pg_sys::CommandId,
        /// Formed tuples and converted ids of one batch; reset after each batch.
        batch_cxt: pg_sys::MemoryContext,
    },
    Sql {
        ids_int: Vec<i64>,
        ids_text: Vec<String>,
        segs: Vec<i32>,
        dists: Vec<f64>,
    },
    /// [`TableMode::CountOnly`].
    Discard,
}

/// Bulk writer for one model's assignment table. Also counts rows and sums distances
/// per segment, so the catalog's segment sizes need no second pass over the table.
pub struct AssignWriter {
    model: String,
    table: String,
    id_column: String,
    id_type: String,
    version: i32,
    /// Segment id of each centroid row (what the table stores).
    segment_ids: Vec<i32>,
    mode: TableMode,
    id_datum: IdDatum,
    sink: Sink,
    /// Rows written per segment (0-based) and the sum of their distances.
    pub sizes: Vec<u64>,
    pub distance_sums: Vec<f64>,
}

impl AssignWriter {
    /// Create (or empty, see [`TableMode`]) the assignment table of `model` and open it
    /// for writing; rows of centroid row `i` are stored as segment `segment_ids[i]`.
    /// `expected_rows` sizes the buffer strategy of the page writer.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        model: &str,
        assignments: &str,
        id_column: &str,
        id_type_oid: pg_sys::Oid,
        id_type: &str,
        version: i32,
        segment_ids: Vec<i32>,
        mode: TableMode,
        expected_rows: usize,
    ) -> AssignWriter {
        let k = segment_ids.len();
        let oid = match mode {
            TableMode::Create => create_table(model, assignments, id_column, id_type_oid),
            TableMode::Replace => truncate_table(model, assignments),
            TableMode::CountOnly => pg_sys::Oid::INVALID,
        };
        // SAFETY: getBaseType/getTypeInputInfo read the syscache of an existing type.
        let id_datum = unsafe {
            match pg_sys::getBaseType(id_type_oid) {
                b @ (pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID) => IdDatum::Int(b),
                _ => {
                    let mut func = pg_sys::Oid::INVALID;
                    let mut ioparam = pg_sys::Oid::INVALID;
                    pg_sys::getTypeInputInfo(id_type_oid, &mut func, &mut ioparam);
                    IdDatum::Input { func, ioparam }
                }
            }
        };
        // SAFETY: the table was created or truncated in this transaction
        // (AccessExclusiveLock held); opening it and reading its pg_class row and trigger
        // descriptor is plain relcache use.
        // A Citus table's rows live on its workers: only SQL reaches them.
        let citus = mode != TableMode::CountOnly && crate::pg::citus::is_citus_table(oid);
        let sink = if mode == TableMode::CountOnly {
            Sink::Discard
        } else {
            unsafe {
                let rel = pg_sys::table_open(oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
                let form = (*rel).rd_rel;
                // A new table has no index yet (its primary key is built at the end); an
                // emptied one is reindexed at the end, so its indexes need no row-by-row
                // inserts either.
                let plain = !citus
                    && (mode == TableMode::Replace || !(*form).relhasindex)
                    && (*rel).trigdesc.is_null()
                    && !(*form).relrowsecurity
                    && (*(*rel).rd_att).natts == 4;
                let by_value = matches!(id_datum, IdDatum::Int(_));
                let cid = pg_sys::GetCurrentCommandId(true);
                let pages = if plain && by_value && DIRECT_PAGES.get() && PAGE_WRITER_PROVEN {
                    PageWriter::new(rel, cid, expected_rows)
                } else {
                    None
                };
                if let Some(pages) = pages {
                    Sink::Pages { rel, pages }
                } else if plain {
                    let slots = (0..BATCH)
                        .map(|_| {
                            pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsVirtual)
                        })
                        .collect();
                    let batch_cxt = pg_sys::AllocSetContextCreateInternal(
                        pg_sys::CurrentMemoryContext,
                        c"pg_segment assignment batch".as_ptr(),
                        pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                        pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                        pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
                    );
                    Sink::Heap {
                        rel,
                        bistate: pg_sys::GetBulkInsertState(),
                        slots,
                        filled: 0,
                        cid,
                        batch_cxt,
                    }
                } else {
                    pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
                    Sink::Sql {
                        ids_int: Vec::new(),
                        ids_text: Vec::new(),
                        segs: Vec::new(),
                        dists: Vec::new(),
                    }
                }
            }
        };
        AssignWriter {
            model: model.to_string(),
            table: format!("segment.{}", spi::ident(assignments)),
            id_column: spi::ident(id_column),
            id_type: id_type.to_string(),
            version,
            segment_ids,
            mode,
            id_datum,
            sink,
            sizes: vec![0; k],
            distance_sums: vec![0.0; k],
        }
    }

    /// Write one assignment: `segment` the centroid row (stored as its segment id),
    /// `distance` Euclidean.
    pub fn push(&mut self, id: Id<'_>, segment: usize, distance: f64) {
        self.sizes[segment] += 1;
        self.distance_sums[segment] += distance;
        let seg = self.segment_ids[segment];
        let full = match &mut self.sink {
            Sink::Discard => false,
            Sink::Pages { pages, .. } => {
                let Id::Int(id) = id else {
                    unreachable!("integer id columns are read as integers")
                };
                pages.push(&[
                    self.id_datum.int(id),
                    pg_sys::Datum::from(seg),
                    pg_sys::Datum::from(self.version),
                    pg_sys::Datum::from(distance.to_bits()),
                ]);
                false
            }
            Sink::Heap {
                slots,
                filled,
                batch_cxt,
                ..
            } => {
                let slot = slots[*filled];
                // SAFETY: `slot` is one of our virtual slots over the table's 4-column
                // descriptor (id, segment int4, version int4, distance float8), cleared
                // before reuse; by-reference id Datums live in batch_cxt until the batch
                // is written.
                let by_value = matches!(self.id_datum, IdDatum::Int(_));
                unsafe {
                    if !by_value {
                        pg_sys::ExecClearTuple(slot);
                    }
                    let values = std::slice::from_raw_parts_mut((*slot).tts_values, 4);
                    let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, 4);
                    values[0] = match (&self.id_datum, id) {
                        (IdDatum::Int(_), Id::Int(v)) => self.id_datum.int(v),
                        (IdDatum::Input { func, ioparam }, id) => {
                            let text = CString::new(id.to_string()).unwrap_or_default();
                            let old = pg_sys::MemoryContextSwitchTo(*batch_cxt);
                            let d = pg_sys::OidInputFunctionCall(
                                *func,
                                text.as_ptr() as *mut _,
                                *ioparam,
                                -1, // the column is created without a typmod
                            );
                            pg_sys::MemoryContextSwitchTo(old);
                            d
                        }
                        (IdDatum::Int(_), Id::Text(_)) => {
                            unreachable!("integer id columns are read as integers")
                        }
                    };
                    values[1] = pg_sys::Datum::from(seg);
                    values[2] = pg_sys::Datum::from(self.version);
                    values[3] = distance.into_datum().unwrap_or(pg_sys::Datum::from(0));
                    nulls.fill(false);
                    if by_value {
                        // What ExecClearTuple + ExecStoreVirtualTuple amount to for a
                        // virtual slot that only ever holds by-value Datums (it never
                        // owns memory), without two calls per row.
                        (*slot).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
                        (*slot).tts_nvalid = 4;
                    } else {
                        pg_sys::ExecStoreVirtualTuple(slot);
                    }
                }
                *filled += 1;
                *filled == BATCH
            }
            Sink::Sql {
                ids_int,
                ids_text,
                segs,
                dists,
            } => {
                match id {
                    Id::Int(v) => ids_int.push(v),
                    Id::Text(t) => ids_text.push(t.to_string()),
                }
                segs.push(seg);
                dists.push(distance);
                segs.len() >= INSERT_ROWS
            }
        };
        if full {
            self.flush();
        }
    }

    fn flush(&mut self) {
        match &mut self.sink {
            Sink::Pages { .. } | Sink::Discard => {}
            Sink::Heap {
                rel,
                bistate,
                slots,
                filled,
                cid,
                batch_cxt,
            } => {
                if *filled == 0 {
                    return;
                }
                // SAFETY: the first `filled` slots hold stored virtual tuples for `rel`;
                // the formed heap tuples are allocated in batch_cxt, reset right after.
                unsafe {
                    let old = pg_sys::MemoryContextSwitchTo(*batch_cxt);
                    pg_sys::heap_multi_insert(
                        *rel,
                        slots.as_mut_ptr(),
                        *filled as i32,
                        *cid,
                        pg_sys::TABLE_INSERT_SKIP_FSM as i32,
                        *bistate,
                    );
                    pg_sys::MemoryContextSwitchTo(old);
                    if !matches!(self.id_datum, IdDatum::Int(_)) {
                        // Frees the ids the slots copied when the tuples were formed.
                        for &slot in &slots[..*filled] {
                            pg_sys::ExecClearTuple(slot);
                        }
                    }
                    pg_sys::MemoryContextReset(*batch_cxt);
                }
                *filled = 0;
            }
            Sink::Sql {
                ids_int,
                ids_text,
                segs,
                dists,
            } => {
                if segs.is_empty() {
                    return;
                }
                let (ids, array_type): (pgrx::datum::DatumWithOid, &str) = if ids_text.is_empty() {
                    (std::mem::take(ids_int).into(), "pg_catalog.int8[]")
                } else {
                    (std::mem::take(ids_text).into(), "pg_catalog.text[]")
                };
                let sql = format!(
                        // unnest in the target list streams (ProjectSet); in FROM it
                        // would materialize into a tuplestore first.
                        "INSERT INTO {} ({}, segment, distance, version)
                         SELECT pg_catalog.unnest($1::{array_type})::{}, pg_catalog.unnest($2::pg_catalog.int4[]),
                                pg_catalog.unnest($3::pg_catalog.float8[]), $4",
                        self.table, self.id_column, self.id_type
                );
                let args = [
                    ids,
                    std::mem::take(segs).into(),
                    std::mem::take(dists).into(),
                    self.version.into(),
                ];
                // The table belongs to the extension's owner (see create_table).
                spi::as_extension_owner(&[], || spi::run(&sql, &args));
            }
        }
    }

    /// Write what is buffered, close the table and build its primary key.
    pub fn finish(mut self) {
        self.flush();
        let heap_done = std::time::Instant::now();
        // SAFETY: releasing what create() acquired, once; the lock stays until commit.
        let rel = unsafe {
            match &mut self.sink {
                Sink::Pages { rel, pages } => {
                    pages.finish();
                    Some(*rel)
                }
                Sink::Heap {
                    rel,
                    bistate,
                    slots,
                    batch_cxt,
                    ..
                } => {
                    for &slot in slots.iter() {
                        pg_sys::ExecDropSingleTupleTableSlot(slot);
                    }
                    slots.clear();
                    pg_sys::FreeBulkInsertState(*bistate);
                    pg_sys::MemoryContextDelete(*batch_cxt);
                    Some(*rel)
                }
                Sink::Sql { .. } | Sink::Discard => None,
            }
        };
        if let Some(rel) = rel {
            // SAFETY: closing the table create() opened, once; the index build below
            // must see the rows written by this command.
            unsafe {
                pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
                pg_sys::CommandCounterIncrement();
            }
        }
        // Creating an index needs CREATE on schema segment, and the table belongs to the
        // extension's owner. Serially: the rows arrive in id order where ids are
        // integers, and a parallel build would only add worker start-up. An emptied
        // table written a page or a batch at a time gets its indexes rebuilt; one
        // written with INSERTs kept them up to date.
        let sql = match (self.mode, rel.is_some()) {
            (TableMode::CountOnly, _) | (TableMode::Replace, false) => return,
            (TableMode::Create, _) => format!(
                "ALTER TABLE {} ADD PRIMARY KEY ({})",
                self.table, self.id_column
            ),
            (TableMode::Replace, true) => format!("REINDEX TABLE {}", self.table),
        };
        spi::as_extension_owner(&[(c"max_parallel_maintenance_workers", c"0")], || {
            spi::run(&sql, &[])
        });
        debug2!(
            "segment_train(\"{}\"): primary key of {}: {:.3} s",
            self.model,
            self.table,
            heap_done.elapsed().as_secs_f64()
        );
    }
}

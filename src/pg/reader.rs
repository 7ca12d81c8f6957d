//! Streaming a training source through SPI, fast: each result slot is handed to the
//! caller as the executor produces it (no tuple table, no copy) and its Datums are read
//! directly (feature columns arrive already cast
//! to float8 / text / bool by the SELECT), integer ids stay integers, and text is borrowed
//! rather than copied. This is the hot path of `segment_train`'s scan.
//!
//! This is the one statement pg_segment runs under the caller's own search_path (see
//! spi.rs): it reads the caller's relation with the caller's privileges, so a view's
//! functions must behave as they do for the caller. Its text names only the quoted
//! relation, quoted columns and `pg_catalog`-qualified types, so nothing on that path
//! can stand in for anything it names.
use crate::engine::encode::{ColumnKind, Value};
use crate::error::{raise, Code};
use crate::pg::values::{conv_for, text_str, value_of, Conv};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// How the id column travels: integers natively, everything else as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Int,
    Text,
}

impl IdKind {
    pub fn of(type_oid: pg_sys::Oid) -> IdKind {
        // SAFETY: syscache lookup of the base type.
        match unsafe { pg_sys::getBaseType(type_oid) } {
            pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => IdKind::Int,
            _ => IdKind::Text,
        }
    }
}

/// One id value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Id<'a> {
    Int(i64),
    Text(&'a str),
}

impl std::fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Int(v) => write!(f, "{v}"),
            Id::Text(s) => write!(f, "{s}"),
        }
    }
}

/// Ids of the rows kept, in read order.
pub enum Ids {
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl Ids {
    pub fn new(kind: IdKind, capacity: usize) -> Ids {
        match kind {
            IdKind::Int => Ids::Int(Vec::with_capacity(capacity)),
            IdKind::Text => Ids::Text(Vec::with_capacity(capacity)),
        }
    }

    pub fn push(&mut self, id: Id<'_>) {
        match (self, id) {
            (Ids::Int(v), Id::Int(x)) => v.push(x),
            (Ids::Text(v), Id::Text(s)) => v.push(s.to_string()),
            _ => unreachable!("id kind fixed per source"),
        }
    }

    /// The reserved, unfilled part of an integer id buffer as (address, bytes); none
    /// for text ids (see `RawColumns::spare_capacity`).
    pub fn spare_capacity(&mut self) -> Option<(usize, usize)> {
        match self {
            Ids::Int(v) => Some(crate::engine::encode::spare_range(v)),
            Ids::Text(_) => None,
        }
    }

    /// Put the ids in the order `order` (a permutation of their positions).
    pub fn reorder(&mut self, order: &[u32]) {
        match self {
            Ids::Int(v) => *v = order.iter().map(|&i| v[i as usize]).collect(),
            Ids::Text(v) => {
                let mut old: Vec<Option<String>> =
                    std::mem::take(v).into_iter().map(Some).collect();
                *v = order
                    .iter()
                    .map(|&i| old[i as usize].take().expect("a permutation"))
                    .collect();
            }
        }
    }

    /// Ids the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        match self {
            Ids::Int(v) => v.capacity(),
            Ids::Text(v) => v.capacity(),
        }
    }

    /// Room for exactly `additional` more ids.
    pub fn reserve_exact(&mut self, additional: usize) {
        match self {
            Ids::Int(v) => v.reserve_exact(additional),
            Ids::Text(v) => v.reserve_exact(additional),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Ids::Int(v) => v.len(),
            Ids::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<Id<'_>> {
        match self {
            Ids::Int(v) => v.get(i).map(|x| Id::Int(*x)),
            Ids::Text(v) => v.get(i).map(|s| Id::Text(s.as_str())),
        }
    }
}

/// The SELECT that feeds training and assignment: the id (native integer or text), then
/// each feature cast to what the engine reads.
pub fn select_query(
    qualified_source: &str,
    id_column: &str,
    id_kind: IdKind,
    features: &[(&str, ColumnKind, pg_sys::Oid)],
) -> String {
    let idq = quote_identifier(id_column);
    let mut select = vec![match id_kind {
        IdKind::Int => format!("{idq}::pg_catalog.int8"),
        IdKind::Text => format!("{idq}::pg_catalog.text"),
    }];
    for (name, kind, type_oid) in features {
        let q = quote_identifier(name);
        select.push(match kind {
            // Native numeric types are read as they are (see values::conv_for, including
            // a fast numeric decoder); anything else numeric is cast by PostgreSQL.
            ColumnKind::Numeric if native_numeric(*type_oid) => q,
            ColumnKind::Numeric => format!("{q}::pg_catalog.float8"),
            ColumnKind::Bool => format!("{q}::pg_catalog.bool"),
            ColumnKind::Text => format!("{q}::pg_catalog.text"),
        });
    }
    format!("SELECT {} FROM {}", select.join(", "), qualified_source)
}

fn native_numeric(type_oid: pg_sys::Oid) -> bool {
    matches!(
        conv_for(type_oid),
        Conv::F8 | Conv::F4 | Conv::I2 | Conv::I4 | Conv::I8 | Conv::Numeric
    )
}

/// One row as read: its id and its feature values (borrowed from the tuple).
pub struct Row<'a> {
    pub id: Option<Id<'a>>,
    pub values: &'a [Value<'a>],
}

/// Run `query` (built by [`select_query`]) and call `f` on every row, in order.
///
/// The query runs through SPI with the caller's privileges (so row-level security,
/// views and column privileges apply as they would to the same SELECT), but its rows are
/// not collected into an SPI tuple table: a DestReceiver hands each result slot to `f`
/// as the executor produces it, with no copy. The executor checks for interrupts
/// between rows. Borrowed text lives only for the duration of the call to `f`.
pub fn for_each_row(
    query: &str,
    id_kind: IdKind,
    kinds: &[ColumnKind],
    mut f: impl FnMut(Row<'_>),
) {
    let natts = kinds.len() + 1;
    let mut values: Vec<Value<'static>> = vec![Value::Null; kinds.len()];
    let mut convs: Vec<Conv> = Vec::new();
    let mut on_slot = |slot: *mut pg_sys::TupleTableSlot| {
        let id;
        // SAFETY: the executor passes a valid slot of the query's result descriptor,
        // which has exactly natts columns of the types the query casts to, so every
        // Datum is read as what it is; slot_getallattrs fills tts_values/tts_isnull.
        unsafe {
            let td = (*slot).tts_tupleDescriptor;
            if (*td).natts as usize != natts {
                raise(
                    Code::ERRCODE_INTERNAL_ERROR,
                    "unexpected SPI result shape",
                    None,
                );
            }
            if convs.is_empty() {
                for (i, kind) in kinds.iter().enumerate() {
                    let att = crate::pg::compat::tupdesc_attr(td, i + 1);
                    convs.push(match kind {
                        ColumnKind::Numeric => conv_for((*att).atttypid),
                        ColumnKind::Bool => Conv::Bool,
                        ColumnKind::Text => Conv::Text,
                    });
                }
            }
            if ((*slot).tts_nvalid as usize) < natts {
                pg_sys::slot_getallattrs(slot);
            }
            let datums = std::slice::from_raw_parts((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
            id = if nulls[0] {
                None
            } else {
                Some(match id_kind {
                    IdKind::Int => Id::Int(datums[0].value() as i64),
                    IdKind::Text => Id::Text(text_str(datums[0]).unwrap_or("")),
                })
            };
            for (i, conv) in convs.iter().enumerate() {
                values[i] = if nulls[i + 1] {
                    Value::Null
                } else {
                    value_of(*conv, datums[i + 1])
                };
            }
        }
        f(Row {
            id,
            values: &values,
        });
    };
    run_into(query, &mut on_slot);
}

/// A DestReceiver that calls a Rust closure for every slot.
#[repr(C)]
struct SlotReceiver<'a> {
    /// Must come first: the executor sees a `*mut DestReceiver`.
    base: pg_sys::DestReceiver,
    on_slot: &'a mut dyn FnMut(*mut pg_sys::TupleTableSlot),
}

#[pg_guard]
unsafe extern "C-unwind" fn receive_slot(
    slot: *mut pg_sys::TupleTableSlot,
    this: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: `this` is the SlotReceiver that run_into handed to SPI (base is its first
    // field, repr(C)), alive for the whole SPI_execute_extended call.
    let me = unsafe { &mut *(this as *mut SlotReceiver<'_>) };
    (me.on_slot)(slot);
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn receiver_startup(
    _this: *mut pg_sys::DestReceiver,
    _operation: std::os::raw::c_int,
    _typeinfo: pg_sys::TupleDesc,
) {
}

#[pg_guard]
unsafe extern "C-unwind" fn receiver_noop(_this: *mut pg_sys::DestReceiver) {}

/// Execute one SELECT through SPI, streaming its result slots into `on_slot`.
fn run_into(query: &str, on_slot: &mut dyn FnMut(*mut pg_sys::TupleTableSlot)) {
    let sql = std::ffi::CString::new(query)
        .unwrap_or_else(|_| raise(Code::ERRCODE_INTERNAL_ERROR, "query contains NUL", None));
    let mut receiver = SlotReceiver {
        base: pg_sys::DestReceiver {
            receiveSlot: Some(receive_slot),
            rStartup: Some(receiver_startup),
            rShutdown: Some(receiver_noop),
            rDestroy: Some(receiver_noop),
            mydest: pg_sys::CommandDest::DestNone,
        },
        on_slot,
    };
    Spi::connect(|_client| {
        let options = pg_sys::SPIExecuteOptions {
            read_only: true,
            dest: &mut receiver.base,
            ..Default::default()
        };
        // SAFETY: SPI is connected; `sql` and `receiver` outlive the call. Errors raised
        // inside (including by `on_slot`) come back as Rust panics through pgrx's guard.
        let rc = unsafe { pg_sys::SPI_execute_extended(sql.as_ptr(), &options) };
        // A SELECT into a receiver other than SPI's own reports SPI_OK_UTILITY.
        if rc != pg_sys::SPI_OK_SELECT as i32 && rc != pg_sys::SPI_OK_UTILITY as i32 {
            raise(
                Code::ERRCODE_INTERNAL_ERROR,
                format!("SPI_execute_extended returned {rc}"),
                None,
            );
        }
    });
}

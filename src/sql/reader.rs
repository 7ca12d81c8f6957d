//! Streaming a training source through an SPI cursor, fast: each fetched tuple is
//! deformed once and its Datums are read directly (feature columns arrive already cast
//! to float8 / text / bool by the SELECT), integer ids stay integers, and text is borrowed
//! rather than copied. This is the hot path of `segment_train`'s scan.
use super::error::{raise, Code};
use super::values::{conv_for, value_of, Conv};
use crate::engine::encode::{ColumnKind, Value};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// Rows fetched from the cursor per round trip.
const FETCH_ROWS: i64 = 10_000;

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
        IdKind::Int => format!("{idq}::int8"),
        IdKind::Text => format!("{idq}::text"),
    }];
    for (name, kind, type_oid) in features {
        let q = quote_identifier(name);
        select.push(match kind {
            // Native numeric types are read as they are (see values::conv_for, including
            // a fast numeric decoder); anything else numeric is cast by PostgreSQL.
            ColumnKind::Numeric if native_numeric(*type_oid) => q,
            ColumnKind::Numeric => format!("{q}::float8"),
            ColumnKind::Bool => format!("{q}::bool"),
            ColumnKind::Text => format!("{q}::text"),
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

/// Run `query` (built by [`select_query`]) and call `f` on every row, in order, with
/// interrupts checked between batches.
pub fn for_each_row(
    query: &str,
    id_kind: IdKind,
    kinds: &[ColumnKind],
    mut f: impl FnMut(Row<'_>),
) {
    let natts = kinds.len() + 1;
    let mut datums = vec![pg_sys::Datum::from(0); natts];
    let mut nulls = vec![true; natts];
    let mut values: Vec<Value<'static>> = vec![Value::Null; kinds.len()];
    let mut convs: Vec<Conv> = Vec::new();
    Spi::connect(|client| {
        let mut cursor = client.open_cursor(query, &[]);
        loop {
            check_for_interrupts!();
            let batch = cursor.fetch(FETCH_ROWS)?;
            if batch.is_empty() {
                break;
            }
            // SAFETY: fetch() just filled SPI_tuptable with this batch (it stays valid
            // until the next fetch); its descriptor has exactly natts columns of the
            // types the query casts to, so every Datum is read as what it is.
            unsafe {
                let tt = pg_sys::SPI_tuptable;
                if tt.is_null() || (*(*tt).tupdesc).natts as usize != natts {
                    raise(
                        Code::ERRCODE_INTERNAL_ERROR,
                        "unexpected SPI result shape",
                        None,
                    );
                }
                let td = (*tt).tupdesc;
                if convs.is_empty() {
                    for (i, kind) in kinds.iter().enumerate() {
                        let att = (*td).attrs.as_ptr().add(i + 1);
                        convs.push(match kind {
                            ColumnKind::Numeric => conv_for((*att).atttypid),
                            ColumnKind::Bool => Conv::Bool,
                            ColumnKind::Text => Conv::Text,
                        });
                    }
                }
                for r in 0..(*tt).numvals as usize {
                    let tup = *(*tt).vals.add(r);
                    pg_sys::heap_deform_tuple(tup, td, datums.as_mut_ptr(), nulls.as_mut_ptr());
                    let id = if nulls[0] {
                        None
                    } else {
                        Some(match id_kind {
                            IdKind::Int => Id::Int(datums[0].value() as i64),
                            IdKind::Text => Id::Text(text_of(datums[0])),
                        })
                    };
                    for (i, conv) in convs.iter().enumerate() {
                        values[i] = if nulls[i + 1] {
                            Value::Null
                        } else {
                            value_of(*conv, datums[i + 1])
                        };
                    }
                    f(Row {
                        id,
                        values: &values,
                    });
                }
            }
            // `batch` (and SPI_tuptable with it) lives until the next fetch.
            let _ = &batch;
        }
        Ok::<_, pgrx::spi::SpiError>(())
    })
    .unwrap_or_else(|e| raise(Code::ERRCODE_INTERNAL_ERROR, e.to_string(), None));
}

/// A text Datum as &str (detoasted if needed). The memory lives in the SPI batch or the
/// current memory context, which outlive the row callback.
///
/// # Safety
/// `d` must be a non-NULL text Datum.
unsafe fn text_of(d: pg_sys::Datum) -> &'static str {
    unsafe { <&'static str>::from_datum(d, false).unwrap_or("") }
}

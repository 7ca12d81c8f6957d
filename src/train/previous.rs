//! The current version's assignments, as a refresh compares them with the new fit's:
//! each customer's segment, read from the model's assignment table with the caller's
//! privileges (the owner role reads it).
use crate::engine::encode::{ColumnKind, Value};
use crate::engine::hash::{FxHashMap, IdTable};
use crate::engine::lineage::Transitions;
use crate::error::{raise, Code};
use crate::pg::reader::{self, Id, IdKind};
use crate::pg::spi;
use pgrx::pg_sys;
use std::cell::{Cell, OnceCell};
use std::collections::HashMap;

enum ById {
    /// (id, centroid row), sorted by id: looked up by a cursor that moves forward while
    /// the ids asked for ascend (the usual case: rows are read in id order), by binary
    /// search otherwise.
    Int(Vec<(i64, u32)>, Cell<usize>, OutOfOrder),
    Text(FxHashMap<String, u32>),
}

/// A source read out of id order makes the cursor jump: a binary search of a table
/// larger than the caches costs a cache miss per level. Past [`JUMPS_BEFORE_HASH`]
/// jumps (or at the first batch out of order, see [`Previous::get_batch`]) the lookups
/// go through a hash table built once from the sorted table.
#[derive(Default)]
struct OutOfOrder {
    jumps: Cell<u32>,
    hash: OnceCell<IdTable>,
}

/// Cursor jumps (binary searches) before the integer ids get a hash map.
const JUMPS_BEFORE_HASH: u32 = 4096;

/// Each customer's current segment (as the centroid row of the current version).
pub(crate) struct Previous {
    by_id: ById,
    /// Customers per centroid row.
    totals: Vec<u64>,
}

impl Previous {
    /// Read `segment.<table>`, whose segment ids are `segment_ids` (in centroid order):
    /// the rows `filter` (a condition on its columns) keeps, every row when it is empty.
    pub(crate) fn read(
        model: &str,
        table: &str,
        id_column: &str,
        id_kind: IdKind,
        segment_ids: &[i32],
        filter: &str,
    ) -> Previous {
        let index: HashMap<i32, u32> = segment_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        let query = reader::select_query(
            &format!("segment.{}", spi::ident(table)),
            id_column,
            id_kind,
            &[("segment", ColumnKind::Numeric, pg_sys::INT4OID)],
        );
        let query = if filter.is_empty() {
            query
        } else {
            format!("{query} WHERE {filter}")
        };
        let mut by_id = match id_kind {
            IdKind::Int => ById::Int(Vec::new(), Cell::new(0), OutOfOrder::default()),
            IdKind::Text => ById::Text(FxHashMap::default()),
        };
        let mut totals = vec![0u64; segment_ids.len()];
        reader::for_each_row(&query, id_kind, &[ColumnKind::Numeric], |row| {
            let segment = match row.values.first() {
                Some(Value::Num(x)) => *x as i32,
                _ => 0,
            };
            let (Some(id), Some(&i)) = (row.id, index.get(&segment)) else {
                raise(
                    Code::ERRCODE_DATA_CORRUPTED,
                    format!(
                        "model \"{model}\": its assignment table holds segment {segment}, which its current version does not have"
                    ),
                    Some("Promote a version again with segment_promote, or drop and retrain the model.".into()),
                )
            };
            totals[i as usize] += 1;
            match (&mut by_id, id) {
                (ById::Int(m, _, _), Id::Int(v)) => m.push((v, i)),
                (ById::Text(m), Id::Text(s)) => {
                    m.insert(s.to_string(), i);
                }
                _ => unreachable!("id kind fixed per table"),
            }
        });
        if let ById::Int(m, _, _) = &mut by_id {
            // Written in id order, so normally sorted already.
            if !m.windows(2).all(|w| w[0].0 < w[1].0) {
                m.sort_unstable();
            }
        }
        Previous { by_id, totals }
    }

    /// Customers per segment (centroid row) of the current version.
    pub(crate) fn totals(&self) -> &[u64] {
        &self.totals
    }

    /// Segments of the current version.
    pub(crate) fn k(&self) -> usize {
        self.totals.len()
    }

    /// The current centroid row of customer `id` (None: not in the table).
    #[inline]
    pub(crate) fn get(&self, id: Id<'_>) -> Option<usize> {
        match (&self.by_id, id) {
            (ById::Int(m, cursor, ooo), Id::Int(v)) => {
                if let Some(h) = ooo.hash.get() {
                    return h.get(v).map(|i| i as usize);
                }
                let mut at = cursor.get();
                let mut jumped = false;
                // Every entry before the cursor is below the last id asked for.
                if at > 0 && m[at - 1].0 >= v {
                    at = m.partition_point(|e| e.0 < v);
                    jumped = true;
                } else {
                    // A source read in id order advances a step or two; anything farther
                    // is a binary search of the rest, not a walk (which made a shuffled
                    // source quadratic).
                    let mut steps = 0;
                    while at < m.len() && m[at].0 < v && steps < 8 {
                        at += 1;
                        steps += 1;
                    }
                    if at < m.len() && m[at].0 < v {
                        at += m[at..].partition_point(|e| e.0 < v);
                        jumped = true;
                    }
                }
                if jumped {
                    let n = ooo.jumps.get() + 1;
                    ooo.jumps.set(n);
                    if n >= JUMPS_BEFORE_HASH {
                        ooo.hash.get_or_init(|| IdTable::new(m));
                    }
                }
                cursor.set(at);
                (at < m.len() && m[at].0 == v).then(|| m[at].1 as usize)
            }
            (ById::Text(m), Id::Text(s)) => m.get(s).map(|&i| i as usize),
            _ => None,
        }
    }

    /// The current centroid row of each of `n` ids (`id(i)`; None for a row without an
    /// id), as [`Previous::get`] gives them one by one. A batch of integer ids out of
    /// ascending order goes through the hash table (built at the first such batch),
    /// which prefetches the slots of the ids ahead: one memory latency per batch rather
    /// than one per row for a source read out of id order.
    pub(crate) fn get_batch<'a>(
        &self,
        n: usize,
        id: impl Fn(usize) -> Option<Id<'a>>,
    ) -> Vec<Option<usize>> {
        if let ById::Int(m, _, ooo) = &self.by_id {
            let ids: Vec<Option<i64>> = (0..n)
                .map(|r| match id(r) {
                    Some(Id::Int(v)) => Some(v),
                    _ => None,
                })
                .collect();
            let mut last = i64::MIN;
            let ascending = ids.iter().flatten().all(|&v| {
                let up = v >= last;
                last = v;
                up
            });
            if !ascending || ooo.hash.get().is_some() {
                let table = ooo.hash.get_or_init(|| IdTable::new(m));
                return table
                    .get_many(&ids)
                    .into_iter()
                    .map(|v| v.map(|i| i as usize))
                    .collect();
            }
            // In order: the cursor, on the ids already taken out of the batch.
            return ids
                .iter()
                .map(|v| v.and_then(|v| self.get(Id::Int(v))))
                .collect();
        }
        (0..n).map(|r| id(r).and_then(|i| self.get(i))).collect()
    }

    /// After every row of the source was counted into `t`: the customers of each
    /// current segment not seen are gone from the source.
    pub(crate) fn count_gone(&self, t: &mut Transitions) {
        for (i, &total) in self.totals.iter().enumerate() {
            let seen: u64 = (0..t.k_new()).map(|j| t.get(Some(i), Some(j))).sum();
            t.add(Some(i), None, total.saturating_sub(seen));
        }
    }
}

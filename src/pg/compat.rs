//! Every difference between the PostgreSQL versions pg_segment builds for (15, 16, 17,
//! 18), each behind one small named helper, so that the rest of the code is written
//! once. Add a helper here rather than a `cfg` anywhere else.
use pgrx::pg_sys;

/// Attribute `i` (0-based) of a tuple descriptor. PostgreSQL 18 moved the attributes
/// behind `TupleDescAttr()` (the descriptor now starts with compact attributes); before
/// it they are the descriptor's trailing `attrs` array.
///
/// # Safety
/// `desc` must be a valid tuple descriptor and `i < natts`.
#[inline]
pub unsafe fn tupdesc_attr(
    desc: pg_sys::TupleDesc,
    i: usize,
) -> *const pg_sys::FormData_pg_attribute {
    #[cfg(feature = "pg18")]
    {
        // SAFETY: as the caller promises.
        unsafe { pg_sys::TupleDescAttr(desc, i as core::ffi::c_int) }
    }
    #[cfg(not(feature = "pg18"))]
    {
        // SAFETY: as the caller promises; attrs has natts entries.
        unsafe { (*desc).attrs.as_ptr().add(i) }
    }
}

/// Whether the page writer (pages.rs, `pg_segment.direct_writes`) is proven on this
/// PostgreSQL version: its pages compared page for page with heap_multi_insert's
/// (tests/sql/pages.sql, which needs pageinspect and amcheck) and its crash recovery
/// tested (scripts/crash_test.sh). Where it is not (16 and 17: the PostgreSQL 16 build
/// tested here has no contrib modules, and 17 is not tested), assignment tables are
/// written with heap_multi_insert whatever the setting.
pub const PAGE_WRITER_PROVEN: bool = cfg!(any(feature = "pg15", feature = "pg18"));

/// Whether `rel`'s storage was created in this transaction: the relation itself
/// (`rd_createSubid`) or a new relfilenode for it, as `TRUNCATE` assigns
/// (`rd_newRelfilenodeSubid`, renamed `rd_newRelfilelocatorSubid` in 16). Either way its
/// current storage is invisible to every other transaction and dropped on abort: the
/// condition `COPY FREEZE` checks.
///
/// # Safety
/// `rel` must be a valid open relation.
#[inline]
pub unsafe fn storage_created_here(rel: pg_sys::Relation) -> bool {
    // SAFETY: as the caller promises.
    unsafe {
        #[cfg(feature = "pg15")]
        let new_storage = (*rel).rd_newRelfilenodeSubid;
        #[cfg(not(feature = "pg15"))]
        let new_storage = (*rel).rd_newRelfilelocatorSubid;
        (*rel).rd_createSubid != 0 || new_storage != 0
    }
}

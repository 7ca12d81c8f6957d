//! State kept per call site for the length of a statement: `flinfo->fn_extra`, allocated
//! in `fn_mcxt` (freed, and the Rust value dropped, when the statement's FmgrInfo goes).
//! Backends are single-threaded, so no locking is needed. The slot records the Rust type
//! it holds, so two users of one FmgrInfo can never read each other's state as theirs.
use crate::error::{raise, Code};
use crate::pg::tagged::Tagged;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::pg_sys;

/// This call site's slot for a `T` (None on the first call) and the memory context it
/// lives in. `fcinfo` must be the one PostgreSQL passed to the calling function (pgrx
/// hands it to `#[pg_extern]` functions that declare it). Safe to call for that reason,
/// as pgrx's own `fcinfo` helpers are: no other `FunctionCallInfo` reaches this crate.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn slot<'a, T: 'static>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> (&'a mut Option<T>, pg_sys::MemoryContext) {
    // SAFETY: fcinfo and its flinfo are the current call's. fn_extra is only ever set
    // here, to a Tagged<Option<_>> in fn_mcxt, and is read once per call.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            (*flinfo).fn_extra = PgMemoryContexts::For((*flinfo).fn_mcxt)
                .leak_and_drop_on_delete(Tagged::<Option<T>>::new(None))
                .cast();
        }
        let slot = Tagged::<Option<T>>::at((*flinfo).fn_extra.cast()).unwrap_or_else(|| {
            raise(
                Code::ERRCODE_INTERNAL_ERROR,
                "pg_segment: call site state of another type",
                None,
            )
        });
        (slot, (*flinfo).fn_mcxt)
    }
}

/// The declared result type of the function being called (by its OID: no search_path
/// involved). `fcinfo` as for [`slot`].
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn result_type(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Oid {
    // SAFETY: fcinfo and its flinfo are the current call's; get_func_rettype reads the
    // syscache row of a function that exists (it is running).
    unsafe { pg_sys::get_func_rettype((*(*fcinfo).flinfo).fn_oid) }
}

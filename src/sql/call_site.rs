//! State kept per call site for the length of a statement: `flinfo->fn_extra`, allocated
//! in `fn_mcxt` (freed, and the Rust value dropped, when the statement's FmgrInfo goes).
//! Backends are single-threaded, so no locking is needed.
use pgrx::memcxt::PgMemoryContexts;
use pgrx::pg_sys;

/// This call site's slot for a `T` (None on the first call) and the memory context it
/// lives in.
///
/// # Safety
/// `fcinfo` must be the current call's, and every call through this FmgrInfo must ask
/// for the same `T` (fn_extra is only ever set here, to an `Option<T>` in fn_mcxt).
pub unsafe fn slot<'a, T>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> (&'a mut Option<T>, pg_sys::MemoryContext) {
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            let empty: Option<T> = None;
            (*flinfo).fn_extra = PgMemoryContexts::For((*flinfo).fn_mcxt)
                .leak_and_drop_on_delete(empty)
                .cast();
        }
        (
            &mut *((*flinfo).fn_extra as *mut Option<T>),
            (*flinfo).fn_mcxt,
        )
    }
}

//! Every SQL statement pg_segment runs on its own behalf goes through here.
//!
//! Invariants this module keeps:
//! - **No caller's search_path reaches our SQL.** Each statement runs with
//!   `search_path = pg_catalog, pg_temp` (pg_temp named last, so temporary relations can
//!   neither shadow catalogs nor, as they never are for functions and operators, stand
//!   in for anything else), set at a new GUC nest level and restored afterwards, exactly
//!   as PostgreSQL's own `SET` clause on a function does. Statements name our tables
//!   schema-qualified as well. The only statements that do *not* come through here are
//!   the reads of a training source (`reader.rs`), which must see the caller's view
//!   functions as the caller would; that text names only quoted columns, the quoted
//!   relation and `pg_catalog`-qualified types.
//! - **One mapping of SPI failures.** An `SpiError` (a type mismatch between our SQL and
//!   our Rust, i.e. a bug) becomes XX000 here; errors PostgreSQL raises while running a
//!   statement propagate unchanged, with their own SQLSTATE.
//! - **Catalog DDL as the extension's owner, only from Rust.** [`as_extension_owner`]
//!   switches the current user to the owner of schema `segment` for the assignment
//!   table's DDL (ordinary roles may not create in that schema), the way PostgreSQL
//!   runs maintenance commands as a table's owner: `SECURITY_LOCAL_USERID_CHANGE |
//!   SECURITY_RESTRICTED_OPERATION`, undone on return and by transaction abort on error.
//!   There is no SQL-callable SECURITY DEFINER function that creates anything.
use crate::error::{raise, Code};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiError};
use std::ffi::CStr;

/// The search_path every internal statement runs with.
pub const SAFE_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";

/// Run `f` with `search_path = pg_catalog, pg_temp` and the given extra settings, all
/// restored when `f` returns (on error, by the (sub)transaction's abort).
pub fn with_settings<R>(extra: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    // SAFETY: NewGUCNestLevel/AtEOXact_GUC bracket the settings made in between, as
    // fmgr_security_definer does; set_config_option raises (does not return) on error.
    unsafe {
        let nest = pg_sys::NewGUCNestLevel();
        let settings =
            std::iter::once((c"search_path", SAFE_SEARCH_PATH)).chain(extra.iter().copied());
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        let out = f();
        pg_sys::AtEOXact_GUC(true, nest);
        out
    }
}

/// Run `f` with `search_path = pg_catalog, pg_temp`.
pub fn fixed_path<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&[], f)
}

#[track_caller]
fn failed(e: SpiError) -> ! {
    raise(
        Code::ERRCODE_INTERNAL_ERROR,
        format!("pg_segment internal query failed: {e}"),
        None,
    )
}

/// Run a statement for its effect.
#[track_caller]
pub fn run(sql: &str, args: &[DatumWithOid<'_>]) {
    fixed_path(|| Spi::run_with_args(sql, args)).unwrap_or_else(|e| failed(e))
}

/// The first column of the first row; None for no row or a NULL.
#[track_caller]
pub fn one<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid<'_>]) -> Option<T> {
    match fixed_path(|| Spi::get_one_with_args::<T>(sql, args)) {
        Ok(v) => v,
        Err(SpiError::InvalidPosition) => None,
        Err(e) => failed(e),
    }
}

/// The first two columns of the first row; None for no row.
#[track_caller]
pub fn two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Option<(Option<A>, Option<B>)> {
    match fixed_path(|| Spi::get_two_with_args::<A, B>(sql, args)) {
        Ok(v) => Some(v),
        Err(SpiError::InvalidPosition) => None,
        Err(e) => failed(e),
    }
}

/// Every row of a two-column query (NULLs skipped), under the fixed search_path.
#[track_caller]
pub fn pairs<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Vec<(A, B)> {
    connect(|c| {
        let mut out = Vec::new();
        for row in c.select(sql, None, args)? {
            if let (Some(a), Some(b)) = (row.get::<A>(1)?, row.get::<B>(2)?) {
                out.push((a, b));
            }
        }
        Ok(out)
    })
}

/// Run `f` with an SPI client under the fixed search_path.
#[track_caller]
pub fn connect<R>(f: impl FnOnce(&mut SpiClient<'_>) -> Result<R, SpiError>) -> R {
    fixed_path(|| Spi::connect_mut(f)).unwrap_or_else(|e| failed(e))
}

/// The owner of schema `segment` (the role that created the extension).
fn extension_owner() -> pg_sys::Oid {
    one::<pg_sys::Oid>(
        "SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'segment'",
        &[],
    )
    .unwrap_or_else(|| {
        raise(
            Code::ERRCODE_INVALID_SCHEMA_NAME,
            "schema \"segment\" does not exist",
            Some("Recreate the extension: DROP EXTENSION pg_segment; CREATE EXTENSION pg_segment;".into()),
        )
    })
}

/// Run `f` as the owner of schema `segment`, with the fixed search_path, in a
/// security-restricted operation. Only for DDL on a model's assignment table that the
/// calling code has checked the caller may do (see the module header).
pub fn as_extension_owner<R>(extra: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    let owner = extension_owner();
    let mut saved_user = pg_sys::Oid::INVALID;
    let mut saved_context = 0;
    // SAFETY: the user id is restored below, and by AbortTransaction /
    // AbortSubTransaction if `f` raises (they reset it to the value saved at the start
    // of the (sub)transaction).
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let out = with_settings(extra, f);
    // SAFETY: restoring what was saved above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    out
}

/// A quoted identifier (`"Name"`), as `format('%I')` would write it.
pub fn ident(name: &str) -> String {
    pgrx::spi::quote_identifier(name)
}

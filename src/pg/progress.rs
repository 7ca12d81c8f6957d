//! What a long call is doing, in PostgreSQL's per-backend progress slot, so that another
//! session sees it (view `segment.progress`) with no `shared_preload_libraries`.
//!
//! PostgreSQL lets a backend report progress only under one of its own command types, so
//! pg_segment reports under `VACUUM` (as Citus does for its own commands) with a marker
//! in the first parameter; `segment.progress` keeps exactly the slots with the marker (and
//! `pg_stat_progress_vacuum` shows such a backend with a NULL phase). Who may see whose
//! figures follows PostgreSQL's rule for `pg_stat_get_progress_info`: a role sees its own
//! backends' and, with `pg_read_all_stats`, everyone's; others' figures are NULL.
//!
//! An index build inside a call (the assignment table's primary key) reports under its
//! own command and ends the slot; [`resume`] reports again afterwards. An error ends the
//! slot too (PostgreSQL does that at abort).
use pgrx::pg_sys;
use std::cell::Cell;

/// "pg_seg" in ASCII: the first parameter of every slot pg_segment reports in.
pub const MARKER: i64 = 0x7067_5f73_6567;

/// The SQL function reporting (parameter 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Train = 1,
    Refresh = 2,
    Drift = 3,
    Promote = 4,
}

/// The phase (parameter 3); `segment.progress` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Read = 1,
    Encode = 2,
    Seeding = 3,
    Iterations = 4,
    Metrics = 5,
    Write = 6,
    Match = 7,
}

// Parameter slots (0-based; the view's param1 is slot 0).
const P_MARKER: i32 = 0;
const P_FUNCTION: i32 = 1;
const P_PHASE: i32 = 2;
const P_ROWS_DONE: i32 = 3;
const P_ROWS_TOTAL: i32 = 4;
const P_ITERATION: i32 = 5;
const P_MAX_ITER: i32 = 6;
const P_INERTIA_MILLI: i32 = 7;
const P_K: i32 = 8;

thread_local! {
    static CURRENT: Cell<Option<(Function, Phase)>> = const { Cell::new(None) };
    static MAX_ITER: Cell<usize> = const { Cell::new(0) };
}

fn set(index: i32, value: i64) {
    // SAFETY: updates this backend's own progress slot (a plain shared-memory write);
    // valid at any time, a no-op while no command is being reported.
    unsafe { pg_sys::pgstat_progress_update_param(index, value) }
}

/// Start reporting `function`.
pub fn start(function: Function) {
    // SAFETY: as in `set`; starting a command resets the slot's parameters.
    unsafe {
        pg_sys::pgstat_progress_start_command(
            pg_sys::ProgressCommandType::PROGRESS_COMMAND_VACUUM,
            pg_sys::InvalidOid,
        )
    };
    set(P_MARKER, MARKER);
    set(P_FUNCTION, function as i64);
    CURRENT.set(Some((function, Phase::Read)));
}

/// Report `phase`.
pub fn phase(phase: Phase) {
    if let Some((f, _)) = CURRENT.get() {
        CURRENT.set(Some((f, phase)));
    }
    set(P_PHASE, phase as i64);
}

/// Rows done of (an estimate of) the total.
pub fn rows(done: u64, total: u64) {
    set(P_ROWS_DONE, done as i64);
    set(P_ROWS_TOTAL, total as i64);
}

/// The iteration limit of the fits to come.
pub fn max_iter(max_iter: usize) {
    MAX_ITER.set(max_iter);
}

/// A k-means iteration: its number, the inertia and the k being fitted (nothing unless a
/// call is reporting).
pub fn iteration(iteration: usize, inertia: f64, k: usize) {
    match CURRENT.get() {
        None => return,
        Some((_, Phase::Seeding)) => phase(Phase::Iterations),
        Some(_) => {}
    }
    set(P_ITERATION, iteration as i64);
    set(P_MAX_ITER, MAX_ITER.get() as i64);
    let milli = (inertia * 1000.0).round();
    set(
        P_INERTIA_MILLI,
        if milli.is_finite() {
            milli.clamp(0.0, i64::MAX as f64) as i64
        } else {
            -1
        },
    );
    set(P_K, k as i64);
}

/// Report again after a nested command (an index build) ended the slot.
pub fn resume() {
    if let Some((f, p)) = CURRENT.get() {
        start(f);
        phase(p);
    }
}

/// Stop reporting.
pub fn end() {
    CURRENT.set(None);
    // SAFETY: as in `set`.
    unsafe { pg_sys::pgstat_progress_end_command() }
}

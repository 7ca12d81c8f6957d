//! Aggregate transition states behind PostgreSQL's `internal` pointer.
//!
//! A state is a Rust value allocated in the aggregate's memory context (dropped when that
//! context goes) together with a tag naming its Rust type. Every access checks the tag,
//! so a support function handed another aggregate's state (a user can pair our support
//! functions differently in a `CREATE AGGREGATE` of their own) raises an error instead
//! of reading memory as the wrong type. States are only ever created while called as an
//! aggregate support function (`AggCheckCallContext`), so an `internal` that did not come
//! from here never reaches the casts below.
use crate::engine::EngineError;
use crate::error::{raise, raise_engine, Code};
use crate::pg::tagged::Tagged;
use pgrx::{pg_sys, Internal};

/// An aggregate state that crosses process boundaries (parallel workers, Citus) and
/// merges exactly: what the generic combine / serialize / deserialize below need.
pub trait AggState: Sized + Clone + 'static {
    /// Context for error messages.
    const WHAT: &'static str;
    fn serialize(&self) -> Vec<u8>;
    fn deserialize(bytes: &[u8]) -> Result<Self, EngineError>;
    fn absorb(&mut self, other: &Self) -> Result<(), EngineError>;
}

/// `AggState` for an engine state with `to_bytes` / `from_bytes` (the engine's one byte
/// codec), `$what` naming it in errors, and how a partial state is absorbed.
#[macro_export]
macro_rules! impl_agg_state {
    ($ty:ty, $what:literal, |$a:ident, $b:ident| $absorb:expr) => {
        impl $crate::pg::agg_state::AggState for $ty {
            const WHAT: &'static str = $what;
            fn serialize(&self) -> Vec<u8> {
                self.to_bytes()
            }
            fn deserialize(bytes: &[u8]) -> Result<Self, $crate::engine::EngineError> {
                Self::from_bytes(bytes)
            }
            fn absorb(&mut self, other: &Self) -> Result<(), $crate::engine::EngineError> {
                let ($a, $b) = (self, other);
                $absorb
            }
        }
    };
}

/// The aggregate memory context of this call, or an error when not called as an
/// aggregate support function.
fn agg_context(fcinfo: pg_sys::FunctionCallInfo, what: &str) -> pg_sys::MemoryContext {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: fcinfo is the one PostgreSQL passed to this call (pgrx hands it to the
    // #[pg_extern] wrapper); AggCheckCallContext only inspects it.
    let is_agg = unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut ctx) };
    if is_agg == 0 {
        raise(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} can only be called as part of an aggregate"),
            None,
        );
    }
    ctx
}

/// Move `value` into the aggregate memory context (dropped when that context goes).
fn into_agg<T: 'static>(value: T, fcinfo: pg_sys::FunctionCallInfo, what: &str) -> Internal {
    let ctx = agg_context(fcinfo, what);
    let tagged = Tagged::new(value);
    // SAFETY: switching to a valid context for the allocation, then back.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(ctx);
        let internal = Internal::new(tagged);
        pg_sys::MemoryContextSwitchTo(old);
        internal
    }
}

fn wrong_state(what: &str) -> ! {
    raise(
        Code::ERRCODE_DATATYPE_MISMATCH,
        format!("{what}: the aggregate state belongs to another aggregate"),
        Some("Use pg_segment's aggregates as created by the extension.".into()),
    )
}

/// The state behind `state` (None for a NULL state), checked to be a `T`.
pub fn state_ref<'a, T: 'static>(state: &'a Internal, what: &str) -> Option<&'a T> {
    // SAFETY: a non-NULL state was made by into_agg, so it points at a live Tagged<_>.
    let p: *const u8 = unsafe { state.get::<u8>() }?;
    Some(unsafe { Tagged::<T>::at_ref(p) }.unwrap_or_else(|| wrong_state(what)))
}

/// The state behind `state`, created by `init` in the aggregate context on first use.
pub fn state_mut<'a, T: 'static>(
    state: &'a mut Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    what: &str,
    init: impl FnOnce() -> T,
) -> &'a mut T {
    if !state.initialized() {
        *state = into_agg(init(), fcinfo, what);
    }
    // SAFETY: as in state_ref; `state` is borrowed mutably for 'a.
    let p: *mut u8 = unsafe { state.get_mut::<u8>() }.expect("initialized above");
    unsafe { Tagged::<T>::at(p) }.unwrap_or_else(|| wrong_state(what))
}

/// Combine two states: merge `b` into `a`, with either side possibly NULL.
pub fn combine_states<T: AggState>(
    a: Internal,
    b: Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    let mut a = a;
    match (a.initialized(), state_ref::<T>(&b, T::WHAT)) {
        (_, None) => a,
        (false, Some(bs)) => into_agg(bs.clone(), fcinfo, T::WHAT),
        (true, Some(bs)) => {
            let st = state_mut::<T>(&mut a, fcinfo, T::WHAT, || unreachable!("initialized"));
            st.absorb(bs).unwrap_or_else(|e| raise_engine(e, T::WHAT));
            a
        }
    }
}

/// The bytes of a state, for the leader process.
pub fn serialize_state<T: AggState>(state: Internal) -> Vec<u8> {
    state_ref::<T>(&state, T::WHAT)
        .map(T::serialize)
        .unwrap_or_default()
}

/// A state rebuilt from its bytes, in the aggregate memory context.
pub fn deserialize_state<T: AggState>(bytes: &[u8], fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let st = T::deserialize(bytes).unwrap_or_else(|e| raise_engine(e, T::WHAT));
    into_agg(st, fcinfo, T::WHAT)
}

//! Aggregate states of the SQL type `segment.agg_state`: a real type (not `internal`), so
//! that Citus pushes the aggregates down to its workers and ships each partial state as
//! the type's text output, and PostgreSQL's parallel query sends it between processes
//! without serialize / deserialize functions.
//!
//! A value of the type has two forms:
//! - **flat**: a varlena holding the engine's byte codec of the state (a 4-byte magic
//!   naming the state kind, a format version, then little-endian fields). This is what
//!   is stored, sent, printed (`kind:hex`) and read back; every way in (text input,
//!   binary receive, a flat argument) parses it with the codec's length checks.
//! - **expanded** (PostgreSQL's expanded-object protocol, as arrays use it): while an
//!   aggregate runs, the state is a Rust value owned by a memory context that is a child
//!   of the aggregate context. A transition function returns the read-write pointer to
//!   it, and nodeAgg (and Citus's `worker_partial_agg`) adopt that pointer without
//!   copying, so a row costs what it cost with an `internal` state. Whenever PostgreSQL
//!   needs the bytes (a tuple, a parallel worker's result, `datumCopy`), it calls
//!   [`flat_size`] and [`flatten_into`]. The Rust value is dropped by a reset callback
//!   of its context.
//!
//! A function that may change a state changes it in place only when handed the
//! read-write pointer of one of our expanded objects; anything else (flat, read-only) is
//! first copied into a new expanded object in the aggregate context. Every access checks
//! the state's Rust type, so a state of another aggregate is refused.
use crate::error::{raise, raise_engine, Code};
use crate::pg::agg_state::AggState;
use crate::pg::varlena::{self, MAX_VARLENA as MAX_FLAT, VARHDRSZ};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::borrow::Cow;

/// A state kind of `segment.agg_state`: its engine state, the name its text form starts
/// with, and the magic its bytes start with.
pub trait FlatState: AggState {
    const NAME: &'static str;
    const MAGIC: &'static [u8; 4];
}

/// The bytes of the `T` behind a type-erased pointer.
unsafe fn bytes_of_state<T: AggState>(p: *const u8) -> Vec<u8> {
    // SAFETY: the caller's `p` is the Box<T> stored with this function.
    unsafe { (*p.cast::<T>()).serialize() }
}

/// Drop the `Box<T>` behind a type-erased pointer.
unsafe fn drop_state<T: AggState>(p: *mut u8) {
    // SAFETY: the caller's `p` is the Box<T> stored with this function, dropped once.
    drop(unsafe { Box::from_raw(p.cast::<T>()) })
}

/// The expanded object: PostgreSQL's header first (the Datum points into it).
#[repr(C)]
struct Expanded {
    hdr: pg_sys::ExpandedObjectHeader,
    /// The Rust state: a `Box<T>` of the type `type_id` names, dropped by
    /// [`drop_expanded`]; a check of one field and a cast find it (this runs per row).
    state: *mut u8,
    type_id: std::any::TypeId,
    bytes: unsafe fn(*const u8) -> Vec<u8>,
    drop: unsafe fn(*mut u8),
    /// The bytes [`flat_size`] computed, for the [`flatten_into`] that follows it.
    flat: *mut Vec<u8>,
}

static METHODS: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
    get_flat_size: Some(flat_size),
    flatten_into: Some(flatten_into),
};

#[pg_guard]
unsafe extern "C-unwind" fn flat_size(eoh: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
    // SAFETY: PostgreSQL calls this with the header of one of our objects (METHODS).
    unsafe {
        let e = eoh.cast::<Expanded>();
        let bytes = ((*e).bytes)((*e).state);
        let size = VARHDRSZ + bytes.len();
        if size > MAX_FLAT {
            raise(
                Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("aggregate state of {} bytes is too large", bytes.len()),
                None,
            );
        }
        take_flat(e);
        (*e).flat = Box::into_raw(Box::new(bytes));
        size
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn flatten_into(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut std::ffi::c_void,
    allocated_size: pg_sys::Size,
) {
    // SAFETY: as in flat_size; `result` has `allocated_size` bytes, the size flat_size
    // returned for the bytes it kept (recomputed if they are gone).
    unsafe {
        let e = eoh.cast::<Expanded>();
        let bytes = take_flat(e).unwrap_or_else(|| ((*e).bytes)((*e).state));
        if VARHDRSZ + bytes.len() != allocated_size {
            raise(
                Code::ERRCODE_INTERNAL_ERROR,
                "aggregate state changed size while being flattened",
                None,
            );
        }
        pgrx::set_varsize_4b(result.cast(), allocated_size as i32);
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            result.cast::<u8>().add(VARHDRSZ),
            bytes.len(),
        );
    }
}

/// The cached flat bytes of `e`, if any (and forget them).
unsafe fn take_flat(e: *mut Expanded) -> Option<Vec<u8>> {
    // SAFETY: `flat` is null or a Box made by flat_size.
    unsafe {
        let p = std::mem::replace(&mut (*e).flat, std::ptr::null_mut());
        (!p.is_null()).then(|| *Box::from_raw(p))
    }
}

/// Reset callback of the object's context: drop the Rust state.
unsafe extern "C-unwind" fn drop_expanded(arg: *mut std::ffi::c_void) {
    // SAFETY: `arg` is the Expanded this callback was registered with, still allocated
    // (its context is being reset or deleted, callbacks run first).
    unsafe {
        let e = arg.cast::<Expanded>();
        drop(take_flat(e));
        ((*e).drop)((*e).state);
    }
}

/// The aggregate memory context of this call, or an error when not called as an
/// aggregate support function.
fn agg_context(fcinfo: pg_sys::FunctionCallInfo, what: &str) -> pg_sys::MemoryContext {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: fcinfo is the one PostgreSQL passed to this call; AggCheckCallContext
    // only inspects it.
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut ctx) } == 0 {
        raise(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{what} can only be called as part of an aggregate"),
            None,
        );
    }
    ctx
}

/// A new expanded object holding `value`, in a child of the aggregate context: its
/// read-write Datum, and the object.
fn new_expanded<T: AggState>(
    value: T,
    fcinfo: pg_sys::FunctionCallInfo,
) -> (pg_sys::Datum, *mut Expanded) {
    let parent = agg_context(fcinfo, T::WHAT);
    // SAFETY: allocations in a fresh context whose reset callback drops the Box; the
    // header is initialized by EOH_init_header before the Datum escapes.
    unsafe {
        let cxt = pg_sys::AllocSetContextCreateInternal(
            parent,
            c"segment agg_state".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let e = pg_sys::MemoryContextAlloc(cxt, std::mem::size_of::<Expanded>()).cast::<Expanded>();
        pg_sys::EOH_init_header(&raw mut (*e).hdr, &METHODS, cxt);
        (&raw mut (*e).state).write(Box::into_raw(Box::new(value)).cast::<u8>());
        (&raw mut (*e).type_id).write(std::any::TypeId::of::<T>());
        (&raw mut (*e).bytes).write(bytes_of_state::<T>);
        (&raw mut (*e).drop).write(drop_state::<T>);
        (&raw mut (*e).flat).write(std::ptr::null_mut());
        let cb =
            pg_sys::MemoryContextAlloc(cxt, std::mem::size_of::<pg_sys::MemoryContextCallback>())
                .cast::<pg_sys::MemoryContextCallback>();
        cb.write(pg_sys::MemoryContextCallback {
            func: Some(drop_expanded),
            arg: e.cast(),
            next: std::ptr::null_mut(),
        });
        pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
        (pg_sys::Datum::from((*e).hdr.eoh_rw_ptr.as_mut_ptr()), e)
    }
}

/// One of our expanded objects behind `d`, and whether `d` is its read-write pointer.
fn ours(d: pg_sys::Datum) -> Option<(*mut Expanded, bool)> {
    // SAFETY: `d` is a non-NULL varlena Datum of type segment.agg_state. An external
    // varlena has the 1-byte header 0x01 (little-endian, VARATT_IS_1B_E) and its tag next;
    // the expanded tags point at an ExpandedObjectHeader, whose methods say whose it is.
    unsafe {
        let p = d.cast_mut_ptr::<u8>();
        if *p != 0x01 {
            return None;
        }
        let tag = *p.add(1) as u32;
        let rw = tag == pg_sys::vartag_external::VARTAG_EXPANDED_RW;
        if !rw && tag != pg_sys::vartag_external::VARTAG_EXPANDED_RO {
            return None;
        }
        // DatumGetEOHP, inline (this runs once per row; a call into PostgreSQL through
        // pgrx's FFI guard costs more than the rest of the check): the pointer to the
        // header is stored, unaligned, after the two header bytes (varatt_expanded).
        let eoh = p
            .add(2)
            .cast::<*mut pg_sys::ExpandedObjectHeader>()
            .read_unaligned();
        std::ptr::eq((*eoh).eoh_methods, &METHODS).then_some((eoh.cast::<Expanded>(), rw))
    }
}

#[cfg(not(target_endian = "little"))]
compile_error!("segment.agg_state reads varlena headers as little-endian");

fn wrong_state(what: &str) -> ! {
    raise(
        Code::ERRCODE_DATATYPE_MISMATCH,
        format!("{what}: the aggregate state belongs to another aggregate"),
        Some("Use pg_segment's aggregates as created by the extension.".into()),
    )
}

/// The bytes of a flat (possibly compressed or short-header) value.
fn flat_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    varlena::bytes(d)
}

/// Parse flat bytes as a `T`: another kind's bytes are another aggregate's state.
fn parse<T: FlatState>(bytes: &[u8]) -> T {
    if !bytes.starts_with(T::MAGIC) {
        wrong_state(T::WHAT)
    }
    T::deserialize(bytes).unwrap_or_else(|e| raise_engine(e, T::WHAT))
}

/// The `T` in object `e`; another type is another aggregate's state.
///
/// # Safety
/// `e` is a live object of ours.
unsafe fn state_of<T: AggState>(e: *mut Expanded) -> *mut T {
    // SAFETY: the caller's; the cast happens only when the type id names T.
    unsafe {
        if (*e).type_id != std::any::TypeId::of::<T>() {
            wrong_state(T::WHAT)
        }
        (*e).state.cast::<T>()
    }
}

/// The state behind a non-NULL Datum, for reading.
fn view<'a, T: FlatState>(d: pg_sys::Datum) -> Cow<'a, T> {
    match ours(d) {
        // SAFETY: the object is alive for the call (its owner passed it to us).
        Some((e, _)) => Cow::Borrowed(unsafe { &*state_of::<T>(e) }),
        None => Cow::Owned(parse(flat_bytes(d))),
    }
}

/// The state behind `state` (None for NULL), for reading.
pub fn state_view<'a, T: FlatState>(state: pgrx::Internal) -> Option<Cow<'a, T>> {
    state.unwrap().map(view)
}

/// The state behind `state` for changing it, and the Datum the support function must
/// return: the same read-write object when handed one of ours, else a new one in the
/// aggregate context (made by `init` for NULL, copied from anything else).
pub fn state_update<'a, T: FlatState>(
    state: pgrx::Internal,
    fcinfo: pg_sys::FunctionCallInfo,
    init: impl FnOnce() -> T,
) -> (pgrx::Internal, &'a mut T) {
    let (d, e) = match state.unwrap() {
        Some(d) => match ours(d) {
            Some((e, true)) => (d, e),
            _ => new_expanded(view::<T>(d).into_owned(), fcinfo),
        },
        None => new_expanded(init(), fcinfo),
    };
    // SAFETY: a read-write pointer hands us the object for this call; nothing else reads
    // it until we return.
    let st = unsafe { &mut *state_of::<T>(e) };
    (pgrx::Internal::from(Some(d)), st)
}

/// The state behind `state` for changing it in place, when `state` is the read-write
/// pointer of one of our objects and `keep` accepts the state (`Err` gives `state`
/// back otherwise: [`state_update`] then does the general case).
pub fn state_if<'a, T: FlatState>(
    state: pgrx::Internal,
    keep: impl FnOnce(&T) -> bool,
) -> Result<(pgrx::Internal, &'a mut T), pgrx::Internal> {
    let Some(d) = state.unwrap() else {
        return Err(pgrx::Internal::from(None));
    };
    if let Some((e, true)) = ours(d) {
        // SAFETY: as in state_update.
        let st = unsafe { &mut *state_of::<T>(e) };
        if keep(st) {
            return Ok((pgrx::Internal::from(Some(d)), st));
        }
    }
    Err(pgrx::Internal::from(Some(d)))
}

/// Combine: merge `b` into `a`, either possibly NULL.
pub fn combine<T: FlatState>(
    a: pgrx::Internal,
    b: pgrx::Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> pgrx::Internal {
    let Some(bs) = state_view::<T>(b) else {
        return match a.initialized() {
            false => a,
            true => state_update::<T>(a, fcinfo, || unreachable!("not NULL")).0,
        };
    };
    if !a.initialized() {
        return pgrx::Internal::from(Some(new_expanded(bs.into_owned(), fcinfo).0));
    }
    let (out, st) = state_update::<T>(a, fcinfo, || unreachable!("not NULL"));
    st.absorb(&bs).unwrap_or_else(|e| raise_engine(e, T::WHAT));
    out
}

// ---------------------------------------------------------------------------------------
// Type I/O: text `kind:hex`, binary the codec bytes
// ---------------------------------------------------------------------------------------

/// A kind of state the type can hold: its name, magic, and a full check of its bytes.
pub struct Kind {
    pub name: &'static str,
    pub magic: &'static [u8; 4],
    pub check: fn(&[u8]) -> Result<(), crate::engine::EngineError>,
}

impl Kind {
    pub const fn of<T: FlatState>() -> Kind {
        Kind {
            name: T::NAME,
            magic: T::MAGIC,
            check: |b| T::deserialize(b).map(|_| ()),
        }
    }
}

/// A new flat value holding `bytes`, checked to be a whole state of a known kind.
fn flat_value(kinds: &[Kind], bytes: &[u8], code: Code) -> pg_sys::Datum {
    let Some(kind) = kinds.iter().find(|k| bytes.starts_with(k.magic)) else {
        raise(
            code,
            "invalid segment.agg_state: unknown state kind",
            Some(state_hint(kinds)),
        )
    };
    if let Err(e) = (kind.check)(bytes) {
        raise(code, format!("invalid segment.agg_state: {e}"), None);
    }
    varlena::from_parts(&[bytes], "segment.agg_state")
}

fn state_hint(kinds: &[Kind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
    format!(
        "A segment.agg_state is written as <kind>:<hex bytes>, the kind one of {}; it is the partial state of a pg_segment aggregate, not meant to be written by hand.",
        names.join(", ")
    )
}

/// The bytes of any value of the type (expanded or flat).
fn bytes_of(d: pg_sys::Datum) -> Vec<u8> {
    match ours(d) {
        // SAFETY: as in `view`.
        Some((e, _)) => unsafe { ((*e).bytes)((*e).state) },
        None => flat_bytes(d).to_vec(),
    }
}

/// Text input: `kind:hex`.
pub fn text_in(kinds: &[Kind], text: &str) -> pg_sys::Datum {
    let code = Code::ERRCODE_INVALID_TEXT_REPRESENTATION;
    let bad = |why: &str| -> ! {
        raise(
            code,
            format!("invalid input syntax for type segment.agg_state: {why}"),
            Some(state_hint(kinds)),
        )
    };
    let (name, hex) = text
        .trim()
        .split_once(':')
        .unwrap_or_else(|| bad("no \":\""));
    let Some(kind) = kinds.iter().find(|k| k.name == name) else {
        bad(&format!("unknown state kind \"{name}\""))
    };
    if hex.len() % 2 != 0 {
        bad("odd number of hex digits");
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| bad("not a hex digit"))
        })
        .collect();
    if !bytes.starts_with(kind.magic) {
        bad(&format!("the bytes are not a {name} state"));
    }
    flat_value(kinds, &bytes, code)
}

/// Text output: `kind:hex` (exact: the codec's bytes).
pub fn text_out(kinds: &[Kind], d: pg_sys::Datum) -> String {
    let bytes = bytes_of(d);
    let name = kinds
        .iter()
        .find(|k| bytes.starts_with(k.magic))
        .map_or("unknown", |k| k.name);
    let mut s = String::with_capacity(name.len() + 1 + 2 * bytes.len());
    s.push_str(name);
    s.push(':');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in &bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Binary receive: the codec bytes, the rest of the message buffer `buf`.
pub fn recv(kinds: &[Kind], buf: pgrx::Internal) -> pg_sys::Datum {
    let bytes = varlena::receive_buffer(buf);
    flat_value(kinds, &bytes, Code::ERRCODE_INVALID_BINARY_REPRESENTATION)
}

/// Binary send: the codec bytes.
pub fn send(d: pg_sys::Datum) -> Vec<u8> {
    bytes_of(d)
}

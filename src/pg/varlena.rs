//! Raw varlena values of pg_segment's own types (`segment.agg_state`, `segment_model`):
//! the bytes of a (possibly compressed or short-header) value, and a new value from
//! bytes.
use crate::error::{raise, Code};
use pgrx::pg_sys;

pub const VARHDRSZ: usize = 4;
/// PostgreSQL's largest varlena (MaxAllocSize).
pub const MAX_VARLENA: usize = 0x3fff_ffff;

/// The bytes of the varlena Datum `d` (detoasted: decompressed or fetched as needed).
/// `d` must be a non-NULL Datum of a varlena type; the bytes live for the current call.
pub fn bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: detoasting a varlena Datum yields a 4-byte-header copy (or the value
    // itself) in the current memory context, alive for the rest of the call.
    unsafe {
        let p = d.cast_mut_ptr::<u8>();
        // A plain 4-byte-header value (little-endian: the low two bits 00) needs no
        // detoasting: read it in place, without a call into PostgreSQL (this runs per row).
        if cfg!(target_endian = "little") && *p & 0x03 == 0x00 {
            let len = (p.cast::<u32>().read_unaligned() >> 2) as usize;
            return std::slice::from_raw_parts(p.add(VARHDRSZ), len.saturating_sub(VARHDRSZ));
        }
        let v = pg_sys::pg_detoast_datum(d.cast_mut_ptr());
        std::slice::from_raw_parts(
            pgrx::vardata_any(v).cast::<u8>(),
            pgrx::varsize_any_exhdr(v),
        )
    }
}

/// A new varlena Datum holding `parts` one after the other, palloc'd in the current
/// memory context; `what` names the type in the error for a value past 1 GB.
pub fn from_parts(parts: &[&[u8]], what: &str) -> pg_sys::Datum {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len + VARHDRSZ > MAX_VARLENA {
        raise(
            Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("a {what} value of {len} bytes is too large"),
            None,
        );
    }
    // SAFETY: a palloc'd varlena of the right size, filled before it escapes.
    unsafe {
        let v = pg_sys::palloc(VARHDRSZ + len).cast::<u8>();
        pgrx::set_varsize_4b(v.cast(), (VARHDRSZ + len) as i32);
        let mut at = v.add(VARHDRSZ);
        for p in parts {
            std::ptr::copy_nonoverlapping(p.as_ptr(), at, p.len());
            at = at.add(p.len());
        }
        pg_sys::Datum::from(v)
    }
}

/// [`from_parts`], allocated in memory context `mcxt` (for a value that must outlive the
/// call, such as one kept in a call site's `fn_mcxt`). `mcxt` must be a live context:
/// the ones [`call_site::slot`](crate::pg::call_site::slot) returns are.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn from_parts_in(mcxt: pg_sys::MemoryContext, parts: &[&[u8]], what: &str) -> pg_sys::Datum {
    // SAFETY: switching to a valid context for the allocation, then back (also when
    // from_parts raises: pgrx restores CurrentMemoryContext on the error path).
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(mcxt);
        let d = from_parts(parts, what);
        pg_sys::MemoryContextSwitchTo(old);
        d
    }
}

/// The rest of a binary receive function's message buffer (a StringInfo), consumed.
pub fn receive_buffer(buf: pgrx::Internal) -> Vec<u8> {
    let p = buf
        .unwrap()
        .expect("receive functions are strict")
        .cast_mut_ptr::<pg_sys::StringInfoData>();
    // SAFETY: a receive function's argument is the StringInfo of the message; we read
    // from its cursor to its end and consume that.
    unsafe {
        let start = (*p).cursor.max(0) as usize;
        let len = ((*p).len as usize).saturating_sub(start);
        let bytes = std::slice::from_raw_parts((*p).data.cast::<u8>().add(start), len).to_vec();
        (*p).cursor = (*p).len;
        bytes
    }
}

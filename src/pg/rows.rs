//! Reading the columns of a row value (`segment_assign('m', c)`, where `c` is a table
//! alias or any composite): the row type's descriptor is looked up once per row type and
//! copied into the call site's memory context, and each row is deformed straight into
//! reused arrays (no per-row allocation, no pgrx error guard in the loop).
use crate::error::{raise, Code};
use crate::pg::values::{conv_for, ColumnMap, Datums, Features};
use pgrx::memcxt::PgMemoryContexts;
use pgrx::{pg_sys, AnyElement};

// heap_deform_tuple cannot fail on a well-formed tuple, so the hot path calls it directly
// rather than through pgrx's error guard (a sigsetjmp per call).
unsafe extern "C" {
    #[link_name = "heap_deform_tuple"]
    fn heap_deform_tuple_unguarded(
        tuple: pg_sys::HeapTuple,
        tupdesc: pg_sys::TupleDesc,
        values: *mut pg_sys::Datum,
        isnull: *mut bool,
    );
}

/// One attribute of a row type: name, type and whether it was dropped.
pub struct Attribute {
    pub name: String,
    pub type_oid: pg_sys::Oid,
    pub dropped: bool,
}

/// The descriptor of the row type last seen and the arrays its rows deform into.
struct RowType {
    type_id: pg_sys::Oid,
    typmod: i32,
    tupdesc: pg_sys::TupleDesc,
    datums: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// The features' attributes in this row type.
    map: ColumnMap,
}

/// Deforms row values for one call site; lives in that call site's cache.
pub struct RowReader {
    /// The call site's memory context (fn_mcxt): where the descriptor copy lives.
    mcxt: pg_sys::MemoryContext,
    /// The argument type last checked to be a row type.
    checked: pg_sys::Oid,
    current: Option<RowType>,
}

impl RowReader {
    pub fn new(mcxt: pg_sys::MemoryContext) -> Self {
        RowReader {
            mcxt,
            checked: pg_sys::Oid::INVALID,
            current: None,
        }
    }

    /// Deform `row` and return its features. When the row type differs from the
    /// previous row's, `new_type` is called first with the new type's attributes (and
    /// whether it is an anonymous `ROW(...)`: type `record`, columns named `f1`, `f2`,
    /// ...) and returns, for each feature, the number (0-based) of the attribute holding
    /// it.
    pub fn deform(
        &mut self,
        row: &AnyElement,
        new_type: impl FnOnce(&[Attribute], bool) -> Vec<usize>,
    ) -> Features<'_> {
        // SAFETY: the argument's type is checked to be composite before its header is
        // read; a row Datum is a varlena holding a HeapTupleHeader; heap_deform_tuple
        // fills exactly natts entries of arrays sized natts for this very descriptor.
        unsafe {
            if row.oid() != self.checked {
                if !pg_sys::type_is_rowtype(row.oid()) {
                    raise(
                        Code::ERRCODE_DATATYPE_MISMATCH,
                        "segment_assign expects a row (for example the table alias c in segment_assign('m', c)), jsonb or float8[]",
                        None,
                    );
                }
                self.checked = row.oid();
            }
            let p = row.datum().cast_mut_ptr::<u8>();
            // A row Datum is a 4-byte-header varlena; only a compressed or out-of-line
            // one (e.g. read from a composite column) needs detoasting.
            let inline = cfg!(target_endian = "little") && *p & 0x03 == 0x00;
            let header = if inline {
                p as pg_sys::HeapTupleHeader
            } else {
                pg_sys::pg_detoast_datum(p.cast()) as pg_sys::HeapTupleHeader
            };
            let type_id = pgrx::heap_tuple_header_get_type_id(header);
            let typmod = pgrx::heap_tuple_header_get_typmod(header);
            if !self
                .current
                .as_ref()
                .is_some_and(|r| r.type_id == type_id && r.typmod == typmod)
            {
                self.current = Some(self.load_type(type_id, typmod, new_type));
            }
            let rt = self.current.as_mut().expect("loaded above");
            let mut tuple = pg_sys::HeapTupleData {
                t_len: pgrx::heap_tuple_header_get_datum_length(header) as u32,
                t_data: header,
                ..Default::default()
            };
            heap_deform_tuple_unguarded(
                &mut tuple,
                rt.tupdesc,
                rt.datums.as_mut_ptr(),
                rt.nulls.as_mut_ptr(),
            );
            Features::new(&rt.map, Datums::Split(&rt.datums, &rt.nulls))
        }
    }

    /// Look a row type up, copy its descriptor into the call site's context and release
    /// the typcache's reference.
    fn load_type(
        &self,
        type_id: pg_sys::Oid,
        typmod: i32,
        new_type: impl FnOnce(&[Attribute], bool) -> Vec<usize>,
    ) -> RowType {
        // SAFETY: lookup_rowtype_tupdesc errors out for non-composite types; the copy is
        // made in the call site's context and the reference released before anything
        // below can raise.
        let (copy, attributes) = unsafe {
            let td = pg_sys::lookup_rowtype_tupdesc(type_id, typmod);
            let natts = (*td).natts as usize;
            let mut attributes = Vec::with_capacity(natts);
            for i in 0..natts {
                let att = crate::pg::compat::tupdesc_attr(td, i);
                attributes.push(Attribute {
                    name: std::ffi::CStr::from_ptr((*att).attname.data.as_ptr())
                        .to_string_lossy()
                        .into_owned(),
                    type_oid: (*att).atttypid,
                    dropped: (*att).attisdropped,
                });
            }
            let copy =
                PgMemoryContexts::For(self.mcxt).switch_to(|_| pg_sys::CreateTupleDescCopy(td));
            // ReleaseTupleDesc: only a reference-counted descriptor was pinned.
            if (*td).tdrefcount >= 0 {
                pg_sys::DecrTupleDescRefCount(td);
            }
            (copy, attributes)
        };
        let anonymous = type_id == pg_sys::RECORDOID
            && attributes
                .iter()
                .enumerate()
                .all(|(i, a)| a.name == format!("f{}", i + 1));
        let map = new_type(&attributes, anonymous)
            .into_iter()
            .map(|i| (i, conv_for(attributes[i].type_oid)))
            .collect();
        let natts = attributes.len();
        RowType {
            type_id,
            typmod,
            tupdesc: copy,
            datums: vec![pg_sys::Datum::from(0); natts],
            nulls: vec![true; natts],
            map: ColumnMap::new(map),
        }
    }
}

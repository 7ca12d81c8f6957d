//! Turning Datums of a source row into the engine's [`Value`]s, by column type, with
//! the same meaning `segment_train` gives them when it reads the source with SQL casts
//! (`::float8` for numeric columns, `::text` for text and enums, booleans as booleans).
use crate::engine::encode::{ColumnKind, Value};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// How to read one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    F8,
    F4,
    I2,
    I4,
    I8,
    Numeric,
    Bool,
    /// text / varchar: borrowed straight from the varlena.
    Text,
    /// char(n): like `::text`, trailing blanks removed.
    Bpchar,
    /// Anything else: the type's output function (enums, name, citext, ...).
    Output(pg_sys::Oid),
}

/// The engine's column kind for a type category (`pg_type.typcategory`), or None when
/// pg_segment cannot use the type as a feature.
pub fn kind_of_category(category: &str) -> Option<ColumnKind> {
    match category {
        "N" => Some(ColumnKind::Numeric),
        "B" => Some(ColumnKind::Bool),
        "S" | "E" => Some(ColumnKind::Text),
        _ => None,
    }
}

/// The converter for a type (domains resolve to their base type).
pub fn conv_for(type_oid: pg_sys::Oid) -> Conv {
    // SAFETY: getBaseType only reads the syscache.
    let base = unsafe { pg_sys::getBaseType(type_oid) };
    match base {
        pg_sys::FLOAT8OID => Conv::F8,
        pg_sys::FLOAT4OID => Conv::F4,
        pg_sys::INT2OID => Conv::I2,
        pg_sys::INT4OID => Conv::I4,
        pg_sys::INT8OID => Conv::I8,
        pg_sys::NUMERICOID => Conv::Numeric,
        pg_sys::BOOLOID => Conv::Bool,
        pg_sys::TEXTOID | pg_sys::VARCHAROID => Conv::Text,
        pg_sys::BPCHAROID => Conv::Bpchar,
        _ => {
            let mut out = pg_sys::Oid::INVALID;
            let mut varlena = false;
            // SAFETY: syscache lookup; errors (no such type) are reported by Postgres.
            unsafe { pg_sys::getTypeOutputInfo(base, &mut out, &mut varlena) };
            Conv::Output(out)
        }
    }
}

/// For each model feature, where its Datum is (attribute or argument number) and how it
/// reads. Built only in this module tree, from the types PostgreSQL reports for exactly
/// those Datums, so reading through it ([`Features`]) is safe.
#[derive(Debug, Clone)]
pub struct ColumnMap(Vec<(usize, Conv)>);

impl ColumnMap {
    pub(in crate::pg) fn new(map: Vec<(usize, Conv)>) -> Self {
        ColumnMap(map)
    }
}

/// Where a row's Datums are: a deformed tuple (values and NULL flags apart) or a
/// function call's arguments.
#[derive(Clone, Copy)]
pub(in crate::pg) enum Datums<'a> {
    Split(&'a [pg_sys::Datum], &'a [bool]),
    Args(&'a [pg_sys::NullableDatum]),
}

/// The model's features of one row, read on demand.
pub struct Features<'a> {
    map: &'a ColumnMap,
    datums: Datums<'a>,
}

impl<'a> Features<'a> {
    /// `datums` must be the Datums whose types `map` was built from.
    pub(in crate::pg) fn new(map: &'a ColumnMap, datums: Datums<'a>) -> Self {
        Features { map, datums }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.map.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.0.is_empty()
    }

    /// Feature `f`'s value ([`Value::Null`] for SQL NULL).
    #[inline(always)]
    pub fn get(&self, f: usize) -> Value<'static> {
        let (i, conv) = self.map.0[f];
        let (datum, null) = match self.datums {
            Datums::Split(d, n) => (d[i], n[i]),
            Datums::Args(a) => (a[i].value, a[i].isnull),
        };
        if null {
            return Value::Null;
        }
        // SAFETY: the map was built from this Datum's type (see ColumnMap), and it is
        // not NULL.
        unsafe { value_of(conv, datum) }
    }
}

/// Read a non-NULL Datum as a [`Value`]. Borrowed text lives in the current memory
/// context, which outlives the engine call that consumes the value.
///
/// # Safety
/// `datum` must be a valid, non-NULL Datum of the type `conv` was made for.
#[inline(always)]
pub unsafe fn value_of(conv: Conv, datum: pg_sys::Datum) -> Value<'static> {
    // The by-value types are read straight from the Datum (what their from_datum does),
    // so the per-row path of segment_assign inlines to a few instructions.
    let bits = datum.value() as u64;
    unsafe {
        match conv {
            Conv::F8 => Value::Num(f64::from_bits(bits)),
            Conv::F4 => Value::Num(f64::from(f32::from_bits(bits as u32))),
            Conv::I2 => Value::Num(f64::from(bits as i16)),
            Conv::I4 => Value::Num(f64::from(bits as i32)),
            Conv::I8 => Value::Num(bits as i64 as f64),
            Conv::Numeric => Value::Num(numeric_to_f64(datum)),
            Conv::Bool => Value::Bool(bits != 0),
            Conv::Text => match text_str(datum) {
                Some(s) => Value::Text(s),
                None => Value::Null,
            },
            _ => value_of_other(conv, datum),
        }
    }
}

/// [`value_of`] for the rarer conversions (blank-padded char, output functions).
///
/// # Safety
/// As [`value_of`].
#[inline(never)]
unsafe fn value_of_other(conv: Conv, datum: pg_sys::Datum) -> Value<'static> {
    unsafe {
        match conv {
            Conv::Bpchar => match <&'static str>::from_datum(datum, false) {
                Some(s) => Value::Text(s.trim_end_matches(' ')),
                None => Value::Null,
            },
            Conv::Output(func) => {
                let p = pg_sys::OidOutputFunctionCall(func, datum);
                match CStr::from_ptr(p).to_str() {
                    Ok(s) => Value::Text(s),
                    Err(_) => Value::Null,
                }
            }
            fast => value_of(fast, datum),
        }
    }
}

/// A numeric Datum as the nearest f64, exactly as `numeric::float8` gives it (PostgreSQL
/// prints the numeric and parses it with strtod; Rust's parser is also correctly
/// rounded), without the detour through palloc'd strings: the base-10000 digits are
/// written as decimal text on the stack and parsed. NaN and ±Infinity map to themselves.
///
/// # Safety
/// `datum` must be a non-NULL numeric Datum.
#[inline]
pub unsafe fn numeric_to_f64(datum: pg_sys::Datum) -> f64 {
    unsafe {
        let bytes = varlena_bytes(datum);
        numeric_bytes_to_f64(bytes).unwrap_or_else(|| {
            // Unexpected layout: fall back to PostgreSQL's own conversion.
            pgrx::direct_function_call::<f64>(pg_sys::numeric_float8, &[Some(datum)])
                .unwrap_or(f64::NAN)
        })
    }
}

/// The payload of a varlena Datum. Inline values (the 1-byte short header of on-disk
/// tuples, or an uncompressed 4-byte header) are read in place without a call into
/// Postgres; compressed or out-of-line ones are detoasted (into the current memory
/// context).
///
/// # Safety
/// `datum` must be a non-NULL varlena Datum that outlives the returned slice.
#[inline(always)]
pub unsafe fn varlena_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    unsafe {
        let p = datum.cast_mut_ptr::<u8>();
        #[cfg(target_endian = "little")]
        {
            let h = *p;
            if h & 0x01 == 0x01 && h != 0x01 {
                // VARATT_IS_1B and not external: length (header included) in bits 1-7.
                let len = usize::from(h >> 1);
                return std::slice::from_raw_parts(p.add(1), len - 1);
            }
            if h & 0x03 == 0x00 {
                // VARATT_IS_4B_U: uncompressed, 30-bit length (header included).
                let len = (p.cast::<u32>().read_unaligned() >> 2) as usize;
                return std::slice::from_raw_parts(p.add(4), len - 4);
            }
        }
        let v = pg_sys::pg_detoast_datum_packed(p.cast());
        pgrx::varlena::varlena_to_byte_slice(v)
    }
}

/// A text Datum as &str without a call into Postgres for inline values (see
/// [`varlena_bytes`]); invalid UTF-8 (a non-UTF8 database) reads as None.
///
/// # Safety
/// `datum` must be a non-NULL text Datum that outlives the returned str.
#[inline]
pub unsafe fn text_str<'a>(datum: pg_sys::Datum) -> Option<&'a str> {
    unsafe {
        let bytes = varlena_bytes(datum);
        if utf8_database() {
            // PostgreSQL only stores text valid in the database encoding.
            Some(std::str::from_utf8_unchecked(bytes))
        } else {
            std::str::from_utf8(bytes).ok()
        }
    }
}

/// Whether this database's encoding is UTF-8 (fixed for a backend's lifetime).
fn utf8_database() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static STATE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 yes, 2 no
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // SAFETY: reads the backend's database encoding.
            let utf8 = unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_UTF8 as i32;
            STATE.store(if utf8 { 1 } else { 2 }, Ordering::Relaxed);
            utf8
        }
    }
}

/// Decode the payload of a numeric varlena (see PostgreSQL's numeric.c: a 2-byte header,
/// short or long format, then int16 base-10000 digits). None for a malformed value.
pub fn numeric_bytes_to_f64(b: &[u8]) -> Option<f64> {
    const SIGN_MASK: u16 = 0xC000;
    const NEG: u16 = 0x4000;
    const SHORT: u16 = 0x8000;
    const SPECIAL: u16 = 0xC000;
    let u16_at =
        |o: usize| -> Option<u16> { Some(u16::from_ne_bytes([*b.get(o)?, *b.get(o + 1)?])) };
    let header = u16_at(0)?;
    let (negative, weight, digits_at) = match header & SIGN_MASK {
        SPECIAL => {
            return Some(match header {
                0xC000 => f64::NAN,
                0xD000 => f64::INFINITY,
                0xF000 => f64::NEG_INFINITY,
                _ => return None,
            })
        }
        SHORT => {
            let neg = header & 0x2000 != 0;
            let w = (header & 0x003F) as i32;
            let w = if header & 0x0040 != 0 { w - 64 } else { w };
            (neg, w, 2)
        }
        sign => {
            let w = u16_at(2)? as i16 as i32;
            (sign == NEG, w, 4)
        }
    };
    let n = (b.len().checked_sub(digits_at)?) / 2;
    if n == 0 {
        return Some(0.0);
    }
    // Clinger's fast path: an integer mantissa below 2^53 and a power of ten up to 1e22
    // are both exact in f64, so one multiplication or division is correctly rounded —
    // the same f64 strtod gives. Most stored amounts (a few digits, a few decimals) land here.
    if n <= 4 {
        let mut m: u64 = 0;
        for i in 0..n {
            let d = u16_at(digits_at + 2 * i)?;
            if d >= 10000 {
                return None;
            }
            m = m * 10_000 + u64::from(d);
        }
        let exp = 4 * (weight + 1) - 4 * n as i32;
        if m < (1u64 << 53) && (-22..=22).contains(&exp) {
            const POW10: [f64; 23] = [
                1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
            ];
            let v = m as f64;
            let v = if exp >= 0 {
                v * POW10[exp as usize]
            } else {
                v / POW10[(-exp) as usize]
            };
            return Some(if negative { -v } else { v });
        }
    }
    // Up to 64 base-10000 digits go to text exactly; beyond that they cannot change the
    // rounded f64 (more than 256 significant decimal digits) except in ties, which
    // strtod would also only see through its own digit limit.
    let n_used = n.min(64);
    let mut buf = [0u8; 64 * 4 + 16];
    let mut len = 0;
    if negative {
        buf[0] = b'-';
        len = 1;
    }
    for i in 0..n_used {
        let d = u16_at(digits_at + 2 * i)?;
        if d >= 10000 {
            return None;
        }
        for q in [1000u16, 100, 10, 1] {
            buf[len] = b'0' + ((d / q) % 10) as u8;
            len += 1;
        }
    }
    // value = 0.DIGITS * 10^(4 * (weight + 1))
    let exp = 4 * (weight + 1) - 4 * n_used as i32;
    buf[len] = b'e';
    len += 1;
    let mut tmp = [0u8; 12];
    let mut t = tmp.len();
    let mut v = exp.unsigned_abs();
    loop {
        t -= 1;
        tmp[t] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if exp < 0 {
        t -= 1;
        tmp[t] = b'-';
    }
    let es = &tmp[t..];
    buf[len..len + es.len()].copy_from_slice(es);
    len += es.len();
    std::str::from_utf8(&buf[..len]).ok()?.parse::<f64>().ok()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// The fast numeric decoder agrees bit for bit with numeric::float8.
    #[pg_test]
    fn numeric_decoder_matches_postgres_cast() {
        let cases = [
            "0",
            "1",
            "-1",
            "0.1",
            "123456789.123456789",
            "-0.000001234",
            "1e-30",
            "9.99e300",
            "12345678901234567890123456789012345678901234567890.5",
            "0.30000000000000004",
            "2.5",
            "1e20",
            "-7",
            "100000",
            "0.0001",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e-130",
            "3.14159265358979323846264338327950288419716939937510582097494459",
        ];
        for c in cases {
            let (fast, pg) = Spi::get_two::<f64, f64>(&format!(
                "SELECT segment._numeric_to_f64('{c}'::numeric), '{c}'::numeric::float8"
            ))
            .unwrap();
            let (fast, pg) = (fast.unwrap(), pg.unwrap());
            assert!(
                fast.to_bits() == pg.to_bits() || (fast.is_nan() && pg.is_nan()),
                "{c}: fast {fast:e} vs postgres {pg:e}"
            );
        }
        // and a sweep of generated values
        let mismatches = Spi::get_one::<i64>(
            "SELECT count(*) FROM (SELECT (random() * 10 ^ (random() * 40 - 20))::numeric(60, 30) AS n
                                  FROM generate_series(1, 20000)
                                  UNION ALL -- few digits: the exact fast path
                                  SELECT round(((random() - 0.5) * 10 ^ (random() * 16 - 4))::numeric,
                                               (random() * 8)::int)
                                  FROM generate_series(1, 20000)) s
             WHERE segment._numeric_to_f64(n) <> n::float8",
        )
        .unwrap()
        .unwrap();
        assert_eq!(mismatches, 0);
    }
}

#[pg_schema]
mod segment {
    use pgrx::prelude::*;

    /// internal: numeric to float8 through pg_segment's decoder (tested against the cast).
    #[pg_extern(immutable, strict, parallel_safe)]
    fn _numeric_to_f64(n: AnyNumeric) -> f64 {
        use pgrx::IntoDatum;
        let d = n.into_datum().expect("non-null numeric");
        // SAFETY: a numeric Datum.
        unsafe { super::numeric_to_f64(d) }
    }
}

//! Filling a heap table created in the current transaction a whole page at a time.
//!
//! The assignment table of a model with an integer id holds fixed-size rows of by-value
//! columns only (id, segment, version, distance), so its pages are laid out here, in a
//! local 8 KiB buffer, exactly as `heap_multi_insert` would lay them out (same tuple
//! headers, same line pointers, same number of tuples per page), and each finished page
//! is appended to the relation through the buffer manager and WAL-logged as a full-page
//! image (`log_newpage_buffer`, as index builds do). Compared with forming a
//! `HeapTuple` per row and logging every row, this is a fraction of the work per row.
//!
//! Only used where that shortcut is exact: a permanent table whose storage was created
//! (and so locked and invisible to everyone else) in this transaction, by `CREATE TABLE`
//! or by `TRUNCATE` (a refresh rewriting the assignment table), with no storage options, a
//! `wal_level` below `logical` (logical decoding needs per-row WAL), and a tuple
//! descriptor of by-value fixed-length columns with no dropped or missing attributes.
//! Anything else goes through `heap_multi_insert` (see `writer.rs`). The regression
//! suite checks the pages with `amcheck` and against pages PostgreSQL wrote itself.
use crate::error::{raise, Code};
use pgrx::pg_sys;

const BLCKSZ: usize = pg_sys::BLCKSZ as usize;
/// SizeOfPageHeaderData.
const PAGE_HEADER: usize = 24;
/// MAXALIGN(SizeofHeapTupleHeader): a tuple header without a null bitmap.
const TUPLE_HEADER: usize = 24;
const LINE_POINTER: usize = 4;
const MAX_ALIGN: usize = 8;
/// MaxHeapTuplesPerPage.
const MAX_HEAP_TUPLES: usize = (BLCKSZ - PAGE_HEADER) / (TUPLE_HEADER + LINE_POINTER);

// The byte offsets written below, checked against the server's own structs.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(pg_sys::PageHeaderData, pd_lower) == 12);
    assert!(offset_of!(pg_sys::PageHeaderData, pd_upper) == 14);
    assert!(offset_of!(pg_sys::PageHeaderData, pd_special) == 16);
    assert!(offset_of!(pg_sys::PageHeaderData, pd_pagesize_version) == 18);
    assert!(offset_of!(pg_sys::PageHeaderData, pd_linp) == PAGE_HEADER);
    assert!(offset_of!(pg_sys::HeapTupleHeaderData, t_ctid) == 12);
    assert!(offset_of!(pg_sys::HeapTupleHeaderData, t_infomask2) == 18);
    assert!(offset_of!(pg_sys::HeapTupleHeaderData, t_infomask) == 20);
    assert!(offset_of!(pg_sys::HeapTupleHeaderData, t_hoff) == 22);
    assert!(offset_of!(pg_sys::HeapTupleHeaderData, t_bits) == 23);
    assert!(size_of::<pg_sys::ItemIdData>() == LINE_POINTER);
    assert!(MAX_ALIGN == pg_sys::MAXIMUM_ALIGNOF as usize);
};

/// Where each column's bytes go in a tuple's data area.
struct Layout {
    /// (offset from the start of the data area, attlen) per column.
    atts: Vec<(usize, usize)>,
    data_len: usize,
}

impl Layout {
    /// The layout for `desc`, or None unless every column is by-value and fixed-length
    /// (1, 2, 4 or 8 bytes), and none is dropped or has a "missing" default.
    ///
    /// # Safety
    /// `desc` must be a valid tuple descriptor.
    unsafe fn of(desc: pg_sys::TupleDesc) -> Option<Layout> {
        // SAFETY: the caller passes a valid descriptor; it has natts attributes.
        let attrs: Vec<&pg_sys::FormData_pg_attribute> = unsafe {
            (0..(*desc).natts as usize)
                .map(|i| &*crate::pg::compat::tupdesc_attr(desc, i))
                .collect()
        };
        let mut atts = Vec::with_capacity(attrs.len());
        let mut off = 0usize;
        for a in attrs {
            let len = usize::try_from(a.attlen).ok()?;
            if !a.attbyval || a.attisdropped || a.atthasmissing || ![1, 2, 4, 8].contains(&len) {
                return None;
            }
            let align = match a.attalign as u8 {
                pg_sys::TYPALIGN_CHAR => 1,
                pg_sys::TYPALIGN_SHORT => 2,
                pg_sys::TYPALIGN_INT => 4,
                pg_sys::TYPALIGN_DOUBLE => 8,
                _ => return None,
            };
            off = off.next_multiple_of(align);
            atts.push((off, len));
            off += len;
        }
        Some(Layout {
            atts,
            data_len: off,
        })
    }
}

/// Appends rows to a new table a page at a time (see the module documentation).
pub struct PageWriter {
    rel: pg_sys::Relation,
    strategy: pg_sys::BufferAccessStrategy,
    needs_wal: bool,
    xmin: pg_sys::TransactionId,
    cid: pg_sys::CommandId,
    layout: Layout,
    natts: u16,
    /// t_len of every tuple, and the space each takes on the page.
    tuple_len: usize,
    aligned_len: usize,
    per_page: usize,
    /// The page being filled (u64s for alignment), its tuple count and block number.
    page: Vec<u64>,
    on_page: usize,
    block: pg_sys::BlockNumber,
    rows: u64,
}

impl PageWriter {
    /// A writer for `rel` (opened by the caller, RowExclusiveLock or stronger, kept open
    /// until [`PageWriter::finish`]), or None where the shortcut does not apply.
    ///
    /// Pages go through shared buffers like any insert's when the table will take at
    /// most a quarter of them (`expected_rows` tells), as the primary key's build reads
    /// them right back; a larger table goes through a small ring of buffers instead
    /// (`BAS_BULKWRITE`, as `COPY` does), so that it does not push everything else out of
    /// the cache. The same quarter decides whether a sequential scan uses a ring.
    ///
    /// # Safety
    /// `rel` must be a valid open relation.
    pub unsafe fn new(
        rel: pg_sys::Relation,
        cid: pg_sys::CommandId,
        expected_rows: usize,
    ) -> Option<PageWriter> {
        // SAFETY: reading fields of a valid open relation and backend globals.
        unsafe {
            let form = (*rel).rd_rel;
            // Created, or truncated to new storage, in this transaction.
            let created_here = crate::pg::compat::storage_created_here(rel);
            if (*form).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char
                || (*form).relpersistence != pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char
                || !created_here
                || !(*rel).rd_options.is_null()
                || pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_LOGICAL as i32
            {
                return None;
            }
            let layout = Layout::of((*rel).rd_att)?;
            let natts = u16::try_from(layout.atts.len()).ok()?;
            let tuple_len = TUPLE_HEADER + layout.data_len;
            let aligned_len = tuple_len.next_multiple_of(MAX_ALIGN);
            let per_page =
                ((BLCKSZ - PAGE_HEADER) / (aligned_len + LINE_POINTER)).min(MAX_HEAP_TUPLES);
            // RelationNeedsWAL for a permanent relation created in this transaction:
            // wal_level above minimal (with minimal it is synced at commit instead).
            let needs_wal = pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_REPLICA as i32;
            let block =
                pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
            let pages = expected_rows.div_ceil(per_page);
            let strategy = if pages > (pg_sys::NBuffers.max(0) as usize) / 4 {
                pg_sys::GetAccessStrategy(pg_sys::BufferAccessStrategyType::BAS_BULKWRITE)
            } else {
                std::ptr::null_mut() // the default: shared buffers
            };
            Some(PageWriter {
                rel,
                strategy,
                needs_wal,
                xmin: pg_sys::GetCurrentTransactionId(),
                cid,
                layout,
                natts,
                tuple_len,
                aligned_len,
                per_page,
                page: vec![0u64; BLCKSZ / 8],
                on_page: 0,
                block,
                rows: 0,
            })
        }
    }

    /// Append one row; `datums` are by-value Datums, one per column, in column order.
    pub fn push(&mut self, datums: &[pg_sys::Datum]) {
        debug_assert_eq!(datums.len(), self.layout.atts.len());
        if self.on_page == self.per_page {
            self.flush_page();
        }
        let n = self.on_page;
        let offnum = (n + 1) as u16;
        let at = BLCKSZ - (n + 1) * self.aligned_len;
        let (xmin, cid, block, natts, tuple_len) =
            (self.xmin, self.cid, self.block, self.natts, self.tuple_len);
        let page = page_bytes(&mut self.page);
        let t = &mut page[at..at + self.aligned_len];
        // HeapTupleHeaderData: xmin, xmax (none), cmin, t_ctid (this tuple), natts,
        // HEAP_XMAX_INVALID, t_hoff; then the columns. Padding stays zero.
        t[0..4].copy_from_slice(&xmin.into_inner().to_ne_bytes());
        t[4..8].copy_from_slice(&0u32.to_ne_bytes());
        t[8..12].copy_from_slice(&cid.to_ne_bytes());
        t[12..14].copy_from_slice(&((block >> 16) as u16).to_ne_bytes());
        t[14..16].copy_from_slice(&((block & 0xffff) as u16).to_ne_bytes());
        t[16..18].copy_from_slice(&offnum.to_ne_bytes());
        t[18..20].copy_from_slice(&natts.to_ne_bytes());
        t[20..22].copy_from_slice(&(pg_sys::HEAP_XMAX_INVALID as u16).to_ne_bytes());
        t[22] = TUPLE_HEADER as u8;
        let data = &mut t[TUPLE_HEADER..];
        for (&(off, len), d) in self.layout.atts.iter().zip(datums) {
            let v = d.value() as u64;
            let dst = &mut data[off..off + len];
            match len {
                8 => dst.copy_from_slice(&v.to_ne_bytes()),
                4 => dst.copy_from_slice(&(v as u32).to_ne_bytes()),
                2 => dst.copy_from_slice(&(v as u16).to_ne_bytes()),
                _ => dst[0] = v as u8,
            }
        }
        let mut lp = pg_sys::ItemIdData::default();
        lp.set_lp_off(at as u32);
        lp.set_lp_flags(pg_sys::LP_NORMAL);
        lp.set_lp_len(tuple_len as u32);
        // SAFETY: ItemIdData is a plain 4-byte bitfield struct (checked above).
        let lp_bytes: [u8; 4] = unsafe { std::mem::transmute(lp) };
        let lp_at = PAGE_HEADER + n * LINE_POINTER;
        page[lp_at..lp_at + LINE_POINTER].copy_from_slice(&lp_bytes);
        self.on_page += 1;
        self.rows += 1;
    }

    /// Append the page being filled to the relation (no-op when it is empty).
    fn flush_page(&mut self) {
        let n = self.on_page;
        if n == 0 {
            return;
        }
        {
            let page = page_bytes(&mut self.page);
            let lower = (PAGE_HEADER + n * LINE_POINTER) as u16;
            let upper = (BLCKSZ - n * self.aligned_len) as u16;
            page[12..14].copy_from_slice(&lower.to_ne_bytes());
            page[14..16].copy_from_slice(&upper.to_ne_bytes());
            page[16..18].copy_from_slice(&(BLCKSZ as u16).to_ne_bytes());
            page[18..20].copy_from_slice(
                &((BLCKSZ as u16) | pg_sys::PG_PAGE_LAYOUT_VERSION as u16).to_ne_bytes(),
            );
        }
        // SAFETY: the relation was created in this transaction and is locked by it, so
        // this backend is its only extender; the new buffer comes back zeroed and
        // exclusively locked. The copy, MarkBufferDirty and the WAL record happen in a
        // critical section, as in heapam; the buffer is released right after.
        unsafe {
            let buf = pg_sys::ReadBufferExtended(
                self.rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                pg_sys::InvalidBlockNumber, // P_NEW
                pg_sys::ReadBufferMode::RBM_ZERO_AND_LOCK,
                self.strategy,
            );
            if pg_sys::BufferGetBlockNumber(buf) != self.block {
                pg_sys::UnlockReleaseBuffer(buf);
                raise(
                    Code::ERRCODE_INTERNAL_ERROR,
                    "assignment table was extended concurrently",
                    None,
                );
            }
            let dst = pg_sys::BufferGetPage(buf) as *mut u8;
            pg_sys::CritSectionCount += 1;
            std::ptr::copy_nonoverlapping(self.page.as_ptr() as *const u8, dst, BLCKSZ);
            pg_sys::MarkBufferDirty(buf);
            if self.needs_wal {
                pg_sys::log_newpage_buffer(buf, true);
            }
            pg_sys::CritSectionCount -= 1;
            pg_sys::UnlockReleaseBuffer(buf);
        }
        self.page.fill(0);
        self.on_page = 0;
        self.block += 1;
    }

    /// Write the last page, count the rows in the table's statistics and release the
    /// buffer strategy (the relation stays open: the caller closes it).
    pub fn finish(&mut self) {
        self.flush_page();
        // SAFETY: the relation is open; the strategy was allocated in new() and is freed
        // once (it is nulled here).
        unsafe {
            pg_sys::pgstat_count_heap_insert(self.rel, self.rows as pg_sys::PgStat_Counter);
            if !self.strategy.is_null() {
                pg_sys::FreeAccessStrategy(self.strategy);
                self.strategy = std::ptr::null_mut();
            }
        }
        self.rows = 0;
    }
}

fn page_bytes(page: &mut [u64]) -> &mut [u8] {
    // SAFETY: u64 has no invalid bit patterns and u8 has alignment 1; same length in bytes.
    unsafe { std::slice::from_raw_parts_mut(page.as_mut_ptr() as *mut u8, page.len() * 8) }
}

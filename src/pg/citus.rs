//! What pg_segment asks about Citus: whether it is installed, and whether (and by which
//! column) a table is distributed. Every query runs under the fixed search_path and
//! reads Citus's metadata only when Citus is installed.
use crate::pg::spi;
use pgrx::pg_sys;

/// Whether the citus extension is installed in this database.
pub fn installed() -> bool {
    spi::one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus')
            AND pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
        &[],
    )
    .unwrap_or(false)
}

/// Whether `table` is a Citus table (distributed, reference or managed by Citus).
pub fn is_citus_table(table: pg_sys::Oid) -> bool {
    installed()
        && spi::one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)",
            &[table.into()],
        )
        .unwrap_or(false)
}

/// The distribution column of `table` when it is a hash-distributed Citus table.
pub fn distribution_column(table: pg_sys::Oid) -> Option<String> {
    if !installed() {
        return None;
    }
    spi::one::<String>(
        "SELECT a.attname::pg_catalog.text
           FROM pg_catalog.pg_dist_partition p
           JOIN pg_catalog.pg_attribute a
             ON a.attrelid OPERATOR(pg_catalog.=) p.logicalrelid
            AND a.attname OPERATOR(pg_catalog.=) pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
          WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.partmethod OPERATOR(pg_catalog.=) 'h'",
        &[table.into()],
    )
}

/// Whether `view` reads, directly or through other views, a hash-distributed Citus
/// table: a view over distributed tables, which a fit by passes treats as one.
pub fn view_over_distributed(view: pg_sys::Oid) -> bool {
    if !installed() {
        return false;
    }
    spi::one::<bool>(
        "WITH RECURSIVE reads(rel, depth) AS (
             SELECT c.oid, 0 FROM pg_catalog.pg_class c
              WHERE c.oid OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) 'v'
           UNION
             SELECT d.refobjid, r.depth OPERATOR(pg_catalog.+) 1
               FROM reads r
               JOIN pg_catalog.pg_rewrite w ON w.ev_class OPERATOR(pg_catalog.=) r.rel
               JOIN pg_catalog.pg_depend d
                 ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                AND d.objid OPERATOR(pg_catalog.=) w.oid
                AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                AND d.refobjid OPERATOR(pg_catalog.<>) r.rel
              WHERE r.depth OPERATOR(pg_catalog.<) 16
         )
         SELECT EXISTS (SELECT FROM reads r JOIN pg_catalog.pg_dist_partition p
                          ON p.logicalrelid OPERATOR(pg_catalog.=) r.rel
                       WHERE p.partmethod OPERATOR(pg_catalog.=) 'h')",
        &[view.into()],
    )
    .unwrap_or(false)
}

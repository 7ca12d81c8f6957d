//! Planner support for `segment_assign(model, row)`.
//!
//! Written naively, `segment_assign('m', c)` makes the executor build a composite Datum of
//! the whole row for every call (`ExecEvalWholeRowVar`: copy and flatten the tuple), and
//! the function then takes that copy apart again. When the call is
//! `segment_assign(<constant model>, <whole row of a table>[, version])`, this support
//! function (SupportRequestSimplify) rewrites it at plan time into
//! `segment._assign_planned(model, <the model itself>, <only the feature columns>)`:
//! the scan hands over just the columns the model reads, already deformed.
//!
//! The model travels in the plan (encoder, centroids, as text that round-trips
//! exactly), so planning and execution always use the same model, even when a
//! concurrent retrain commits between the two (they may run under different
//! snapshots). A plan that holds a model depends on segment.models and on the role
//! that planned it: every change of a model (train, drop, grant) invalidates the plans
//! of every session, which are then planned again with the current model.
//!
//! The rewrite is skipped (the plain function runs) whenever its equivalence is not
//! obvious: a model that does not exist or that the role may not read, or that lacks
//! one of the table's columns (the plain function raises the usual errors), a row that
//! is not a base table's (a subquery, a function), a query with explicit JOINs (an outer
//! join could null the whole row, which the plain function reports as NULL), or a query
//! that groups, is DISTINCT or has window functions (see [`simplify`]). `EXPLAIN
//! VERBOSE` shows it.
use crate::assign::AssignCache;
use crate::catalog;
use crate::error::{raise, Code};
use crate::pg::call_site;
use crate::pg::spi;
use crate::pg::values::{conv_for, text_str, ColumnMap, Datums, Features};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CString;

/// `PG_FUNCTION_INFO_V1` for the C-language functions defined here.
macro_rules! function_info_v1 {
    ($finfo:ident) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

function_info_v1!(pg_finfo_segment_assign_support);

/// `segment._assign_support(internal) RETURNS internal`.
///
/// # Safety
/// Called by the planner with a SupportRequest node as its only argument.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn segment_assign_support(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: argument 0 is the request node (an `internal`); every pointer read below
    // comes from the planner's own nodes and is checked for its node tag first.
    unsafe {
        let req = (*fcinfo).args.as_slice(1)[0]
            .value
            .cast_mut_ptr::<pg_sys::Node>();
        if req.is_null() || (*req).type_ != pg_sys::NodeTag::T_SupportRequestSimplify {
            return pg_sys::Datum::from(0);
        }
        let req = req.cast::<pg_sys::SupportRequestSimplify>();
        match simplify((*req).root, (*req).fcall) {
            Some(expr) => pg_sys::Datum::from(expr),
            None => pg_sys::Datum::from(0),
        }
    }
}

/// The rewritten call, or None to leave the call alone.
unsafe fn simplify(
    root: *mut pg_sys::PlannerInfo,
    call: *mut pg_sys::FuncExpr,
) -> Option<*mut pg_sys::FuncExpr> {
    unsafe {
        if root.is_null() || (*root).parse.is_null() || (*root).hasJoinRTEs {
            return None;
        }
        // Grouping by the segment is the common BI query. The planner estimates the
        // distinct values of an expression from its Vars, so the rewritten call would look
        // like it had ~as many groups as rows (the whole-row form gets the default 200),
        // and it would stop aggregating partially in parallel workers. Leave those alone.
        let parse = (*root).parse;
        if !(*parse).groupClause.is_null()
            || !(*parse).groupingSets.is_null()
            || !(*parse).distinctClause.is_null()
            || (*parse).hasWindowFuncs
        {
            return None;
        }
        let args = (*call).args;
        let nargs = pg_sys::list_length(args);
        if !(2..=3).contains(&nargs) {
            return None;
        }
        let arg = |i: i32| pg_sys::list_nth(args, i).cast::<pg_sys::Node>();
        // The model: a non-NULL text constant.
        let model = arg(0);
        if (*model).type_ != pg_sys::NodeTag::T_Const {
            return None;
        }
        let model_const = model.cast::<pg_sys::Const>();
        if (*model_const).constisnull || (*model_const).consttype != pg_sys::TEXTOID {
            return None;
        }
        let name = crate::pg::values::text_str((*model_const).constvalue)?.to_string();
        // The row: a whole-row Var of a plain table of this query level.
        let row = arg(1);
        if (*row).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = row.cast::<pg_sys::Var>();
        if (*var).varattno != 0 || (*var).varlevelsup != 0 {
            return None;
        }
        let rtable = (*(*root).parse).rtable;
        let varno = (*var).varno;
        if varno < 1 || varno > pg_sys::list_length(rtable) {
            return None;
        }
        let rte = pg_sys::list_nth(rtable, varno - 1).cast::<pg_sys::RangeTblEntry>();
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
            || pg_sys::get_rel_type_id((*rte).relid) != (*var).vartype
        {
            return None;
        }
        // The version: NULL (current) or a constant.
        let version = if nargs == 3 {
            let v = arg(2);
            if (*v).type_ != pg_sys::NodeTag::T_Const {
                return None;
            }
            let c = v.cast::<pg_sys::Const>();
            if (*c).constisnull {
                None
            } else {
                Some((*c).constvalue.value() as i32)
            }
        } else {
            None
        };
        // None: the plain function raises the error when it runs.
        let (target, models) = planned_target()?;
        let m = catalog::load_if_readable(&name, version)?;
        let mut new_args: *mut pg_sys::List = std::ptr::null_mut();
        let text_const = |s: &str| -> Option<*mut pg_sys::Node> {
            Some(
                pg_sys::makeConst(
                    pg_sys::TEXTOID,
                    -1,
                    pg_sys::DEFAULT_COLLATION_OID,
                    -1,
                    s.into_datum()?,
                    false,
                    false,
                )
                .cast(),
            )
        };
        new_args = pg_sys::lappend(new_args, text_const(&name)?.cast());
        new_args = pg_sys::lappend(new_args, text_const(&m.to_plan_text())?.cast());
        for f in m.encoder.feature_names() {
            let c = CString::new(f).ok()?;
            let attno = pg_sys::get_attnum((*rte).relid, c.as_ptr());
            if attno <= 0 {
                return None; // missing (or a system column): the plain path reports it
            }
            let mut typ = pg_sys::InvalidOid;
            let mut typmod = -1;
            let mut coll = pg_sys::InvalidOid;
            pg_sys::get_atttypetypmodcoll((*rte).relid, attno, &mut typ, &mut typmod, &mut coll);
            let v = pg_sys::makeVar(varno, attno, typ, typmod, coll, 0);
            new_args = pg_sys::lappend(new_args, v.cast());
        }
        // The plan now depends on the catalog: every change of a model invalidates
        // segment.models' relcache entry (model::invalidate_plans), which makes cached
        // plans that list it among their relations be planned again. And it holds what
        // this role may read: a cached plan is not reused by another role.
        let glob = (*root).glob;
        if !glob.is_null() {
            (*glob).relationOids = pg_sys::lappend_oid((*glob).relationOids, models);
            (*glob).dependsOnRole = true;
        }
        let out = pg_sys::makeFuncExpr(
            target,
            pg_sys::INT4OID,
            new_args,
            pg_sys::InvalidOid,
            (*call).inputcollid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        );
        (*out).location = (*call).location;
        Some(out)
    }
}

/// The oids of `segment._assign_planned(text, text, VARIADIC "any")` and of
/// segment.models; None before `ALTER EXTENSION pg_segment UPDATE` has created the
/// function (the call is then left alone).
fn planned_target() -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    let (func, models) = spi::two::<pg_sys::Oid, pg_sys::Oid>(
        "SELECT pg_catalog.to_regprocedure('segment._assign_planned(text, text, \"any\")')::pg_catalog.oid,
                pg_catalog.to_regclass('segment.models')::pg_catalog.oid",
        &[],
    )?;
    Some((func?, models?)).filter(|&(f, m)| f != pg_sys::InvalidOid && m != pg_sys::InvalidOid)
}

function_info_v1!(pg_finfo_segment_assign_cols);

/// `segment._assign_cols`, the planner's target in 0.1.0. Kept only so that the 0.1.0
/// install script still loads with this library; `ALTER EXTENSION pg_segment UPDATE`
/// drops the function.
///
/// # Safety
/// Called by fmgr.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn segment_assign_cols(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    crate::catalog::check_catalog_version();
    raise(
        Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "segment._assign_cols is no longer used",
        Some("Run ALTER EXTENSION pg_segment UPDATE;".into()),
    )
}

function_info_v1!(pg_finfo_segment_assign_planned);

/// What a `segment._assign_planned` call site keeps: the model and, for each of its
/// features, the argument holding it.
struct Planned {
    cache: AssignCache,
    cols: ColumnMap,
}

/// `segment._assign_planned(model text, planned text, VARIADIC cols "any")`: what the
/// planner turns `segment_assign(model, row)` into (see above). `planned` is the model
/// as it was when the query was planned (so planning and execution can never disagree
/// about it), and the feature columns arrive as separate arguments in the order of its
/// features. The assignment itself is [`crate::assign::AssignCache::assign_planned`].
///
/// # Safety
/// Called by fmgr with this signature (at least 2 arguments).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn segment_assign_planned(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr passes nargs arguments; argument types are read from the call's
    // expression (get_fn_expr_argtype), so each Datum is converted as what it is.
    unsafe {
        let nargs = (*fcinfo).nargs as usize;
        let args = (*fcinfo).args.as_slice(nargs);
        if nargs < 2 || args[0].isnull || args[1].isnull {
            (*fcinfo).isnull = true;
            return pg_sys::Datum::from(0);
        }
        let (slot, mcxt) = call_site::slot::<Planned>(fcinfo);
        if slot.is_none() {
            // The planner writes both as constants, so they are read once per call site.
            let name = text_str(args[0].value).unwrap_or_default();
            let planned = text_str(args[1].value).unwrap_or_default();
            let cache = AssignCache::planned(mcxt, name, planned, nargs);
            let cols = ColumnMap::new(
                (2..nargs)
                    .map(|i| {
                        let typ = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, i as i32);
                        (i, conv_for(typ))
                    })
                    .collect(),
            );
            *slot = Some(Planned { cache, cols });
        }
        let p = slot.as_mut().expect("filled above");
        let segment = p
            .cache
            .assign_planned(&Features::new(&p.cols, Datums::Args(args)));
        match segment {
            Some(segment) => pg_sys::Datum::from(segment),
            None => {
                (*fcinfo).isnull = true;
                pg_sys::Datum::from(0)
            }
        }
    }
}

/// Make every cached plan that may have read a model be planned again: plans that
/// rewrote `segment_assign` record segment.models among their relations (planner.rs),
/// so a relcache invalidation of that table, sent when this transaction commits,
/// reaches every session.
pub fn invalidate_plans() {
    if let Some(oid) = spi::one::<pg_sys::Oid>(
        "SELECT 'segment.models'::pg_catalog.regclass::pg_catalog.oid",
        &[],
    ) {
        // SAFETY: registers an invalidation message for an existing relation.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
}

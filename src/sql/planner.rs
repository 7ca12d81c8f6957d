//! Planner support for `segment_assign(model, row)`.
//!
//! Written naively, `segment_assign('m', c)` makes the executor build a composite Datum of
//! the whole row for every call (`ExecEvalWholeRowVar`: copy and flatten the tuple), and
//! the function then takes that copy apart again. When the call is
//! `segment_assign(<constant model>, <whole row of a table>[, version])`, this support
//! function (SupportRequestSimplify) rewrites it at plan time into
//! `segment._assign_cols(model, version, <feature names>, <only the feature columns>)`:
//! the scan hands over just the columns the model reads, already deformed.
//!
//! The rewrite is skipped (the plain function runs) whenever its equivalence is not
//! obvious: a model that does not exist yet or lacks one of the table's columns (the
//! plain function raises the usual errors), a row that is not a base table's (a
//! subquery, a function), a query with explicit JOINs (an outer join could null the
//! whole row, which the plain function reports as NULL), or a query that groups, is
//! DISTINCT or has window functions (see [`simplify`]). `EXPLAIN VERBOSE` shows it. The
//! feature names travel with the call, so a plan cached before the model was retrained
//! with other features errors out clearly instead of mixing columns up.
use super::error::{raise, Code};
use super::model;
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
pub(crate) use function_info_v1;

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
        let name = super::values::text_str((*model_const).constvalue)?.to_string();
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
        let features = features_of(&name, version)?;
        let target = assign_cols_oid()?;

        // segment._assign_cols(model, version, features, VARIADIC columns)
        let mut new_args: *mut pg_sys::List = std::ptr::null_mut();
        new_args = pg_sys::lappend(new_args, model.cast());
        let version_arg: *mut pg_sys::Node = if nargs == 3 {
            arg(2)
        } else {
            pg_sys::makeConst(
                pg_sys::INT4OID,
                -1,
                pg_sys::InvalidOid,
                4,
                pg_sys::Datum::from(0),
                true,
                true,
            )
            .cast()
        };
        new_args = pg_sys::lappend(new_args, version_arg.cast());
        let names: Vec<&str> = features.iter().map(String::as_str).collect();
        let names_datum = names.into_datum()?;
        let names_const = pg_sys::makeConst(
            pg_sys::TEXTARRAYOID,
            -1,
            pg_sys::DEFAULT_COLLATION_OID,
            -1,
            names_datum,
            false,
            false,
        );
        new_args = pg_sys::lappend(new_args, names_const.cast());
        for f in &features {
            let c = CString::new(f.as_str()).ok()?;
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

/// The input feature names of a model (version: None = current), or None when it does
/// not exist (the plain function then reports that when it runs).
fn features_of(name: &str, version: Option<i32>) -> Option<Vec<String>> {
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT true FROM segment.models m JOIN segment.versions v ON v.model = m.name
          WHERE m.name = $1 AND v.version = coalesce($2, m.current_version)",
        &[name.into(), version.into()],
    );
    if !matches!(exists, Ok(Some(true))) {
        return None;
    }
    let m = model::load(name, version);
    Some(
        m.encoder
            .feature_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

/// The oid of `segment._assign_cols(text, int, text[], VARIADIC "any")`.
fn assign_cols_oid() -> Option<pg_sys::Oid> {
    let oid = Spi::get_one::<pg_sys::Oid>(
        "SELECT 'segment._assign_cols(text, integer, text[], \"any\")'::regprocedure::oid",
    )
    .ok()
    .flatten()?;
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Raised by `segment._assign_cols` when the plan names features the model no longer has.
pub fn stale_plan(model: &str, feature: &str) -> ! {
    raise(
        Code::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!(
            "model \"{model}\" has feature \"{feature}\", which this query was not planned with"
        ),
        Some(
            "The model was retrained with other features after the query was planned: run it again (DISCARD PLANS for prepared statements).".into(),
        ),
    )
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION segment._assign_cols(model text, version integer, features text[], VARIADIC cols "any")
RETURNS integer LANGUAGE c STABLE PARALLEL SAFE COST 25
AS 'MODULE_PATHNAME', 'segment_assign_cols';
COMMENT ON FUNCTION segment._assign_cols(text, integer, text[], "any") IS
    'internal: segment_assign(model, row) as the planner rewrites it, given only the feature columns';
CREATE FUNCTION segment._assign_support(internal) RETURNS internal
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segment_assign_support';
COMMENT ON FUNCTION segment._assign_support(internal) IS
    'internal: planner support for segment_assign(model, row) (passes only the feature columns)';
ALTER FUNCTION segment_assign(text, anyelement, integer) SUPPORT segment._assign_support;
"#,
    name = "assign_support",
    requires = [sql::assign::segment_assign_row],
);

//! The model lifecycle after training: `segment_label`, `segment_drop`, and
//! `segment_grant` / `segment_revoke` (SQL wrappers in sql/lifecycle.sql around
//! `segment._grant`). Every one is for members of the model's owner role only.
use crate::catalog::{self, check_catalog_version, check_owner, ownership};
use crate::error::{raise, require, Code};
use crate::pg::planner::invalidate_plans;
use pgrx::prelude::*;

/// Name segment `segment` (1-based) of the current version of `model`. The label is
/// kept by later versions that inherit the segment. Only members of the model's owner
/// role may relabel it. Returns the label; a NULL label removes it.
///
/// ```sql
/// SELECT segment_label('customers', 3, 'loyal big spenders');
/// ```
#[pg_extern(volatile)]
fn segment_label(model: Option<&str>, segment: Option<i32>, label: Option<&str>) -> Option<String> {
    let model = require(model, "segment_label", "model");
    let segment = require(segment, "segment_label", "segment");
    check_catalog_version();
    check_owner(model, "relabel");
    if let Err(ids) = catalog::set_label(model, segment, label) {
        let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model \"{model}\" has no segment {segment}"),
            Some(format!(
                "Its current version's segments are {}.",
                ids.join(", ")
            )),
        )
    }
    label.map(str::to_string)
}

/// Drop `model`: its catalog rows (every version, segment, profile and grant) and its
/// assignment table. Only members of the owner role may. Returns true when dropped;
/// with `if_exists => true` a missing model returns false instead of an error.
///
/// ```sql
/// SELECT segment_drop('customers');
/// ```
#[pg_extern(volatile)]
fn segment_drop(model: Option<&str>, if_exists: default!(Option<bool>, false)) -> bool {
    let model = require(model, "segment_drop", "model");
    let if_exists = require(if_exists, "segment_drop", "if_exists");
    check_catalog_version();
    if if_exists && ownership(model).is_none() {
        return false;
    }
    // Not while a refresh or promotion of the model runs (they hold this lock).
    catalog::take_name(model);
    check_owner(model, "drop");
    catalog::delete_model(model);
    invalidate_plans();
    true
}

#[pg_schema]
mod segment {
    use super::*;

    /// `segment_grant` (grant = true) and `segment_revoke`: let `role` (and its members)
    /// read `model` (its catalog rows, its assignment table, and assigning with it), or no
    /// longer. Only members of the model's owner role may. Returns true when something
    /// changed.
    #[pg_extern(volatile)]
    fn _grant(model: Option<&str>, role: Option<pg_sys::Oid>, grant: Option<bool>) -> bool {
        let grant = require(grant, "segment._grant", "grant");
        let function = if grant {
            "segment_grant"
        } else {
            "segment_revoke"
        };
        let model = require(model, function, "model");
        let role = require(role, function, "role");
        check_catalog_version();
        check_owner(model, if grant { "grant" } else { "revoke" });
        let role_name = catalog::role_name(role).unwrap_or_else(|| {
            raise(
                Code::ERRCODE_UNDEFINED_OBJECT,
                format!("{function}: role with OID {} does not exist", role.to_u32()),
                None,
            )
        });
        let changed = catalog::record_grant(model, role, grant);
        catalog::grant_assignments(model, &role_name, grant);
        invalidate_plans();
        changed
    }
}

pgrx::extension_sql_file!(
    "../sql/lifecycle.sql",
    name = "lifecycle",
    requires = [segment_label, segment_drop, segment::_grant],
);

//! Image tag discovery rules from Kargo's image subscriptions: Masterminds-style semver
//! constraints and the per-strategy filtering and ordering of tags. Pure functions without IO;
//! the registry client lists the tags and fetches metadata in the order given here.

pub mod semver_constraint;
pub mod tag_selection;

pub use semver_constraint::{Constraint, ConstraintError, cmp_precedence, parse_version};
pub use tag_selection::{
    Strategy, TagFilter, TagFilterError, UnknownStrategy, lexical_candidates,
    newest_build_candidates, newest_build_order, semver_candidates, sort_newest_build_by,
};

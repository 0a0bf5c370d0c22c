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

pub mod ecr;
pub mod images;
pub mod oci;
pub mod registry_limits;

pub use ecr::{EcrIdentity, EcrRepository};
pub use images::{
    CredentialsError, DiscovererConfig, DiscovererInitError, ImageDiscoverer, ImageDiscoveryError,
    ImageRepository, InvalidPlatform, Platform, RegistryCredentials,
};
pub use registry_limits::{
    CacheCounts, RateLimiter, RateLimits, RegistryStats, RequestCounts, RequestKind,
};

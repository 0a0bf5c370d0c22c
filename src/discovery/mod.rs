//! Image discovery for Kargo's image subscriptions. `semver_constraint` and `tag_selection` are
//! pure: Masterminds-style semver constraints and the per-strategy filtering and ordering of tags.
//! `images` ([`ImageDiscoverer`]) lists tags and fetches metadata in that order from ECR (`ecr`)
//! or any OCI registry (`oci`), within the per-registry budgets and caches of `registry_limits`.
//! `charts` discovers chart versions (OCI tags or a classic `index.yaml`) for chart subscriptions.

pub mod semver_constraint;
pub mod subscription;
pub mod tag_filter;
pub mod tag_selection;

pub use semver_constraint::{Constraint, ConstraintError, cmp_precedence, parse_version};
pub use subscription::{Subscriber, SubscriptionProblem, describe_problems};
pub use tag_filter::{TagFilter, TagFilterError, TagRegexes};
pub use tag_selection::{
    Strategy, UnknownStrategy, lexical_candidates, newest_build_candidates, newest_build_order,
    semver_candidates, sort_newest_build_by,
};

pub mod charts;
pub mod config;
pub mod ecr;
mod ecr_clients;
pub mod git_commits;
pub mod image_plan;
pub mod images;
pub mod oci;
mod oci_registry;
mod registry;
mod registry_context;
pub mod registry_limits;
pub mod types;

pub use charts::{
    ChartDiscoveryError, ChartPlan, ChartSource, ChartSubscriber, discover_chart,
    discover_planned_chart,
};
pub use config::DiscovererConfig;
pub use ecr::EcrIdentity;
pub use git_commits::{
    GitDiscoveryError, GitPlan, GitSubscriber, discover_commits, discover_planned_commits,
};
pub use image_plan::ImagePlan;
pub use images::ImageDiscoverer;
pub use registry_limits::{
    CacheCounts, RateLimiter, RateLimits, RegistryStats, RequestCounts, RequestKind,
};
pub use types::{
    CredentialsError, DiscovererInitError, EcrRepository, ImageDiscoveryError, ImageRepository,
    InvalidPlatform, Platform, RegistryCredentials,
};

//! Discovery for a Warehouse's subscriptions.
//!
//! Each kind of subscription (image, git, chart) is a [`Subscriber`] that discovers from a plan
//! compiled once ([`ImagePlan`], [`GitPlan`], [`ChartPlan`]); the Warehouse's validation checks
//! the same plans. Pure parts: `semver_constraint` (Masterminds constraints), `tag_filter` (the
//! one allow/ignore regex filter), `tag_selection` (per-strategy filtering and ordering).
//!
//! Images: `images` ([`ImageDiscoverer`]) picks a registry back end, `ecr` (the ECR API) or
//! `oci_registry` (any OCI registry, over the `oci` protocol client); both share
//! `registry_context` (settings from `config`, the budgets and caches of `registry_limits`,
//! the clients) and the types of `types`, and never import each other or `images`.
//! Git: `git_commits`. Charts: `charts` (OCI tags through the image back ends, or an
//! `index.yaml`).

pub mod semver_constraint;
pub mod semver_version;
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

pub mod artifacts;
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

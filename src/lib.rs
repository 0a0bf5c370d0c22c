//! haul: promotes releases through environments the GitOps way, implementing Kargo's
//! `kargo.akuity.io/v1alpha1` API.

pub mod admission;
pub mod api;
pub mod argocd;
pub mod availability;
pub mod cli;
pub mod controller;
pub mod crds;
pub mod credentials;
pub mod discovery;
pub mod doublestar;
pub mod duration;
pub mod event_annotations;
pub mod expressions;
pub mod freight;
pub mod gc;
pub mod generated;
pub mod git;
pub mod metrics;
pub mod promotion;
#[cfg(feature = "quickstart")]
pub mod quickstart;
pub mod receivers;
pub mod stages;
pub mod urls;
pub mod yaml;

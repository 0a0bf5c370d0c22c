//! haul: promotes releases through environments the GitOps way, implementing Kargo's
//! `kargo.akuity.io/v1alpha1` API.

pub mod api;
pub mod crds;
pub mod discovery;
pub mod envtest;

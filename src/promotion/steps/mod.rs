//! The built-in promotion steps, one file per step or small family, each declaring its name,
//! typed config, defaults and needs (`spec::Step`); `registry` holds the one list of them and
//! dispatches by name; `toolkit` is what every step imports; `env` is what a step may use,
//! which differs between the controller and `haul run-local`. Each step parses and validates
//! its (already evaluated) config before doing anything, so a bad config fails the step with a
//! message naming the field and changes nothing.

pub mod env;
pub mod registry;
pub mod spec;
pub mod toolkit;

mod argocd;
mod argocd_wait;
mod chart_lock;
mod compose_output;
mod data_files;
mod fail;
mod file_write;
mod files;
mod freight_alias;
mod git;
mod git_pr;
mod git_tag;
mod github_push;
mod helm_chart;
mod helm_template;
mod http;
mod http_download;
mod http_guard;
mod json_edit;
mod kustomize;
mod metadata;
mod oci;
mod tar;
mod toml_files;
mod untar;
mod yaml_merge;
mod yaml_update;

pub use env::{ClusterCredentials, CredentialsProvider, FixedCredentials, Refusal, StepEnv};
pub use registry::{find, names, run};
pub use spec::{Needs, Step, StepDefaults, StepSpec};
pub use toolkit::{StepError, StepOutcome, worktrees};

//! Argo CD integration (Kargo reference §3.3 "argocd-update" and §5): the `argocd-update`
//! promotion step, which points Argo CD Applications at new revisions and starts a sync
//! ([`update`]), and the health check that step records, which the Stage re-runs afterwards
//! ([`health`]).
//!
//! Both halves are split into pure functions ([`update::plan`], [`health::application_health`])
//! that decide from an [`Application`](crate::api::argocd::Application) as read, and thin async
//! wrappers ([`update::run`], [`ArgoCdHealthCheck::run`]) that read and patch through the
//! Kubernetes API. [`authorized_stage`] parses the annotation that lets a Stage change an
//! Application.

pub mod authorized_stage;
pub mod health;
pub mod update;
pub mod wait;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use health::{AppHealth, ArgoCdHealthCheck, aggregate, application_health, check};
pub use update::{
    Plan, PlanState, StageRef, StepOutcome, UpdateConfig, authorize, health_check_record, plan, run,
};

/// The step kind, also the `uses` of the health check record it leaves behind.
pub const STEP_KIND: &str = "argocd-update";
/// Where Applications are looked up when a step does not name a namespace.
pub const DEFAULT_NAMESPACE: &str = "argocd";
/// Annotation that makes Argo CD refresh an Application (value `normal` or `hard`); Argo CD
/// removes it once the refresh is done.
pub const ANNOTATION_REFRESH: &str = "argocd.argoproj.io/refresh";
/// A refresh that also bypasses Argo CD's manifest cache.
pub const REFRESH_HARD: &str = "hard";
/// `operation.info` entry naming the Promotion that started a sync; it is how a later
/// reconcile recognises its own operation.
pub const PROMOTION_INFO_KEY: &str = "kargo.akuity.io/promotion";
/// `operation.initiatedBy.username` when a Promotion has no human actor.
pub const DEFAULT_INITIATOR: &str = "haul-controller";

/// How long a Promotion may stay in the step before it errs (Kargo's default for
/// `argocd-update`; the engine applies it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// When to run a Running step again even without a watch event on the Application (Kargo
/// polls this often as a safety net).
pub const RETRY_AFTER_RUNNING: Duration = Duration::from_secs(30);

/// An Application a step touched, with the revision each of its sources should be synced to
/// (one entry per source, `""` where unknown). Serialized as Kargo's `ArgoCDAppHealthCheck`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRef {
    pub name: String,
    /// Empty means the controller's default Argo CD namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub desired_revisions: Vec<String>,
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What can go wrong talking to Argo CD Applications.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The step configuration is invalid; retrying cannot help.
    #[error("invalid argocd-update config: {0}")]
    Config(String),
    /// A recorded health check cannot be read.
    #[error("invalid argocd-update health check: {0}")]
    HealthCheck(String),
    #[error("Argo CD Application {0} not found: check the name and namespace in the step config")]
    NotFound(String),
    /// The Application does not allow this Stage to change it.
    #[error("{0}")]
    Unauthorized(String),
    /// A label selector matched nothing usable.
    #[error("{0}")]
    NoMatch(String),
    /// A source update matches no source of an Application.
    #[error("{0}")]
    SourceMismatch(String),
    /// The Application changed between our read and our patch, more than once in a row.
    #[error(
        "Argo CD Application {0} kept changing while being updated; it will be retried on the next reconcile"
    )]
    Conflict(String),
    #[error("cannot {action} Argo CD Application {app}: {source}")]
    Kube {
        action: &'static str,
        app: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// True when retrying the step cannot succeed (Kargo marks these steps Failed at once).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Error::Config(_))
    }
}

/// `namespace/name` of an Application as read.
pub(crate) fn app_key(app: &crate::api::argocd::Application) -> String {
    format!(
        "{}/{}",
        app.metadata.namespace.as_deref().unwrap_or_default(),
        app.metadata.name.as_deref().unwrap_or_default()
    )
}

//! argocd-update: updates and syncs the Argo CD Applications authorised for this Stage (see
//! `crate::argocd::update`), and leaves a health check for the Stage to run from then on.

use std::time::Duration;

use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::{Needs, Step, StepDefaults};
use super::toolkit::{StepError, StepOutcome};
use crate::api::{HealthCheckStep, StepStatus};
use crate::argocd::{Error, RETRY_AFTER_RUNNING, STEP_KIND, UpdateConfig, run};

pub struct ArgocdUpdate;

impl Step for ArgocdUpdate {
    /// The name the Stage's health checks use too.
    const NAME: &'static str = STEP_KIND;
    /// Kargo: 5 minutes for the Applications to sync.
    const DEFAULTS: StepDefaults = StepDefaults {
        timeout: Some(Duration::from_secs(300)),
        ..StepDefaults::STANDARD
    };
    const NEEDS: Needs = Needs {
        cluster: Some("it updates Argo CD Applications"),
        argocd: true,
        ..Needs::NOTHING
    };
    type Config = UpdateConfig;

    /// `crate::argocd` parses and validates its own config, reporting every problem at once.
    fn parse(config: Value) -> Result<UpdateConfig, StepError> {
        UpdateConfig::from_value(&config)
            .map_err(|e| StepError::Failed(format!("invalid config: {e}")))
    }

    async fn run(cfg: UpdateConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
        let client = env.cluster(ArgocdUpdate::NAME)?;
        let argocd_namespace = env.argocd_namespace.ok_or_else(|| {
            StepError::Failed(format!(
                "{} needs Argo CD, and {} has none",
                ArgocdUpdate::NAME,
                env.runner
            ))
        })?;
        let actor = (!env.actor.is_empty() && env.actor != "unknown").then_some(env.actor);
        let outcome = run(
            client,
            argocd_namespace,
            env.project,
            env.stage,
            env.promotion,
            actor,
            &cfg,
        )
        .await
        .map_err(|e| match e {
            // Refusals and mismatches are not fixed by retrying: the Application must change.
            Error::Config(_)
            | Error::Unauthorized(_)
            | Error::NoMatch(_)
            | Error::SourceMismatch(_)
            | Error::NotFound(_) => StepError::Failed(e.to_string()),
            other => StepError::Retryable(other.to_string()),
        })?;
        let health_check: HealthCheckStep = outcome.health_check_step();
        let mut output = Map::new();
        output.insert(
            "apps".into(),
            serde_json::to_value(&outcome.apps).unwrap_or(Value::Null),
        );
        match outcome.status {
            StepStatus::Errored => Err(StepError::Errored(outcome.message)),
            StepStatus::Failed => Err(StepError::Failed(outcome.message)),
            status => Ok(StepOutcome {
                status,
                message: Some(outcome.message),
                output,
                health_check: (status == StepStatus::Succeeded).then_some(health_check),
                retry_after: (status == StepStatus::Running).then_some(RETRY_AFTER_RUNNING),
            }),
        }
    }
}

//! argocd-wait: waits until Argo CD Applications are healthy, synced and idle (or whatever the
//! config's `waitFor` names); see `crate::argocd::wait`. Running until then, re-checked every
//! 30 s (or on the Application's watch event); the engine's timeout (Kargo: 5 minutes) ends it
//! with the last state of each Application that was not ready.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::env::StepEnv;
use super::spec::{Needs, Step, StepDefaults};
use super::toolkit::{self, StepError, StepOutcome};
use crate::api::StepStatus;
use crate::argocd::wait::{self, WaitConfig};
use crate::argocd::{Error, RETRY_AFTER_RUNNING};

/// The output key of the health statuses seen, per `namespace/name` (Kargo's `healthStatus`).
const HEALTH_STATUS_KEY: &str = "healthStatus";

pub struct ArgocdWait;

impl Step for ArgocdWait {
    const NAME: &'static str = "argocd-wait";
    /// Kargo: 5 minutes.
    const DEFAULTS: StepDefaults = StepDefaults {
        timeout: Some(Duration::from_secs(300)),
        ..StepDefaults::STANDARD
    };
    const NEEDS: Needs = Needs {
        cluster: Some("it reads Argo CD Applications"),
        argocd: true,
        ..Needs::NOTHING
    };
    type Config = WaitConfig;

    fn parse(config: Value) -> Result<WaitConfig, StepError> {
        let cfg: WaitConfig = toolkit::parse(config)?;
        cfg.validate().map_err(|e| match e {
            Error::Config(m) => StepError::Failed(format!("invalid config: {m}")),
            other => StepError::Failed(other.to_string()),
        })?;
        Ok(cfg)
    }

    async fn run(cfg: WaitConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
        let client = env.cluster(Self::NAME)?;
        let namespace = env.argocd_namespace.ok_or_else(|| {
            StepError::Failed(format!(
                "{} needs Argo CD, and {} has none",
                Self::NAME,
                env.runner
            ))
        })?;
        let previous = previous_health(env.previous_output);
        let pass = wait::run(client, namespace, &cfg, &previous)
            .await
            .map_err(|e| match e {
                Error::Kube { .. } | Error::Conflict(_) => StepError::Retryable(e.to_string()),
                other => StepError::Errored(other.to_string()),
            })?;
        let mut output = Map::new();
        output.insert(
            "apps".into(),
            Value::Array(
                pass.apps
                    .iter()
                    .map(|(ns, name)| json!({"name": name, "namespace": ns}))
                    .collect(),
            ),
        );
        output.insert(HEALTH_STATUS_KEY.into(), json!(pass.health));
        if let Some(why) = pass.failed {
            return Err(StepError::Failed(why));
        }
        if pass.waiting.is_empty() {
            let mut done = StepOutcome::succeeded(output);
            done.message = Some(format!("{} Argo CD Application(s) ready", pass.apps.len()));
            return Ok(done);
        }
        Ok(StepOutcome {
            status: StepStatus::Running,
            message: Some(format!("waiting: {}", pass.waiting.join("; "))),
            output,
            health_check: None,
            retry_after: Some(RETRY_AFTER_RUNNING),
        })
    }
}

/// The health statuses this step saw on its previous call, if any.
fn previous_health(output: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
    output
        .and_then(|o| o.get(HEALTH_STATUS_KEY))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

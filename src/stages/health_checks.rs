//! The registry of health checks, keyed by the promotion step that leaves them on a
//! Promotion (`status.healthChecks: [{uses, config}]`, Kargo's shape). A Stage parses the
//! records of its last Promotion into typed checks once and runs them; a record no check
//! understands is an error the Stage reports, never a silent skip.
//!
//! Adding a check: its typed config with `parse` and an async run (one file), plus one arm in
//! [`HealthCheck::parse`] and [`HealthCheck::run`].

use serde_json::Value;

use crate::api::HealthCheckStep;
use crate::argocd::{self, AppHealth, ArgoCdHealthCheck};

/// A stored health check, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    /// Left by `argocd-update`: the Applications it synced and their desired revisions.
    ArgoCd(ArgoCdHealthCheck),
}

/// Why a stored health check cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthCheckError {
    #[error("health check {index} uses {uses:?}, which no health check is registered for")]
    Unknown { index: usize, uses: String },
    #[error("health check {index} is invalid: {message}")]
    Invalid { index: usize, message: String },
}

/// What running the checks needs from the controller.
pub struct CheckEnv<'a> {
    pub client: &'a kube::Client,
    /// Where Argo CD Applications are looked up when a check names no namespace.
    pub argocd_namespace: &'a str,
}

impl HealthCheck {
    /// Parses the `config` of a check left by the step `uses`; `index` is its place in the
    /// Promotion's list, for the error message.
    pub fn parse(index: usize, uses: &str, config: &Value) -> Result<Self, HealthCheckError> {
        let invalid = |e: argocd::Error| HealthCheckError::Invalid {
            index,
            message: e.to_string(),
        };
        match uses {
            argocd::STEP_KIND => ArgoCdHealthCheck::parse(config)
                .map(Self::ArgoCd)
                .map_err(invalid),
            _ => Err(HealthCheckError::Unknown {
                index,
                uses: uses.to_string(),
            }),
        }
    }

    /// Parses every record of a Promotion, in order; the first bad one is the error.
    pub fn parse_all(records: &[HealthCheckStep]) -> Result<Vec<Self>, HealthCheckError> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| Self::parse(i, &r.uses, r.config.as_ref().unwrap_or(&Value::Null)))
            .collect()
    }

    /// Runs the check: one result per thing it looks at. Failures to read are results
    /// (Unknown), not errors.
    pub async fn run(&self, env: &CheckEnv<'_>) -> Vec<AppHealth> {
        match self {
            Self::ArgoCd(check) => check
                .run(env.client, env.argocd_namespace)
                .await
                .into_iter()
                .map(|(_, h)| h)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(uses: &str, config: Option<Value>) -> HealthCheckStep {
        HealthCheckStep {
            uses: uses.into(),
            config,
        }
    }

    #[test]
    fn argocd_update_records_parse_into_typed_checks() {
        let checks = HealthCheck::parse_all(&[record(
            "argocd-update",
            Some(json!({"apps": [{"name": "a", "desiredRevisions": ["x"]}]})),
        )])
        .unwrap();
        let [HealthCheck::ArgoCd(c)] = checks.as_slice() else {
            panic!("one check: {checks:?}")
        };
        assert_eq!(c.apps[0].name, "a");
        assert_eq!(c.apps[0].desired_revisions, vec!["x".to_string()]);
    }

    #[test]
    fn a_malformed_record_is_an_error_naming_the_check_and_field() {
        let err = HealthCheck::parse_all(&[
            record("argocd-update", Some(json!({"apps": []}))),
            record("argocd-update", Some(json!({"apps": [{"namespace": "x"}]}))),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "health check 1 is invalid: invalid argocd-update health check: config.apps[0]: missing field `name`"
        );
        let err = HealthCheck::parse_all(&[record("argocd-update", None)]).unwrap_err();
        assert!(err.to_string().contains("config is missing"), "{err}");
    }

    #[test]
    fn a_record_of_an_unknown_step_is_an_error() {
        let err = HealthCheck::parse_all(&[record("http", Some(json!({})))]).unwrap_err();
        assert_eq!(
            err,
            HealthCheckError::Unknown {
                index: 0,
                uses: "http".into()
            }
        );
    }
}

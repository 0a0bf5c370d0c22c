//! The health check `argocd-update` leaves on its Promotion (Kargo `ArgoCDHealthInput`,
//! stored as `{uses: "argocd-update", config: {apps: [...]}}`), typed: parsed once, with the
//! field at fault named when it is malformed, then run against the Applications it names.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AppHealth, check_app};
use crate::api::HealthCheckStep;
use crate::argocd::{AppRef, Error, STEP_KIND};

/// The Applications one `argocd-update` step updated, with the revisions each should run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdHealthCheck {
    #[serde(default)]
    pub apps: Vec<AppRef>,
}

impl ArgoCdHealthCheck {
    pub fn new(apps: Vec<AppRef>) -> Self {
        Self { apps }
    }

    /// Parses the record's `config`; a missing config or an unknown field is an error.
    pub fn parse(config: &Value) -> Result<Self, Error> {
        if config.is_null() {
            return Err(Error::HealthCheck("config is missing".into()));
        }
        serde_path_to_error::deserialize(config)
            .map_err(|e| Error::HealthCheck(format!("config.{}: {}", e.path(), e.inner())))
    }

    /// Parses either a whole record `{uses, config}` or just its `config`.
    pub fn from_record(record: &Value) -> Result<Self, Error> {
        match record.get("uses") {
            Some(uses) if uses.as_str() != Some(STEP_KIND) => Err(Error::HealthCheck(format!(
                "uses: expected {STEP_KIND:?}, found {uses}"
            ))),
            Some(_) => Self::parse(record.get("config").unwrap_or(&Value::Null)),
            None => Self::parse(record),
        }
    }

    /// The record to store on the Promotion, in Kargo's shape.
    pub fn record(&self) -> HealthCheckStep {
        HealthCheckStep {
            uses: STEP_KIND.to_string(),
            config: Some(json!({ "apps": self.apps })),
        }
    }

    /// Reads each Application (in `default_namespace` when the record names none) and judges
    /// its health; read errors make an Application Unknown, so running never fails.
    pub async fn run(
        &self,
        client: &kube::Client,
        default_namespace: &str,
    ) -> Vec<(AppRef, AppHealth)> {
        let mut out = Vec::with_capacity(self.apps.len());
        for app in &self.apps {
            out.push(check_app(client, default_namespace, app.clone()).await);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_whole_or_as_config() {
        let whole = json!({"uses": "argocd-update", "config": {"apps": [
            {"name": "a", "namespace": "argo", "desiredRevisions": ["x"]},
            {"name": "b"}
        ]}});
        let check = ArgoCdHealthCheck::from_record(&whole).unwrap();
        assert_eq!(check.apps.len(), 2);
        assert_eq!(check.apps[0].desired_revisions, vec!["x".to_string()]);
        assert_eq!(check.apps[1].namespace, "");
        assert_eq!(
            ArgoCdHealthCheck::from_record(&whole["config"]).unwrap(),
            check
        );
        assert_eq!(ArgoCdHealthCheck::parse(&whole["config"]).unwrap(), check);

        let err =
            ArgoCdHealthCheck::from_record(&json!({"uses": "http", "config": {}})).unwrap_err();
        assert!(
            err.to_string().contains("expected \"argocd-update\""),
            "{err}"
        );
    }

    #[test]
    fn malformed_configs_name_the_field_at_fault() {
        let err = ArgoCdHealthCheck::parse(&json!({"apps": [{"namespace": "x"}]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argocd-update health check: config.apps[0]: missing field `name`"
        );
        let err = ArgoCdHealthCheck::parse(&json!({"apps": "a"})).unwrap_err();
        assert!(
            err.to_string().contains("config.apps: invalid type"),
            "{err}"
        );
        let err = ArgoCdHealthCheck::parse(&json!({"app": []})).unwrap_err();
        assert!(err.to_string().contains("unknown field `app`"), "{err}");
        let err = ArgoCdHealthCheck::parse(&Value::Null).unwrap_err();
        assert!(err.to_string().contains("config is missing"), "{err}");
    }

    #[test]
    fn the_record_round_trips() {
        let check = ArgoCdHealthCheck::new(vec![AppRef {
            name: "a".into(),
            namespace: "argocd".into(),
            desired_revisions: vec!["abc".into()],
        }]);
        let record = check.record();
        assert_eq!(record.uses, "argocd-update");
        let config = record.config.expect("config");
        assert_eq!(
            config,
            json!({"apps": [{"name": "a", "namespace": "argocd", "desiredRevisions": ["abc"]}]})
        );
        assert_eq!(ArgoCdHealthCheck::parse(&config).unwrap(), check);
    }
}

//! set-freight-alias: gives a Freight of the Promotion's Project a new alias (Kargo's
//! `set_freight_alias.go`): its `alias` field and its `kargo.akuity.io/alias` label, in one
//! merge patch. Kargo leaves uniqueness to its admission webhook; haul checks here that no other
//! Freight of the Project has the alias, and names that Freight when one does.

use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;

use super::env::StepEnv;
use super::spec::{Needs, Step, step};
use super::toolkit::{StepError, StepOutcome, lenient};
use crate::api::{Freight, LABEL_ALIAS};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The Freight to update, in the Promotion's Project.
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    name: String,
    /// Its new alias, unique within the Project (and a valid label value).
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    alias: String,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> StepError {
    StepError::Failed(format!("invalid config: config.{field}: {why}"))
}

/// Checks the config before anything is read.
pub fn validate(cfg: &Config) -> Result<(), StepError> {
    if cfg.name.is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if !crate::freight::is_valid_alias(&cfg.alias) {
        return Err(invalid(
            "alias",
            format!(
                "{:?} is not a valid alias: it is the {LABEL_ALIAS} label's value, so at most 63 \
                 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                cfg.alias
            ),
        ));
    }
    Ok(())
}

/// The merge patch Kargo sends: the label and the field together.
fn patch(alias: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "labels": { LABEL_ALIAS: alias } },
        "alias": alias,
    })
}

fn kube_error(what: &str, e: kube::Error) -> StepError {
    match &e {
        kube::Error::Api(s) if s.code < 500 && s.code != 429 && s.code != 409 => {
            StepError::Failed(format!("{what}: {e}"))
        }
        _ => StepError::Retryable(format!("{what}: {e}")),
    }
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    validate(&cfg)?;
    let client = env.cluster(SetFreightAlias::NAME)?;
    let api: Api<Freight> = Api::namespaced(client.clone(), env.project);
    let project = env.project;
    let freight = api
        .get_opt(&cfg.name)
        .await
        .map_err(|e| kube_error(&format!("getting Freight {:?}", cfg.name), e))?
        .ok_or_else(|| {
            StepError::Failed(format!(
                "config.name: Freight {:?} not found in project {project:?}",
                cfg.name
            ))
        })?;
    let holders = api
        .list(&ListParams::default().labels(&format!("{LABEL_ALIAS}={}", cfg.alias)))
        .await
        .map_err(|e| kube_error("listing Freight by alias", e))?;
    if let Some(other) = holders
        .items
        .iter()
        .filter_map(|f| f.metadata.name.as_deref())
        .find(|n| *n != cfg.name)
    {
        return Err(StepError::Failed(format!(
            "config.alias: alias {:?} is already used by Freight {other:?} in project {project:?}",
            cfg.alias
        )));
    }
    api.patch(
        &cfg.name,
        &PatchParams::default(),
        &Patch::Merge(&patch(&cfg.alias)),
    )
    .await
    .map_err(|e| kube_error(&format!("patching the alias of Freight {:?}", cfg.name), e))?;
    let old = freight.alias.unwrap_or_default();
    tracing::info!(freight = %cfg.name, %project, from = %old, to = %cfg.alias, "set-freight-alias");
    Ok(StepOutcome {
        message: Some(format!(
            "updated alias of Freight {:?} from {old:?} to {:?}",
            cfg.name, cfg.alias
        )),
        ..StepOutcome::succeeded(Map::new())
    })
}

step! {
    pub struct SetFreightAlias = "set-freight-alias", Config,
    needs: Needs { cluster: Some("it changes a Freight's alias"), ..Needs::NOTHING },
    |cfg, env| run(cfg, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Config, StepError> {
        super::super::toolkit::parse(v)
    }

    #[test]
    fn validates_name_and_alias() {
        let cfg = parse(json!({"name": "abc", "alias": "frozen-tauntaun"})).expect("parses");
        assert!(validate(&cfg).is_ok());
        let cfg = parse(json!({"name": "abc", "alias": "Not an alias!"})).expect("parses");
        let e = validate(&cfg).expect_err("bad alias").to_string();
        assert!(e.contains("config.alias"), "{e}");
        let cfg = parse(json!({"name": "", "alias": "a"})).expect("parses");
        assert!(
            validate(&cfg)
                .expect_err("empty")
                .to_string()
                .contains("config.name")
        );
        let e = parse(json!({"name": "abc"}))
            .expect_err("no alias")
            .to_string();
        assert!(e.contains("alias"), "{e}");
        assert_eq!(
            patch("x"),
            json!({"metadata": {"labels": {"kargo.akuity.io/alias": "x"}}, "alias": "x"})
        );
    }
}

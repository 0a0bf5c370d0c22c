//! yaml-update: sets scalar values at dotted keys, changing nothing else in the file.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::env::StepEnv;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, path_in, write_edited};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    path: String,
    updates: Vec<Update>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update {
    key: String,
    value: Value,
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.updates.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.updates: at least one update is required".into(),
        ));
    }
    let file = path_in(env, &cfg.path, "path")?;
    let before = std::fs::read_to_string(&file)
        .map_err(|e| StepError::Failed(format!("config.path: cannot read {}: {e}", cfg.path)))?;
    let updates: Vec<(String, Value)> = cfg
        .updates
        .iter()
        .map(|u| (u.key.clone(), u.value.clone()))
        .collect();
    let after = crate::yaml::set_values(&before, &updates)
        .map_err(|e| StepError::Failed(format!("{}: {e}", cfg.path)))?;
    // Kargo's message: "Updated <path>" and one line per key.
    let mut message = format!("Updated {}\n", cfg.path);
    for u in &cfg.updates {
        let v = match &u.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        message.push_str(&format!("\n- {}: {v}", u.key));
    }
    write_edited(&file, &before, after, message)
}

step! { pub struct YamlUpdate = "yaml-update", Config, |cfg, env| run(cfg, env) }

//! json-update (a byte-preserving edit, see `json_edit`), and yaml-parse / json-parse /
//! toml-parse: values read out of a file with expressions into the step's outputs.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::json_edit;
use super::spec::step;
use super::toolkit::{StepError, StepOutcome, lenient, path_in, write_edited};
use crate::expressions::{self, Env, NoFunctions};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConfig {
    pub(super) path: String,
    pub(super) updates: Vec<Update>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update {
    #[serde(deserialize_with = "lenient::string")]
    #[schemars(with = "lenient::Text")]
    pub(super) key: String,
    pub(super) value: Value,
}

/// The file at `config.path`, resolved inside the work dir, and its text.
pub(super) fn read(
    env: &StepEnv<'_>,
    rel: &str,
) -> Result<(std::path::PathBuf, String), StepError> {
    let file = path_in(env, rel, "path")?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| StepError::Failed(format!("config.path: cannot read {rel}: {e}")))?;
    Ok((file, text))
}

/// Applies the updates to `text` in order; pure, so the step writes nothing when one fails.
pub fn apply_updates(text: &str, updates: &[Update]) -> Result<String, StepError> {
    let mut out = text.to_string();
    for (i, u) in updates.iter().enumerate() {
        // Kargo's json-update sets scalars only.
        if !matches!(
            u.value,
            Value::String(_) | Value::Number(_) | Value::Bool(_)
        ) {
            return Err(StepError::Failed(format!(
                "invalid config: config.updates[{i}].value: must be a string, number or bool, found {}",
                u.value
            )));
        }
        out = json_edit::set(&out, &u.key, &u.value)
            .map_err(|e| StepError::Failed(format!("config.updates[{i}]: {e}")))?;
    }
    Ok(out)
}

/// Kargo's json-update commit message: strings quoted, other values as they are.
pub fn update_message(path: &str, updates: &[Update]) -> String {
    let mut message = format!("Updated {path}\n");
    for u in updates {
        let v = match &u.value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        message.push_str(&format!("\n- {}: {v}", u.key));
    }
    message
}

pub async fn json_update(cfg: UpdateConfig, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    if cfg.updates.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.updates: at least one update is required".into(),
        ));
    }
    let (file, before) = read(env, &cfg.path)?;
    let after = apply_updates(&before, &cfg.updates)
        .map_err(|e| StepError::Failed(format!("{}: {e}", cfg.path)))?;
    write_edited(
        &file,
        &before,
        after,
        update_message(&cfg.path, &cfg.updates),
    )
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParseConfig {
    path: String,
    outputs: Vec<ParseOutput>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParseOutput {
    name: String,
    from_expression: String,
}

#[derive(Debug, Clone, Copy)]
pub enum Format {
    Json,
    Yaml,
    Toml,
}

/// Evaluates each output's expression with the document's top-level keys as variables, as
/// Kargo runs them (`image.tag` reads `{image: {tag: …}}`).
pub fn extract(doc: &Value, outputs: &[ParseOutput]) -> Result<Map<String, Value>, StepError> {
    let Value::Object(top) = doc else {
        return Err(StepError::Failed(
            "the file's top level must be a map, so its keys can be read by expressions".into(),
        ));
    };
    let mut env = Env::new();
    for (k, v) in top {
        env.set(k, v.clone());
    }
    let mut out = Map::new();
    for (i, o) in outputs.iter().enumerate() {
        if o.name.is_empty() {
            return Err(StepError::Failed(format!(
                "invalid config: config.outputs[{i}].name: must not be empty"
            )));
        }
        let v = expressions::evaluate_expression(&o.from_expression, &env, &NoFunctions).map_err(
            |e| {
                StepError::Failed(format!(
                    "config.outputs[{i}].fromExpression (output {:?}): {e}",
                    o.name
                ))
            },
        )?;
        out.insert(o.name.clone(), v);
    }
    Ok(out)
}

pub async fn parse_file(
    cfg: ParseConfig,
    format: Format,
    env: &StepEnv<'_>,
) -> Result<StepOutcome, StepError> {
    if cfg.outputs.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.outputs: at least one output is required".into(),
        ));
    }
    let (_, text) = read(env, &cfg.path)?;
    let doc: Value = match format {
        Format::Json => serde_json::from_str(&text)
            .map_err(|e| StepError::Failed(format!("{}: not valid JSON: {e}", cfg.path)))?,
        Format::Yaml => serde_saphyr::from_str(&text)
            .map_err(|e| StepError::Failed(format!("{}: not valid YAML: {e}", cfg.path)))?,
        Format::Toml => text
            .parse::<toml_edit::DocumentMut>()
            .map(|doc| super::toml_files::to_json(doc.as_item()))
            .map_err(|e| StepError::Failed(format!("{}: not valid TOML: {e}", cfg.path)))?,
    };
    let out = extract(&doc, &cfg.outputs).map_err(|e| match e {
        StepError::Failed(m) => StepError::Failed(format!("{}: {m}", cfg.path)),
        other => other,
    })?;
    Ok(StepOutcome::succeeded(out))
}

step! {
    pub struct TomlParse = "toml-parse", ParseConfig,
    |cfg, env| parse_file(cfg, Format::Toml, env)
}

step! { pub struct JsonUpdate = "json-update", UpdateConfig, |cfg, env| json_update(cfg, env) }

step! {
    pub struct YamlParse = "yaml-parse", ParseConfig,
    |cfg, env| parse_file(cfg, Format::Yaml, env)
}

step! {
    pub struct JsonParse = "json-parse", ParseConfig,
    |cfg, env| parse_file(cfg, Format::Json, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs(pairs: &[(&str, &str)]) -> Vec<ParseOutput> {
        pairs
            .iter()
            .map(|(n, e)| ParseOutput {
                name: n.to_string(),
                from_expression: e.to_string(),
            })
            .collect()
    }

    #[test]
    fn expressions_read_the_documents_keys() {
        let doc = json!({"image": {"tag": "1.2.3", "ports": [80, 443]}, "rbac": {"on": true}});
        let out = extract(
            &doc,
            &outputs(&[
                ("tag", "image.tag"),
                ("port", "image.ports[1]"),
                ("on", "rbac.on && true"),
                ("tagged", "'v' + image.tag"),
            ]),
        )
        .expect("extract");
        assert_eq!(
            Value::Object(out),
            json!({"tag": "1.2.3", "port": 443, "on": true, "tagged": "v1.2.3"})
        );
        let e = extract(&doc, &outputs(&[("x", "image.tag +")])).expect_err("syntax");
        assert!(
            e.to_string()
                .starts_with("config.outputs[0].fromExpression (output \"x\"): "),
            "{e}"
        );
        assert!(extract(&json!([1]), &outputs(&[("x", "1")])).is_err());
    }

    #[test]
    fn updates_are_scalars_and_the_message_is_kargos() {
        let ups = vec![
            Update {
                key: "image.tag".into(),
                value: json!("v2"),
            },
            Update {
                key: "replicas".into(),
                value: json!(3),
            },
        ];
        let text = "{\n  \"image\": {\"tag\": \"v1\"},\n  \"replicas\": 1\n}\n";
        assert_eq!(
            apply_updates(text, &ups).expect("apply"),
            "{\n  \"image\": {\"tag\": \"v2\"},\n  \"replicas\": 3\n}\n"
        );
        assert_eq!(
            update_message("cfg.json", &ups),
            "Updated cfg.json\n\n- image.tag: \"v2\"\n- replicas: 3"
        );
        let bad = vec![Update {
            key: "image".into(),
            value: json!({"tag": "x"}),
        }];
        let e = apply_updates(text, &bad).expect_err("object");
        assert!(e.to_string().contains("config.updates[0].value"), "{e}");
    }
}

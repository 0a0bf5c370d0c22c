//! set-metadata: merges `values` into the `status.metadata` of Stages and Freight in the
//! Promotion's Project (Kargo's metadata_setter). Each key's value is replaced as a whole, as
//! Kargo's `UpsertMetadata` does; keys not named are kept.

use kube::Api;
use kube::api::{Patch, PatchParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::env::StepEnv;
use super::spec::{Needs, Step, step};
use super::toolkit::{StepError, StepOutcome};
use crate::api::{Freight, Stage};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    updates: Vec<Update>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update {
    kind: String,
    name: String,
    #[serde(default)]
    values: Map<String, Value>,
}

/// Which object an update names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Stage,
    Freight,
}

/// Checks every update before any is applied, so a bad config changes nothing.
fn validate(cfg: &Config) -> Result<Vec<Kind>, StepError> {
    if cfg.updates.is_empty() {
        return Err(StepError::Failed(
            "invalid config: config.updates: must name at least one object".into(),
        ));
    }
    cfg.updates
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let kind = match u.kind.as_str() {
                "Stage" => Kind::Stage,
                "Freight" => Kind::Freight,
                other => {
                    return Err(StepError::Failed(format!(
                        "invalid config: config.updates[{i}].kind: unsupported kind {other:?}; expected \"Stage\" or \"Freight\""
                    )));
                }
            };
            if u.name.is_empty() {
                return Err(StepError::Failed(format!(
                    "invalid config: config.updates[{i}].name: must not be empty"
                )));
            }
            Ok(kind)
        })
        .collect()
}

/// The merge patch that turns `old` into `new` (RFC 7386 in reverse): keys gone from `new`
/// become null, objects are diffed key by key, everything else is replaced.
fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) if ov == v => {}
                    Some(ov) => {
                        out.insert(k.clone(), merge_diff(ov, v));
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// The status patch setting each of `values` on `current` metadata, replacing every named
/// key's value as a whole. `resourceVersion` makes a concurrent write a conflict.
fn status_patch(
    current: &std::collections::BTreeMap<String, Value>,
    values: &Map<String, Value>,
    resource_version: Option<&str>,
) -> Value {
    let mut metadata = Map::new();
    for (k, v) in values {
        let entry = match current.get(k) {
            Some(old) => merge_diff(old, v),
            None => v.clone(),
        };
        metadata.insert(k.clone(), entry);
    }
    let mut patch = serde_json::json!({ "status": { "metadata": metadata } });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    patch
}

/// How many times one update reads and patches an object whose status changed in between.
const CONFLICT_ATTEMPTS: u64 = 10;

fn kube_error(what: &str, e: kube::Error) -> StepError {
    match &e {
        kube::Error::Api(s) if s.code == 409 => StepError::Retryable(format!("{what}: {e}")),
        kube::Error::Api(s) if s.code < 500 && s.code != 429 => {
            StepError::Errored(format!("{what}: {e}"))
        }
        _ => StepError::Retryable(format!("{what}: {e}")),
    }
}

pub async fn run(cfg: Config, env: &StepEnv<'_>) -> Result<StepOutcome, StepError> {
    let kinds = validate(&cfg)?;
    let client = env.cluster(SetMetadata::NAME)?;
    let stages: Api<Stage> = Api::namespaced(client.clone(), env.project);
    let freight: Api<Freight> = Api::namespaced(client.clone(), env.project);
    let pp = PatchParams::default();
    for (i, (u, kind)) in cfg.updates.iter().zip(kinds).enumerate() {
        let at = format!("config.updates[{i}]");
        let what = format!("{kind:?} {:?} in namespace {:?}", u.name, env.project);
        // The controllers write these statuses too: on a conflict, read again and retry.
        let mut attempt = 1;
        loop {
            let (current, rv) = match kind {
                Kind::Stage => stages
                    .get_opt(&u.name)
                    .await
                    .map_err(|e| kube_error(&format!("{at}: getting {what}"), e))?
                    .map(|s| {
                        let rv = s.metadata.resource_version.clone();
                        (s.status.unwrap_or_default().metadata, rv)
                    }),
                Kind::Freight => freight
                    .get_opt(&u.name)
                    .await
                    .map_err(|e| kube_error(&format!("{at}: getting {what}"), e))?
                    .map(|f| {
                        let rv = f.metadata.resource_version.clone();
                        (f.status.unwrap_or_default().metadata, rv)
                    }),
            }
            .ok_or_else(|| StepError::Failed(format!("{at}: {what} not found")))?;
            let patch = status_patch(&current, &u.values, rv.as_deref());
            let result = match kind {
                Kind::Stage => stages
                    .patch_status(&u.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
                Kind::Freight => freight
                    .patch_status(&u.name, &pp, &Patch::Merge(&patch))
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => {
                    return Err(kube_error(
                        &format!("{at}: patching the status of {what}"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(StepOutcome::succeeded(Map::new()))
}

step! {
    pub struct SetMetadata = "set-metadata", Config,
    needs: Needs { cluster: Some("it writes the status of Stages and Freight"), ..Needs::NOTHING },
    |cfg, env| run(cfg, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Config, StepError> {
        super::super::toolkit::parse(v)
    }

    #[test]
    fn parses_and_validates_updates() {
        let cfg = parse(json!({"updates": [
            {"kind": "Stage", "name": "test", "values": {"a": 1, "b": {"c": [true]}}},
            {"kind": "Freight", "name": "abc", "values": {}}
        ]}))
        .expect("valid");
        assert_eq!(
            validate(&cfg).expect("valid"),
            vec![Kind::Stage, Kind::Freight]
        );
        assert_eq!(cfg.updates[0].values["b"], json!({"c": [true]}));
    }

    #[test]
    fn names_the_bad_update() {
        let cfg = parse(json!({"updates": [
            {"kind": "Stage", "name": "s", "values": {}},
            {"kind": "Warehouse", "name": "w", "values": {}}
        ]}))
        .expect("parses");
        let e = validate(&cfg).expect_err("bad kind").to_string();
        assert!(e.contains("config.updates[1].kind"), "{e}");
        assert!(e.contains("Warehouse"), "{e}");

        let cfg = parse(json!({"updates": [{"kind": "Freight", "name": ""}]})).expect("parses");
        let e = validate(&cfg).expect_err("empty name").to_string();
        assert!(e.contains("config.updates[0].name"), "{e}");

        let e = parse(json!({"updates": [{"kind": "Stage"}]}))
            .expect_err("no name")
            .to_string();
        assert!(e.contains("config.updates[0]"), "{e}");
        assert!(e.contains("name"), "{e}");

        let e = parse(json!({})).expect_err("no updates").to_string();
        assert!(e.contains("updates"), "{e}");
        let cfg = parse(json!({"updates": []})).expect("parses");
        assert!(validate(&cfg).is_err());
    }

    #[test]
    fn patch_replaces_each_named_key_whole() {
        let mut current = std::collections::BTreeMap::new();
        current.insert("keep".to_string(), json!("x"));
        current.insert("obj".to_string(), json!({"a": 1, "b": 2}));
        let values = json!({"obj": {"a": 1, "c": 3}, "new": [1, 2], "keep2": "y"});
        let patch = status_patch(&current, values.as_object().expect("object"), Some("42"));
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"metadata": {
                    "obj": {"b": null, "c": 3},
                    "new": [1, 2],
                    "keep2": "y"
                }}
            })
        );
        // Applying the patch gives exactly the new values and keeps other keys.
        let mut doc = json!({"status": {"metadata": current}});
        json_patch::merge(&mut doc, &patch);
        assert_eq!(
            doc["status"]["metadata"],
            json!({"keep": "x", "obj": {"a": 1, "c": 3}, "new": [1, 2], "keep2": "y"})
        );
    }
}

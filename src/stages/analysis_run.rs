//! The Argo Rollouts AnalysisRun that verifies a Stage's current Freight, as Kargo builds it
//! (reference §2.4), with its arguments' `${{ }}` expressions evaluated, and how its phase maps
//! to a verification outcome. Pure: the controller reads the templates and the run, and
//! creates it.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::{
    ANNOTATION_STAGE, FreightCollection, LABEL_FREIGHT_COLLECTION, LABEL_STAGE, Stage,
    shorten_label_value,
};
use crate::expressions::{self, Env, Functions};
use crate::promotion::engine::PromotionFunctions;

/// Where an AnalysisRun stands, in Kargo's verification words: Kargo takes the run's phase as
/// the verification's phase and the run's `status.message` as its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running,
    Successful,
    /// Phase `Failed`: a metric failed more often than its `failureLimit`.
    Failed(String),
    /// Phase `Error`: the run could not measure (unresolved arguments, a provider erring more
    /// often than `consecutiveErrorLimit`), or the run is gone.
    Error(String),
    /// Phase `Inconclusive`: neither the success nor the failure condition held.
    Inconclusive(String),
}

/// Maps an AnalysisRun's `status.phase` (Pending, Running, Successful, Failed, Error,
/// Inconclusive) to a verification outcome, with Rollouts' message; a run that ended without
/// one (Rollouts sets one on every unsuccessful end) is described by its name and phase.
pub fn state_of(run: &Value) -> RunState {
    let phase = run["status"]["phase"].as_str().unwrap_or_default();
    let message = || match run["status"]["message"].as_str() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!(
            "AnalysisRun {} ended {phase}",
            run["metadata"]["name"].as_str().unwrap_or_default()
        ),
    };
    match phase {
        "Successful" => RunState::Successful,
        "Failed" => RunState::Failed(message()),
        "Error" => RunState::Error(message()),
        "Inconclusive" => RunState::Inconclusive(message()),
        _ => RunState::Running,
    }
}

/// The `${{ }}` environment of verification arguments, as Kargo's AnalysisRun builder has it:
/// `ctx.project`, `ctx.stage`, the Stage's `vars` (each can read the ones before it) and the
/// Freight functions (`imageFrom`, `commitFrom`, `chartFrom`, `warehouse`) over the Freight
/// being verified. Kargo's `secret()`/`configMap()` are not available here (as in haul's
/// promotion steps): calling one fails the verification naming the argument.
fn argument_env(stage: &Stage, funcs: &dyn Functions) -> Result<Env, String> {
    let mut env = Env::new()
        .with(
            "ctx",
            json!({"project": stage.namespace().unwrap_or_default(), "stage": stage.name_any()}),
        )
        .with_vars(serde_json::Map::new());
    for v in &stage.spec.vars {
        let raw = Value::String(v.value.clone().unwrap_or_default());
        let value = expressions::evaluate_template(&raw, &env, funcs)
            .map_err(|e| format!("evaluating Stage variable {:?}: {e}", v.name))?;
        env.set_var(&v.name, value);
    }
    Ok(env)
}

/// Evaluates the Stage's verification arguments as Kargo does: a value without `${{` is kept as
/// written; an expression must produce a string. The error names the argument.
pub fn evaluate_args(
    stage: &Stage,
    freight: &FreightCollection,
) -> Result<Vec<(String, Option<String>)>, String> {
    let v = stage.spec.verification.clone().unwrap_or_default();
    if v.args.is_empty() {
        return Ok(Vec::new());
    }
    let funcs = PromotionFunctions {
        freight,
        metas: &[],
        task: None,
        cluster_metadata: None,
        cluster_data: None,
    };
    let env = argument_env(stage, &funcs)?;
    v.args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if a.value.is_empty() {
                return Ok((a.name.clone(), None));
            }
            let at = format!("spec.verification.args[{i}].value");
            let value = expressions::evaluate_template(&Value::String(a.value.clone()), &env, &funcs)
                .map_err(|e| format!("evaluating verification argument {:?}: {}", a.name, e.under(&at)))?;
            match value {
                Value::String(s) => Ok((a.name.clone(), Some(s))),
                other => Err(format!(
                    "evaluating verification argument {:?}: {at}: the value must be a string, got {other}; wrap the expression in quote() to make it one",
                    a.name
                )),
            }
        })
        .collect()
}

/// The AnalysisRun for `stage`'s current Freight `freight`: metrics and args of its templates
/// (the Stage's args, evaluated by [`evaluate_args`], win), Kargo's labels, owned by the Stage.
/// `Err` names the argument that could not be evaluated.
pub fn build_run(
    stage: &Stage,
    templates: &[Value],
    freight: &FreightCollection,
    name: &str,
) -> Result<Value, String> {
    let v = stage.spec.verification.clone().unwrap_or_default();
    let mut metrics = Vec::new();
    let mut args: BTreeMap<String, Value> = BTreeMap::new();
    for t in templates {
        if let Some(m) = t["spec"]["metrics"].as_array() {
            metrics.extend(m.iter().cloned());
        }
        for a in t["spec"]["args"].as_array().into_iter().flatten() {
            if let Some(n) = a["name"].as_str() {
                args.insert(n.to_string(), a.clone());
            }
        }
    }
    for (arg, value) in evaluate_args(stage, freight)? {
        match value {
            Some(value) => {
                args.insert(arg.clone(), json!({"name": arg, "value": value}));
            }
            // No value: the template's argument (and its default) stays.
            None => {
                args.entry(arg.clone())
                    .or_insert_with(|| json!({"name": arg}));
            }
        }
    }
    let stage_name = stage.name_any();
    let short = shorten_label_value(&stage_name);
    let mut labels = v
        .analysis_run_metadata
        .as_ref()
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_STAGE.into(), short.clone());
    labels.insert(LABEL_FREIGHT_COLLECTION.into(), freight.id.clone());
    let mut annotations = v
        .analysis_run_metadata
        .as_ref()
        .map(|m| m.annotations.clone())
        .unwrap_or_default();
    if short != stage_name {
        annotations.insert(ANNOTATION_STAGE.into(), stage_name.clone());
    }
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": stage.namespace(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": Stage::api_version(&()),
                "kind": "Stage",
                "name": stage_name,
                "uid": stage.uid(),
            }],
        },
        "spec": {"metrics": metrics, "args": args.into_values().collect::<Vec<_>>()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_map_to_verification_outcomes() {
        let run =
            |p: &str| json!({"metadata": {"name": "r"}, "status": {"phase": p, "message": "m"}});
        assert_eq!(state_of(&run("Running")), RunState::Running);
        assert_eq!(state_of(&run("")), RunState::Running);
        assert_eq!(state_of(&run("Successful")), RunState::Successful);
        assert_eq!(state_of(&run("Failed")), RunState::Failed("m".into()));
        assert_eq!(state_of(&run("Error")), RunState::Error("m".into()));
        assert_eq!(
            state_of(&run("Inconclusive")),
            RunState::Inconclusive("m".into())
        );
        let silent = json!({"metadata": {"name": "r"}, "status": {"phase": "Failed"}});
        assert_eq!(
            state_of(&silent),
            RunState::Failed("AnalysisRun r ended Failed".into())
        );
    }

    #[test]
    fn runs_carry_template_metrics_stage_args_and_labels() {
        let stage: Stage = serde_json::from_value(json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": "uat", "namespace": "p", "uid": "u1"},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}],
                     "verification": {"analysisTemplates": [{"name": "t"}], "args": [{"name": "env", "value": "uat"}]}}
        }))
        .expect("stage");
        let t = json!({"spec": {"metrics": [{"name": "ok", "provider": {"job": {}}}],
                                "args": [{"name": "env", "value": "x"}, {"name": "svc"}]}});
        let freight = FreightCollection {
            id: "abc".into(),
            ..Default::default()
        };
        let r = build_run(&stage, &[t], &freight, "uat.1").expect("run");
        assert_eq!(r["spec"]["metrics"][0]["name"], "ok");
        assert_eq!(r["metadata"]["labels"]["kargo.akuity.io/stage"], "uat");
        assert_eq!(
            r["metadata"]["labels"]["kargo.akuity.io/freight-collection"],
            "abc"
        );
        let args = r["spec"]["args"].as_array().expect("args");
        assert!(
            args.iter()
                .any(|a| a["name"] == "env" && a["value"] == "uat")
        );
        assert!(args.iter().any(|a| a["name"] == "svc"));
    }
}

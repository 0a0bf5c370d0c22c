//! The Argo Rollouts AnalysisRun that verifies a Stage's current Freight, as Kargo builds it
//! (reference §2.4), and how its phase maps to a verification outcome. Pure: the controller
//! reads the templates and the run, and creates it.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::{LABEL_FREIGHT_COLLECTION, LABEL_STAGE, Stage};

/// Where an AnalysisRun stands, in Kargo's verification words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Running,
    Successful,
    Failed(String),
}

/// Maps an AnalysisRun's `status.phase` (Pending, Running, Successful, Failed, Error,
/// Inconclusive) to a verification outcome.
pub fn state_of(run: &Value) -> RunState {
    let phase = run["status"]["phase"].as_str().unwrap_or_default();
    let message = run["status"]["message"].as_str().unwrap_or_default();
    match phase {
        "Successful" => RunState::Successful,
        "Failed" | "Error" | "Inconclusive" => RunState::Failed(format!(
            "AnalysisRun {} ended {phase}{}",
            run["metadata"]["name"].as_str().unwrap_or_default(),
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        )),
        _ => RunState::Running,
    }
}

/// The AnalysisRun for `stage`'s current Freight: metrics and args of its templates (the
/// Stage's args win), Kargo's labels, owned by the Stage.
pub fn build_run(stage: &Stage, templates: &[Value], collection_id: &str, name: &str) -> Value {
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
    for a in &v.args {
        args.insert(a.name.clone(), json!({"name": a.name, "value": a.value}));
    }
    let mut labels = v
        .analysis_run_metadata
        .as_ref()
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_STAGE.into(), stage.name_any());
    labels.insert(LABEL_FREIGHT_COLLECTION.into(), collection_id.into());
    let annotations = v
        .analysis_run_metadata
        .as_ref()
        .map(|m| m.annotations.clone())
        .unwrap_or_default();
    json!({
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
                "name": stage.name_any(),
                "uid": stage.uid(),
            }],
        },
        "spec": {"metrics": metrics, "args": args.into_values().collect::<Vec<_>>()},
    })
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
        assert_eq!(
            state_of(&run("Inconclusive")),
            RunState::Failed("AnalysisRun r ended Inconclusive: m".into())
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
        let r = build_run(&stage, &[t], "abc", "uat.1");
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

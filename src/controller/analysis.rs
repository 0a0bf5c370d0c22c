//! Verification with Argo Rollouts AnalysisRuns, as Kargo does it (reference §2.4): reads the
//! Stage's AnalysisTemplates, creates the AnalysisRun the Stage's plan built from them
//! ([`crate::stages::analysis_run`]) and reads its phase.

use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::Value;

use crate::api::{AnalysisTemplateKind, Stage};
pub use crate::stages::analysis_run::{RunState, build_run, state_of};

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind))
}

/// Reads the Stage's AnalysisTemplates; the error says which is missing or unreadable.
pub async fn templates(client: &kube::Client, stage: &Stage) -> Result<Vec<Value>, String> {
    let ns = stage.namespace().unwrap_or_default();
    let v = stage.spec.verification.clone().unwrap_or_default();
    let mut templates = Vec::new();
    for t in &v.analysis_templates {
        let (api, what) = match t.kind {
            Some(AnalysisTemplateKind::ClusterAnalysisTemplate) => (
                Api::<DynamicObject>::all_with(
                    client.clone(),
                    &resource("ClusterAnalysisTemplate"),
                ),
                "ClusterAnalysisTemplate",
            ),
            _ => (
                Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    &ns,
                    &resource("AnalysisTemplate"),
                ),
                "AnalysisTemplate",
            ),
        };
        match api.get_opt(&t.name).await {
            Ok(Some(o)) => templates.push(serde_json::to_value(o).map_err(|e| e.to_string())?),
            Ok(None) => return Err(format!("{what} {} does not exist", t.name)),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                return Err("Argo Rollouts is not installed here (no AnalysisTemplate API); verification.analysisTemplates needs it".into());
            }
            Err(e) => return Err(format!("reading {what} {}: {e}", t.name)),
        }
    }
    Ok(templates)
}

/// Creates an AnalysisRun built by [`build_run`] named `name` in `ns`.
pub async fn create(
    client: &kube::Client,
    ns: &str,
    name: &str,
    run: &Value,
) -> Result<(), String> {
    let obj: DynamicObject = serde_json::from_value(run.clone()).map_err(|e| e.to_string())?;
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("AnalysisRun"))
        .create(&PostParams::default(), &obj)
        .await
        .map_err(|e| format!("creating AnalysisRun {name}: {e}"))?;
    Ok(())
}

/// Asks Argo Rollouts to stop an AnalysisRun, as Kargo aborts a verification: a merge patch of
/// `spec.terminate: true`. A run already deleted has nothing left to stop.
pub async fn terminate(client: &kube::Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("AnalysisRun"));
    let patch = serde_json::json!({"spec": {"terminate": true}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The state of a running AnalysisRun; a deleted one is an error, as in Kargo.
pub async fn check(client: &kube::Client, ns: &str, name: &str) -> Result<RunState, String> {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource("AnalysisRun"));
    match api.get_opt(name).await {
        Ok(Some(o)) => serde_json::to_value(o)
            .map(|v| state_of(&v))
            .map_err(|e| format!("reading AnalysisRun {name}: {e}")),
        Ok(None) => Ok(RunState::Error(format!("AnalysisRun {name} was deleted"))),
        Err(e) => Err(format!("reading AnalysisRun {name}: {e}")),
    }
}

//! A Promotion must name a Stage and a Freight that exist in its project, checked when it is
//! created, as Kargo's Promotion webhook does: a typo is refused at `kubectl apply` with what is
//! missing, instead of becoming a failed Promotion that degrades a healthy Stage.

use kube::api::Api;
use kube::core::DynamicObject;

use crate::api::{Freight, Stage};

/// Why the Promotion `object` in namespace `ns` cannot be created, or `None` when its Stage and
/// Freight exist. A read that fails refuses too (the webhook fails closed, like its policy).
pub async fn refusal(client: &kube::Client, ns: &str, object: &DynamicObject) -> Option<String> {
    let spec = &object.data["spec"];
    let stage = spec["stage"].as_str().unwrap_or_default();
    let freight = spec["freight"].as_str().unwrap_or_default();
    if stage.is_empty() {
        return Some("spec.stage: a Promotion must name a Stage".into());
    }
    let stages: Api<Stage> = Api::namespaced(client.clone(), ns);
    match stages.get_opt(stage).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Some(format!(
                "spec.stage: Stage {stage:?} does not exist in project {ns:?}"
            ));
        }
        Err(e) => {
            return Some(format!(
                "spec.stage: reading Stage {stage:?}: {}",
                crate::controller::api_message(&e)
            ));
        }
    }
    // Kargo's `spec.origin` (promote the current candidate) names no Freight; it is resolved
    // (and refused, see docs/kargo-users.md) by the controller.
    if freight.is_empty() {
        return None;
    }
    let all: Api<Freight> = Api::namespaced(client.clone(), ns);
    match all.get_opt(freight).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(format!(
            "spec.freight: Freight {freight:?} does not exist in project {ns:?}"
        )),
        Err(e) => Some(format!(
            "spec.freight: reading Freight {freight:?}: {}",
            crate::controller::api_message(&e)
        )),
    }
}

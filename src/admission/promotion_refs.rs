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
    if let Some(why) = missing::<Stage>(client, ns, "spec.stage", "Stage", stage).await {
        return Some(why);
    }
    // Kargo's `spec.origin` (promote the current candidate) names no Freight; it is resolved
    // (and refused, see docs/kargo-users.md) by the controller.
    if freight.is_empty() {
        return None;
    }
    missing::<Freight>(client, ns, "spec.freight", "Freight", freight).await
}

/// Why `field` (naming a `kind` called `name` in `ns`) cannot be used: it does not exist or
/// could not be read; `None` when it exists.
async fn missing<K>(
    client: &kube::Client,
    ns: &str,
    field: &str,
    kind: &str,
    name: &str,
) -> Option<String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match Api::<K>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(format!(
            "{field}: {kind} {name:?} does not exist in project {ns:?}"
        )),
        Err(e) => Some(format!(
            "{field}: reading {kind} {name:?}: {}",
            crate::controller::api_message(&e)
        )),
    }
}

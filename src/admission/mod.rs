//! Admission: recording who created a Promotion, and creating a Project's namespace
//! ([`project`]).
//!
//! The `promote` verb itself is checked by the API server (the chart's ValidatingAdmissionPolicies);
//! what a validating policy cannot do is *write* the requester onto the object. A Promotion created
//! with plain `kubectl` would otherwise carry no `kargo.akuity.io/create-actor`, so this module
//! serves the one mutating step haul needs: on CREATE of a Promotion, set that annotation to the
//! authenticated requester, in Kargo's format (`kubernetes:<username>`). A client cannot forge it:
//! whatever it sent is overwritten, except the controller's own `controller:` stamp, which the
//! chart's `create-actor` policy only accepts from the controller's ServiceAccount.

pub mod project;
mod promotion_refs;
pub mod server;

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation, jsonptr::PointerBuf};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::api::{ANNOTATION_CREATE_ACTOR, ANNOTATION_STAGE, LABEL_STAGE, shorten_label_value};

/// Prefix of the actor of Promotions the controller creates (Kargo's `controller:`).
pub const CONTROLLER_ACTOR_PREFIX: &str = "controller:";
/// Prefix of an actor authenticated by Kubernetes (Kargo's `kubernetes:`).
pub const KUBERNETES_ACTOR_PREFIX: &str = "kubernetes:";

/// The actor recorded for a Kubernetes user, as Kargo formats it.
pub fn kubernetes_actor(username: &str) -> String {
    format!("{KUBERNETES_ACTOR_PREFIX}{username}")
}

/// Whether an actor names the controller (an auto-promotion) rather than a person.
pub fn is_controller_actor(actor: &str) -> bool {
    actor.starts_with(CONTROLLER_ACTOR_PREFIX)
}

/// The JSON patch that records `username` as the creator of a new object with `annotations`, or
/// `None` when the object already says so. A `controller:` stamp is kept as it is: the admission
/// policy decides whether the requester may claim it.
pub fn create_actor_patch(
    annotations: Option<&BTreeMap<String, String>>,
    username: &str,
) -> Option<Patch> {
    let want = kubernetes_actor(username);
    let current = annotations.and_then(|a| a.get(ANNOTATION_CREATE_ACTOR));
    if current.is_some_and(|a| *a == want || is_controller_actor(a)) {
        return None;
    }
    let op = match annotations {
        // JSON patch `add` on a missing parent fails, so the map is added whole.
        None => AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: serde_json::json!({ ANNOTATION_CREATE_ACTOR: want }),
        },
        // `add` on an existing member replaces it.
        Some(_) => AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", ANNOTATION_CREATE_ACTOR]),
            value: serde_json::Value::String(want),
        },
    };
    Some(Patch(vec![PatchOperation::Add(op)]))
}

/// The JSON patch a new Promotion of `stage` gets: its creator (as [`create_actor_patch`]) and,
/// as Kargo's webhook always sets them, the `kargo.akuity.io/stage` label (the Stage's name,
/// shortened to a label's 63 characters) and annotation (the full name). `None` when the object
/// already says all of it.
pub fn promotion_patch(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
    stage: &str,
    username: &str,
) -> Option<Patch> {
    let mut ops = Vec::new();
    let mut want_annotations = vec![(ANNOTATION_STAGE, stage.to_string())];
    let actor = annotations.and_then(|a| a.get(ANNOTATION_CREATE_ACTOR));
    if !actor.is_some_and(|a| *a == kubernetes_actor(username) || is_controller_actor(a)) {
        want_annotations.push((ANNOTATION_CREATE_ACTOR, kubernetes_actor(username)));
    }
    let want_labels = vec![(LABEL_STAGE, shorten_label_value(stage))];
    for (field, current, want) in [
        ("labels", labels, want_labels),
        ("annotations", annotations, want_annotations),
    ] {
        let missing: Vec<(&str, String)> = want
            .into_iter()
            .filter(|(k, v)| current.and_then(|c| c.get(*k)) != Some(v))
            .collect();
        if missing.is_empty() {
            continue;
        }
        match current {
            // JSON patch `add` on a missing parent fails, so the map is added whole.
            None => ops.push(PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens(["metadata", field]),
                value: serde_json::Value::Object(
                    missing
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                        .collect(),
                ),
            })),
            // `add` on an existing member replaces it.
            Some(_) => ops.extend(missing.into_iter().map(|(k, v)| {
                PatchOperation::Add(AddOperation {
                    path: PointerBuf::from_tokens(["metadata", field, k]),
                    value: serde_json::Value::String(v),
                })
            })),
        }
    }
    (!ops.is_empty()).then_some(Patch(ops))
}

/// Answers an AdmissionReview for `promotions` (the webhook's only rule): on CREATE, the
/// response patches in the requester as the creator and the Stage label ([`promotion_patch`]);
/// anything else is allowed unchanged.
pub fn review_promotion(review: AdmissionReview<DynamicObject>) -> AdmissionReview<DynamicObject> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return AdmissionResponse::invalid(format!("malformed AdmissionReview: {e}"))
                .into_review();
        }
    };
    let response = AdmissionResponse::from(&request);
    if request.operation != Operation::Create {
        return response.into_review();
    }
    let Some(object) = request.object.as_ref() else {
        return response
            .deny("the AdmissionReview of a CREATE carries no object")
            .into_review();
    };
    let username = request.user_info.username.as_deref().unwrap_or_default();
    let stage = object.data["spec"]["stage"].as_str().unwrap_or_default();
    let Some(patch) = promotion_patch(
        object.metadata.labels.as_ref(),
        object.metadata.annotations.as_ref(),
        stage,
        username,
    ) else {
        return response.into_review();
    };
    tracing::debug!(
        namespace = request.namespace.as_deref().unwrap_or_default(),
        promotion = request.name.as_str(),
        user = username,
        "recording the creator of a Promotion"
    );
    match response.clone().with_patch(patch) {
        Ok(r) => r.into_review(),
        Err(e) => response
            .deny(format!("recording the Promotion's creator: {e}"))
            .into_review(),
    }
}

/// [`review_promotion`], after refusing a CREATE whose Stage or Freight does not exist (with a
/// client; without one, only the creator is recorded).
pub async fn review_promotion_checked(
    client: Option<&kube::Client>,
    review: AdmissionReview<DynamicObject>,
) -> AdmissionReview<DynamicObject> {
    // The request as `try_into` makes it carries the review's apiVersion and kind, which the
    // response must repeat.
    let checked: Option<AdmissionRequest<DynamicObject>> = client
        .is_some()
        .then(|| review.clone().try_into().ok())
        .flatten();
    if let (Some(client), Some(request)) = (client, checked.as_ref())
        && request.operation == Operation::Create
        && let Some(object) = request.object.as_ref()
    {
        let ns = request.namespace.clone().unwrap_or_default();
        if let Some(message) = promotion_refs::refusal(client, &ns, object).await {
            tracing::info!(namespace = %ns, promotion = %request.name, %message, "refusing a Promotion");
            return AdmissionResponse::from(request).deny(message).into_review();
        }
    }
    review_promotion(review)
}

#[cfg(test)]
mod tests;

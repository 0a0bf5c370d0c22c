//! Admission of a Project: creates its namespace while the Project is being admitted, as
//! Kargo's Project webhook does. `kubectl apply -f dir/` sends objects one by one in file order,
//! and the API server refuses a namespaced object whose namespace does not exist yet; creating
//! the namespace here, before the Project's own create returns, lets the Project's Warehouses,
//! Stages and PromotionTasks that follow it in the same apply land in it.
//!
//! A namespace that exists without the project label refuses the Project (it is someone
//! else's), as does one still terminating. Dry runs create nothing (`sideEffects:
//! NoneOnDryRun`). Without this webhook the Project reconciler creates the namespace instead,
//! moments later.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::controller::project::plan::{self, NamespaceAction};

/// The field manager of namespaces created at admission (the reconciler's are
/// `haul-controller`): `kubectl get ns -o yaml --show-managed-fields` says which created one.
pub const FIELD_MANAGER: &str = "haul-admission";

/// Answers an AdmissionReview for `projects`: on CREATE (not a dry run), ensures the project
/// namespace and allows, or refuses with the reason; anything else is allowed.
pub async fn review_project(
    client: Option<&kube::Client>,
    review: AdmissionReview<DynamicObject>,
) -> AdmissionReview<DynamicObject> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return AdmissionResponse::invalid(format!("malformed AdmissionReview: {e}"))
                .into_review();
        }
    };
    let response = AdmissionResponse::from(&request);
    if request.operation != Operation::Create || request.dry_run {
        return response.into_review();
    }
    // Without a client (a webhook server started without one) the reconciler creates it.
    let Some(client) = client else {
        return response.into_review();
    };
    let name = request.name.clone();
    match ensure_namespace(client, &name).await {
        Ok(()) => response.into_review(),
        Err(message) => {
            tracing::info!(project = %name, %message, "refusing a Project");
            response.deny(message).into_review()
        }
    }
}

/// Creates the namespace `name` unless it is already the project's; `Err` says why the Project
/// cannot have it.
async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<(), String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let existing = api
        .get_opt(name)
        .await
        .map_err(|e| format!("reading namespace {name:?}: {e}"))?;
    match plan::namespace_action(name, existing.as_ref()) {
        NamespaceAction::Refuse { message, .. } => {
            Err(format!("failed to initialize Project {name:?}: {message}"))
        }
        // Adopted: the reconciler adds the finalizer.
        NamespaceAction::AddFinalizer | NamespaceAction::Keep => Ok(()),
        NamespaceAction::Create => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&params, &plan::new_namespace(name)).await {
                Ok(_) => {
                    tracing::info!(project = name, "created the project namespace on admission");
                    Ok(())
                }
                // Created meanwhile (another replica, the reconciler): labelled by them.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(format!(
                    "creating namespace {name:?}: {}",
                    crate::controller::api_message(&e)
                )),
            }
        }
    }
}

//! Project reconciler (Kargo's `management/projects`): the namespace named like the Project
//! (created labelled `kargo.akuity.io/project: "true"` with Kargo's finalizer, or adopted when
//! already labelled, refused otherwise), Kargo's default user roles in it, the Project's
//! conditions and stats, and on deletion the namespace's deletion unless it is to be kept.
//!
//! The admission webhook creates the namespace while the Project itself is admitted (so one
//! `kubectl apply` of a Project and its namespaced objects succeeds); this reconciler makes sure
//! it exists without the webhook too.

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;

use self::plan::{NamespaceAction, ProjectRoles, Sync};
use super::{Context, Error, FIELD_MANAGER, apply_status};
use crate::api::{FINALIZER, Project};

/// The default of [`super::Config::project_resync`]: how long a successful namespace-and-roles
/// sync is trusted before it is redone (a deleted RoleBinding or ServiceAccount comes back
/// within this). Stage and Warehouse changes only recount stats in between, from the caches, so
/// they cost the API server nothing unless the stats changed. A sync is seven requests (the
/// namespace read, three ServiceAccounts and three RoleBindings applied), so ten minutes keeps
/// a hundred Projects near one request a second where one minute would be twelve.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
/// Retry delay while the namespace is refused (someone may label it).
const REFUSED_RETRY: Duration = Duration::from_secs(10);

/// When each Project (by UID) last synced its namespace and roles in this process.
#[derive(Default)]
pub struct SyncedAt(Mutex<HashMap<String, Instant>>);

impl SyncedAt {
    fn fresh(&self, uid: &str, ttl: Duration) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(uid).map(|at| at.elapsed() < ttl))
            .unwrap_or(false)
    }

    fn record(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(uid.to_string(), Instant::now());
        }
    }

    fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(uid);
        }
    }
}

async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::within_deadline(&ctx, "project", reconcile_once(project, ctx.clone())).await
}

async fn reconcile_once(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = project.name_any();
    let uid = project.metadata.uid.clone().unwrap_or_default();
    if project.metadata.deletion_timestamp.is_some() {
        ctx.project_synced.forget(&uid);
        return clean_up(&project, &ctx).await;
    }
    ensure_project_finalizer(&project, &ctx).await?;

    let resync = ctx.config.project_resync;
    let (sync, failure) = if ctx.project_synced.fresh(&uid, resync) {
        (Sync::Synced, None)
    } else {
        match sync(&name, &ctx).await {
            Ok(Sync::Synced) => {
                ctx.project_synced.record(&uid);
                (Sync::Synced, None)
            }
            Ok(refused) => (refused, None),
            Err(e) => (
                Sync::Failed {
                    reason: e.reason(),
                    message: e.to_string(),
                },
                Some(e),
            ),
        }
    };
    let stats = ctx.cache.stats_inputs(&name).map(|(stages, warehouses)| {
        plan::stats(
            stages.iter().map(|s| s.as_ref()),
            warehouses.iter().map(|w| w.as_ref()),
        )
    });
    let status = plan::status(
        project.status.as_ref(),
        &sync,
        stats,
        project.metadata.generation,
        &Time(Timestamp::now()),
    );
    if Some(&status) != project.status.as_ref() {
        let api: Api<Project> = Api::all(ctx.client.clone());
        apply_status(&api, project.as_ref(), &status).await?;
        // An Event when the project becomes unusable, not on every retry.
        if let Sync::NamespaceRefused { reason, message } = &sync {
            ctx.event(
                project.as_ref(),
                EventType::Warning,
                reason,
                "SyncProject",
                message.clone(),
            )
            .await;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // A success starts the next failure's backoff from the base delay again.
    ctx.reset_backoff(&super::key(project.as_ref()));
    Ok(match sync {
        Sync::Synced => Action::requeue(resync),
        _ => Action::requeue(REFUSED_RETRY),
    })
}

/// Adds Kargo's finalizer to the Project, so that its deletion waits for the namespace's.
async fn ensure_project_finalizer(project: &Project, ctx: &Context) -> Result<(), Error> {
    if plan::has_finalizer(&project.metadata) {
        return Ok(());
    }
    let mut finalizers = project.metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.to_string());
    patch_finalizers::<Project>(
        &Api::all(ctx.client.clone()),
        project,
        finalizers,
        "adding the finalizer to the Project",
    )
    .await
}

/// Sets `metadata.finalizers` of `obj`, failing on a concurrent change (its resourceVersion) so
/// that no one else's finalizer is lost.
async fn patch_finalizers<K>(
    api: &Api<K>,
    obj: &K,
    finalizers: Vec<String>,
    what: &str,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": obj.meta().resource_version,
    }});
    api.patch(
        &obj.meta().name.clone().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::failed("PatchFinalizerFailed", what))?;
    Ok(())
}

/// Ensures the namespace and the default user roles.
async fn sync(name: &str, ctx: &Context) -> Result<Sync, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = namespaces.get_opt(name).await.map_err(Error::failed(
        plan::REASON_ENSURING_NAMESPACE_FAILED,
        format!("reading namespace {name:?}"),
    ))?;
    match plan::namespace_action(name, ns.as_ref()) {
        NamespaceAction::Refuse { reason, message } => {
            tracing::info!(project = name, reason, %message, "project namespace refused");
            return Ok(Sync::NamespaceRefused { reason, message });
        }
        NamespaceAction::Create => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match namespaces.create(&params, &plan::new_namespace(name)).await {
                Ok(_) => tracing::info!(project = name, "created the project namespace"),
                // Created meanwhile (by the admission webhook): checked on the next pass.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(Error::failed(
                        plan::REASON_ENSURING_NAMESPACE_FAILED,
                        format!("creating namespace {name:?}"),
                    )(e));
                }
            }
        }
        NamespaceAction::AddFinalizer => {
            if let Some(ns) = &ns {
                let mut finalizers = ns.metadata.finalizers.clone().unwrap_or_default();
                finalizers.push(FINALIZER.to_string());
                patch_finalizers(
                    &namespaces,
                    ns,
                    finalizers,
                    &format!("adding the finalizer to namespace {name:?}"),
                )
                .await?;
            }
        }
        NamespaceAction::Keep => {}
    }
    if let Some(roles) = &ctx.config.project_roles {
        ensure_roles(name, roles, ctx).await?;
    }
    Ok(Sync::Synced)
}

/// Applies the default ServiceAccounts and RoleBindings (server-side apply: unchanged objects
/// are not rewritten, deleted ones come back, fields others added are left alone).
async fn ensure_roles(project: &str, roles: &ProjectRoles, ctx: &Context) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), project);
    for sa in plan::service_accounts(project, roles) {
        let sa_name = sa.name_any();
        let mut doc = serde_json::to_value(&sa)?;
        doc["apiVersion"] = "v1".into();
        doc["kind"] = "ServiceAccount".into();
        sas.patch(&sa_name, &params, &Patch::Apply(&doc))
            .await
            .map_err(Error::failed(
                plan::REASON_ENSURING_ROLES_FAILED,
                format!("applying ServiceAccount {project}/{sa_name}"),
            ))?;
    }
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), project);
    for rb in plan::role_bindings(project, roles) {
        let rb_name = rb.name_any();
        let mut doc = serde_json::to_value(&rb)?;
        doc["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
        doc["kind"] = "RoleBinding".into();
        bindings
            .patch(&rb_name, &params, &Patch::Apply(&doc))
            .await
            .map_err(Error::failed(
                plan::REASON_ENSURING_ROLES_FAILED,
                format!("applying RoleBinding {project}/{rb_name}"),
            ))?;
    }
    Ok(())
}

/// A deleted Project: its namespace loses Kargo's finalizer and is deleted (which deletes every
/// Stage, Freight and Promotion in it) unless the Project or the namespace carries
/// `kargo.akuity.io/keep-namespace: "true"`; then the Project's finalizer goes.
async fn clean_up(project: &Project, ctx: &Context) -> Result<Action, Error> {
    let name = project.name_any();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = namespaces.get_opt(&name).await.map_err(Error::failed(
        "DeletingNamespaceFailed",
        format!("reading namespace {name:?}"),
    ))?;
    // Only the project's own namespace is touched: one that was refused is left as it is.
    if let Some(ns) = ns.filter(|n| plan::has_project_label(&n.metadata)) {
        if plan::has_finalizer(&ns.metadata) {
            let rest: Vec<String> = ns
                .metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect();
            patch_finalizers(
                &namespaces,
                &ns,
                rest,
                &format!("removing the finalizer from namespace {name:?}"),
            )
            .await?;
        }
        if plan::keep_namespace(&project.metadata, &ns.metadata) {
            tracing::info!(project = %name, "project deleted; keeping its namespace (keep-namespace)");
        } else if ns.metadata.deletion_timestamp.is_none() {
            match namespaces.delete(&name, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(project = %name, "project deleted; deleting its namespace"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(Error::failed(
                        "DeletingNamespaceFailed",
                        format!("deleting namespace {name:?}"),
                    )(e));
                }
            }
        }
    }
    let rest: Vec<String> = project
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    if rest.len() != project.metadata.finalizers.as_ref().map_or(0, Vec::len) {
        patch_finalizers::<Project>(
            &Api::all(ctx.client.clone()),
            project,
            rest,
            "removing the finalizer from the Project",
        )
        .await?;
    }
    Ok(Action::await_change())
}

fn error_policy(project: Arc<Project>, err: &Error, ctx: Arc<Context>) -> Action {
    let (_, delay) = super::retry_after_failure(
        &ctx,
        "project",
        project.as_ref(),
        err,
        Duration::from_secs(300),
    );
    Action::requeue(delay)
}

/// Runs the Project controller until the stream ends: Project changes, plus the Projects whose
/// Stages or Warehouses changed (from the shared caches, no extra watch), for their stats.
pub async fn run(ctx: Arc<Context>) {
    use futures::StreamExt;
    let api: Api<Project> = Api::all(ctx.client.clone());
    let live = ctx.liveness.clone();
    let controller = Controller::new(api, watcher::Config::default());
    let controller = match ctx.cache.project_triggers() {
        Some(of_namespaces) => {
            let queued = live.clone();
            controller.reconcile_on(of_namespaces.inspect(move |_| queued.triggered("project")))
        }
        None => controller,
    };
    let results = controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drive("project", live, results).await;
}

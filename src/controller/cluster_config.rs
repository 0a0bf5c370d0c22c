//! ClusterConfig reconciler (Kargo's `clusterconfigs` controller): publishes each cluster-level
//! webhook receiver's path and URL in `status.webhookReceivers` (their Secrets live in the
//! system resources namespace, their paths are derived with an empty project), echoes the
//! refresh annotation in `status.lastHandledRefresh`, and says in a `PromotionWindowsEnforced`
//! condition that promotion windows are accepted but not enforced. Only the ClusterConfig named
//! `cluster` is read, as in Kargo (the CRD refuses other names).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use super::conditions::{self, Desired};
use super::{Context, Error, apply_status};
use crate::api::{
    ANNOTATION_REFRESH, CLUSTER_CONFIG_NAME, CONDITION_READY, ClusterConfig, WebhookReceiverConfig,
    WebhookReceiverDetails,
};
use crate::receivers::{details, platform_of};

/// The condition saying promotion windows are not enforced by haul.
pub const CONDITION_PROMOTION_WINDOWS: &str = "PromotionWindowsEnforced";

/// How often receivers are re-checked (a Secret created or rotated later is picked up).
const RESYNC: Duration = Duration::from_secs(60);

/// The project name cluster-level receivers' paths are derived with (Kargo passes none).
pub const CLUSTER_PROJECT: &str = "";

/// Publishes the receivers of `configs` whose Secrets (in `namespace`, read through `secrets`)
/// are usable, their paths derived with `project`; returns them and the problems of the others.
/// Used for ProjectConfig (Secrets and project: its namespace) and ClusterConfig (the system
/// namespace, no project).
pub async fn publish_receivers(
    configs: &[WebhookReceiverConfig],
    secrets: &Api<Secret>,
    namespace: &str,
    project: &str,
    base_url: Option<&str>,
) -> Result<(Vec<WebhookReceiverDetails>, Vec<String>), kube::Error> {
    let mut published = Vec::new();
    let mut problems = Vec::new();
    for cfg in configs {
        let (platform, secret_ref) = match platform_of(cfg) {
            Ok(p) => p,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let name = cfg.name.clone().unwrap_or_default();
        let data_key = platform.secret_key();
        let Some(secret) = secrets.get_opt(&secret_ref.name).await? else {
            problems.push(format!(
                "webhook receiver {name:?}: Secret {:?} not found in namespace {namespace:?}",
                secret_ref.name
            ));
            continue;
        };
        let Some(value) = secret.data.as_ref().and_then(|d| d.get(data_key)) else {
            problems.push(format!(
                "webhook receiver {name:?}: Secret {:?} has no {data_key:?} key for the {} receiver",
                secret_ref.name,
                platform.as_str()
            ));
            continue;
        };
        let value = String::from_utf8_lossy(&value.0);
        published.push(details(base_url, project, &name, platform, &value));
    }
    Ok((published, problems))
}

async fn reconcile(cc: Arc<ClusterConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::within_deadline(&ctx, "clusterconfig", reconcile_once(cc, ctx.clone())).await
}

async fn reconcile_once(cc: Arc<ClusterConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    if cc.name_any() != CLUSTER_CONFIG_NAME || cc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let base = std::env::var("HAUL_RECEIVERS_BASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let receivers = &cc.spec.webhook_receivers;
    let (published, problems) = match (&ctx.config.system_namespace, receivers.is_empty()) {
        (_, true) => (Vec::new(), Vec::new()),
        (None, false) => (
            Vec::new(),
            vec![
                "no namespace is designated for Secrets of cluster-level resources; set \
                 SYSTEM_RESOURCES_NAMESPACE"
                    .to_string(),
            ],
        ),
        (Some(ns), false) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            publish_receivers(receivers, &secrets, ns, CLUSTER_PROJECT, base.as_deref()).await?
        }
    };
    let mut status = cc.status.clone().unwrap_or_default();
    let before = status.clone();
    let generation = cc.metadata.generation;
    let now = Time(Timestamp::now());
    let ready = problems.is_empty();
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_READY,
            status: ready,
            reason: if ready {
                "Synced"
            } else {
                "SyncWebhookReceiversFailed"
            },
            message: if ready {
                "ClusterConfig is synced and ready for use".to_string()
            } else {
                format!("Failed to sync webhook receivers: {}", problems.join("; "))
            },
        },
        generation,
        &now,
    );
    if cc.spec.promotion_windows.is_empty() {
        conditions::remove(&mut status.conditions, CONDITION_PROMOTION_WINDOWS);
    } else {
        // Never silently ignored: Kargo OSS ignores them too, but says so only in its docs.
        conditions::set(
            &mut status.conditions,
            Desired {
                type_: CONDITION_PROMOTION_WINDOWS,
                status: false,
                reason: "NotSupported",
                message: format!(
                    "{} promotion window(s) are stored but not enforced by haul (a Kargo \
                     Enterprise feature): promotions run at any time",
                    cc.spec.promotion_windows.len()
                ),
            },
            generation,
            &now,
        );
    }
    status.webhook_receivers = published;
    status.observed_generation = generation;
    if let Some(token) = cc.annotations().get(ANNOTATION_REFRESH) {
        status.last_handled_refresh = Some(token.clone());
    }
    if status != before {
        let api: Api<ClusterConfig> = Api::all(ctx.client.clone());
        apply_status(&api, cc.as_ref(), &status).await?;
    }
    if !ready {
        tracing::info!(clusterconfig = %cc.name_any(), problems = %problems.join("; "), "cluster webhook receivers not ready");
    }
    Ok(Action::requeue(if ready {
        RESYNC
    } else {
        Duration::from_secs(10)
    }))
}

fn error_policy(cc: Arc<ClusterConfig>, err: &Error, ctx: Arc<Context>) -> Action {
    let (_, delay) = super::retry_after_failure(
        &ctx,
        "clusterconfig",
        cc.as_ref(),
        err,
        Duration::from_secs(300),
    );
    Action::requeue(delay)
}

/// Runs the ClusterConfig controller until the stream ends.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<ClusterConfig> = Api::all(ctx.client.clone());
    let live = ctx.liveness.clone();
    let results = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drive("clusterconfig", live, results).await;
}

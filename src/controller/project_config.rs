//! ProjectConfig reconciler: publishes each webhook receiver's secret path and URL in
//! `status.webhookReceivers` (Kargo's `ProjectConfig` controller), reading the receiver's
//! Secret. A missing Secret or key, or an unsupported platform, makes `Ready` False with a
//! message naming the receiver; the receivers that are fine are still published.

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
use super::{Context, Error, apply_status, key};
use crate::api::{CONDITION_READY, ProjectConfig};

/// How often receivers are re-checked (a Secret created or rotated later is picked up).
const RESYNC: Duration = Duration::from_secs(60);

/// `HAUL_RECEIVERS_BASE_URL`: the public base of the receivers' URLs.
fn base_url() -> Option<String> {
    std::env::var("HAUL_RECEIVERS_BASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

async fn reconcile(pc: Arc<ProjectConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::within_deadline(&ctx, "projectconfig", reconcile_once(pc, ctx.clone())).await
}

async fn reconcile_once(pc: Arc<ProjectConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(namespace) = pc.namespace() else {
        return Ok(Action::await_change());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let (published, problems) = super::cluster_config::publish_receivers(
        &pc.spec.webhook_receivers,
        &secrets,
        &namespace,
        &namespace,
        base_url().as_deref(),
    )
    .await?;
    let mut status = pc.status.clone().unwrap_or_default();
    let generation = pc.metadata.generation;
    let ready = problems.is_empty();
    let desired = Desired {
        type_: CONDITION_READY,
        status: ready,
        reason: if ready {
            "Synced"
        } else {
            "WebhookReceiverError"
        },
        message: if ready {
            format!("{} webhook receiver(s) ready", published.len())
        } else {
            problems.join("; ")
        },
    };
    let before = status.clone();
    conditions::set(
        &mut status.conditions,
        desired,
        generation,
        &Time(Timestamp::now()),
    );
    status.webhook_receivers = published;
    status.observed_generation = generation;
    if status != before {
        let api: Api<ProjectConfig> = Api::namespaced(ctx.client.clone(), &namespace);
        apply_status(&api, pc.as_ref(), &status).await?;
    }
    if !ready {
        tracing::info!(projectconfig = %key(pc.as_ref()), problems = %problems.join("; "), "webhook receivers not ready");
    }
    Ok(Action::requeue(if ready {
        RESYNC
    } else {
        Duration::from_secs(10)
    }))
}

fn error_policy(pc: Arc<ProjectConfig>, err: &Error, ctx: Arc<Context>) -> Action {
    let (_, delay) = super::retry_after_failure(
        &ctx,
        "projectconfig",
        pc.as_ref(),
        err,
        Duration::from_secs(300),
    );
    Action::requeue(delay)
}

/// Runs the ProjectConfig controller until the stream ends.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<ProjectConfig> = Api::all(ctx.client.clone());
    let live = ctx.liveness.clone();
    let results = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drive("projectconfig", live, results).await;
}

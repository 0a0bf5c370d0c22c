//! The Warehouse reconciler (Kargo reference §2.2): discover artifacts for every subscription,
//! select per strategy, and record new Freight when the selected combination is new.
//!
//! Each reconcile reads (the Warehouse, discovery per subscription, the Freight it would
//! create), plans with no IO ([`plan`]), then applies: Freight, one status write, Events.

pub mod plan;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;

use super::{Context, Error, api_message, apply_status, key, within_deadline};
use crate::api::{Freight, LABEL_ALIAS, Warehouse};
use crate::credentials;
use crate::discovery::{ChartSubscriber, GitSubscriber, Subscriber};
use plan::{Decision, Effect, Found, FreightLookup, Observed, Plan, Requeue};
pub use validate::{Compiled, Valid, describe, validate};

fn now() -> Time {
    Time(Timestamp::now())
}

async fn reconcile(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Another shard's Warehouse (see `super::shard`).
    if !ctx.config.shard.owns(super::shard::warehouse_shard(&w)) {
        return Ok(Action::await_change());
    }
    within_deadline(&ctx, "warehouse", reconcile_once(w, ctx.clone())).await
}

async fn reconcile_once(w: Arc<Warehouse>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("warehouse");
    let k = key(w.as_ref());
    let t = now();

    let valid = match validate(&w, ctx.config.min_warehouse_interval) {
        Ok(v) => v,
        Err(problems) => return apply(&ctx, &w, plan::invalid_spec(&w, &problems, &t)).await,
    };
    let interval = valid.interval;

    // After a failed discovery, retry when the backoff is over, not only after the interval.
    let failed_before = plan::failed_before(&w);
    let retry_wait = failed_before.then(|| ctx.retry_wait(&k)).flatten();
    let reason =
        match plan::after_failure(plan::decide(&w, interval, t.0), failed_before, retry_wait) {
            Decision::Discover(r) => r,
            Decision::Wait(d) => return apply(&ctx, &w, plan::not_due(d)).await,
        };
    tracing::info!(warehouse = %k, reason, "discovering artifacts");

    let started = std::time::Instant::now();
    let found = discover_all(&ctx, &w, &valid.subscriptions).await;
    ctx.metrics
        .discovery_duration
        .observe(started.elapsed().as_secs_f64());
    // Read only on failure: reading it counts one more failure.
    let backoff = (!found.failures.is_empty()).then(|| ctx.backoff(&k, interval));
    let freight = match plan::wanted_freight(&w, &found) {
        Some(f) => Some(look_up_freight(&ctx, &f).await.map_err(Error::failed(
            "FreightReadFailed",
            "looking up the Freight to create",
        ))?),
        None => None,
    };
    let mut observed = Observed {
        found,
        now: now(),
        backoff,
        freight,
    };
    let planned = plan::after_discovery(&w, interval, &observed);
    let create = planned.effects.iter().find_map(|e| match e {
        Effect::CreateFreight(f) => Some(f.clone()),
        _ => None,
    });
    if let Some(f) = create {
        match create_freight(&ctx, &f).await {
            Ok(true) => {}
            Ok(false) => {
                // Created meanwhile by someone else (a previous leader): plan with what we
                // learned.
                if let Some(l) = observed.freight.as_mut() {
                    l.exists = true;
                }
                return apply(&ctx, &w, plan::after_discovery(&w, interval, &observed)).await;
            }
            Err(e) => {
                let delay = ctx.backoff(&k, interval);
                ctx.metrics
                    .reconcile_failed("warehouse", plan::REASON_FREIGHT_CREATE_FAILED);
                let failed =
                    plan::freight_create_failed(&w, planned, &api_message(&e), delay, &now());
                tracing::warn!(warehouse = %k, error = %e, retry_in = ?delay, "cannot create Freight");
                return apply(&ctx, &w, failed).await;
            }
        }
    }
    apply(&ctx, &w, planned).await
}

/// Discovers every subscription on its own: one failing does not stop the others.
async fn discover_all(ctx: &Context, w: &Warehouse, compiled: &[Compiled<'_>]) -> Found {
    let ns = w.namespace().unwrap_or_default();
    let mut found = Found::default();
    for (sub, c) in w.spec.subscriptions.iter().zip(compiled) {
        let failed = |found: &mut Found, (e, ra): (String, Option<Duration>)| {
            found.failed(format!("{}: {e}", describe(sub)), ra)
        };
        match c {
            Compiled::Chart(spec, plan) => {
                match discover_one(ctx, &ns, &ChartSubscriber(&ctx.images), spec, plan, None).await
                {
                    Ok(mut r) => {
                        r.subscription_name = sub.name.clone();
                        found.charts.push(r);
                    }
                    Err(e) => failed(&mut found, e),
                }
            }
            Compiled::Git(spec, plan) => {
                let prev = plan::previous_git(w, sub, spec);
                match discover_one(ctx, &ns, &GitSubscriber(&ctx.git), spec, plan, prev).await {
                    Ok(mut r) => {
                        r.subscription_name = sub.name.clone();
                        found.commits.push(r);
                    }
                    Err(e) => failed(&mut found, e),
                }
            }
            Compiled::Image(spec, plan) => {
                match discover_one(ctx, &ns, &ctx.images, spec, plan, None).await {
                    Ok(mut r) => {
                        r.subscription_name = sub.name.clone();
                        found.images.push(r);
                    }
                    Err(e) => failed(&mut found, e),
                }
            }
            Compiled::Failing(e) => failed(&mut found, (e.clone(), None)),
        }
    }
    found
}

/// Finds the subscription's credentials (a Secret of its kind for its repository) and
/// discovers it. The error carries the repository's `Retry-After`, if any.
async fn discover_one<S: Subscriber>(
    ctx: &Context,
    ns: &str,
    subscriber: &S,
    spec: &S::Spec,
    plan: &S::Plan,
    previous: Option<&S::Found>,
) -> Result<S::Found, (String, Option<Duration>)> {
    let secret = credentials::find(
        &ctx.client,
        ns,
        ctx.config.shared_namespace.as_deref(),
        S::CRED_TYPE,
        S::repo_url(spec),
    )
    .await
    .map_err(|e| (e.to_string(), None))?;
    let creds = S::credentials(secret.as_ref()).map_err(|e| (e, None))?;
    subscriber
        .discover(spec, plan, &creds, previous)
        .await
        .map_err(|e| (e.to_string(), S::retry_after(&e)))
}

/// Whether the Freight exists, and an alias unique in the namespace for it. The name is the
/// content hash, so a restarted controller that discovers the same artifacts finds it.
async fn look_up_freight(ctx: &Context, f: &Freight) -> Result<FreightLookup, kube::Error> {
    let ns = f.namespace().unwrap_or_default();
    let api: Api<Freight> = Api::namespaced(ctx.client.clone(), &ns);
    let name = f.name_any();
    if api.get_opt(&name).await?.is_some() {
        return Ok(FreightLookup {
            name,
            exists: true,
            free_alias: String::new(),
        });
    }
    let mut alias = crate::freight::generate_alias();
    for _ in 0..10 {
        let taken = api
            .list_metadata(
                &ListParams::default()
                    .labels(&format!("{LABEL_ALIAS}={alias}"))
                    .limit(1),
            )
            .await?;
        if taken.items.is_empty() {
            break;
        }
        alias = crate::freight::generate_alias();
    }
    Ok(FreightLookup {
        name,
        exists: false,
        free_alias: alias,
    })
}

/// Creates the Freight; `false` when it already exists.
async fn create_freight(ctx: &Context, f: &Freight) -> Result<bool, kube::Error> {
    let api: Api<Freight> = Api::namespaced(ctx.client.clone(), &f.namespace().unwrap_or_default());
    match api.create(&PostParams::default(), f).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes the planned status (once), then publishes its Events and records the backoff.
/// Freight was created before, so a failed create leaves the status as it was.
async fn apply(ctx: &Context, w: &Warehouse, plan: Plan) -> Result<Action, Error> {
    let k = key(w);
    // Written only when it changed: a retry that fails the same way writes nothing.
    if let Some(status) = plan
        .status
        .as_ref()
        .filter(|s| w.status.as_ref() != Some(*s))
    {
        let api: Api<Warehouse> =
            Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
        apply_status(&api, w, status).await?;
    }
    let mut created = None;
    for effect in plan.effects {
        match effect {
            // Done before the status write.
            Effect::CreateFreight(f) => created = Some(f),
            Effect::Event(e) => {
                let type_ = if e.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                };
                // Kargo's FreightCreated Event carries the Freight's event annotations.
                let annotations = match (&created, e.reason) {
                    (Some(f), "FreightCreated") => {
                        let mut a = crate::event_annotations::common(
                            &w.namespace().unwrap_or_default(),
                            Some(crate::stages::candidates::CONTROLLER_ACTOR),
                        );
                        crate::event_annotations::add_freight(&mut a, f, "");
                        a
                    }
                    _ => Default::default(),
                };
                ctx.event_annotated(w, type_, e.reason, e.action, e.note, annotations)
                    .await;
            }
            Effect::RetryNotBefore(delay) => ctx.retry_after(&k, delay),
            Effect::ResetBackoff => ctx.reset_backoff(&k),
        }
    }
    match plan.outcome {
        plan::Outcome::NotDue => {}
        plan::Outcome::DiscoveryFailed => {
            // The retry time is here, not in the status (see `plan::retry_note`).
            tracing::warn!(warehouse = %k, retry_in = ?plan.requeue, "discovery failed")
        }
        outcome => tracing::info!(warehouse = %k, ?outcome, "reconciled"),
    }
    Ok(match plan.requeue {
        Requeue::AwaitChange => Action::await_change(),
        Requeue::After(d) => Action::requeue(d),
    })
}

fn error_policy(w: Arc<Warehouse>, err: &Error, ctx: Arc<Context>) -> Action {
    let (_, delay) =
        super::retry_after_failure(&ctx, "warehouse", w.as_ref(), err, Duration::from_secs(300));
    Action::requeue(delay)
}

/// Runs the Warehouse controller until the stream ends.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<Warehouse> = Api::all(ctx.client.clone());
    let live = ctx.liveness.clone();
    let results = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drive("warehouse", live, results).await;
}

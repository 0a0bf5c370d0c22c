//! The Stage reconciler (Kargo reference §2.4, §4, §5): it records what each finished
//! Promotion deployed, keeps Freight `currentlyIn` / `verifiedIn` true, evaluates health from
//! the Argo CD Applications the last Promotion touched, verifies the current Freight, and
//! auto-promotes new Freight where a ProjectConfig policy says so.
//!
//! Each reconcile observes (the Stage, its project from the caches, health check results,
//! the AnalysisRun), plans ([`crate::stages::plan`], pure), applies the plan's effects in
//! order and writes the status once, when it changed. An effect the API server refuses stops
//! the ones after it; the failure goes back through [`crate::stages::plan::failed`] (pure), so
//! the status still written says on `Ready` what failed and why, with a Warning Event, and
//! the reconcile is retried after a bounded backoff.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

use super::{Context, Error, analysis, api_message, key, within_deadline};
use crate::api::{Freight, ProjectConfig, Promotion, Stage, Warehouse};
use crate::argocd::authorized_stage;
use crate::stages::health_checks::{CheckEnv, HealthCheck};
use crate::stages::plan::{self, Effect, Ids, Observed, Plan};

/// Reads the project's Warehouses, Stages, Freight, Promotions and ProjectConfig into `o`.
async fn load(ctx: &Context, ns: &str, o: &mut Observed) -> Result<(), Error> {
    let lp = ListParams::default();
    let c = &ctx.client;
    let config = Api::<ProjectConfig>::namespaced(c.clone(), ns);
    // From the caches when running: this reconciler is triggered by a Promotion change only
    // once the cache has it, and Promotions it created itself are seen at once (see
    // `Caches::created`), so auto-promotion cannot create one twice.
    if let Some(p) = ctx.cache.project(ns) {
        o.warehouses = p.warehouses;
        o.stages = p.stages;
        o.freights = p.freights;
        o.promotions = p.promotions;
        // Cached too: a ProjectConfig change re-triggers this project's Stages once the cache
        // has it.
        o.config = match ctx.cache.project_config(ns) {
            Some(cached) => cached.map(|c| c.as_ref().clone()),
            None => config.get_opt(ns).await?,
        };
        return Ok(());
    }
    let (wa, sa, fa, pa) = (
        Api::<Warehouse>::namespaced(c.clone(), ns),
        Api::<Stage>::namespaced(c.clone(), ns),
        Api::<Freight>::namespaced(c.clone(), ns),
        Api::<Promotion>::namespaced(c.clone(), ns),
    );
    let (w, s, f, p, pc) = tokio::try_join!(
        wa.list_metadata(&lp),
        sa.list(&lp),
        fa.list(&lp),
        pa.list(&lp),
        config.get_opt(ns)
    )?;
    o.warehouses = w
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    o.stages = s.items.into_iter().map(Arc::new).collect();
    o.freights = f.items.into_iter().map(Arc::new).collect();
    o.promotions = p.items.into_iter().map(Arc::new).collect();
    o.config = pc;
    Ok(())
}

/// Runs stored health checks in order; the first record that cannot be parsed is the result.
async fn run_health_checks(
    ctx: &Context,
    records: &[crate::api::HealthCheckStep],
) -> crate::stages::health::Checked {
    let env = CheckEnv {
        client: &ctx.client,
        argocd_namespace: &ctx.config.argocd_namespace,
    };
    let mut results = Vec::new();
    for check in HealthCheck::parse_all(records)? {
        results.extend(check.run(&env).await);
    }
    Ok(results)
}

/// Everything the plan needs: the project, then the reads that depend on the Stage's own
/// bookkeeping (health checks, the running AnalysisRun, the AnalysisTemplates).
async fn observe(ctx: &Context, stage: Stage, now: Timestamp) -> Result<Observed, Error> {
    let ns = stage.namespace().unwrap_or_default();
    let mut o = Observed {
        stage,
        ids: Ids::generate(),
        ..Default::default()
    };
    load(ctx, &ns, &mut o).await?;
    let needs = plan::needs(&o, now);
    if let Some(records) = &needs.health_checks {
        let checked = run_health_checks(ctx, records).await;
        if let Err(e) = &checked {
            // Reported on the Healthy condition; logged at debug, as it repeats every requeue.
            tracing::debug!(stage = %key(&o.stage), error = %e, "cannot run the Stage's health checks");
        }
        o.health = Some(checked);
    }
    if let Some(run) = &needs.analysis_run {
        o.analysis_run = Some(analysis::check(&ctx.client, &run.namespace, &run.name).await);
    }
    // Whether a verification starts depends on the health just observed.
    if plan::needs(&o, now).analysis_templates {
        o.analysis_templates = Some(analysis::templates(&ctx.client, &o.stage).await);
    }
    Ok(o)
}

/// The longest wait before a failed Stage reconcile is tried again: short enough that a
/// refusal fixed by a person (a policy, RBAC) is noticed within a minute.
const RETRY_CAP: Duration = Duration::from_secs(30);

/// How soon a pass whose status write found the Stage changed since it was read runs again
/// (the change's watch event usually triggers it sooner).
const REQUEUE_CONFLICT: Duration = Duration::from_secs(1);

async fn reconcile(obj: Arc<Stage>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Another shard's Stage, or one still arriving here (see `super::shard`).
    if !ctx.cache.owns_stage(&ctx.config.shard, &obj) {
        return Ok(Action::await_change());
    }
    let out = within_deadline(&ctx, "stage", reconcile_once(&obj, &ctx)).await;
    if let Err(e @ Error::DeadlineExceeded(_)) = &out {
        // Shown on the Stage too, best effort: the API server may be what is slow.
        let failure = plan::Failure {
            reason: e.reason(),
            message: e.to_string(),
            replan: true,
        };
        let api: Api<Stage> =
            Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
        // Read fresh: the status written keeps everything but Ready, and the cached copy
        // may be older than what the cut-off reconcile wrote.
        let show = async {
            if let Ok(Some(fresh)) = api.get_opt(&obj.name_any()).await {
                report(&ctx, &api, &fresh, None, &failure).await.map(|_| ())
            } else {
                Ok(())
            }
        };
        if !matches!(
            tokio::time::timeout(Duration::from_secs(10), show).await,
            Ok(Ok(()))
        ) {
            tracing::debug!(stage = %key(obj.as_ref()), "cannot show DeadlineExceeded on the Stage");
        }
    }
    out
}

/// The Stage to plan from: the cached copy (the controller hands out the store's newest), or
/// this process's own last status write when the store does not show it yet, or a live read
/// when their versions cannot be compared. The status write is conditional on its
/// resourceVersion, so a copy that is stale after all costs a retry, never an older status.
async fn read_stage(
    ctx: &Context,
    api: &Api<Stage>,
    obj: &Arc<Stage>,
) -> Result<Option<Stage>, Error> {
    if let Some(fresh) = ctx.cache.written_stages.freshest(obj) {
        return Ok(Some(fresh.as_ref().clone()));
    }
    api.get_opt(&obj.name_any())
        .await
        .map_err(Error::failed(plan::REASON_READ_FAILED, "reading the Stage"))
}

async fn reconcile_once(obj: &Arc<Stage>, ctx: &Context) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("stage");
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Stage> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(stage) = read_stage(ctx, &api, obj).await? else {
        return Ok(Action::await_change());
    };
    let k = key(&stage);
    // Our own status write after a failure re-triggers a reconcile: wait out the backoff,
    // unless a person changed the spec (which is observed at once).
    let spec_changed =
        stage.status.as_ref().and_then(|s| s.observed_generation) != stage.metadata.generation;
    if let Some(wait) = ctx.retry_wait(&k)
        && !spec_changed
    {
        return Ok(Action::requeue(wait));
    }
    let now = Timestamp::now();
    let mut observed = match observe(ctx, stage.clone(), now).await {
        Ok(o) => o,
        Err(e) => {
            let failure = plan::Failure::read(&error_message(&e));
            return fail(ctx, &api, &stage, None, &failure).await;
        }
    };
    let (plan, failure) = apply_plan(ctx, &mut observed, now).await?;
    if let Some(failure) = failure {
        return fail(ctx, &api, &observed.stage, Some(&plan), &failure).await;
    }
    if write_status(ctx, &api, &observed.stage, &plan).await? == Written::Conflict {
        return Ok(Action::requeue(REQUEUE_CONFLICT));
    }
    ctx.reset_backoff(&k);
    Ok(Action::requeue(plan.requeue))
}

fn error_message(e: &Error) -> String {
    match e {
        Error::Kube(k) => api_message(k),
        other => other.to_string(),
    }
}

/// Shows `failure` on the Stage (with the rest of the status), counts it and schedules the
/// retry with a growing, bounded backoff.
async fn fail(
    ctx: &Context,
    api: &Api<Stage>,
    stage: &Stage,
    planned: Option<&Plan>,
    failure: &plan::Failure,
) -> Result<Action, Error> {
    let k = key(stage);
    let delay = ctx.backoff(&k, RETRY_CAP);
    ctx.retry_after(&k, delay);
    tracing::warn!(stage = %k, reason = failure.reason, message = %failure.message, retry_in = ?delay, "reconcile failed");
    if report(ctx, api, stage, planned, failure).await? == Written::Conflict {
        return Ok(Action::requeue(REQUEUE_CONFLICT));
    }
    Ok(Action::requeue(delay))
}

/// Counts `failure` and writes it to the Stage's status, with its Warning Event.
async fn report(
    ctx: &Context,
    api: &Api<Stage>,
    stage: &Stage,
    planned: Option<&Plan>,
    failure: &plan::Failure,
) -> Result<Written, Error> {
    ctx.metrics.reconcile_failed("stage", failure.reason);
    let shown = plan::failed(stage, planned, failure, Timestamp::now());
    if write_status(ctx, api, stage, &shown).await? == Written::Conflict {
        return Ok(Written::Conflict);
    }
    for effect in &shown.effects {
        apply(ctx, stage, effect).await?;
    }
    Ok(Written::Done)
}

/// Plans and applies the plan's effects in order, stopping at the first that fails (the ones
/// after it may depend on it, e.g. the Event announcing a Promotion): the plan whose effects
/// were applied, and the failure, if one did.
async fn apply_plan(
    ctx: &Context,
    o: &mut Observed,
    now: Timestamp,
) -> Result<(Plan, Option<plan::Failure>), Error> {
    let mut plan = plan::plan(o, now);
    let mut i = 0;
    while let Some(effect) = plan.effects.get(i) {
        match apply(ctx, &o.stage, effect).await {
            Ok(Applied::Done) => i += 1,
            Ok(Applied::AnalysisRunNotCreated(why)) => {
                // The verification fails with that reason. Plans are deterministic, so the
                // effects already applied come first in the new plan too.
                o.analysis_create_error = Some(why);
                plan = plan::plan(o, now);
                if matches!(plan.effects.get(i), Some(Effect::CreateAnalysisRun { .. })) {
                    return Err(Error::Setup(
                        "the Stage plan asked again for an AnalysisRun that cannot be created"
                            .into(),
                    ));
                }
            }
            Err(e) => {
                let failure = plan::Failure::of_effect(effect, &api_message(&e));
                return Ok((plan, Some(failure)));
            }
        }
    }
    Ok((plan, None))
}

/// How a status write went, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// Written, or nothing changed.
    Done,
    /// The Stage changed since it was read: nothing written; plan again from the newer copy.
    Conflict,
}

/// Writes the planned status when it changed, on the condition that the Stage is still the
/// version `stage` was read at (server-side apply with a resourceVersion precondition), and
/// remembers what it wrote for the next pass (see [`super::own_writes`]).
async fn write_status(
    ctx: &Context,
    api: &Api<Stage>,
    stage: &Stage,
    plan: &Plan,
) -> Result<Written, Error> {
    if !plan.write_status {
        return Ok(Written::Done);
    }
    // status.metadata belongs to the set-metadata step (a merge patch): applying the cached
    // copy would make haul's field manager own it and could put back an older value.
    let mut applied = plan.status.clone();
    applied.metadata.clear();
    let patch = json!({
        "apiVersion": <Stage as kube::Resource>::api_version(&()),
        "kind": <Stage as kube::Resource>::kind(&()),
        "metadata": {"resourceVersion": stage.metadata.resource_version},
        "status": applied,
    });
    let params = PatchParams::apply(super::FIELD_MANAGER).force();
    match api
        .patch_status(&stage.name_any(), &params, &Patch::Apply(&patch))
        .await
    {
        Ok(written) => {
            ctx.cache.written_stages.remember(written);
            Ok(Written::Done)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::debug!(stage = %key(stage), "the Stage changed since it was read; planning again");
            Ok(Written::Conflict)
        }
        Err(source) => Err(Error::Failed {
            reason: "StatusWriteFailed",
            what: "writing the Stage's status".into(),
            source,
        }),
    }
}

/// How applying an effect went, when it did not fail.
enum Applied {
    Done,
    /// The plan accounts for this failure: the verification fails with it.
    AnalysisRunNotCreated(String),
}

/// Applies one effect; `Err` is the API server's refusal or the client's error.
async fn apply(ctx: &Context, stage: &Stage, effect: &Effect) -> Result<Applied, kube::Error> {
    let ns = stage.namespace().unwrap_or_default();
    let name = stage.name_any();
    let freight: Api<Freight> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PatchParams::default();
    // Freight deleted since it was read has nothing left to record.
    let patch_freight = async |f: &str, patch: serde_json::Value| match freight
        .patch_status(f, &pp, &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()),
    };
    match effect {
        Effect::LeaveFreight {
            freight: gone,
            longest_soak,
        } => {
            let mut patch = json!({"status": {"currentlyIn": {&name: null}}});
            if let Some(soak) = longest_soak {
                patch["status"]["verifiedIn"] = json!({&name: {"longestSoak": soak}});
            }
            patch_freight(gone, patch).await?;
        }
        Effect::EnterFreight {
            freight: new,
            since,
        } => {
            let patch = json!({"status": {"currentlyIn": {&name: {"since": since}}}});
            patch_freight(new, patch).await?;
        }
        Effect::MarkVerified { freight: f, at } => {
            let patch = json!({"status": {"verifiedIn": {&name: {"verifiedAt": at}}}});
            patch_freight(f, patch).await?;
        }
        Effect::CreateAnalysisRun {
            name: run_name,
            run,
        } => {
            if let Err(why) = analysis::create(&ctx.client, &ns, run_name, run).await {
                return Ok(Applied::AnalysisRunNotCreated(why));
            }
        }
        Effect::TerminateAnalysisRun {
            namespace,
            name: run_name,
        } => analysis::terminate(&ctx.client, namespace, run_name).await?,
        Effect::CreatePromotion(p) => {
            let created = Api::<Promotion>::namespaced(ctx.client.clone(), &ns)
                .create(&PostParams::default(), p)
                .await?;
            ctx.cache.created(created);
        }
        Effect::Event(e) => {
            let type_ = if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.event_annotated(
                stage,
                type_,
                e.reason,
                e.action,
                e.note.clone(),
                e.annotations.clone(),
            )
            .await;
        }
    }
    Ok(Applied::Done)
}

fn error_policy(s: Arc<Stage>, err: &Error, ctx: Arc<Context>) -> Action {
    let (k, delay) = super::retry_after_failure(&ctx, "stage", s.as_ref(), err, RETRY_CAP);
    ctx.retry_after(&k, delay);
    Action::requeue(delay)
}

/// Runs the Stage controller. Changes to a Stage's Promotions, to Freight and to Argo CD
/// Applications re-trigger the Stages they concern.
pub async fn run(ctx: Arc<Context>) {
    use crate::api::argocd::Application;
    let client = ctx.client.clone();
    // Driven from the shared caches when they run: Stage changes, and Freight and Promotion
    // changes once the cache the reconciler reads has them.
    let live = ctx.liveness.clone();
    let controller = match ctx.cache.stage_triggers() {
        Some((store, changes, others)) => {
            // A change waiting to be reconciled: /healthz fails if the queue stops draining.
            let (queued, queued_too) = (live.clone(), live.clone());
            let changes = changes.inspect(move |_| queued.triggered("stage"));
            let others = others.inspect(move |_| queued_too.triggered("stage"));
            Controller::for_shared_stream(changes, store).reconcile_on(others)
        }
        None => {
            let controller = Controller::new(
                Api::<Stage>::all(client.clone()),
                watcher::Config::default(),
            );
            let stages = controller.store();
            let of_freight = stages.clone();
            controller
                .watches(
                    Api::<Promotion>::all(client.clone()),
                    watcher::Config::default(),
                    |p: Promotion| {
                        let ns = p.namespace().unwrap_or_default();
                        Some(ObjectRef::<Stage>::new(&p.spec.stage).within(&ns))
                    },
                )
                .watches(
                    Api::<Freight>::all(client.clone()),
                    watcher::Config::default(),
                    move |f: Freight| {
                        of_freight
                            .state()
                            .into_iter()
                            .filter(|s| s.namespace() == f.namespace())
                            .map(|s| ObjectRef::from_obj(s.as_ref()))
                            .collect::<Vec<_>>()
                    },
                )
                // Cached, ProjectConfig changes arrive with the Freight ones (`Caches::start`).
                .watches(
                    Api::<ProjectConfig>::all(client.clone()),
                    watcher::Config::default(),
                    move |c: ProjectConfig| {
                        stages
                            .state()
                            .into_iter()
                            .filter(|s| s.namespace() == c.namespace())
                            .map(|s| ObjectRef::from_obj(s.as_ref()))
                            .collect::<Vec<_>>()
                    },
                )
        }
    };
    let apps: Api<Application> = Api::all(client.clone());
    let controller = if apps
        .list_metadata(&ListParams::default().limit(1))
        .await
        .is_ok()
    {
        controller.watches(apps, watcher::Config::default(), |app: Application| {
            authorized_stage::listed_on(&app)
                .into_iter()
                .map(|s| ObjectRef::<Stage>::new(&s.stage).within(&s.project))
                .collect::<Vec<_>>()
        })
    } else {
        controller
    };
    let results = controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    super::drive("stage", live, results).await;
}

//! The Stage reconciler (Kargo reference §2.4, §4, §5): it records what each finished
//! Promotion deployed, keeps Freight `currentlyIn` / `verifiedIn` true, evaluates health from
//! the Argo CD Applications the last Promotion touched, verifies the current Freight, and
//! auto-promotes new Freight where a ProjectConfig policy says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::analysis::{self, RunState};
use super::conditions::{self, Desired};
use super::{Context, Error, apply_status, key};
use crate::api::{
    ANNOTATION_CREATE_ACTOR, ANNOTATION_REVERIFY, CONDITION_HEALTHY, CONDITION_PROMOTING,
    CONDITION_READY, CONDITION_VERIFIED, Freight, FreightCollection, Health, HealthState,
    ProjectConfig, Promotion, PromotionPhase, PromotionReference, PromotionSpec, Stage,
    StageStatus, VerificationInfo, Warehouse,
};
use crate::stages::candidates::{self, CONTROLLER_ACTOR, Decision};
use crate::stages::{graph, policy};

fn now() -> Time {
    Time(Timestamp::now())
}

/// Go's `time.Duration.String()` for whole seconds (`1h2m3s`, `45s`), as Kargo stores soak times.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m{sec}s"),
        _ => format!("{h}h{m}m{sec}s"),
    }
}

fn phase(p: &Promotion) -> Option<PromotionPhase> {
    p.status.as_ref().and_then(|s| s.phase)
}

fn names(c: &FreightCollection) -> BTreeSet<String> {
    c.items.values().filter_map(|f| f.name.clone()).collect()
}

struct Project {
    warehouses: BTreeSet<String>,
    stages: Vec<Arc<Stage>>,
    freights: Vec<Arc<Freight>>,
    promotions: Vec<Arc<Promotion>>,
    config: Option<ProjectConfig>,
}

async fn load(ctx: &Context, ns: &str) -> Result<Project, Error> {
    let lp = ListParams::default();
    let c = &ctx.client;
    let config = Api::<ProjectConfig>::namespaced(c.clone(), ns);
    // From the caches when running: this reconciler is triggered by a Promotion change only
    // once the cache has it, and Promotions it created itself are seen at once (see
    // `Caches::created`), so auto-promotion cannot create one twice.
    if let Some(o) = ctx.cache.project(ns) {
        return Ok(Project {
            warehouses: o.warehouses,
            stages: o.stages,
            freights: o.freights,
            promotions: o.promotions,
            config: config.get_opt(ns).await?,
        });
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
    Ok(Project {
        warehouses: w
            .items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .collect(),
        stages: s.items.into_iter().map(Arc::new).collect(),
        freights: f.items.into_iter().map(Arc::new).collect(),
        promotions: p.items.into_iter().map(Arc::new).collect(),
        config: pc,
    })
}

async fn reconcile(obj: Arc<Stage>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("stage");
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Stage> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(stage) = api.get_opt(&obj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let name = stage.name_any();
    let project = load(&ctx, &ns).await?;
    let mut status: StageStatus = stage.status.clone().unwrap_or_default();
    let generation = stage.metadata.generation;
    let t = now();
    let mut busy = false;

    // 1. The Stage's place in the graph.
    let problems = graph::check(&stage, &project.warehouses, &project.stages);

    // 2. Promotions: the one running (or next), and what the newest finished one deployed.
    let mut mine: Vec<&Promotion> = project
        .promotions
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.spec.stage == name)
        .collect();
    mine.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let active = mine
        .iter()
        .find(|p| phase(p) == Some(PromotionPhase::Running))
        .or_else(|| {
            mine.iter()
                .find(|p| !phase(p).is_some_and(PromotionPhase::is_terminal))
        });
    status.current_promotion = active.map(|p| PromotionReference {
        name: p.name_any(),
        freight: p.status.as_ref().and_then(|s| s.freight.clone()),
        status: None,
        finished_at: None,
    });
    match active {
        Some(p) => {
            busy = true;
            conditions::set(
                &mut status.conditions,
                Desired {
                    type_: CONDITION_PROMOTING,
                    status: true,
                    reason: "Promoting",
                    message: format!(
                        "Promotion {} is {:?}",
                        p.name_any(),
                        phase(p).unwrap_or_default()
                    ),
                },
                generation,
                &t,
            );
        }
        None => conditions::remove(&mut status.conditions, CONDITION_PROMOTING),
    }
    // Finished Promotions in the order they finished (ties broken by resourceVersion).
    let newest_finished = mine
        .iter()
        .filter(|p| phase(p).is_some_and(PromotionPhase::is_terminal))
        .max_by_key(|p| candidates::finish_order(p));
    let newest_success = mine
        .iter()
        .filter(|p| phase(p) == Some(PromotionPhase::Succeeded))
        .max_by_key(|p| candidates::finish_order(p));
    // The current Freight is what the newest successful Promotion deployed; record it once.
    if let Some(collection) = newest_success
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.freight_collection.clone())
        && status.freight_history.first().map(|c| c.id.as_str()) != Some(collection.id.as_str())
    {
        let previous = status
            .freight_history
            .first()
            .map(names)
            .unwrap_or_default();
        record_current(
            &ctx,
            &ns,
            &name,
            &project.freights,
            &previous,
            &names(&collection),
        )
        .await?;
        status.freight_history.retain(|c| c.id != collection.id);
        let mut fresh = collection;
        fresh.verification_history.clear();
        status.freight_history.insert(0, fresh);
        status.freight_history.truncate(10);
    }
    if let Some(p) = newest_finished
        && status.last_promotion.as_ref().map(|l| l.name.as_str()) != Some(p.name_any().as_str())
    {
        let ps = p.status.clone().unwrap_or_default();
        status.last_promotion = Some(PromotionReference {
            name: p.name_any(),
            freight: ps.freight.clone(),
            finished_at: ps.finished_at.clone(),
            status: Some(crate::api::PromotionStatus {
                phase: ps.phase,
                message: ps.message.clone(),
                finished_at: ps.finished_at.clone(),
                health_checks: ps.health_checks.clone(),
                ..Default::default()
            }),
        });
    }
    let current: Vec<String> = status
        .freight_history
        .first()
        .map(|c| names(c).into_iter().collect())
        .unwrap_or_default();
    status.freight_summary = Some(match current.len() {
        0 => "N/A".to_string(),
        1 => current[0].clone(),
        n => format!("{n}/{} Fulfilled", stage.spec.requested_freight.len()),
    });

    // 3. Health from the last successful Promotion's checks (none means healthy).
    let (health, health_msg) = evaluate_health(&ctx, &status, active.is_some()).await;
    let healthy = health.status == Some(HealthState::Healthy);
    if !healthy {
        busy = true;
    }
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_HEALTHY,
            status: healthy,
            reason: health.status.unwrap_or_default().as_str(),
            message: health_msg.clone(),
        },
        generation,
        &t,
    );
    status.health = Some(health);

    // 4. Verification of the current Freight once the Stage is healthy and idle.
    let reverify = stage
        .annotations()
        .get(ANNOTATION_REVERIFY)
        .is_some_and(|v| status.last_handled_refresh.as_deref() != Some(v.as_str()));
    let verified = verify(
        &ctx,
        &stage,
        &mut status,
        healthy && active.is_none(),
        reverify,
    )
    .await?;
    if reverify {
        status.last_handled_refresh = stage.annotations().get(ANNOTATION_REVERIFY).cloned();
    }
    match &verified {
        Some((ok, msg)) => conditions::set(
            &mut status.conditions,
            Desired {
                type_: CONDITION_VERIFIED,
                status: *ok,
                reason: if *ok {
                    "Verified"
                } else {
                    "VerificationFailed"
                },
                message: msg.clone(),
            },
            generation,
            &t,
        ),
        None => {
            if !status.freight_history.is_empty() {
                busy = true;
                let message = running_analysis(&status).unwrap_or_else(|| {
                    format!("Verification waits for the Stage to be healthy: {health_msg}")
                });
                conditions::set(
                    &mut status.conditions,
                    Desired {
                        type_: CONDITION_VERIFIED,
                        status: false,
                        reason: "Pending",
                        message,
                    },
                    generation,
                    &t,
                );
            }
        }
    }

    // 5. Auto-promotion.
    let policy = policy::find(project.config.as_ref(), &name, stage.labels());
    let auto = policy
        .and_then(|p| p.auto_promotion_enabled)
        .unwrap_or(false);
    status.auto_promotion_enabled = Some(auto);
    let mut auto_note = None;
    if auto && problems.is_empty() && active.is_none() {
        // Decide on the status as just updated: a Promotion recorded above is current now,
        // and must not be promoted again.
        let mut updated = stage.clone();
        updated.status = Some(status.clone());
        for req in &stage.spec.requested_freight {
            match candidates::decide(
                &updated,
                req,
                &project.freights,
                &project.promotions,
                Timestamp::now(),
            ) {
                Decision::Promote(freight) => {
                    let p = create_promotion(&ctx, &stage, &freight).await?;
                    ctx.event(
                        &stage,
                        EventType::Normal,
                        "PromotionCreated",
                        "AutoPromote",
                        format!("Auto-promoting Freight {freight} to Stage {name} ({p})"),
                    )
                    .await;
                    busy = true;
                    break;
                }
                Decision::Held(m) => auto_note = Some(m),
                Decision::Wait(_) => {}
            }
        }
    }

    // 6. Ready: the graph is sound, the Stage is healthy and its Freight verified.
    let (ready, reason, message) = if let Some(p) = problems.first() {
        let all: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        (false, p.reason, all.join("; "))
    } else if let Some(p) = active {
        (
            false,
            "Promoting",
            format!("Promotion {} is in progress", p.name_any()),
        )
    } else if status.freight_history.is_empty() {
        (
            false,
            "NoFreight",
            "No Freight has been promoted to this Stage yet".to_string(),
        )
    } else if !healthy {
        (false, "Unhealthy", health_msg)
    } else if let Some((false, m)) = &verified {
        (false, "VerificationFailed", m.clone())
    } else if verified.is_none() {
        (
            false,
            "Verifying",
            "Verifying the current Freight".to_string(),
        )
    } else if let Some(m) = auto_note {
        (true, "AutoPromotionHeld", m)
    } else {
        (true, "Ready", "Stage is ready".to_string())
    };
    let was = conditions::get(&status.conditions, CONDITION_READY)
        .map(|c| (c.reason.clone(), c.message.clone()));
    conditions::set(
        &mut status.conditions,
        Desired {
            type_: CONDITION_READY,
            status: ready,
            reason,
            message: message.clone(),
        },
        generation,
        &t,
    );
    if !problems.is_empty() && was.as_ref().map(|w| w.1.as_str()) != Some(message.as_str()) {
        ctx.event(
            &stage,
            EventType::Warning,
            reason,
            "Validate",
            message.clone(),
        )
        .await;
    }
    status.observed_generation = generation;
    if stage.status.as_ref() != Some(&status) {
        // status.metadata belongs to the set-metadata step (a merge patch): applying the cached
        // copy would make haul's field manager own it and could put back an older value.
        let mut applied = status.clone();
        applied.metadata.clear();
        apply_status(&api, &stage, &applied).await?;
    }
    Ok(Action::requeue(if busy {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(300)
    }))
}

/// Updates `currentlyIn` on the Freight that left and entered the Stage, and the longest
/// continuous soak of the Freight that left.
async fn record_current(
    ctx: &Context,
    ns: &str,
    stage: &str,
    freights: &[Arc<Freight>],
    previous: &BTreeSet<String>,
    current: &BTreeSet<String>,
) -> Result<(), Error> {
    let api: Api<Freight> = Api::namespaced(ctx.client.clone(), ns);
    let pp = PatchParams::default();
    for gone in previous.difference(current) {
        let f = freights
            .iter()
            .find(|f| f.metadata.name.as_deref() == Some(gone.as_str()));
        let st = f.and_then(|f| f.status.as_ref());
        let since = st
            .and_then(|s| s.currently_in.get(stage))
            .and_then(|c| c.since.as_ref());
        let mut patch = json!({"status": {"currentlyIn": {stage: null}}});
        if let (Some(since), Some(v)) = (since, st.and_then(|s| s.verified_in.get(stage))) {
            let soak =
                Duration::try_from(Timestamp::now().duration_since(since.0)).unwrap_or_default();
            let longest = v
                .longest_soak
                .as_deref()
                .and_then(|s| crate::duration::parse(s).ok())
                .unwrap_or_default()
                .max(soak);
            patch["status"]["verifiedIn"] = json!({stage: {"longestSoak": go_duration(longest)}});
        }
        if let Err(e) = api.patch_status(gone, &pp, &Patch::Merge(&patch)).await {
            tracing::warn!(freight = %gone, error = %e, "cannot update currentlyIn");
        }
    }
    let since = now();
    for new in current.difference(previous) {
        let patch = json!({"status": {"currentlyIn": {stage: {"since": since}}}});
        api.patch_status(new, &pp, &Patch::Merge(&patch)).await?;
    }
    Ok(())
}

/// Health from the checks the last successful Promotion left (argocd-update's), merged to the
/// worst state. A running Promotion, or a last Promotion that failed, makes health Unknown.
async fn evaluate_health(ctx: &Context, status: &StageStatus, promoting: bool) -> (Health, String) {
    let last = status
        .last_promotion
        .as_ref()
        .and_then(|l| l.status.clone());
    let unknown = |m: String| {
        (
            Health {
                status: Some(HealthState::Unknown),
                issues: vec![m.clone()],
                config: None,
                output: None,
            },
            m,
        )
    };
    if promoting {
        return unknown("a Promotion is in progress".into());
    }
    let Some(last) = last else {
        return (
            Health {
                status: Some(HealthState::NotApplicable),
                ..Default::default()
            },
            "nothing promoted yet".into(),
        );
    };
    if last.phase != Some(PromotionPhase::Succeeded) {
        return unknown(format!(
            "the last Promotion did not succeed: {}",
            last.message.unwrap_or_default()
        ));
    }
    let mut results = Vec::new();
    for check in &last.health_checks {
        if check.uses != crate::argocd::STEP_KIND {
            continue;
        }
        let record = json!({"uses": check.uses, "config": check.config});
        match crate::argocd::check(&ctx.client, &ctx.config.argocd_namespace, &record).await {
            Ok(r) => results.extend(r.into_iter().map(|(_, h)| h)),
            Err(e) => return unknown(format!("checking Argo CD health: {e}")),
        }
    }
    if results.is_empty() {
        return (
            Health {
                status: Some(HealthState::Healthy),
                ..Default::default()
            },
            "no health checks; the last Promotion succeeded".into(),
        );
    }
    let issues: Vec<String> = results
        .iter()
        .filter(|h| h.state != HealthState::Healthy)
        .map(|h| h.message.clone())
        .collect();
    let worst = crate::argocd::aggregate(results);
    let message = if issues.is_empty() {
        worst.message.clone()
    } else {
        issues.join("; ")
    };
    (
        Health {
            status: Some(worst.state),
            issues,
            config: None,
            output: None,
        },
        message,
    )
}

/// The message of a verification still running (an AnalysisRun), if one is.
fn running_analysis(status: &StageStatus) -> Option<String> {
    let last = status
        .freight_history
        .first()?
        .verification_history
        .first()?;
    (last.phase.as_deref() == Some("Running")).then(|| last.message.clone().unwrap_or_default())
}

/// Records the outcome of a verification on the Freight (verifiedIn) and as an Event.
async fn conclude(
    ctx: &Context,
    stage: &Stage,
    freight: &BTreeSet<String>,
    ok: bool,
    message: &str,
) -> Result<(), Error> {
    let name = stage.name_any();
    if ok {
        let api: Api<Freight> =
            Api::namespaced(ctx.client.clone(), &stage.namespace().unwrap_or_default());
        let t = now();
        for f in freight {
            let patch = json!({"status": {"verifiedIn": {name.clone(): {"verifiedAt": t}}}});
            api.patch_status(f, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            ctx.event(
                stage,
                EventType::Normal,
                "FreightVerified",
                "Verify",
                format!("Freight {f} verified in Stage {name}"),
            )
            .await;
        }
    } else {
        ctx.event(
            stage,
            EventType::Warning,
            "FreightVerificationFailed",
            "Verify",
            message.to_string(),
        )
        .await;
    }
    Ok(())
}

/// Verifies the current Freight: `Some((true, _))` once verified, `Some((false, why))` when
/// verification failed, `None` while it cannot run yet or is still running. Without
/// `verification.analysisTemplates` a healthy, idle Stage verifies at once; with them an
/// Argo Rollouts AnalysisRun decides.
async fn verify(
    ctx: &Context,
    stage: &Stage,
    status: &mut StageStatus,
    can_run: bool,
    reverify: bool,
) -> Result<Option<(bool, String)>, Error> {
    let Some(current) = status.freight_history.first_mut() else {
        return Ok(None);
    };
    if reverify {
        current.verification_history.clear();
    }
    let freight = names(current);
    if let Some(last) = current.verification_history.first_mut() {
        if last.phase.as_deref() == Some("Running")
            && let Some(run) = last.analysis_run.as_mut()
        {
            match analysis::check(&ctx.client, &run.namespace, &run.name).await {
                Ok(RunState::Running) | Err(_) => return Ok(None),
                Ok(state) => {
                    let (ok, message) = match state {
                        RunState::Successful => {
                            (true, format!("AnalysisRun {} succeeded", run.name))
                        }
                        RunState::Failed(m) => (false, m),
                        RunState::Running => (false, String::new()),
                    };
                    let phase = if ok { "Successful" } else { "Failed" };
                    run.phase = phase.into();
                    last.phase = Some(phase.into());
                    last.message = Some(message.clone());
                    last.finish_time = Some(now());
                    conclude(ctx, stage, &freight, ok, &message).await?;
                    return Ok(Some((ok, message)));
                }
            }
        }
        let ok = last.phase.as_deref() == Some("Successful");
        return Ok(Some((ok, last.message.clone().unwrap_or_default())));
    }
    if !can_run {
        return Ok(None);
    }
    let has_analysis = stage
        .spec
        .verification
        .as_ref()
        .is_some_and(|v| !v.analysis_templates.is_empty());
    let t = now();
    let mut info = VerificationInfo {
        id: Some(ulid::Ulid::generate().to_string().to_lowercase()),
        actor: Some(CONTROLLER_ACTOR.into()),
        start_time: Some(t.clone()),
        ..Default::default()
    };
    let outcome = if has_analysis {
        match analysis::start(&ctx.client, stage, &current.id).await {
            Ok(run) => {
                info.phase = Some("Running".into());
                info.message = Some(format!("AnalysisRun {run} is running"));
                info.analysis_run = Some(crate::api::AnalysisRunReference {
                    name: run,
                    namespace: stage.namespace().unwrap_or_default(),
                    phase: "Running".into(),
                });
                None
            }
            Err(m) => Some((false, m)),
        }
    } else {
        Some((
            true,
            "Stage is healthy after the promotion (no verification configured)".to_string(),
        ))
    };
    if let Some((ok, message)) = &outcome {
        info.phase = Some(if *ok { "Successful" } else { "Failed" }.into());
        info.message = Some(message.clone());
        info.finish_time = Some(t.clone());
    }
    current.verification_history.insert(0, info);
    current.verification_history.truncate(10);
    if let Some((ok, message)) = &outcome {
        conclude(ctx, stage, &freight, *ok, message).await?;
    }
    Ok(outcome)
}

/// Creates an auto-promotion named like Kargo's (`<stage>.<ulid>.<freight[0:7]>`), owned by
/// the Stage and recorded as the controller's.
async fn create_promotion(ctx: &Context, stage: &Stage, freight: &str) -> Result<String, Error> {
    let ns = stage.namespace().unwrap_or_default();
    let short: String = freight.chars().take(7).collect();
    let name = format!("{}.{}.{short}", stage.name_any(), ulid::Ulid::generate()).to_lowercase();
    let p = Promotion {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_CREATE_ACTOR.to_string(),
                CONTROLLER_ACTOR.to_string(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: Stage::api_version(&()).into_owned(),
                kind: Stage::kind(&()).into_owned(),
                name: stage.name_any(),
                uid: stage.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: PromotionSpec {
            stage: stage.name_any(),
            freight: Some(freight.to_string()),
            ..Default::default()
        },
        status: None,
    };
    let created = Api::<Promotion>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &p)
        .await?;
    ctx.cache.created(created);
    Ok(name)
}

fn error_policy(s: Arc<Stage>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed("stage");
    let k = key(s.as_ref());
    let delay = ctx.backoff(&k, Duration::from_secs(120));
    tracing::warn!(stage = %k, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the Stage controller. Changes to a Stage's Promotions, to Freight and to Argo CD
/// Applications re-trigger the Stages they concern.
pub async fn run(ctx: Arc<Context>) {
    use crate::api::argocd::Application;
    let client = ctx.client.clone();
    // Driven from the shared caches when they run: Stage changes, and Freight and Promotion
    // changes once the cache the reconciler reads has them.
    let (controller, stages) = match ctx.cache.stage_triggers() {
        Some((store, changes, others)) => (
            Controller::for_shared_stream(changes, store.clone()).reconcile_on(others),
            store,
        ),
        None => {
            let controller = Controller::new(
                Api::<Stage>::all(client.clone()),
                watcher::Config::default(),
            );
            let stages = controller.store();
            let of_freight = stages.clone();
            let controller = controller
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
                );
            (controller, stages)
        }
    };
    let controller = controller.watches(
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
    );
    let apps: Api<Application> = Api::all(client.clone());
    let controller = if apps
        .list_metadata(&ListParams::default().limit(1))
        .await
        .is_ok()
    {
        controller.watches(apps, watcher::Config::default(), |app: Application| {
            app.annotations()
                .get(crate::api::ANNOTATION_AUTHORIZED_STAGE)
                .map(|v| {
                    v.split(',')
                        .filter_map(|s| s.trim().split_once(':'))
                        .map(|(p, s)| ObjectRef::<Stage>::new(s).within(p))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    } else {
        controller
    };
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "stage controller event");
            }
        })
        .await;
}
